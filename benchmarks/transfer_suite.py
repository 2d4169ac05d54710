"""Class-disjoint transfer suite: baselines on the tasks of ``transfer_tasks``.

For every task of ``transfer_tasks.TASKS`` and seed, 70 % of the seen samples
(stratified, drawn by the seed) train a method inside a ``Pipeline`` that
starts with a ``StandardScaler`` (fitted on those samples); the embeddings
are scored by leave-one-out MAP@R (``sklearn_dml.metrics.map_at_r_score``):

* unseen MAP@R: among all samples of the unseen classes (the goal);
* closed MAP@R: among the 30 % held-out samples of the seen classes.

Methods of this first version are baselines that do not depend on
sklearn-dml's defaults (``METHODS``): raw standardised features, PCA
(``min(64, n_features)`` dims, so PCA equals raw up to a rotation when a task
has at most 64 features), PCA + L2 normalisation, scikit-learn's NCA (on at
most 64 PCA dims, 50 iterations) and a plain pytorch-metric-learning loop
(MLP in-256-64 with ReLU, ``TripletMarginLoss(margin=0.1)`` with a semihard
``TripletMarginMiner(margin=0.1)``, Adam 1e-3, 30 epochs, batches of about
128 from ``MPerClassSampler``: ``m=4`` when a batch of 128 holds at least 32
seen classes, else ``m = 128 // n_classes`` (25 on the 5-class digit splits),
embeddings L2-normalised as the loss sees them).

To add rows (an sklearn-dml embedder, say), give ``evaluate`` a factory::

    from transfer_suite import evaluate
    row = evaluate(lambda n_features, seed: MyEmbedder(random_state=seed),
                   "mnist_pairs", seed=0)

or add the factory to ``METHODS`` (the cache of baselines is keyed by task,
seed and method name, so new names are computed and old ones reused).

Results: ``results/transfer_suite_baselines.json`` (every row, with the
commit and command that produced it; rerunning skips the rows already there
unless ``--recompute``) and ``results/transfer_suite.md``.

    python benchmarks/transfer_suite.py [--quick] [--seeds 3] [--n-jobs 1]
        [--tasks T ...] [--methods M ...] [--recompute]

``--quick``: 1 seed, 5 epochs / iterations, nothing written (a smoke test).
"""

import argparse
import functools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from joblib import Parallel, delayed
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NeighborhoodComponentsAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, Normalizer, StandardScaler

sys.path.insert(0, str(Path(__file__).parent))
from _provenance import command as this_command  # noqa: E402
from _provenance import commit as this_commit  # noqa: E402
from _provenance import provenance, rows_by_commit  # noqa: E402
from pml_baselines import PMLLoop  # noqa: E402
from transfer_tasks import TASKS  # noqa: E402

from sklearn_dml.metrics import map_at_r_score, precision_at_k_score  # noqa: E402

N_COMPONENTS = 64
#: The plain pytorch-metric-learning loops with the headline losses
#: (method name suffix -> ``PMLLoop(loss=...)``).
PML_LOSSES = {
    "triplet": "triplet",
    "contrastive": "contrastive",
    "multi-similarity": "multi_similarity",
    "Proxy-Anchor": "proxy_anchor",
    "SupCon": "supcon",
}
HERE = Path(__file__).parent
RESULTS_JSON = HERE / "results" / "transfer_suite_baselines.json"
RESULTS_MD = HERE / "results" / "transfer_suite.md"


def _k(n_features):
    return min(N_COMPONENTS, n_features)


def _nca(n_features, seed):
    nca = NeighborhoodComponentsAnalysis(
        n_components=_k(n_features), max_iter=50, random_state=seed
    )
    if n_features > N_COMPONENTS:
        return make_pipeline(PCA(N_COMPONENTS, random_state=seed), nca)
    return nca


def _pml_loop(loss):
    def make(n_features, seed):
        return PMLLoop(loss=loss, random_state=seed)

    return make


# name -> factory(n_features, seed) -> unfitted transformer (fed standardised X)
METHODS = {
    "raw": lambda n_features, seed: FunctionTransformer(),
    "PCA": lambda n_features, seed: PCA(_k(n_features), random_state=seed),
    "PCA+L2": lambda n_features, seed: make_pipeline(
        PCA(_k(n_features), random_state=seed), Normalizer()
    ),
    "NCA": _nca,
    **{f"PML {name}": _pml_loop(loss) for name, loss in PML_LOSSES.items()},
}
DESCRIPTIONS = {
    "raw": "raw standardised features",
    "PCA": f"PCA to min({N_COMPONENTS}, n_features) dims",
    "PCA+L2": "the same PCA, then L2 normalisation",
    "NCA": f"scikit-learn NCA on at most {N_COMPONENTS} PCA dims, 50 iterations",
    "PML triplet": "pytorch-metric-learning semihard triplet loop, MLP in-256-64, "
    "Adam 1e-3, 30 epochs",
    **{
        f"PML {name}": f"the same loop with pytorch-metric-learning's {name} loss "
        "at its default settings (and its miner for multi-similarity; "
        "Proxy-Anchor's proxies in the same Adam)"
        for name in PML_LOSSES
        if name != "triplet"
    },
}


@functools.lru_cache(maxsize=4)
def split(task_name, seed):
    """``(X_train, y_train, X_closed, y_closed, X_unseen, y_unseen)`` of a task:
    the seen samples split 70 / 30 per class (by the seed). Read-only arrays."""
    X_seen, y_seen, X_unseen, y_unseen = TASKS[task_name][0](seed)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X_seen, y_seen, test_size=0.3, stratify=y_seen, random_state=seed
    )
    out = (X_tr, y_tr.astype(np.int64), X_te, y_te.astype(np.int64))
    out += (X_unseen, y_unseen.astype(np.int64))
    for a in out:
        a.setflags(write=False)
    return out


def _set_max_iter(estimator, max_iter):
    params = estimator.get_params(deep=True)
    names = [p for p in params if p == "max_iter" or p.endswith("__max_iter")]
    if names:
        estimator.set_params(**{p: max_iter for p in names})
    return estimator


def evaluate(method_factory, task_name, seed, max_iter=None):
    """Fit ``method_factory(n_features, seed)`` on one task and seed.

    The transformer is fitted, after a ``StandardScaler``, on 70 % of the seen
    samples; ``max_iter`` (if not None) overrides every ``max_iter`` parameter
    of it. Returns a dict: ``unseen_map`` and ``unseen_p1`` (leave-one-out
    among all unseen samples), ``closed_map`` (among the 30 % held-out seen
    samples), ``fit_s`` and the task's sizes.
    """
    torch.set_num_threads(1)
    X_tr, y_tr, X_te, y_te, X_un, y_un = split(task_name, seed)
    method = method_factory(X_tr.shape[1], seed)
    if max_iter is not None:
        _set_max_iter(method, max_iter)
    pipe = make_pipeline(StandardScaler(), method)
    tic = time.perf_counter()
    pipe.fit(np.array(X_tr), np.array(y_tr))
    fit_s = time.perf_counter() - tic
    E_un, E_te = pipe.transform(np.array(X_un)), pipe.transform(np.array(X_te))
    return dict(
        task=task_name,
        seed=int(seed),
        max_iter=max_iter,
        unseen_map=float(map_at_r_score(E_un, y_un)),
        unseen_p1=float(precision_at_k_score(E_un, y_un, k=1)),
        closed_map=float(map_at_r_score(E_te, y_te)),
        fit_s=fit_s,
        n_features=int(X_tr.shape[1]),
        n_seen_classes=int(len(np.unique(y_tr))),
        n_unseen_classes=int(len(np.unique(y_un))),
        n_train=int(len(y_tr)),
        n_closed=int(len(y_te)),
        n_unseen=int(len(y_un)),
        embedding_dim=int(E_un.shape[1]),
    )


def run_task_seed(task_name, seed, method_names, max_iter=None):
    """Rows of the methods ``method_names`` on one task and seed."""
    torch.set_num_threads(1)
    rows = []
    for name in method_names:
        row = evaluate(METHODS[name], task_name, seed, max_iter)
        row["method"] = name
        rows.append(row)
    split.cache_clear()
    return rows


def _key(row):
    return row["task"], row["seed"], row["method"]


def _load():
    if RESULTS_JSON.exists():
        return json.loads(RESULTS_JSON.read_text())
    return {"runs": [], "rows": []}


def _save(store):
    RESULTS_JSON.parent.mkdir(exist_ok=True)
    tmp = RESULTS_JSON.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(store, indent=1) + "\n")
    tmp.replace(RESULTS_JSON)


def _cell(values):
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def markdown(rows, tasks, methods, seeds, header):
    """The Markdown report of ``rows`` (one table of unseen MAP@R, one of
    closed MAP@R, one of fit seconds)."""
    out = list(header)
    by = {}
    for r in rows:
        by.setdefault((r["task"], r["method"]), []).append(r)
    expected = len(seeds)

    def values(task, method, key):
        return [r[key] for r in sorted(by.get((task, method), []), key=_key)]

    def head(extra):
        cols = ["task", "kind", "classes seen / unseen", "features", *methods, *extra]
        return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

    def info(task):
        some = next(r for m in methods for r in by.get((task, m), []))
        return [
            task,
            TASKS[task][1],
            f"{some['n_seen_classes']} / {some['n_unseen_classes']}",
            str(some["n_features"]),
        ]

    for title, key, best in (
        ("Unseen-class MAP@R (the goal)", "unseen_map", True),
        (
            "Closed-set MAP@R (30 % held-out samples of the seen classes)",
            "closed_map",
            False,
        ),
    ):
        out += ["", f"## {title}", "", *head(["best baseline"] if best else [])]
        for task in tasks:
            if not any(by.get((task, m)) for m in methods):
                continue
            cells, means = info(task), {}
            for m in methods:
                v = values(task, m, key)
                if not v:
                    cells.append("n/a")
                    continue
                means[m] = np.mean(v)
                note = "" if len(v) == expected else f" ({len(v)} seeds)"
                cells.append(_cell(v) + note)
            if best:
                ranked = sorted(means, key=means.get, reverse=True)
                margin = means[ranked[0]] - means[ranked[1]] if len(ranked) > 1 else 0
                cells.append(f"{ranked[0]} (+{margin:.3f} over {ranked[1]})")
                i = 4 + methods.index(ranked[0])
                cells[i] = f"**{cells[i]}**"
            out.append("| " + " | ".join(cells) + " |")
    out += ["", "## Mean fit seconds (indicative: a shared 2-core machine)", ""]
    out += head([])
    for task in tasks:
        if any(by.get((task, m)) for m in methods):
            cells = info(task)
            for m in methods:
                v = values(task, m, "fit_s")
                cells.append(f"{np.mean(v):.1f}" if v else "n/a")
            out.append("| " + " | ".join(cells) + " |")
    out += ["", "## Tasks", ""]
    out += [f"* `{t}` ({TASKS[t][1]}): {TASKS[t][2]}." for t in tasks]
    out += ["", "## Methods", ""]
    out += [f"* {m}: {DESCRIPTIONS.get(m, m)}." for m in methods]
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument(
        "--methods", nargs="+", choices=list(METHODS), default=list(METHODS)
    )
    parser.add_argument(
        "--recompute",
        action="store_true",
        help=f"refit the rows already stored in {RESULTS_JSON.name}",
    )
    args = parser.parse_args()
    seeds = [0] if args.quick else list(range(args.seeds))
    max_iter = 5 if args.quick else None
    command = this_command()
    commit = this_commit()
    store = {"runs": [], "rows": []} if args.quick else _load()
    have = set() if args.recompute else {_key(r) for r in store["rows"]}
    todo = []
    for task in args.tasks:
        for seed in seeds:
            missing = [m for m in args.methods if (task, seed, m) not in have]
            if missing:
                todo.append((task, seed, missing))
    print(f"{len(todo)} (task, seed) runs to fit; commit {commit}", flush=True)
    tic = time.perf_counter()
    # by module name, not __main__, so that worker processes can unpickle it
    from transfer_suite import run_task_seed as run

    results = Parallel(n_jobs=args.n_jobs, return_as="generator_unordered")(
        delayed(run)(task, seed, missing, max_iter) for task, seed, missing in todo
    )
    for fresh in results:
        for row in fresh:
            row.update(commit=commit, command=command)
            print(
                f"{row['task']:20s} seed {row['seed']} {row['method']:12s} "
                f"unseen {row['unseen_map']:.3f} closed {row['closed_map']:.3f} "
                f"fit {row['fit_s']:.1f} s",
                flush=True,
            )
        if not args.quick:  # saved after each (task, seed): a stopped run resumes
            done = {_key(r) for r in fresh}
            store["rows"] = [r for r in store["rows"] if _key(r) not in done] + fresh
            _save(store)
        else:
            store["rows"] += fresh
    elapsed = time.perf_counter() - tic
    if not args.quick and todo:
        store["runs"].append(
            dict(
                commit=commit,
                command=command,
                date=time.strftime("%Y-%m-%d %H:%M:%S"),
                seconds=round(elapsed, 1),
                fitted=[[t, s, m] for t, s, m in todo],
            )
        )
        _save(store)
    wanted = set(args.tasks), set(seeds), set(args.methods)
    rows = [
        r
        for r in store["rows"]
        if r["task"] in wanted[0]
        and r["seed"] in wanted[1]
        and r["method"] in wanted[2]
    ]
    shown = {(r["task"], r["seed"]) for r in rows}
    producers = [
        f"`{run['command']}` (commit {run['commit']}, {run['date']}: "
        f"{len(run['fitted'])} (task, seed) runs in {run['seconds']:.0f} s)"
        for run in store["runs"]
        if any((t, s) in shown for t, s, _ in run["fitted"])
    ]
    header = [
        "# Class-disjoint transfer suite: baselines",
        "",
        "Trained on the seen classes of each task (70 % of their samples, "
        "standardised), retrieval among the samples of classes never seen in "
        f"training; leave-one-out MAP@R, mean ± std over {len(seeds)} seed(s) "
        "(a seed draws the task's randomness, including which classes are seen "
        "where a task has many, the 70/30 split and the initialisation). "
        "Best mean in bold."
        + (
            " --quick: 5 epochs / iterations, a smoke test, not results."
            if args.quick
            else ""
        ),
        "",
        "Rows computed by "
        + ("; ".join(producers) if producers else f"`{command}` (commit {commit})")
        + f", stored in `{RESULTS_JSON.name}` with the commit and command of each "
        f"row. Sum of the fit times of the rows shown: "
        f"{sum(r['fit_s'] for r in rows):.0f} s. Python "
        f"{platform.python_version()}, torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, 1 torch thread per run.",
        "",
        provenance("Table written") + " " + rows_by_commit(rows, RESULTS_JSON.name),
    ]
    text = markdown(rows, args.tasks, args.methods, seeds, header)
    print(text)
    if not args.quick:
        RESULTS_MD.write_text(text)


if __name__ == "__main__":
    main()
