"""Training throughput of the headline embedders against pytorch-metric-learning loops.

Data: 50,000 x 128 float32 rows in 1,000 classes of 50 (Gaussian blobs,
standardised), the scale of issue 19's measurement. For each headline loss
(triplet with semihard mining, contrastive, multi-similarity with its miner,
Proxy-Anchor, SupCon) one process times, interleaved over repeats:

* ``estimator, method's weight``: the sklearn-dml embedder with
  ``anchor_weight=None`` (its default backbone, a PCA-started residual MLP
  128-256-64, trained with the anchoring penalty at the method's weight),
  no choice on the data: the per-epoch cost of training;
* ``estimator, no anchor``: the same with ``anchor_weight=0``;
* ``estimator, defaults``: the embedder at its defaults, whose
  ``anchor_weight="auto"`` first trains four candidates on half of the
  classes each (two weights, two halves) and scores them; its seconds per
  epoch include that choice, i.e. the whole fit divided by ``max_iter``;
* ``PML loop``: :class:`pml_baselines.PMLLoop` with the same loss, an MLP
  128-256-64, Adam at 1e-3, pytorch-metric-learning's ``MPerClassSampler``
  batches of 128 (32 classes x 4, as the embedders' class-balanced
  batches).

Every run trains for the same number of epochs (``--epochs``) with batches
of 128 (390 steps an epoch). Reported: the median seconds per epoch over
the repeats and the ratio to the PML loop of the same loss (below 1: faster
than the loop). Run::

    python benchmarks/bench_fit_throughput.py [--epochs 3] [--repeats 3]
"""

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import provenance, write_results
from pml_baselines import PMLLoop
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler

from sklearn_dml import (
    ContrastiveEmbedder,
    MultiSimilarityEmbedder,
    ProxyAnchorEmbedder,
    SupConEmbedder,
    TripletEmbedder,
)

LOSSES = {
    "triplet": TripletEmbedder,
    "contrastive": ContrastiveEmbedder,
    "multi_similarity": MultiSimilarityEmbedder,
    "proxy_anchor": ProxyAnchorEmbedder,
    "supcon": SupConEmbedder,
}
VARIANTS = (
    "estimator, method's weight",
    "estimator, no anchor",
    "estimator, defaults",
    "PML loop",
)
ANCHOR = {
    "estimator, method's weight": None,
    "estimator, no anchor": 0.0,
    "estimator, defaults": "auto",
}


def make_data(n_samples, n_features, n_classes, seed=0):
    X, y = make_blobs(
        n_samples=n_samples,
        n_features=n_features,
        centers=n_classes,
        cluster_std=4.0,
        random_state=seed,
    )
    return StandardScaler().fit_transform(X).astype(np.float32), y


def seconds_per_epoch(loss, variant, X, y, epochs, seed):
    if variant == "PML loop":
        model = PMLLoop(loss=loss, max_iter=epochs, batch_size=128, random_state=seed)
    else:
        model = LOSSES[loss](
            anchor_weight=ANCHOR[variant], max_iter=epochs, random_state=seed
        )
    tic = time.perf_counter()
    model.fit(X, y)
    return (time.perf_counter() - tic) / epochs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=1_000)
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "fit_throughput.md")
    )
    args = parser.parse_args(argv)
    X, y = make_data(args.rows, 128, args.classes)
    times = {}
    for loss in args.losses:
        for variant in VARIANTS:  # warm-up: imports, allocator, thread pool
            seconds_per_epoch(loss, variant, X[:5000], y[:5000], 1, 0)
        for rep in range(args.repeats):
            for variant in VARIANTS:
                t = seconds_per_epoch(loss, variant, X, y, args.epochs, rep)
                times.setdefault((loss, variant), []).append(t)
                print(f"{loss} / {variant} / repeat {rep}: {t:.2f} s per epoch")
    lines = [
        "# Training throughput: headline embedders against pytorch-metric-learning loops",
        "",
        provenance(),
        "",
        f"{args.rows:,} x 128 float32 rows, {args.classes:,} classes (Gaussian "
        f"blobs, standardised), batches of 128 (32 classes x 4), {args.epochs} "
        f"epoch(s) per fit, median of {args.repeats} interleaved repeats; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}. See the script's docstring "
        "for what each row runs. Ratio: seconds per epoch over those of the PML "
        "loop with the same loss in the same run (below 1: faster).",
        "",
        "| loss | run | s / epoch (median) | ratio to PML loop |",
        "|---|---|---:|---:|",
    ]
    for loss in args.losses:
        base = statistics.median(times[(loss, "PML loop")])
        for variant in VARIANTS:
            med = statistics.median(times[(loss, variant)])
            lines.append(f"| {loss} | {variant} | {med:.3f} | {med / base:.2f} |")
    write_results(lines, args.out)


if __name__ == "__main__":
    main()
