"""Class-disjoint early stopping against none, by the number of training classes.

``early_stopping=True, validation_split="class_disjoint"`` holds out whole
training classes and keeps the epoch that retrieves them best. Whether that
held-out score predicts retrieval of the classes never seen depends on how
many classes it rests on. The unanchored triplet embedder (where training
moves the geometry most, and where stopping matters) is fitted with and without it
on the suite's tasks of 5, 10 and 25-50 training classes (protocol of
``transfer_suite.evaluate``, 3 seeds); the table gives unseen and closed-set
MAP@R and the paired difference.

    python benchmarks/transfer_early_stopping.py [--seeds 3] [--out FILE]

Writes ``results/transfer_early_stopping.md`` by default.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _provenance import provenance, write_results  # noqa: E402
from transfer_suite import evaluate  # noqa: E402

from sklearn_dml import TripletEmbedder  # noqa: E402

HERE = Path(__file__).parent
TASKS = [
    "signals_10cls",
    "latent_distractors_10cls",
    "mnist_0-4",
    "signals_20cls",
    "latent_distractors_20cls",
    "signals",
    "latent_distractors",
]
SETTINGS = {
    "unanchored": dict(anchor_weight=0.0),
    "unanchored + class-disjoint early stopping": dict(
        anchor_weight=0.0, early_stopping=True, validation_split="class_disjoint"
    ),
}


def factory(params):
    def make(n_features, seed):
        return TripletEmbedder(
            n_components=min(64, n_features), random_state=seed, device="cpu", **params
        )

    return make


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--out", default=str(HERE / "results" / "transfer_early_stopping.md")
    )
    args = parser.parse_args()
    tic = time.perf_counter()
    rows = {}
    for task in TASKS:
        for name, params in SETTINGS.items():
            rows[task, name] = [
                evaluate(factory(params), task, seed) for seed in range(args.seeds)
            ]
    lines = [
        "# Class-disjoint early stopping by the number of training classes",
        "",
        provenance(),
        "",
        f"TripletEmbedder, {args.seeds} seeds (mean; in brackets the paired "
        "difference with the same setting without early stopping), protocol of "
        f"`transfer_suite.evaluate`; {time.perf_counter() - tic:.0f} s.",
        "",
        "| task | training classes | setting | unseen MAP@R | closed-set MAP@R |",
        "|---|---|---|---|---|",
    ]
    for task in TASKS:
        for name in SETTINGS:
            r = rows[task, name]
            base = rows[task, name.split(" + ")[0]]
            cells = []
            for key in ("unseen_map", "closed_map"):
                value = np.mean([x[key] for x in r])
                diff = np.mean([x[key] - b[key] for x, b in zip(r, base, strict=True)])
                cells.append(
                    f"{value:.3f}" + (f" ({diff:+.3f})" if "+" in name else "")
                )
            lines.append(
                f"| {task} | {r[0]['n_seen_classes']} | {name} | "
                + " | ".join(cells)
                + " |"
            )
    write_results(lines, args.out)


if __name__ == "__main__":
    main()
