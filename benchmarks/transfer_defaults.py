"""The headline embedders' defaults on the class-disjoint transfer suite.

Every headline embedder (triplet, contrastive, multi-similarity,
Proxy-Anchor, SupCon) is fitted on each task of ``transfer_tasks.TASKS``
with the protocol of ``transfer_suite.evaluate`` (70 % of the seen samples,
standardised; retrieval among the unseen classes), in eight settings that
differ only in the anchoring and the start of the default backbone
(and, for the last three, the candidates' budget or the seed):

* ``anchor_weight=None``: the method's own weight (10 for these five);
* ``anchor_weight=0``: its own network, unanchored (from the PCA start);
* ``free network``: unanchored from a random start, the other candidate of
  ``"auto"`` (a ``ResidualMLP(init="random", anchor_weight=0)`` of the
  default size, drawn from the seed, as the backbone);
* ``anchor_weight="auto"`` (the default): the method's weight or the free
  network, chosen by class-disjoint validation on the training classes
  (halves of them from ten classes on, three overlapping groups of about
  40 % with five to nine), or the method's weight with fewer than five;
  the anchored network blended with its start where the validation
  prefers a blend (``start_share_``);
* ``auto, no blend``: the same choice without the blends
  (``sklearn_dml.base.AUTO_START_SHARES`` set to ``(0.0,)`` for the fit),
  as ``"auto"`` was before they were added;
* ``auto, half-budget candidates``: the choice with candidates trained for
  half of ``max_iter`` (``sklearn_dml.base.AUTO_CANDIDATE_EPOCH_SHARE`` set
  to 0.5 for the fit), a cheaper variant measured against ``"auto"``;
* ``unanchored, another init`` and ``free network, another init``:
  controls (``CONTROLS``), the two unanchored settings trained again on the
  same split with another seed for the estimator and the backbone; they
  are no baselines, and give the resolution of the margins
  (:func:`resolution`).

Everything else is the estimator's default (64 dimensions or fewer, the
same epochs, learning rate and batches in every setting). The margin
of a setting on a task is its unseen MAP@R minus the best of the baselines
of ``transfer_suite`` (raw, PCA, PCA + L2, NCA, the plain
pytorch-metric-learning loop with the same loss) and of the same embedder
unanchored (from the PCA start, and the free network where measured); a
stricter margin adds the plain semihard triplet loop for every embedder.
The table reports, per embedder and setting, the worst margin over the
tasks, the mean, and the mean closed-set MAP@R (held-out samples of the
training classes).

Rows are cached in ``results/transfer_defaults.json`` (keyed by embedder,
setting, task and seed); ``results/transfer_defaults.md`` is rewritten from
every cached row. Run (``--n-jobs 2`` runs (task, seed) pairs in parallel):

    python benchmarks/transfer_defaults.py [--seeds 1] [--tasks T ...]
        [--embedders E ...] [--settings S ...] [--n-jobs 1] [--quick]
        [--refresh]
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

sys.path.insert(0, str(Path(__file__).parent))
from _provenance import commit, provenance, rows_by_commit  # noqa: E402
from transfer_suite import RESULTS_JSON as BASELINES_JSON  # noqa: E402
from transfer_suite import evaluate  # noqa: E402
from transfer_tasks import TASKS  # noqa: E402

import sklearn_dml  # noqa: E402
from sklearn_dml import base  # noqa: E402
from sklearn_dml.backbones import ResidualMLP  # noqa: E402

HERE = Path(__file__).parent
RESULTS_JSON = HERE / "results" / "transfer_defaults.json"
RESULTS_MD = HERE / "results" / "transfer_defaults.md"
EMBEDDERS = [
    "TripletEmbedder",
    "ContrastiveEmbedder",
    "MultiSimilarityEmbedder",
    "ProxyAnchorEmbedder",
    "SupConEmbedder",
]
SETTINGS = {
    "method weight": None,
    "unanchored": 0.0,
    "free network": "free",
    "auto, no blend": "auto, no blend",
    "auto": "auto",
    "auto, half-budget candidates": "auto, half-budget candidates",
    "unanchored, another init": ("reseeded", 0.0),
    "free network, another init": ("reseeded", "free"),
}
#: Controls, not baselines: the embedder's own unanchored networks trained
#: again on the same split of the same task with another initialisation and
#: batch order (``RESEED_OFFSET`` added to the seed of the estimator and of
#: the backbone). Their margin against the baselines, which hold the same
#: networks at the original initialisation, is what a method that is as good
#: as a baseline scores from the training's own randomness: the resolution of
#: a worst-case margin over the tasks at this number of seeds.
CONTROLS = ("unanchored, another init", "free network, another init")
RESEED_OFFSET = 1000
#: The settings that are the embedder's own network without an anchor: the
#: best of them is a baseline of every setting.
OWN_UNANCHORED = ("unanchored", "free network")
#: The baselines of every embedder; each also meets the plain
#: pytorch-metric-learning loop with its own loss (``SAME_LOSS``) and, in the
#: stricter comparison, the semihard triplet loop too.
BASELINES = ["raw", "PCA", "PCA+L2", "NCA"]
SAME_LOSS = {
    "TripletEmbedder": "PML triplet",
    "ContrastiveEmbedder": "PML contrastive",
    "MultiSimilarityEmbedder": "PML multi-similarity",
    "ProxyAnchorEmbedder": "PML Proxy-Anchor",
    "SupConEmbedder": "PML SupCon",
}


def factory(embedder, anchor_weight, made):
    """``make(n_features, seed)`` for ``evaluate``; each estimator made is
    appended to ``made`` (to read its fitted ``anchor_weight_`` afterwards)."""
    cls = getattr(sklearn_dml, embedder)

    reseeded = isinstance(anchor_weight, tuple)
    if reseeded:
        anchor_weight = anchor_weight[1]

    def make(n_features, seed):
        if reseeded:  # the task's seed drew the split; the init gets another
            seed = seed + RESEED_OFFSET
        n_components = min(64, n_features)
        backbone = None
        if anchor_weight == "free":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                backbone = ResidualMLP(
                    n_features,
                    n_components,
                    init="random",
                    normalize_embeddings=False,  # the estimator appends it
                    anchor_weight=0.0,
                )
        weight = "auto" if str(anchor_weight).startswith("auto") else anchor_weight
        est = cls(
            n_components=n_components,
            anchor_weight=0.0 if backbone is not None else weight,
            backbone=backbone,
            random_state=seed,
            device="cpu",
        )
        made.append(est)
        return est

    return make


def run(task, seed, jobs, max_iter):
    torch.set_num_threads(1)
    rows = []
    for embedder, setting in jobs:
        made = []
        shares = base.AUTO_START_SHARES
        epoch_share = base.AUTO_CANDIDATE_EPOCH_SHARE
        if SETTINGS[setting] == "auto, no blend":  # the choice without blends
            base.AUTO_START_SHARES = (0.0,)
        if SETTINGS[setting] == "auto, half-budget candidates":
            base.AUTO_CANDIDATE_EPOCH_SHARE = 0.5
        try:
            row = evaluate(
                factory(embedder, SETTINGS[setting], made), task, seed, max_iter
            )
        finally:
            base.AUTO_START_SHARES = shares
            base.AUTO_CANDIDATE_EPOCH_SHARE = epoch_share
        row.update(
            embedder=embedder,
            setting=setting,
            anchor_weight_=made[-1].anchor_weight_,
            anchor_selection_=made[-1].anchor_selection_,
            start_share_=made[-1].start_share_,
        )
        rows.append(row)
    return rows


def _key(row):
    return f"{row['embedder']}|{row['setting']}|{row['task']}|{row['seed']}"


def _load(path):
    return json.loads(path.read_text()) if path.exists() else {}


def _baselines_by_task_seed(baselines):
    """(task, seed) -> {baseline method: unseen MAP@R} of the full-budget rows."""
    base = {}
    for row in baselines.get("rows", []):
        if row.get("max_iter") is None:
            base.setdefault((row["task"], row["seed"]), {})[row["method"]] = row[
                "unseen_map"
            ]
    return base


def margins(rows, baselines, with_triplet_loop=False):
    """Per (embedder, setting): task -> mean over seeds of the margin.

    The margin is the unseen MAP@R minus the best, on the same task and
    seed, of ``BASELINES``, the pytorch-metric-learning loop with the same
    loss (``SAME_LOSS``), the semihard triplet loop too when
    ``with_triplet_loop``, and the same embedder unanchored (the best of
    ``OWN_UNANCHORED`` measured). (task, seed) pairs that lack one of them
    are left out.
    """
    base = _baselines_by_task_seed(baselines)
    own = {}
    for r in rows:
        if r["setting"] in OWN_UNANCHORED:
            key = (r["embedder"], r["task"], r["seed"])
            own[key] = max(own.get(key, -np.inf), r["unseen_map"])
    out = {}
    for r in rows:
        if r["setting"] in CONTROLS:  # see resolution()
            continue
        key = (r["task"], r["seed"])
        names = BASELINES + [SAME_LOSS[r["embedder"]]]
        if with_triplet_loop:
            names.append("PML triplet")
        found = base.get(key, {})
        if any(n not in found for n in names) or (r["embedder"], *key) not in own:
            continue
        best = max(max(found[n] for n in names), own[(r["embedder"], *key)])
        cell = out.setdefault((r["embedder"], r["setting"]), {})
        cell.setdefault(r["task"], []).append(r["unseen_map"] - best)
    return {k: {t: float(np.mean(v)) for t, v in d.items()} for k, d in out.items()}


def _auto_per_task(rows, field):
    """Task -> the values of ``field`` in the rows of ``auto`` that hold one."""
    out = {}
    for r in rows:
        if r["setting"] == "auto" and r.get(field) is not None:
            out.setdefault(r["task"], []).append(r[field])
    return out


def resolution(rows, baselines):
    """Per embedder, what the training's own randomness costs a margin.

    On the tasks where the embedder's own unanchored network (the better of
    ``OWN_UNANCHORED``, mean over seeds) is the best baseline, an oracle
    takes the better of the two ``CONTROLS`` (the same networks at another
    initialisation) on each seed; its margin against the baselines is what a
    method as good as the best baseline scores there from noise alone.
    Returns embedder -> ``(n_tasks, worst, worst_task, mean, median |diff|,
    90th percentile |diff|)``, the last two over the per-seed differences
    between each control and its original; embedders without controls are
    left out.
    """
    base = _baselines_by_task_seed(baselines)
    value = {
        (r["embedder"], r["setting"], r["task"], r["seed"]): r["unseen_map"]
        for r in rows
    }
    seeds = {}
    for r in rows:
        seeds.setdefault(r["task"], set()).add(r["seed"])
    out = {}
    for embedder in EMBEDDERS:
        names = BASELINES + [SAME_LOSS[embedder]]
        margins, diffs = {}, []
        for task in TASKS:
            own, other, oracle = [], [], []
            for seed in sorted(seeds.get(task, ())):
                keys = [(embedder, s, task, seed) for s in OWN_UNANCHORED + CONTROLS]
                found = base.get((task, seed), {})
                if any(k not in value for k in keys) or any(
                    n not in found for n in names
                ):
                    continue
                originals = [value[k] for k in keys[:2]]
                controls = [value[k] for k in keys[2:]]
                diffs += [c - o for c, o in zip(controls, originals)]
                own.append(max(originals))
                other.append(max(found[n] for n in names))
                oracle.append(max(controls) - max(own[-1], other[-1]))
            if own and np.mean(own) >= np.mean(other):
                margins[task] = float(np.mean(oracle))
        if margins:
            worst = min(margins, key=margins.get)
            diffs = np.abs(diffs)
            out[embedder] = (
                len(margins),
                margins[worst],
                worst,
                float(np.mean(list(margins.values()))),
                float(np.median(diffs)),
                float(np.quantile(diffs, 0.9)),
            )
    return out


def markdown(rows, baselines, header):
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    lines = [
        "# The headline embedders' defaults on the class-disjoint transfer suite",
        "",
        header,
        "",
        rows_by_commit(rows, RESULTS_JSON.name)
        + " Fit seconds of runs made on a loaded machine are not comparable.",
        "",
        "## Unseen-class MAP@R (mean over seeds)",
        "",
        "| embedder | setting | " + " | ".join(tasks) + " |",
        "|---|---|" + "---|" * len(tasks),
    ]
    for embedder in EMBEDDERS:
        for setting in SETTINGS:
            cells = []
            for task in tasks:
                vals = [
                    r["unseen_map"]
                    for r in rows
                    if (r["embedder"], r["setting"], r["task"])
                    == (embedder, setting, task)
                ]
                cells.append(f"{np.mean(vals):.3f}" if vals else "-")
            if any(c != "-" for c in cells):
                lines.append(f"| {embedder} | {setting} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Margin over the best baseline of each task",
        "",
        "Against the issue's baselines: the best of raw, PCA, PCA + L2, NCA, the "
        "plain pytorch-metric-learning loop with the same loss and the same "
        "embedder unanchored (the better of its PCA start and the free network), "
        "on the same seed (mean over seeds per task). "
        "Stricter: the same, plus the plain semihard triplet loop for every "
        "embedder. Closed: closed-set MAP@R (the held-out samples of the training "
        "classes), mean over the tasks and seeds.",
        "",
        "| embedder | setting | tasks | worst margin (task) | mean margin "
        "| stricter: worst (task) | stricter: mean | closed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    strict = margins(rows, baselines, with_triplet_loop=True)
    for (embedder, setting), per_task in sorted(
        margins(rows, baselines).items(),
        key=lambda kv: (EMBEDDERS.index(kv[0][0]), kv[0][1]),
    ):
        cells = []
        for table in (per_task, strict.get((embedder, setting), {})):
            if not table:
                cells += ["-", "-"]
                continue
            worst = min(table, key=table.get)
            cells += [
                f"{table[worst]:+.3f} ({worst})",
                f"{np.mean(list(table.values())):+.3f}",
            ]
        closed = [
            r["closed_map"]
            for r in rows
            if (r["embedder"], r["setting"]) == (embedder, setting)
            and r["task"] in per_task
        ]
        cells.append(f"{np.mean(closed):.3f}")
        lines.append(
            f"| {embedder} | {setting} | {len(per_task)} | " + " | ".join(cells) + " |"
        )
    noise = resolution(rows, baselines)
    if noise:
        lines += [
            "",
            "Resolution of these margins: the own unanchored networks trained "
            "again with another initialisation and batch order on the same "
            'splits (the settings "... another init"). On the tasks where '
            "those networks are the best baseline, an oracle that takes the "
            "better of the two reinitialised networks on each seed scores, "
            "against the baselines (which hold the originals), the margin below: "
            "what a method exactly as good as the best baseline gets from the "
            "training's randomness at this number of seeds. |diff|: per-seed "
            "difference between a reinitialised network and its original.",
            "",
            "| embedder | tasks | oracle worst margin (task) | oracle mean "
            "| median abs(diff) | 90th percentile abs(diff) |",
            "|---|---|---|---|---|---|",
        ]
        for embedder, (n, worst, task, mean, med, p90) in noise.items():
            lines.append(
                f"| {embedder} | {n} | {worst:+.3f} ({task}) | {mean:+.3f} "
                f"| {med:.3f} | {p90:.3f} |"
            )
    unanchored = _auto_per_task(rows, "anchor_weight_")
    if unanchored:
        lines += [
            "",
            "Fits in which `auto` chose the unanchored candidate, per task: "
            + ", ".join(
                f"{t} {sum(w == 0 for w in ws)} of {len(ws)}"
                for t, ws in unanchored.items()
            )
            + ".",
        ]
    blended = _auto_per_task(rows, "start_share_")
    if blended:
        cells = []
        for task, values in blended.items():
            shares = [s for s in values if s]
            mean = f" ({np.mean(shares):.2f})" if shares else ""
            cells.append(f"{task} {len(shares)} of {len(values)}{mean}")
        lines += [
            "",
            "Fits in which `auto` blended a share of the start back into the "
            "anchored network (`start_share_` > 0), per task, with the mean "
            "share of those: " + ", ".join(cells) + ".",
        ]
    fit = {}
    for r in rows:
        fit.setdefault(r["setting"], []).append(r["fit_s"])
    lines += [
        "",
        "Mean fit seconds: "
        + ", ".join(f"{s} {np.mean(fit[s]):.1f}" for s in SETTINGS if s in fit),
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--embedders", nargs="*", default=EMBEDDERS)
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS))
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--refresh", action="store_true", help="recompute the selected rows if cached"
    )
    args = parser.parse_args()
    store = _load(RESULTS_JSON)
    max_iter = 2 if args.quick else None
    todo = {}
    for task in args.tasks:
        for seed in range(args.seeds):
            for embedder in args.embedders:
                for setting in args.settings:
                    row = {
                        "embedder": embedder,
                        "setting": setting,
                        "task": task,
                        "seed": seed,
                    }
                    if args.quick or args.refresh or _key(row) not in store:
                        todo.setdefault((task, seed), []).append((embedder, setting))
    tic = time.perf_counter()
    this_commit = commit()
    items = list(todo.items())
    # Saved after every batch of (task, seed) pairs: a long run keeps what it did.
    step = max(1, args.n_jobs)
    n_new = 0
    for start in range(0, len(items), step):
        batch = items[start : start + step]
        results = Parallel(n_jobs=args.n_jobs)(
            delayed(run)(task, seed, jobs, max_iter) for (task, seed), jobs in batch
        )
        rows = [row for part in results for row in part]
        if args.quick:
            print(json.dumps(rows[:3], indent=1))
            continue
        for row in rows:
            row["commit"] = this_commit
            store[_key(row)] = row
        n_new += len(rows)
        RESULTS_JSON.write_text(json.dumps(store, indent=1))
        _write_md(store, tic, n_new)
    if args.quick:
        return
    if not n_new:  # every row cached: the table is rewritten all the same
        _write_md(store, tic, n_new)
    print(f"wrote {RESULTS_MD}")


def _write_md(store, tic, n_new):
    header = (
        f"{provenance('Table written')} "
        f"{time.perf_counter() - tic:.0f} s for {n_new} new fits. "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, 1 torch thread per run."
    )
    RESULTS_MD.write_text(markdown(list(store.values()), _load(BASELINES_JSON), header))


if __name__ == "__main__":
    main()
