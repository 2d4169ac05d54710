"""The weakly supervised linear learners against metric-learn 0.7 (patched).

For each learner, the ``Supervised`` version of sklearn-dml and of metric-learn
(with its validators translated by ``tests/metric_learn_compat.py``), default
parameters and ``random_state=0``, on iris, wine, breast cancer, digits and a
20,000-sample synthetic set (``make_classification``, 20 features, 10
classes), all standardised:

* closed set: fit on a stratified half, 3-NN accuracy and leave-one-out
  MAP@R on the other half;
* unseen classes (data sets with at least 4 classes): fit on the samples of
  the first half of the classes, MAP@R among the samples of the others;
* the fit time (closed set) and the growth of the peak resident memory of
  the process during that fit (``ru_maxrss`` minus the resident memory
  before it; 0 when the fit stays within memory already used).

Each fit runs in a child process with a cap on its CPU time (30 s, 60 s on
digits and the synthetic set); a capped or failed fit is reported as such.
Times are CPU seconds of the fit (one thread), which a shared machine does
not inflate.

Run: ``nice -n 10 python benchmarks/classical_weak.py`` (writes
``benchmarks/results/classical_weak.md``).
"""

import multiprocessing as mp
import os
import resource
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.datasets import (  # noqa: E402
    load_breast_cancer,
    load_digits,
    load_iris,
    load_wine,
    make_classification,
)
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from _provenance import provenance, write_results  # noqa: E402
from metric_learn_compat import load_metric_learn  # noqa: E402

from sklearn_dml import mahalanobis  # noqa: E402
from sklearn_dml.metrics import map_at_r_score  # noqa: E402

DATASETS = {
    "iris": lambda: load_iris(return_X_y=True),
    "wine": lambda: load_wine(return_X_y=True),
    "breast cancer": lambda: load_breast_cancer(return_X_y=True),
    "digits": lambda: load_digits(return_X_y=True),
    "synthetic 20k": lambda: make_classification(
        20000,
        20,
        n_informative=10,
        n_classes=10,
        n_clusters_per_class=1,
        random_state=0,
    ),
}
LEARNERS = [
    ("ITML", {}),
    ("MMC", {}),
    ("MMC", {"diagonal": True}),
    ("SDML", {}),
    ("LSML", {}),
    ("SCML", {}),
]


def _make(library, name, params):
    if library == "sklearn-dml":
        return getattr(mahalanobis, name + "Supervised")(random_state=0, **params)
    ml = load_metric_learn()
    return getattr(ml, name + "_Supervised")(random_state=0, **params)


def _current_rss():
    """Resident memory of this process now, in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _fit(library, name, params, X, y, queue, cap):
    warnings.simplefilter("ignore")
    # A cap on CPU time (the machine may be shared): the kernel stops the child.
    resource.setrlimit(resource.RLIMIT_CPU, (cap, cap))
    try:
        est = _make(library, name, params)
        rss_before = _current_rss()
        tic = time.process_time()
        est.fit(X, y)
        elapsed = time.process_time() - tic
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
        queue.put(("ok", est.components_, elapsed, peak))
    except Exception as exc:  # reported in the table
        queue.put(("failed", f"{type(exc).__name__}", 0.0, 0))


def _timed_fit(library, name, params, X, y, cap):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_fit, args=(library, name, params, X, y, queue, cap))
    proc.start()
    result = ("capped", None, cap, 0)
    while proc.is_alive() or not queue.empty():
        try:
            result = queue.get(timeout=1)
            break
        except Exception:
            continue
    proc.join()
    return result


def evaluate(dataset, library, name, params):
    X, y = DATASETS[dataset]()
    X = StandardScaler().fit_transform(X)
    cap = 60 if dataset in ("digits", "synthetic 20k") else 30
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    status, L, elapsed, peak = _timed_fit(library, name, params, X_tr, y_tr, cap)
    row = {"status": status, "time": elapsed, "peak": peak / 2**20}
    if status != "ok":
        return row
    Z_tr, Z_te = X_tr @ L.T, X_te @ L.T
    row["knn"] = KNeighborsClassifier(3).fit(Z_tr, y_tr).score(Z_te, y_te)
    row["map"] = map_at_r_score(Z_te, y_te)
    classes = np.unique(y)
    if classes.shape[0] >= 4:
        seen = np.isin(y, classes[: classes.shape[0] // 2])
        status, L, _, _ = _timed_fit(library, name, params, X[seen], y[seen], cap)
        if status == "ok":
            row["unseen"] = map_at_r_score(X[~seen] @ L.T, y[~seen])
    return row


def _cell(row, key, fmt):
    if row["status"] != "ok":
        return (
            {"capped": f"> {row['time']:.0f} s cap", "failed": "fails"}.get(
                row["status"], row["status"]
            )
            if key == "time"
            else "-"
        )
    return fmt.format(row[key]) if key in row else "-"


def main():
    lines = [
        "Weakly supervised linear learners (``<Name>Supervised``) against "
        "metric-learn 0.7 (``<Name>_Supervised``), default parameters, "
        "``random_state=0``, standardised features, one thread; fit time in CPU "
        "seconds, capped at 30 s (60 s on digits and synthetic 20k). kNN: 3-NN "
        "accuracy; MAP@R closed set: on the held-out half; unseen: MAP@R among "
        "the classes not trained on (first half of the classes trained on); "
        "peak: growth of the peak resident memory during the fit.",
        "",
    ]
    baseline = {}
    for dataset in DATASETS:
        X, y = DATASETS[dataset]()
        X = StandardScaler().fit_transform(X)
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=0.5, stratify=y, random_state=0
        )
        baseline[dataset] = (
            KNeighborsClassifier(3).fit(X_tr, y_tr).score(X_te, y_te),
            map_at_r_score(X_te, y_te),
        )
    for dataset in DATASETS:
        knn, mapr = baseline[dataset]
        lines += [
            f"### {dataset} (Euclidean: kNN {knn:.3f}, MAP@R {mapr:.3f})",
            "",
            "| learner | library | fit time (s) | peak MiB | kNN acc. | "
            "MAP@R closed | MAP@R unseen |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, params in LEARNERS:
            label = name + (" (diagonal)" if params.get("diagonal") else "")
            for library in ("sklearn-dml", "metric-learn"):
                row = evaluate(dataset, library, name, params)
                lines.append(
                    f"| {label} | {library} | {_cell(row, 'time', '{:.2f}')} | "
                    f"{_cell(row, 'peak', '{:.1f}')} | {_cell(row, 'knn', '{:.3f}')} | "
                    f"{_cell(row, 'map', '{:.3f}')} | {_cell(row, 'unseen', '{:.3f}')} |"
                )
                print(lines[-1], flush=True)
        lines.append("")
    lines[:0] = [provenance(), ""]
    out = ROOT / "benchmarks" / "results" / "classical_weak.md"
    write_results(lines[:-1], out)


if __name__ == "__main__":
    main()
