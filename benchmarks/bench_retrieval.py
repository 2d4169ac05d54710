"""MAP@R and P@1 at scale: sklearn_dml's exact kNN against the usual tools.

Data: Gaussian blobs in 128 dimensions (float32), ``--classes`` centres drawn
from N(0, 1), each point a centre plus N(0, ``--noise``^2) noise, so MAP@R
is far from 0 and from 1. Two protocols:

* leave-one-out on ``--n`` points (every point queries all the others);
* query-vs-reference: ``--n-ref`` references, ``--n-query`` fresh queries
  from the same blobs (the protocol of a held-out query set).

Contenders, each computing both MAP@R and P@1 from one neighbour search with
``k`` = the largest class count (pml's ``k="max_bin_count"``):

* ``sklearn_dml``: :func:`sklearn_dml.metrics.chunked_knn` (exact, ties by
  index) followed by the NumPy scoring below;
* ``pml + faiss``: pytorch-metric-learning's ``AccuracyCalculator`` with its
  default faiss-cpu kNN;
* ``pml + torch``: the same with ``knn_func=CustomKNN(LpDistance(normalize_embeddings=False))``
  (its pure-torch kNN, default batch size, Euclidean like the others);
* ``sklearn brute``: ``NearestNeighbors(algorithm="brute")`` and the NumPy
  scoring below;
* ``faiss flat``: faiss's exact ``IndexFlatL2`` (``k + 1`` neighbours in
  leave-one-out, the query itself removed) and the NumPy scoring below;
* ``gemm floor``: no search at all, only the float32 matrix products of
  ``sklearn_dml``'s search (the same query chunks times the same reference
  blocks, into one reused tile), once run as ``chunked_knn`` runs them
  (worker threads, single-threaded torch and BLAS) and once with the
  library's own threads in 1024 x 65536 tiles, each with torch's BLAS
  (``torch.mm``) and with NumPy's (``np.matmul``); the fastest of the four
  is the floor every time is divided by (``time / floor``).

The time of a contender is its search and the scoring of its neighbours;
``search / floor`` divides the search alone (its neighbours found, before
the shared NumPy scoring; not separable for the ``pml`` contenders, whose
``AccuracyCalculator`` does both) by the floor: the floor is of the search.

Each contender runs in its own subprocess, so the peak resident memory
(``ru_maxrss``) is its own; the figure reported is that peak minus the peak
reached after importing the libraries and generating the data. A subprocess
gets ``--timeout`` seconds and ``--memory-limit`` GiB of address space (so a
contender that would exhaust the machine fails cleanly instead); both are
recorded as failures. All use ``--threads`` threads (OMP, MKL, torch and
faiss). Runs are interleaved (contender by contender, repeat after repeat)
because other jobs may share the machine. Run:

    python benchmarks/bench_retrieval.py --n 20000 --n-ref 100000 --n-query 2000
    python benchmarks/bench_retrieval.py --n 100000 --n-ref 1000000 \
        --n-query 10000 --write benchmarks/results/retrieval.md
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from _provenance import provenance, write_results

CONTENDERS = (
    "sklearn_dml",
    "gemm floor",
    "faiss flat",
    "pml + faiss",
    "pml + torch",
    "sklearn brute",
)
DIM = 128


def make_data(n, n_classes, noise, seed, offset=0, dim=DIM):
    """Blobs of float32 points; ``offset`` shifts the random stream (queries)."""
    import numpy as np

    centres = np.random.default_rng(seed).standard_normal(
        (n_classes, dim), dtype=np.float32
    )
    rng = np.random.default_rng([seed, offset])
    labels = rng.integers(0, n_classes, size=n)
    X = np.empty((n, dim), dtype=np.float32)
    step = 65536
    for start in range(0, n, step):
        stop = min(start + step, n)
        X[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
        X[start:stop] *= noise
        X[start:stop] += centres[labels[start:stop]]
    return X, labels


def scores_from_neighbours(neighbours, query_labels, reference_labels, n_relevant):
    """(MAP@R, P@1) from neighbour indices sorted nearest first (NumPy).

    MAP@R of a query with R relevant references is
    ``sum_{i <= R} P(i) rel(i) / R``; queries with R = 0 are skipped. The
    sums of ``P(i)`` are one matrix-vector product of the hit counts at the
    relevant ranks with ``1 / i`` (the same values as dividing entry by
    entry, in a few times less time: the scoring is not the search).
    """
    import numpy as np

    scored = n_relevant > 0
    if not scored.all():
        neighbours = neighbours[scored]
        query_labels, n_relevant = query_labels[scored], n_relevant[scored]
    relevant = reference_labels[neighbours] == query_labels[:, None]
    ranks = np.arange(1, neighbours.shape[1] + 1)
    counted = relevant & (ranks <= n_relevant[:, None])
    hits = np.cumsum(counted, axis=1, dtype=np.int32)
    hits *= counted  # the hit count P(i) * i at the relevant ranks, 0 elsewhere
    precision_sums = hits.astype(np.float64) @ (1.0 / ranks)
    map_at_r = float(np.mean(precision_sums / n_relevant))
    return map_at_r, float(np.mean(relevant[:, 0]))


def _run_one(args):
    """Body of a subprocess: one contender, one protocol; prints a JSON line."""
    threads = str(args.threads)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    if args.contender.startswith("pml"):
        import faiss
        from pytorch_metric_learning.distances import LpDistance
        from pytorch_metric_learning.utils.accuracy_calculator import (
            AccuracyCalculator,
        )
        from pytorch_metric_learning.utils.inference import CustomKNN

        faiss.omp_set_num_threads(args.threads)
    elif args.contender == "sklearn brute":
        from sklearn.neighbors import NearestNeighbors
    elif args.contender == "faiss flat":
        import faiss

        faiss.omp_set_num_threads(args.threads)
    else:
        from sklearn_dml.metrics import _knn, chunked_knn
    assert os.environ.get("OMP_NUM_THREADS") == threads

    loo = args.protocol == "loo"
    if loo:
        reference, reference_labels = make_data(
            args.n, args.classes, args.noise, args.seed, dim=args.dim
        )
        query, query_labels = reference, reference_labels
    else:
        reference, reference_labels = make_data(
            args.n_ref, args.classes, args.noise, args.seed, dim=args.dim
        )
        query, query_labels = make_data(
            args.n_query, args.classes, args.noise, args.seed, offset=1, dim=args.dim
        )
    counts = np.bincount(reference_labels, minlength=args.classes)
    n_relevant = counts[query_labels] - (1 if loo else 0)
    # pml's "max_bin_count": the largest class among the references, minus
    # the query itself in leave-one-out mode.
    k = int(counts.max()) - (1 if loo else 0)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    start = time.perf_counter()
    searched = None  # seconds of the search alone, before the scoring
    if args.contender == "gemm floor":
        result = (float("nan"), float("nan"))
        seconds = min(
            _gemm_floor(query, reference, k, _knn, worker_threads=w, blas=b)
            for w in (True, False)
            for b in ("torch", "numpy")
        )
        start = time.perf_counter() - seconds
        searched = seconds
    elif args.contender == "faiss flat":
        index = faiss.IndexFlatL2(reference.shape[1])
        index.add(reference)
        _, neighbours = index.search(query, k + 1 if loo else k)
        if loo:
            # drop the query itself (wherever ties put it), else the last
            own = neighbours == np.arange(len(query))[:, None]
            own[~own.any(axis=1), -1] = True
            neighbours = neighbours[~own].reshape(len(query), k)
        searched = time.perf_counter() - start
        result = scores_from_neighbours(
            neighbours, query_labels, reference_labels, n_relevant
        )
    elif args.contender == "sklearn_dml":
        if loo:
            _, neighbours = chunked_knn(query, k, exclude_self=True)
        else:
            _, neighbours = chunked_knn(query, k, reference)
        searched = time.perf_counter() - start
        result = scores_from_neighbours(
            neighbours, query_labels, reference_labels, n_relevant
        )
    elif args.contender == "sklearn brute":
        search = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(reference)
        neighbours = search.kneighbors(None if loo else query, return_distance=False)
        searched = time.perf_counter() - start
        result = scores_from_neighbours(
            neighbours, query_labels, reference_labels, n_relevant
        )
    else:
        knn_func = None
        if args.contender == "pml + torch":
            # pml's LpDistance normalises embeddings by default (a cosine
            # ranking); plain Euclidean distance is what the others compute.
            knn_func = CustomKNN(LpDistance(normalize_embeddings=False))
        calculator = AccuracyCalculator(
            include=("mean_average_precision_at_r", "precision_at_1"),
            k="max_bin_count",
            device=torch.device("cpu"),
            knn_func=knn_func,
        )
        q, ql = torch.from_numpy(query), torch.from_numpy(query_labels)
        if loo:
            out = calculator.get_accuracy(q, ql)
        else:
            out = calculator.get_accuracy(
                q,
                ql,
                torch.from_numpy(reference),
                torch.from_numpy(reference_labels),
                ref_includes_query=False,
            )
        result = (out["mean_average_precision_at_r"], out["precision_at_1"])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "search_seconds": searched,
                "extra_mib": (peak - baseline) / 1024,
                "map_at_r": float(result[0]),
                "p_at_1": float(result[1]),
                "k": k,
            }
        )
    )


def _gemm_floor(query, reference, k, knn_module, worker_threads, blas):
    """Seconds of the float32 products alone of a search, no selection.

    ``worker_threads``: ``chunked_knn``'s own chunk and block sizes, chunks
    shared by worker threads with single-threaded torch and BLAS (as it runs
    them); otherwise the library's own threads on 1024 x 65536 tiles (the
    earlier layout). ``blas``: ``"torch"`` (``torch.mm``) or ``"numpy"``
    (``np.matmul``, NumPy's BLAS), which ``chunked_knn`` uses where it is
    the faster of the two.
    """
    import numpy as np
    import torch

    from sklearn_dml._blas import blas_threads

    n_queries, n_references = query.shape[0], reference.shape[0]
    if worker_threads:
        compiled = knn_module._select_below is not None
        block, chunk = knn_module._sizes(n_references, k, None, None, compiled)
    else:
        block, chunk = min(2**16, n_references), 1024
    if blas == "torch":
        query, reference = torch.from_numpy(query), torch.from_numpy(reference)

        def product(rows, columns, out):
            torch.mm(rows, columns.T, out=out)

        new_tile = torch.empty
    else:

        def product(rows, columns, out):
            np.matmul(rows, columns.T, out=out)

        def new_tile(size):
            return np.empty(size, dtype=np.float32)

    def search(q_start, tile):
        rows = query[q_start : q_start + chunk]
        for r_start in range(0, n_references, block):
            columns = reference[r_start : r_start + block]
            out = tile[: rows.shape[0] * columns.shape[0]]
            product(rows, columns, out.reshape(rows.shape[0], columns.shape[0]))

    threads = torch.get_num_threads()
    start = time.perf_counter()
    starts = range(0, n_queries, chunk)
    with blas_threads(1 if worker_threads else threads):
        if worker_threads:
            knn_module._in_worker_threads(
                starts, threads, search, lambda: new_tile(chunk * block)
            )
        else:
            tile = new_tile(chunk * block)
            for q_start in starts:
                search(q_start, tile)
    return time.perf_counter() - start


def _limit_memory(gib):
    def apply():
        limit = int(gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run_contender(contender, protocol, args):
    """Run one contender in a fresh subprocess; return its record."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(args.threads)
    command = [
        sys.executable,
        __file__,
        "--child",
        contender,
        "--protocol",
        protocol,
        *sum(
            (
                [f"--{name.replace('_', '-')}", str(getattr(args, name))]
                for name in (
                    "n",
                    "n_ref",
                    "n_query",
                    "classes",
                    "noise",
                    "seed",
                    "threads",
                    "dim",
                )
            ),
            [],
        ),
    ]
    try:
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=args.timeout,
            preexec_fn=_limit_memory(args.memory_limit),
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"timed out (> {args.timeout:.0f} s)"}
    if done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["?"]
        memory = any(
            word in tail[0] for word in ("memory", "alloc", "MemoryError", "bad_alloc")
        )
        if memory:
            return {"failed": f"out of memory (> {args.memory_limit:g} GiB)"}
        return {"failed": f"error: {tail[0][:80]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(protocol, label, records):
    ours = statistics.median(r["seconds"] for r in records["sklearn_dml"])
    ours_mem = statistics.median(r["extra_mib"] for r in records["sklearn_dml"])
    floor_runs = [r for r in records.get("gemm floor", []) if "failed" not in r]
    floor = statistics.median(r["seconds"] for r in floor_runs) if floor_runs else None
    lines = [
        f"### {label}",
        "",
        "| contender | runs | time (s, median) | time / ours | time / floor | "
        "search / floor | peak extra memory (MiB) | memory / ours | MAP@R | P@1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for contender in CONTENDERS:
        runs = records.get(contender, [])
        good = [r for r in runs if "failed" not in r]
        if not good:
            reason = runs[0]["failed"] if runs else "not run"
            lines.append(
                f"| {contender} | {len(runs)} | {reason} | - | - | - | - | - | - | - |"
            )
            continue
        seconds = statistics.median(r["seconds"] for r in good)
        memory = statistics.median(r["extra_mib"] for r in good)
        spread = ""
        if len(good) > 1:
            spread = f" ({min(r['seconds'] for r in good):.2f}-"
            spread += f"{max(r['seconds'] for r in good):.2f})"
        to_floor = "-" if floor is None else f"{seconds / floor:.2f}"
        searched = [r.get("search_seconds") for r in good]
        search_to_floor = "-"
        if floor is not None and None not in searched:
            search_to_floor = f"{statistics.median(searched) / floor:.2f}"
        lines.append(
            f"| {contender} | {len(good)} | {seconds:.2f}{spread} | "
            f"{seconds / ours:.2f} | {to_floor} | {search_to_floor} | {memory:.0f} | "
            f"{memory / max(ours_mem, 1):.2f} | "
            f"{good[0]['map_at_r']:.6f} | {good[0]['p_at_1']:.6f} |"
        )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="leave-one-out size")
    parser.add_argument("--n-ref", type=int, default=100000, help="references")
    parser.add_argument("--n-query", type=int, default=2000, help="queries")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=1.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=DIM, help="features")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--memory-limit", type=float, default=14.0, help="GiB")
    parser.add_argument(
        "--protocols", default="loo,qvr", help="comma-separated: loo, qvr"
    )
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--write", default=None, help="Markdown file to write")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--protocol", default="loo", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        args.contender = args.child
        _run_one(args)
        return

    import torch

    contenders = [c for c in CONTENDERS if c in args.contenders.split(",")]
    protocols = args.protocols.split(",")
    labels = {
        "loo": f"Leave-one-out, N = {args.n:,} (every point queries the "
        f"other {args.n - 1:,})",
        "qvr": f"Query-vs-reference, {args.n_ref:,} references x "
        f"{args.n_query:,} queries",
    }
    records = {p: {c: [] for c in contenders} for p in protocols}
    for repeat in range(args.repeats):
        for protocol in protocols:
            for contender in contenders:
                if (
                    repeat
                    and records[protocol][contender]
                    and "failed" in records[protocol][contender][0]
                ):
                    continue
                record = run_contender(contender, protocol, args)
                records[protocol][contender].append(record)
                print(protocol, contender, record, flush=True)

    lines = [
        "# Retrieval evaluation at scale: MAP@R and P@1",
        "",
        provenance(),
        "",
        f"Gaussian blobs, {args.dim}-d float32, {args.classes:,} classes, noise "
        f"{args.noise:g}; k = largest class count (pml's `max_bin_count`). "
        f"torch {torch.__version__}, {args.threads} threads for every contender "
        f"(OMP/MKL/torch/faiss), {platform.machine()}, {os.cpu_count()} cores "
        "shared with other jobs. Each run in its own subprocess (limit "
        f"{args.timeout:.0f} s, {args.memory_limit:g} GiB address space); peak "
        "extra memory = peak RSS minus the RSS after imports and data. Time is "
        "the median over runs (min-max in brackets).",
        "",
    ]
    for protocol in protocols:
        if "sklearn_dml" not in records[protocol] or any(
            "failed" in r for r in records[protocol]["sklearn_dml"]
        ):
            continue
        lines += _table(protocol, labels[protocol], records[protocol]) + [""]
    text = "\n".join(lines).rstrip("\n")
    if args.write:
        write_results(text, args.write)
    else:
        print(text)


if __name__ == "__main__":
    main()
