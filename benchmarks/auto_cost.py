"""The cost of ``anchor_weight="auto"``: a default fit against one fit at the method's weight.

The transfer issue bounds the default's extra cost: a default fit may take
at most 3x the time of a fit at the method's own anchoring weight
(``anchor_weight=None``, the default before ``"auto"``). For each task of
``transfer_tasks.TASKS`` chosen and each embedder, both fits run on the
task's training split (``transfer_suite.split``, standardised), alternated
in one process with 1 torch thread, ``--repeats`` times; the table gives
the median seconds of each and their ratio, with the number of classes and
samples (the choice's validation groups depend on the classes: three
overlapping groups from five to nine, the two halves from ten on).

    python benchmarks/auto_cost.py [--tasks T ...] [--embedders E ...]
        [--repeats 3] [--seed 0]
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).parent))
from _provenance import provenance  # noqa: E402
from transfer_suite import split  # noqa: E402
from transfer_tasks import TASKS  # noqa: E402

import sklearn_dml  # noqa: E402

HERE = Path(__file__).parent
RESULTS_MD = HERE / "results" / "auto_cost.md"
DEFAULT_TASKS = [
    "signals_10cls",
    "tabular_irrelevant_10cls",
    "pretrained_features_10cls",
    "digits_5-9",
    "mnist_0-4",
    "signals_20cls",
    "tabular_irrelevant_20cls",
    "signals",
    "latent_nonlinear",
]
DEFAULT_EMBEDDERS = ["TripletEmbedder", "SupConEmbedder"]
SETTINGS = {"method weight": None, "auto (default)": "auto"}


def timed_fit(embedder, anchor_weight, X, y, seed):
    est = getattr(sklearn_dml, embedder)(
        n_components=min(64, X.shape[1]),
        anchor_weight=anchor_weight,
        random_state=seed,
        device="cpu",
    )
    tic = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - tic, est


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tasks", nargs="+", choices=list(TASKS), default=DEFAULT_TASKS
    )
    parser.add_argument("--embedders", nargs="+", default=DEFAULT_EMBEDDERS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_MD)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = [
        "| task | classes | samples | embedder | method weight (s) "
        "| auto (s) | ratio | auto chose |",
        "|---|---:|---:|---|---:|---:|---:|---|",
    ]
    ratios = []
    for task in args.tasks:
        X, y = split(task, args.seed)[:2]
        X = StandardScaler().fit_transform(X).astype(np.float32)
        y = np.asarray(y)
        for embedder in args.embedders:
            times = {s: [] for s in SETTINGS}
            for _ in range(args.repeats):  # alternated: drifts hit both alike
                for setting, weight in SETTINGS.items():
                    seconds, est = timed_fit(embedder, weight, X, y, args.seed)
                    times[setting].append(seconds)
            chose = (
                "free network"
                if est.anchor_weight_ == 0
                else f"anchored, start share {est.start_share_:.1f}"
            )
            base, auto = (float(np.median(times[s])) for s in SETTINGS)
            ratios.append(auto / base)
            lines.append(
                f"| {task} | {len(np.unique(y))} | {len(y)} | {embedder} "
                f"| {base:.2f} | {auto:.2f} | {auto / base:.2f} | {chose} |"
            )
            print(lines[-1], flush=True)
    text = [
        '# The cost of `anchor_weight="auto"`',
        "",
        f"{provenance()} Python {platform.python_version()}, torch "
        f"{torch.__version__}, 1 torch thread, {platform.machine()}; task seed "
        f"{args.seed}, median of {args.repeats} alternated fits each.",
        "",
        'A default fit (`anchor_weight="auto"`: candidates trained and scored '
        "on class-disjoint groups of the training classes, then the real fit) "
        "against one fit at the method's weight (`anchor_weight=None`), on the "
        "training split of each task. The transfer issue allows at most 3x.",
        "",
        *lines,
        "",
        f"Worst ratio {max(ratios):.2f}, median {np.median(ratios):.2f}.",
    ]
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text("\n".join(text) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
