"""Brute-force references for the metric tests: a full distance matrix, a
per-query ranking sorted on the key (distance, reference index) and the
textbook definitions written one query, pair or class at a time."""

import numpy as np

from sklearn_dml.metrics import (
    mean_average_precision_score,
    mean_reciprocal_rank_score,
    recall_at_k_score,
)


def brute_distances(query, reference, metric="euclidean"):
    query = np.asarray(query, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if metric == "euclidean":
        return np.sqrt(((query[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2))

    def unit(a):
        norms = np.sqrt((a**2).sum(axis=1, keepdims=True))
        return np.divide(a, norms, out=np.zeros_like(a), where=norms > 0)

    products = (unit(query)[:, None, :] * unit(reference)[None, :, :]).sum(axis=2)
    return np.clip(1.0 - products, 0.0, 2.0)


def brute_relevance(
    query, labels, reference=None, reference_labels=None, metric="euclidean"
):
    """Per query, the relevance list of its full ranking by (distance, index)."""
    loo = reference is None
    if loo:
        reference, reference_labels = query, labels
    distances = brute_distances(query, reference, metric)
    lists = []
    for i in range(len(query)):
        candidates = [j for j in range(len(reference)) if not (loo and j == i)]
        order = sorted(candidates, key=lambda j: (distances[i, j], j))
        lists.append([reference_labels[j] == labels[i] for j in order])
    return lists


def brute_retrieval(
    query, labels, reference=None, reference_labels=None, metric="euclidean", k=1
):
    """(Recall@k, P@k, MAP@R, full MAP, MRR), skipping queries without relevant."""
    recall, precision, map_r, full_ap, rr = [], [], [], [], []
    for relevant in brute_relevance(query, labels, reference, reference_labels, metric):
        n_relevant = sum(relevant)
        if n_relevant == 0:
            continue
        recall.append(float(any(relevant[:k])))
        precision.append(sum(relevant[:k]) / k)
        hits, total, total_r, first = 0, 0.0, 0.0, None
        for position, is_relevant in enumerate(relevant, start=1):
            if is_relevant:
                hits += 1
                total += hits / position
                if position <= n_relevant:
                    total_r += hits / position
                if first is None:
                    first = position
        full_ap.append(total / n_relevant)
        map_r.append(total_r / n_relevant)
        rr.append(1.0 / first)
    return tuple(float(np.mean(v)) for v in (recall, precision, map_r, full_ap, rr))


def ranking_scores(X, y, k=1, **kwargs):
    return (
        recall_at_k_score(X, y, k=k, **kwargs),
        mean_average_precision_score(X, y, **kwargs),
        mean_reciprocal_rank_score(X, y, **kwargs),
    )


def expected_ranking_scores(X, y, k=1, **kwargs):
    recall, _, _, full_ap, rr = brute_retrieval(X, y, k=k, **kwargs)
    return recall, full_ap, rr


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def random_data(seed=0, n=60, d=5, n_classes=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, n_classes, size=n)


def tied_data(seed=0, n=60, d=3):
    """Integer coordinates in {0, 1, 2}: many exact distance ties and duplicates."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 3, size=(n, d)).astype(np.float32)
    assert len(np.unique(X, axis=0)) < n
    return X, rng.integers(0, 3, size=n)


def brute_nmi(labels, clusters):
    """Arithmetic-mean NMI from the contingency table."""
    _, a = np.unique(labels, return_inverse=True)
    _, b = np.unique(clusters, return_inverse=True)
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a.ravel(), b.ravel()), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    mutual = (joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz])).sum()
    entropy_a = -(pa * np.log(pa)).sum()
    entropy_b = -(pb * np.log(pb)).sum()
    return mutual / ((entropy_a + entropy_b) / 2)
