"""transform against calling the network directly, on a million rows.

A TripletEmbedder with the default backbone (ResidualMLP, 128 -> 256 -> 64,
L2-normalised) is fitted briefly on random data, then embeds ``--rows`` x 128
float32 rows in three ways, interleaved so that drift hits all alike:

* ``direct``: the reference, the fitted module called on batches of 8,192
  rows of ``torch.from_numpy(X)`` under ``torch.inference_mode``, the
  batches' outputs concatenated.
* ``transform``: ``emb.transform(X)``, validation and checks included.
* ``transform, output_dtype="float16"``, and ``transform`` of a float64
  copy of the input (converted batch by batch).

Reported: the median of ``--repeats`` runs of each and its ratio to the
direct call. Run:

    python benchmarks/bench_inference.py [--rows 1000000] [--repeats 5]
"""

import argparse
import copy
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import provenance, write_results

from sklearn_dml import TripletEmbedder

BATCH = 8192


def direct(module, X):
    with torch.inference_mode():
        Xt = torch.from_numpy(X)
        return torch.cat(
            [module(Xt[s : s + BATCH]) for s in range(0, X.shape[0], BATCH)]
        ).numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "inference.md")
    )
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, 128), dtype=np.float32)
    X64 = X.astype(np.float64)
    y = rng.integers(0, 50, size=4000)
    emb = TripletEmbedder(
        n_components=64, max_iter=1, anchor_weight=None, random_state=0, device="cpu"
    ).fit(X[:4000], y)
    half = copy.deepcopy(emb).set_params(output_dtype="float16")
    module = emb.backbone_
    before = X.copy()
    runs = {
        "direct module call (reference)": lambda: direct(module, X),
        "transform (float32 input)": lambda: emb.transform(X),
        'transform, output_dtype="float16"': lambda: half.transform(X),
        "transform (float64 input)": lambda: emb.transform(X64),
    }
    ref = runs["direct module call (reference)"]()
    assert np.array_equal(runs["transform (float32 input)"](), ref)
    assert np.array_equal(
        runs['transform, output_dtype="float16"'](), ref.astype(np.float16)
    )
    assert np.array_equal(X, before)
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            tic = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - tic)
    base = statistics.median(times["direct module call (reference)"])
    lines = [
        "# Inference: transform against the direct module call",
        "",
        provenance(),
        "",
        f"{args.rows:,} x 128 float32 rows, ResidualMLP 128-256-64 (L2-normalised "
        f"output), batches of {BATCH}, {args.repeats} interleaved repeats (median), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}. The machine was shared "
        "with other jobs: ratios, not seconds, are the result.",
        "",
        "| run | s (median) | ratio to direct call | runs (s) |",
        "|---|---|---|---|",
    ]
    for name, ts in times.items():
        med = statistics.median(ts)
        spread = ", ".join(f"{t:.3f}" for t in ts)
        lines.append(f"| {name} | {med:.3f} | {med / base:.3f} | {spread} |")
    write_results(lines, args.out)


if __name__ == "__main__":
    main()
