"""Time the exact chunked kNN and MAP@R against scikit-learn's brute-force kNN.

Run ``python benchmarks/bench_metrics.py --n 20000 --dim 128 --k 10`` (add
``--device cuda`` on a GPU). It prints one line per method with the time and,
for scikit-learn, the fraction of queries whose neighbour lists differ from
ours (only possible on tied or near-tied distances, which scikit-learn does
not break deterministically).
"""

import argparse
import time

import numpy as np
from sklearn.neighbors import NearestNeighbors

from sklearn_dml.metrics import chunked_knn, map_at_r_score


def _timed(func):
    start = time.perf_counter()
    result = func()
    return result, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="number of points")
    parser.add_argument("--dim", type=int, default=128, help="embedding size")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query")
    parser.add_argument("--classes", type=int, default=100, help="number of classes")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    labels = rng.integers(0, args.classes, size=args.n)
    centres = rng.normal(size=(args.classes, args.dim))
    X = (centres[labels] + rng.normal(scale=2.0, size=(args.n, args.dim))).astype(
        np.float32
    )
    print(f"n={args.n} dim={args.dim} k={args.k} device={args.device}")

    (_, ours), seconds = _timed(
        lambda: chunked_knn(X, args.k, exclude_self=True, device=args.device)
    )
    print(f"chunked_knn (exact, tie-broken)     {seconds:8.2f} s")

    def sklearn_knn():
        search = NearestNeighbors(n_neighbors=args.k, algorithm="brute").fit(X)
        return search.kneighbors(return_distance=False)

    theirs, seconds = _timed(sklearn_knn)
    differ = np.mean(np.any(ours != theirs, axis=1))
    print(f"sklearn NearestNeighbors (brute)    {seconds:8.2f} s  differ={differ:.4f}")

    score, seconds = _timed(lambda: map_at_r_score(X, labels, device=args.device))
    print(f"map_at_r_score                      {seconds:8.2f} s  MAP@R={score:.4f}")


if __name__ == "__main__":
    main()
