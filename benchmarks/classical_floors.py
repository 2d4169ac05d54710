"""How fast could a linear learner be? Arithmetic floors against metric-learn.

The classical-learners issue asks every learner to fit digits at least 10
times faster than metric-learn 0.7 at the same result. For two learners the
arithmetic of the method itself, timed alone on this machine, leaves no room
for that, whatever the implementation:

* ``Covariance``: the fit is the covariance of the samples and its inverse.
  The floor is ``np.cov`` plus ``np.linalg.eigh`` of the result (what any
  inverse of a symmetric matrix costs at least as much as), timed alone.
* ``LinearNCA``: each evaluation of the objective and its gradient needs the
  ``n x n`` products of the embedded samples (the softmax's logits) and of
  the weights with the embedding (the gradient), ``n^2 k`` multiply-adds
  each; the floor is two such float32 products per evaluation of our fit
  (its own count of evaluations, the same L-BFGS iterations as
  metric-learn's), timed alone. It leaves out every elementwise pass.

Each side is timed in this process, one thread (torch and BLAS), CPU time,
the best of ``--repeats`` runs (Covariance: the mean of 200 fits per run),
on the 70 % training part of standardised digits (``classical.py``'s split).

Run: ``python benchmarks/classical_floors.py`` (writes
``benchmarks/results/classical_floors.md``).
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _provenance import provenance, write_results  # noqa: E402
from classical import split  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _best(function, repeats, inner=1):
    function()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(inner):
            function()
        times.append((time.process_time() - start) / inner)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "classical_floors.md")
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "tests"))
    from metric_learn_compat import load_metric_learn

    from sklearn_dml.mahalanobis import Covariance, LinearNCA

    metric_learn = load_metric_learn()
    X, y, _, _ = split("digits", "closed")
    n, d = X.shape
    rows = []

    ours = _best(lambda: Covariance().fit(X), args.repeats, inner=200)
    theirs = _best(lambda: metric_learn.Covariance().fit(X), args.repeats, inner=200)
    floor = _best(
        lambda: np.linalg.eigh(np.cov(X, rowvar=False)), args.repeats, inner=200
    )
    rows.append(("Covariance", "np.cov + eigh", ours, theirs, floor))

    from sklearn_dml.mahalanobis import _solvers

    evaluations = []
    exact_objective = _solvers.exact_objective

    def counting(*args, **kwargs):
        evaluations.append(1)
        return exact_objective(*args, **kwargs)

    _solvers.exact_objective = counting
    try:
        LinearNCA(random_state=0).fit(X, y)
    finally:
        _solvers.exact_objective = exact_objective
    n_evaluations = len(evaluations)
    ours = _best(lambda: LinearNCA(random_state=0).fit(X, y), args.repeats)
    theirs = _best(lambda: metric_learn.NCA().fit(X, y), args.repeats)
    Z = torch.randn(n, d)
    W = torch.randn(n, n)

    def products():
        for _ in range(n_evaluations):
            torch.mm(Z, Z.T)
            torch.mm(W, Z)

    floor = _best(products, args.repeats)
    rows.append(
        (
            "LinearNCA",
            f"2 products {n} x {n} x {d} per evaluation, {n_evaluations} evaluations",
            ours,
            theirs,
            floor,
        )
    )

    lines = [
        "# Linear learners: arithmetic floors against metric-learn",
        "",
        provenance(),
        "",
        "Digits (70 % training part, standardised), one thread, CPU seconds, "
        f"best of {args.repeats} runs; see the script's docstring for what "
        "each floor times. `ceiling` is metric-learn's time over the floor: "
        "the largest speed-up any implementation of the same arithmetic could "
        "show.",
        "",
        "| learner | floor (what it times) | ours (s) | metric-learn (s) | "
        "floor (s) | ours / floor | ceiling: metric-learn / floor |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, what, ours, theirs, floor in rows:
        lines.append(
            f"| {name} | {what} | {ours:.4g} | {theirs:.4g} | {floor:.4g} | "
            f"{ours / floor:.2f} | {theirs / floor:.1f}x |"
        )
    write_results(lines, args.out)


if __name__ == "__main__":
    main()
