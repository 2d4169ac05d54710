"""Matryoshka training (``nested_dims``) against plain truncation.

Three ways to get a ``k``-dimensional embedding, with the same backbone
(the default residual MLP, 256 hidden units) and budget (``max_iter``
epochs of the triplet loss) on the seen/unseen protocol of ``_protocol.py``:

* ``plain, truncated``: one TripletEmbedder with 64 dimensions, its first
  ``k`` coordinates re-normalised (``transform_nested``);
* ``nested_dims``: one TripletEmbedder with 64 dimensions trained with
  ``nested_dims=(2, 4, 8, 16, 32)``, truncated the same way;
* ``trained at k``: a separate TripletEmbedder with ``n_components=k``
  for every ``k`` (six models: the cost Matryoshka training avoids).

Reported: MAP@R (leave-one-out) of the seen classes' held-out samples and
of the unseen classes, at ``k`` in (2, 4, 8, 16, 32, 64), 5 seeds.
"""

import time

import numpy as np
import torch
from _protocol import matched, matched_note, split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_dml import TripletEmbedder
from sklearn_dml.metrics import map_at_r_score

DIMS = (2, 4, 8, 16, 32, 64)
NESTED = (2, 4, 8, 16, 32)


def _fit(seed, data, max_iter, **params):
    X_tr, y_tr = data[:2]
    model = matched(TripletEmbedder(random_state=seed, max_iter=max_iter, **params))
    pipe = make_pipeline(StandardScaler(), model)
    tic = time.perf_counter()
    pipe.fit(X_tr, y_tr)
    return pipe, time.perf_counter() - tic


def _at_k(pipe, data, k):
    _, _, X_te, y_te, X_new, y_new = data
    scaler, model = pipe[0], pipe[-1]
    return (
        map_at_r_score(model.transform_nested(scaler.transform(X_te), k), y_te),
        map_at_r_score(model.transform_nested(scaler.transform(X_new), k), y_new),
    )


def run_seed(seed, max_iter, separate=True):
    torch.set_num_threads(1)
    data = split("digits", seed)
    out = {}
    for name, params in (
        ("plain, truncated", {"n_components": 64}),
        ("nested_dims", {"n_components": 64, "nested_dims": NESTED}),
    ):
        pipe, secs = _fit(seed, data, max_iter, **params)
        out[name] = {k: _at_k(pipe, data, k) for k in DIMS}
        out[name]["fit_s"] = secs
    if separate:
        out["trained at k"] = {"fit_s": 0.0}
        for k in DIMS:
            pipe, secs = _fit(seed, data, max_iter, n_components=k)
            out["trained at k"][k] = _at_k(pipe, data, k)
            out["trained at k"]["fit_s"] += secs
    return out


def _table(rows, which, base="plain, truncated"):
    head = "| method | " + " | ".join(f"k={k}" for k in DIMS) + " | fit s |"
    lines = [head, "|---" * (len(DIMS) + 2) + "|"]
    for name in rows[0]:
        cells = []
        for k in DIMS:
            vals = np.array([r[name][k][which] for r in rows])
            cell = f"{vals.mean():.3f} ± {vals.std():.3f}"
            if name != base:
                diff = vals - np.array([r[base][k][which] for r in rows])
                cell += f" ({diff.mean():+.3f})"
            cells.append(cell)
        fit = np.mean([r[name]["fit_s"] for r in rows])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {fit:.1f} |")
    return "\n".join(lines)


def main(quick=False):
    seeds = range(2) if quick else range(5)
    max_iter = 5 if quick else 50
    rows = [run_seed(seed, max_iter) for seed in seeds]
    return "\n".join(
        [
            "# Matryoshka embeddings (`nested_dims`) on digits",
            "",
            matched_note(),
            "",
            "Kusupati et al., NeurIPS 2022. TripletEmbedder (residual MLP, 256 "
            f"hidden units, {max_iter} epochs, defaults otherwise) on the seen "
            "classes 0-4; MAP@R of the first `k` dimensions (re-normalised, "
            "`transform_nested`), mean ± std over "
            f"{len(seeds)} seeds; in brackets the paired difference with the "
            "plain model truncated. `nested_dims` is `(2, 4, 8, 16, 32)` on a "
            "64-dimensional embedding (the full embedding is trained too); "
            "`trained at k` is one separate model per `k` (fit time summed over "
            "the six).",
            "",
            "## Unseen classes (5-9), MAP@R",
            "",
            _table(rows, 1),
            "",
            "## Seen classes (held-out 30 %), MAP@R",
            "",
            _table(rows, 0),
        ]
    )
