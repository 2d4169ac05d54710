"""The linear (Mahalanobis) learners of sklearn_dml.mahalanobis against
metric-learn 0.7 (patched for current scikit-learn).

Run ``python benchmarks/classical.py`` (options: ``--only LMNN RCA``,
``--datasets iris digits``, ``--repeats 3``, ``--cap-seconds 300``,
``--cap-gb 4``, ``--out benchmarks/results/classical``; ``--update``
replaces the rows it measures in the existing results and keeps the others).

Each library runs in its own worker subprocess (one thread), started afresh
for every learner and dataset; for each fit it loads the data, standardises
it on the training part, fits and writes the embeddings back, which the
parent scores. In each worker:

* fit time: ``time.perf_counter`` (wall clock) and ``time.process_time``
  (CPU time of the worker, one thread) around ``fit`` only (imports and data
  loading excluded); on the small sets the median of ``--repeats`` runs,
  ours and metric-learn's interleaved;
* peak memory: the process's resident-set high-water mark during ``fit``
  minus its resident set just before it (Linux ``/proc/self/status``; the
  mark is reset before each fit through ``/proc/self/clear_refs``), the same
  measurement for both libraries; the largest over the runs, which is the
  first (a fresh process: on small data, mostly what the libraries load or
  initialise lazily during a first fit);
* caps: the parent kills a fit past ``--cap-seconds`` or ``--cap-gb`` of
  resident memory and records it as such.

Scores, from the embeddings of the same fit:

* closed set: a stratified 70/30 split; 5-NN accuracy and MAP@R of the test
  samples queried against the training samples;
* unseen classes (datasets with at least 4 classes): the learner is fitted
  on the samples of the first half of the classes and MAP@R is computed
  leave-one-out among all samples of the other half.

MLKR is a regression learner: it is given the class codes as numeric
targets, as a metric-learn user would.

The registry ``LEARNERS`` lists, by name, how to build ours and metric-
learn's counterpart; add a learner there to benchmark it.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _provenance import commit, provenance, rows_by_commit

ROOT = Path(__file__).resolve().parents[1]

# name -> {"ours": (class name, keyword arguments) in sklearn_dml.mahalanobis,
# "theirs": the same in metric_learn (absent when it has no counterpart),
# "ours_settings" / "theirs_settings": {dataset: keyword arguments} overriding
# the defaults on one dataset}. The worker imports the one library it needs,
# so the parent imports neither.
LEARNERS = {
    "Euclidean": {"ours": None},
    "Covariance": {"ours": ("Covariance", {}), "theirs": ("Covariance", {})},
    "LMNN": {
        "ours": ("LMNN", {"random_state": 0}),
        "theirs": ("LMNN", {"random_state": 0}),
        "ours_settings": {"synthetic20k": {"max_iter": 10}},
    },
    "LinearNCA": {
        "ours": ("LinearNCA", {"random_state": 0}),
        "theirs": ("NCA", {"random_state": 0}),
        "ours_settings": {"synthetic20k": {"max_iter": 10}},
    },
    "LFDA": {"ours": ("LFDA", {}), "theirs": ("LFDA", {})},
    "RCA": {
        "ours": ("RCA", {}),
        "theirs": ("RCA_Supervised", {"random_state": 0}),
        # metric-learn's default of 100 chunklets of 2 does not fit in the
        # training part of iris (105 samples) or wine (124).
        "theirs_settings": {"iris": {"n_chunks": 50}, "wine": {"n_chunks": 50}},
    },
    "MLKR": {
        "ours": ("MLKR", {"random_state": 0}),
        "theirs": ("MLKR", {"random_state": 0}),
        "ours_settings": {"synthetic20k": {"max_iter": 10}},
    },
}

OURS_CAP_SECONDS = 1800.0

DATASETS = ["iris", "wine", "breast_cancer", "digits", "synthetic20k"]
SMALL = {"iris", "wine", "breast_cancer", "digits"}


def load(name):
    """``(X, y)`` of a benchmark dataset (deterministic)."""
    from sklearn import datasets

    if name == "synthetic20k":
        # 12 classes of two clusters each in 12 informative and 4 redundant
        # dimensions, hidden among 24 distractor (noise) features.
        return datasets.make_classification(
            n_samples=20000,
            n_features=40,
            n_informative=12,
            n_redundant=4,
            n_classes=12,
            n_clusters_per_class=2,
            class_sep=1.5,
            flip_y=0.01,
            random_state=0,
        )
    return getattr(datasets, f"load_{name}")(return_X_y=True)


def split(name, protocol):
    """``(X_train, y_train, X_eval, y_eval)``, standardised on the training part."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load(name)
    if protocol == "closed":
        X_tr, X_ev, y_tr, y_ev = train_test_split(
            X, y, test_size=0.3, stratify=y, random_state=0
        )
    else:
        classes = np.unique(y)
        seen = np.isin(y, classes[: len(classes) // 2])
        X_tr, y_tr, X_ev, y_ev = X[seen], y[seen], X[~seen], y[~seen]
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), y_tr, scaler.transform(X_ev), y_ev


# ---------------------------------------------------------------- worker
def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _fit_and_embed(library, spec):
    """Fit one learner as described by ``spec``; write its embeddings."""
    import warnings

    X_tr, y_tr, X_ev, y_ev = split(spec["dataset"], spec["protocol"])
    target = y_tr.astype(np.float64) if spec["learner"] == "MLKR" else y_tr
    if spec["learner"] == "Euclidean":
        fit_seconds, cpu_seconds, peak, Z_tr, Z_ev, n_iter = (
            0.0,
            0.0,
            0,
            X_tr,
            X_ev,
            None,
        )
    else:
        name, kwargs = spec["estimator"]
        estimator = getattr(library, name)(**kwargs, **spec["params"])
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the HWM
        except OSError:
            pass
        before = _status_kib("VmRSS")
        start, start_cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.fit(X_tr, target)
        fit_seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - start_cpu
        peak = max(0, _status_kib("VmHWM") - before)
        Z_tr = np.real(estimator.transform(X_tr))
        Z_ev = np.real(estimator.transform(X_ev))
        n_iter = getattr(estimator, "n_iter_", None)
    np.savez(
        spec["out"],
        Z_tr=Z_tr,
        Z_ev=Z_ev,
        y_tr=y_tr,
        y_ev=y_ev,
        seconds=fit_seconds,
        cpu_seconds=cpu_seconds,
        peak_mib=peak / 1024.0,
        n_iter=-1 if n_iter is None else int(n_iter),
    )


def worker(side):
    """Serve fits of one library: a JSON spec per line in, a status line out."""
    protocol = os.fdopen(os.dup(1), "w")
    sys.stdout = sys.stderr  # anything the libraries print stays off the protocol
    if side == "ours":
        import torch

        torch.set_num_threads(1)
        from sklearn_dml import mahalanobis as library
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from metric_learn_compat import load_metric_learn

        library = load_metric_learn()
    for line in sys.stdin:
        try:
            _fit_and_embed(library, json.loads(line))
            status = "ok"
        except Exception as error:  # reported to the parent, which records it
            status = f"error: {type(error).__name__}: {error}".replace("\n", " ")
        protocol.write(status + "\n")
        protocol.flush()


# ---------------------------------------------------------------- parent
def _rss_gib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _settings(learner, side, dataset):
    key = "ours_settings" if side == "ours" else "theirs_settings"
    return LEARNERS[learner].get(key, {}).get(dataset, {})


class Worker:
    """A worker subprocess of one library, fed one fit at a time."""

    def __init__(self, side):
        self.side, self.process = side, None

    def _start(self):
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["PYTHONPATH"] = str(ROOT)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", self.side],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def close(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def run(self, spec, cap_seconds, cap_gb):
        """Results of one fit, or ``{"failed": why}`` (the worker is killed
        when it passes a cap)."""
        if self.process is None:
            self._start()
        with tempfile.TemporaryDirectory() as tmp:
            spec = dict(spec, out=str(Path(tmp) / "result.npz"))
            self.process.stdin.write(json.dumps(spec) + "\n")
            self.process.stdin.flush()
            reply = []
            reader = threading.Thread(
                target=lambda: reply.append(self.process.stdout.readline()),
                daemon=True,
            )
            reader.start()
            start, peak = time.monotonic(), 0.0
            while reader.is_alive():
                reader.join(0.2)
                peak = max(peak, _rss_gib(self.process.pid))
                failure = None
                if time.monotonic() - start > cap_seconds:
                    failure = f"over {cap_seconds:.0f} s"
                elif peak > cap_gb:
                    failure = f"over {cap_gb:g} GB"
                if failure:
                    self.close()
                    return {"failed": failure}
            status = reply[0].strip() if reply and reply[0] else "error: worker died"
            if status != "ok":
                return {"failed": status[:60]}
            with np.load(spec["out"]) as data:
                return {key: data[key] for key in data.files}


def _spec(learner, side, dataset, protocol):
    key = "ours" if side == "ours" else "theirs"
    return {
        "learner": learner,
        "dataset": dataset,
        "protocol": protocol,
        "estimator": LEARNERS[learner][key],
        "params": _settings(learner, side, dataset),
    }


def _caps(side, cap_seconds, cap_gb):
    """The caps bound metric-learn's fits; ours run to the end (up to
    OURS_CAP_SECONDS), so that each row has a result to compare."""
    if side == "ours":
        return max(cap_seconds, OURS_CAP_SECONDS), max(cap_gb, 16.0)
    return cap_seconds, cap_gb


def score(result, protocol):
    """kNN accuracy and MAP@R from a worker's embeddings."""
    from sklearn.neighbors import KNeighborsClassifier

    from sklearn_dml.metrics import map_at_r_score

    Z_tr, Z_ev, y_tr, y_ev = (result[k] for k in ("Z_tr", "Z_ev", "y_tr", "y_ev"))
    if not (np.isfinite(Z_tr).all() and np.isfinite(Z_ev).all()):
        return {"failed": "non-finite embedding"}
    if protocol == "unseen":
        return {"unseen_map": float(map_at_r_score(Z_ev, y_ev))}
    knn = KNeighborsClassifier(5).fit(Z_tr, y_tr)
    return {
        "knn_accuracy": float(knn.score(Z_ev, y_ev)),
        "map_at_r": float(
            map_at_r_score(Z_ev, y_ev, reference_embeddings=Z_tr, reference_labels=y_tr)
        ),
    }


def benchmark(learners, datasets, repeats, cap_seconds, cap_gb, log):
    rows = []
    for dataset in datasets:
        n_classes = len(np.unique(load(dataset)[1]))
        for learner in learners:
            sides = ["ours"] + (
                ["metric-learn"] if "theirs" in LEARNERS[learner] else []
            )
            workers = {side: Worker(side) for side in sides}
            runs = repeats if dataset in SMALL and learner != "Euclidean" else 1
            record = {
                side: {"seconds": [], "cpu_seconds": [], "peak_mib": []}
                for side in sides
            }
            try:
                for _ in range(runs):  # interleaved: ours, theirs, ours, ...
                    for side in sides:
                        if "failed" in record[side]:
                            continue
                        result = workers[side].run(
                            _spec(learner, side, dataset, "closed"),
                            *_caps(side, cap_seconds, cap_gb),
                        )
                        if "failed" in result:
                            record[side]["failed"] = result["failed"]
                            continue
                        record[side]["seconds"].append(float(result["seconds"]))
                        record[side]["cpu_seconds"].append(float(result["cpu_seconds"]))
                        record[side]["peak_mib"].append(float(result["peak_mib"]))
                        record[side]["n_iter"] = int(result["n_iter"])
                        record[side].update(score(result, "closed"))
                for side in sides:
                    entry = record[side]
                    if n_classes >= 4 and "failed" not in entry:
                        result = workers[side].run(
                            _spec(learner, side, dataset, "unseen"),
                            *_caps(side, cap_seconds, cap_gb),
                        )
                        scored = (
                            result if "failed" in result else score(result, "unseen")
                        )
                        if "failed" in scored:
                            entry["unseen_failed"] = scored["failed"]
                        else:
                            entry.update(scored)
                    row = {"dataset": dataset, "learner": learner, "library": side}
                    row.update(entry)
                    row["params"] = _settings(learner, side, dataset)
                    rows.append(row)
                    log(row)
            finally:
                for worker_process in workers.values():
                    worker_process.close()
    return rows


def _cell(value, fmt):
    return "-" if value is None else format(value, fmt)


def markdown(rows, args):
    stated = provenance()
    if args.update:  # the rows of earlier runs are kept
        store = Path(args.out).with_suffix(".json").name
        stated = f"{provenance('Table written')} {rows_by_commit(rows, store)}"
    lines = [
        "# Linear metric learners: sklearn-dml against metric-learn 0.7",
        "",
        stated,
        "",
        f"{platform.platform()}, Python {platform.python_version()}, one thread "
        "per fit (CPU). "
        f"Fit time: median of {args.repeats} interleaved runs on iris, wine, "
        "breast cancer and digits, one run on synthetic20k; `fit s` is "
        "wall-clock, `CPU s` the CPU time of the fitting process (one "
        "thread: what the fit costs, which a shared machine inflates far less "
        "than the wall-clock time). Peak memory: the "
        "rise of the resident set of a fresh worker process during its first "
        "`fit` (lazy imports and initialisation included). Caps: "
        f"{args.cap_seconds:.0f} s and {args.cap_gb:g} GB per fit. Inputs "
        "standardised on the training part. Closed set: stratified 70/30 split, "
        "5-NN accuracy and MAP@R of test queries against the training samples. "
        "Unseen: fitted on the first half of the classes, MAP@R leave-one-out "
        "among the other half (4+ classes only). `Euclidean` is the "
        "standardised input. Settings are the defaults of each library except "
        "where the `settings` column says otherwise.",
        "",
        "| dataset | learner | library | fit s | CPU s | peak MiB | iters | kNN acc "
        "| MAP@R | unseen MAP@R | settings |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        failed = row.get("failed")
        cpu = _cell(_median_cpu(row), ".3f")
        if failed and not row["seconds"]:
            seconds = peak = cpu = failed
        else:
            seconds = _cell(
                np.median(row["seconds"]) if row["seconds"] else None, ".3f"
            )
            peak = _cell(max(row["peak_mib"]) if row["peak_mib"] else None, ".0f")
        unseen = row.get("unseen_map")
        unseen_text = row.get("unseen_failed") or _cell(unseen, ".4f")
        n_iter = row.get("n_iter", -1)
        lines.append(
            f"| {row['dataset']} | {row['learner']} | {row['library']} | {seconds} "
            f"| {cpu} | {peak} | {'-' if n_iter in (-1, None) else n_iter} "
            f"| {failed or _cell(row.get('knn_accuracy'), '.4f')} "
            f"| {failed or _cell(row.get('map_at_r'), '.4f')} | {unseen_text} "
            f"| {', '.join(f'{k}={v}' for k, v in row['params'].items())} |"
        )
    return "\n".join(lines + [""] + side_by_side(rows))


def _median_cpu(row):
    times = row.get("cpu_seconds") or []
    return float(np.median(times)) if times else None


def _pair(ours, theirs, key):
    """``ours / theirs`` of one accuracy column ("-" where metric-learn failed)."""
    mine = ours.get("failed") or _cell(ours.get(key), ".4f")
    return f"{mine} / {'-' if theirs.get('failed') else _cell(theirs.get(key), '.4f')}"


def side_by_side(rows):
    """Markdown lines: each learner's row of ours against metric-learn's."""
    lines = [
        "## Ours against metric-learn, side by side",
        "",
        "Median CPU seconds of the interleaved fits above; ratio = "
        "metric-learn's over ours. Accuracy: 5-NN accuracy and MAP@R, ours / "
        "metric-learn's.",
        "",
        "| dataset | learner | CPU s ours / theirs | ratio | kNN acc | MAP@R |",
        "|---|---|---|---:|---|---|",
    ]
    by_key = {(r["dataset"], r["learner"], r["library"]): r for r in rows}
    for (dataset, learner, library), ours in by_key.items():
        theirs = by_key.get((dataset, learner, "metric-learn"))
        if library != "ours" or theirs is None:
            continue
        ours_cpu, theirs_cpu = _median_cpu(ours), _median_cpu(theirs)
        theirs_failed = theirs.get("failed")
        ratio = "-"
        if ours_cpu and theirs_cpu and not theirs_failed:
            ratio = f"{theirs_cpu / ours_cpu:.1f}x"
        theirs_time = theirs_failed or _cell(theirs_cpu, ".3f")
        lines.append(
            f"| {dataset} | {learner} | {_cell(ours_cpu, '.3f')} / {theirs_time} "
            f"| {ratio} | {_pair(ours, theirs, 'knn_accuracy')} "
            f"| {_pair(ours, theirs, 'map_at_r')} |"
        )
    return lines + [""]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--datasets", nargs="*", default=DATASETS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cap-seconds", type=float, default=300.0)
    parser.add_argument("--cap-gb", type=float, default=4.0)
    parser.add_argument("--out", default="benchmarks/results/classical")
    parser.add_argument(
        "--update",
        action="store_true",
        help="replace the rows measured now in the existing results, keep the rest",
    )
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    learners = args.only or list(LEARNERS)
    unknown = sorted(set(learners) - set(LEARNERS))
    if unknown:
        parser.error(f"unknown learners {unknown}; known: {sorted(LEARNERS)}")

    def log(row):
        shown = {k: v for k, v in row.items() if k not in ("params",)}
        print(json.dumps(shown, default=float), flush=True)

    rows = benchmark(
        learners, args.datasets, args.repeats, args.cap_seconds, args.cap_gb, log
    )
    this_commit = commit()
    for row in rows:
        row["commit"] = this_commit
    out = Path(args.out)
    if args.update and out.with_suffix(".json").exists():
        fresh = {(r["dataset"], r["learner"], r["library"]): r for r in rows}
        kept = json.loads(out.with_suffix(".json").read_text())
        rows = [fresh.pop((r["dataset"], r["learner"], r["library"]), r) for r in kept]
        rows += list(fresh.values())
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=float))
    out.with_suffix(".md").write_text(markdown(rows, args))


if __name__ == "__main__":
    main()
