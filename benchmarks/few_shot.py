"""Few-shot accuracy on unseen classes, and the angular prototypical comparison.

Part 1, the headline embedders at their defaults: trained on the seen
classes of a class-disjoint task, scored by 5-way 1-shot and 5-shot accuracy
(nearest prototype, Euclidean; 600 episodes drawn with the same seed for
every method, so all methods see the same episodes) on the unseen classes.
Tasks from ``transfer_tasks.py``: ``mnist_0_4`` (MNIST-5k, 300 images per
digit; seen 0-4, unseen 5-9) and ``mnist_pairs`` (two digits side by side,
class = ordered pair; 50 seen and 50 unseen classes of 30 samples). Inputs
standardised on the seen samples. Baselines: the standardised features and
PCA to 64 dimensions (the embedders' default size). One seed (0): the
intervals are those of the episodes, not of training.

Part 2, the angular prototypical comparison: ``mnist_pairs`` with 5 samples
per seen class (50 classes, 250 samples), the angular prototypical loss
against triplet, Proxy-Anchor and SupCon at matched regularisation: the same
``anchor_weight`` (0, then 10), the same budget (``max_iter=100``, batches of
128 with 4 samples per class), every other setting at its default. Seeds 0,
1, 2 (the task's sampling and the training); mean and worst seed of the
5-way accuracies and of leave-one-out MAP@R on the unseen classes.

Run: ``nice -n 10 python benchmarks/few_shot.py`` (several minutes on one
core); writes ``benchmarks/results/few_shot.md``.
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from sklearn_dml import (
    AngularPrototypicalEmbedder,
    ContrastiveEmbedder,
    MultiSimilarityEmbedder,
    ProxyAnchorEmbedder,
    SupConEmbedder,
    TripletEmbedder,
)
from sklearn_dml.metrics import few_shot_accuracy, map_at_r_score

sys.path.insert(0, str(Path(__file__).parent))
from _provenance import provenance, write_results  # noqa: E402
from transfer_tasks import mnist_0_4, mnist_pairs  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "few_shot.md"
EPISODES = dict(n_way=5, n_query=15, n_episodes=600, random_state=0)

HEADLINE = {
    "raw features": None,
    "PCA (64)": lambda seed: PCA(64, random_state=seed),
    "TripletEmbedder": lambda seed: TripletEmbedder(random_state=seed),
    "ContrastiveEmbedder": lambda seed: ContrastiveEmbedder(random_state=seed),
    "MultiSimilarityEmbedder": lambda seed: MultiSimilarityEmbedder(random_state=seed),
    "ProxyAnchorEmbedder": lambda seed: ProxyAnchorEmbedder(random_state=seed),
    "SupConEmbedder": lambda seed: SupConEmbedder(random_state=seed),
    "AngularPrototypicalEmbedder": lambda seed: AngularPrototypicalEmbedder(
        random_state=seed
    ),
}

MATCHED = {
    "AngularPrototypical": AngularPrototypicalEmbedder,
    "Triplet": TripletEmbedder,
    "ProxyAnchor": ProxyAnchorEmbedder,
    "SupCon": SupConEmbedder,
}


def _standardised(task, seed):
    X_seen, y_seen, X_unseen, y_unseen = task(seed)
    scaler = StandardScaler().fit(X_seen)
    return scaler.transform(X_seen), y_seen, scaler.transform(X_unseen), y_unseen


def _few_shot(Z, y):
    one = few_shot_accuracy(Z, y, n_shot=1, **EPISODES)
    five = few_shot_accuracy(Z, y, n_shot=5, **EPISODES)
    return one, five


def _embed(make, seed, X_seen, y_seen, X_unseen):
    if make is None:
        return X_unseen, 0.0
    model = make(seed)
    tic = time.perf_counter()
    model.fit(X_seen, y_seen)
    return model.transform(X_unseen), time.perf_counter() - tic


def headline():
    lines = [
        "## 5-way accuracy on unseen classes, headline embedders at their defaults",
        "",
        "Nearest prototype (Euclidean), 15 queries per class, 600 episodes (the",
        "same for every method), accuracy +- the 95 % interval of the episodes.",
        "Training seed 0; embedders at their defaults (64-d output, ResidualMLP",
        "(256,), 50 epochs).",
        "",
        "| task | method | 1-shot | 5-shot | fit (s) |",
        "|---|---|---|---|---|",
    ]
    for task in (mnist_0_4, mnist_pairs):
        X_seen, y_seen, X_unseen, y_unseen = _standardised(task, 0)
        for name, make in HEADLINE.items():
            Z, seconds = _embed(make, 0, X_seen, y_seen, X_unseen)
            one, five = _few_shot(Z, y_unseen)
            lines.append(
                f"| {task.__name__} | {name} | {one.accuracy:.3f} +- {one.ci95:.3f} "
                f"| {five.accuracy:.3f} +- {five.ci95:.3f} | {seconds:.0f} |"
            )
            print(lines[-1], flush=True)
    return lines


def _five_per_class(X, y, seed):
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), 5, replace=False) for c in np.unique(y)]
    )
    return X[keep], y[keep]


def matched():
    lines = [
        "",
        "## Angular prototypical vs triplet, Proxy-Anchor, SupCon (5 per class)",
        "",
        "mnist_pairs, 50 seen classes with 5 samples each (250 samples), 50",
        "unseen classes of 30. Same anchor_weight for all, max_iter=100, batch",
        "128 with 4 per class, other settings at their defaults. Seeds 0, 1, 2:",
        "mean (worst seed).",
        "",
        "| anchor_weight | method | 1-shot | 5-shot | unseen MAP@R | fit (s) |",
        "|---|---|---|---|---|---|",
    ]
    for anchor_weight in (0.0, 10.0):
        for name, cls in MATCHED.items():
            found, seconds = [], 0.0
            for seed in (0, 1, 2):
                X_seen, y_seen, X_unseen, y_unseen = _standardised(mnist_pairs, seed)
                X_seen, y_seen = _five_per_class(X_seen, y_seen, seed)
                model = cls(
                    anchor_weight=anchor_weight, max_iter=100, random_state=seed
                )
                tic = time.perf_counter()
                Z = model.fit(X_seen, y_seen).transform(X_unseen)
                seconds += time.perf_counter() - tic
                one, five = _few_shot(Z, y_unseen)
                found.append((one.accuracy, five.accuracy, map_at_r_score(Z, y_unseen)))
            found = np.array(found)
            cells = [
                f"{found[:, i].mean():.3f} ({found[:, i].min():.3f})" for i in range(3)
            ]
            lines.append(
                f"| {anchor_weight:g} | {name} | "
                + " | ".join(cells)
                + f" | {seconds / 3:.0f} |"
            )
            print(lines[-1], flush=True)
    return lines


def main():
    torch.set_num_threads(1)
    lines = headline() + matched()
    title = ["# Few-shot accuracy on unseen classes", "", provenance(), ""]
    write_results(title + lines, RESULTS)


if __name__ == "__main__":
    main()
