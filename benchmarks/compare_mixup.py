"""Metrix mixup against the plain loss it modifies.

Three base losses of the Metrix paper (Contrastive, Multi-Similarity,
Proxy-Anchor), each trained plainly and with ``mixup="embedding"`` and
``mixup="input"`` (defaults ``alpha=2``, ``weight=1``), and with a lighter
mixed term (``Metrix(on="embedding", weight=0.25)``): same backbone
(the default ResidualMLP, 32 dimensions), same epochs and learning rate,
same 5 seeds, on the seen/unseen protocol of ``_protocol.py``. Besides
retrieval, the table gives the paper's utilization (mean distance from a
test embedding to its nearest training embedding; lower: the training
embeddings cover more of where the test samples land) for the seen test
samples and for the unseen classes.

Run through the runner: ``python benchmarks/compare_methods.py --only mixup``.
"""

import numpy as np
from _protocol import markdown_table, matched_note, run, split

from sklearn_dml import (
    ContrastiveEmbedder,
    MultiSimilarityEmbedder,
    ProxyAnchorEmbedder,
)
from sklearn_dml.metrics import utilization_loss
from sklearn_dml.mixup import Metrix

BASES = {
    "Contrastive": ContrastiveEmbedder,
    "MultiSimilarity": MultiSimilarityEmbedder,
    "ProxyAnchor": ProxyAnchorEmbedder,
}
VARIANTS = {
    "": None,
    " + Metrix/embedding": "embedding",
    " + Metrix/input": "input",
    " + Metrix/embedding, weight 0.25": Metrix(on="embedding", weight=0.25),
}


def _maker(cls, mixup, max_iter):
    def make(seed):
        return cls(n_components=32, max_iter=max_iter, mixup=mixup, random_state=seed)

    return make


def _run_with_utilization(make, dataset, seed):
    row, pipe = run(make, dataset, seed)
    X_tr, _, X_te, _, X_new, _ = split(dataset, seed)
    train = pipe.transform(X_tr)
    row["util_seen"] = utilization_loss(pipe.transform(X_te), train)
    row["util_unseen"] = utilization_loss(pipe.transform(X_new), train)
    return row


def _utilization_table(results):
    lines = [
        "| method | utilization, seen test (lower better) | utilization, unseen |",
        "|---|---|---|",
    ]
    for name, rows in results.items():
        cells = [
            f"{np.mean([r[k] for r in rows]):.3f} ± {np.std([r[k] for r in rows]):.3f}"
            for k in ("util_seen", "util_unseen")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(quick=False):
    seeds = range(2) if quick else range(5)
    max_iter = 2 if quick else 30
    dataset = "digits"
    sections = [
        "# Metrix mixup vs the plain loss (digits, seen 0-4 / unseen 5-9)",
        "",
        matched_note(),
        "",
        f"{len(seeds)} seeds, {max_iter} epochs, default ResidualMLP backbone "
        "(hidden (256,), 32 dimensions), default learning rate and batch "
        "size for every row; a row with mixup differs from its base only by "
        "`mixup=`. Mean ± std over seeds; the Δ column is the paired "
        "difference with the base, seed by seed. Timings share a 2-core "
        "machine with other jobs (noisy).",
    ]
    for base_name, cls in BASES.items():
        results = {}
        for suffix, mixup in VARIANTS.items():
            make = _maker(cls, mixup, max_iter)
            results[base_name + suffix] = [
                _run_with_utilization(make, dataset, seed) for seed in seeds
            ]
        sections += [
            "",
            f"## {base_name}",
            "",
            markdown_table(results, base=base_name),
            "",
            _utilization_table(results),
        ]
    return "\n".join(sections)
