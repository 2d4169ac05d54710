"""The seen/unseen-class protocol shared by the method benchmarks.

A method is a factory ``make(seed) -> transformer`` (an unfitted sklearn-dml
embedder, usually). For each seed, the classes of a dataset are split into
"seen" (digits 0-4) and "unseen" (5-9); 70 % of the seen samples (drawn by
the seed) train the method inside a ``Pipeline`` that starts with a
``StandardScaler``, and the embeddings are scored by leave-one-out
retrieval:

* seen MAP@R and P@1: among the 30 % held-out samples of the seen classes
  (closed-set quality);
* unseen MAP@R and P@1: among all samples of the unseen classes (open-set
  quality, the goal of metric learning).

:func:`evaluate` runs one method over seeds; :func:`markdown_table` prints
mean +- standard deviation, and the paired difference with a base method
on the same seeds.
"""

import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_dml.datasets import load_mnist_5k, split_classes
from sklearn_dml.metrics import map_at_r_score, precision_at_k_score

SEEN = [0, 1, 2, 3, 4]

#: The anchoring weight of the default backbone given to every estimator of
#: these benchmarks, methods and bases alike, so that a method is compared
#: with its base at the same regularisation (0: the unanchored backbone; the
#: methods' own defaults differ, e.g. 10 for the triplet loss and 0 with
#: ``nested_dims``). Set by :func:`matched`; the tables print it.
ANCHOR_WEIGHT = 0.0


def matched(estimator):
    """``estimator`` with every ``anchor_weight`` (nested ones too) set to
    :data:`ANCHOR_WEIGHT`; estimators without one are returned unchanged."""
    names = [
        name
        for name in estimator.get_params(deep=True)
        if name.split("__")[-1] == "anchor_weight" and "teacher" not in name
    ]
    return estimator.set_params(**dict.fromkeys(names, ANCHOR_WEIGHT))


def matched_note():
    """The sentence a results file states the matched regularisation with."""
    return (
        f"Every estimator with the default backbone runs at anchor_weight="
        f"{ANCHOR_WEIGHT:g} (methods and bases alike: a matched regularisation)."
    )


DATASETS = {
    "digits": lambda: load_digits(return_X_y=True),
    "mnist5k": lambda: load_mnist_5k(return_X_y=True),
}


def split(dataset, seed):
    """``(X_train, y_train, X_seen_test, y_seen_test, X_unseen, y_unseen)``."""
    X, y = DATASETS[dataset]()
    X_seen, y_seen, X_new, y_new = split_classes(X, y, SEEN)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X_seen, y_seen, test_size=0.3, stratify=y_seen, random_state=seed
    )
    return X_tr, y_tr, X_te, y_te, X_new, y_new


def scores(embeddings, labels, prefix):
    """MAP@R and P@1 (leave-one-out) under ``prefix`` keys."""
    return {
        f"{prefix}_map": map_at_r_score(embeddings, labels),
        f"{prefix}_p1": precision_at_k_score(embeddings, labels, k=1),
    }


def run(make, dataset, seed):
    """Fit ``make(seed)`` on one split; returns the scores, the fit time and the
    fitted pipeline (for method-specific extra measurements)."""
    torch.set_num_threads(1)
    X_tr, y_tr, X_te, y_te, X_new, y_new = split(dataset, seed)
    pipe = make_pipeline(StandardScaler(), matched(make(seed)))
    tic = time.perf_counter()
    pipe.fit(X_tr, y_tr)
    row = {"seed": seed, "fit_s": time.perf_counter() - tic}
    row.update(scores(pipe.transform(X_te), y_te, "seen"))
    row.update(scores(pipe.transform(X_new), y_new, "unseen"))
    return row, pipe


def evaluate(make, dataset="digits", seeds=range(5)):
    """Rows (one per seed) of :func:`run`, without the fitted pipelines."""
    return [run(make, dataset, seed)[0] for seed in seeds]


def _cell(values):
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


KEYS = ("seen_map", "seen_p1", "unseen_map", "unseen_p1")


def markdown_table(results, base=None):
    """``results``: method name -> rows of :func:`evaluate` (same seeds).

    With ``base`` (a key of ``results``), a column gives each method's paired
    unseen and seen MAP@R difference with it, seed by seed.
    """
    head = "| method | seen MAP@R | seen P@1 | unseen MAP@R | unseen P@1 |"
    rule = "|---|---|---|---|---|"
    if base is not None:
        head += " Δ seen / unseen MAP@R vs base |"
        rule += "---|"
    lines = [head + " fit s |", rule + "---|"]
    for name, rows in results.items():
        cells = [_cell([r[k] for r in rows]) for k in KEYS]
        if base is not None:
            ref = {r["seed"]: r for r in results[base]}
            d_seen = [r["seen_map"] - ref[r["seed"]]["seen_map"] for r in rows]
            d_new = [r["unseen_map"] - ref[r["seed"]]["unseen_map"] for r in rows]
            cells.append(
                f"{np.mean(d_seen):+.3f} ± {np.std(d_seen):.3f} / "
                f"{np.mean(d_new):+.3f} ± {np.std(d_new):.3f}"
            )
        cells.append(f"{np.mean([r['fit_s'] for r in rows]):.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
