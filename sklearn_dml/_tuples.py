"""Index tuples: the language in which miners talk to losses.

An *index tuple* names sample combinations inside one batch by position. Two
forms exist, both tuples of 1-D ``torch.long`` tensors on the labels' device:

* pairs ``(a1, p, a2, n)``: positive pairs ``(a1[i], p[i])`` share a label,
  negative pairs ``(a2[j], n[j])`` do not. ``len(a1) == len(p)`` and
  ``len(a2) == len(n)``, the two lengths being independent.
* triplets ``(a, p, n)``: ``labels[a] == labels[p] != labels[n]`` and
  ``a != p``.

A sample is never its own positive: ``(i, i)`` pairs do not occur.

Everything here is vectorised; the only memory that grows faster than the
output is the ``(n, n, n)`` boolean mask of :func:`get_all_triplets_indices`.
"""

import torch

__all__ = [
    "check_embeddings_labels",
    "convert_to_pairs",
    "convert_to_triplets",
    "get_all_pairs_indices",
    "get_all_triplets_indices",
    "label_masks",
]


def check_embeddings_labels(embeddings, labels):
    """Raise ``ValueError`` unless ``embeddings`` is 2-D and ``labels`` matches it."""
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2:
        raise ValueError(
            "embeddings must be a 2-D tensor of shape (batch_size, n_dims); got "
            f"{getattr(embeddings, 'shape', type(embeddings).__name__)}."
        )
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        raise ValueError(
            "labels must be a 1-D tensor of class indices; got "
            f"{getattr(labels, 'shape', type(labels).__name__)}."
        )
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"embeddings has {embeddings.shape[0]} rows but labels has "
            f"{labels.shape[0]} entries."
        )


def label_masks(labels, n_queries=None):
    """Boolean ``(n, n)`` masks of positive and negative pairs.

    Parameters
    ----------
    labels : torch.Tensor of shape (n,)
        Class index of every sample of the batch.
    n_queries : int, default=None
        Only the rows of the first ``n_queries`` samples (the pairs whose
        first member is one of them): masks of shape ``(n_queries, n)``.
        ``None`` means every row.

    Returns
    -------
    positive : torch.Tensor of shape (n, n), dtype bool
        ``labels[i] == labels[j]`` and ``i != j``.
    negative : torch.Tensor of shape (n, n), dtype bool
        ``labels[i] != labels[j]``.

    Examples
    --------
    >>> import torch
    >>> pos, neg = label_masks(torch.tensor([0, 0, 1]))
    >>> pos.int()
    tensor([[0, 1, 0],
            [1, 0, 0],
            [0, 0, 0]], dtype=torch.int32)
    """
    n = labels.shape[0] if n_queries is None else int(n_queries)
    same = labels[:n, None] == labels[None, :]
    eye = torch.eye(n, labels.shape[0], dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def get_all_pairs_indices(labels):
    """All positive and negative pairs of a batch.

    Parameters
    ----------
    labels : torch.Tensor of shape (n,)
        Class index of every sample.

    Returns
    -------
    indices_tuple : tuple of 4 torch.Tensor
        ``(a1, p, a2, n)`` in row-major order of the ``(n, n)`` pair matrix.

    Examples
    --------
    >>> import torch
    >>> a1, p, a2, n = get_all_pairs_indices(torch.tensor([0, 0, 1]))
    >>> a1.tolist(), p.tolist()
    ([0, 1], [1, 0])
    >>> a2.tolist(), n.tolist()
    ([0, 1, 2, 2], [2, 2, 0, 1])
    """
    positive, negative = label_masks(labels)
    a1, p = torch.nonzero(positive, as_tuple=True)
    a2, n = torch.nonzero(negative, as_tuple=True)
    return a1, p, a2, n


def get_all_triplets_indices(labels):
    """All valid ``(anchor, positive, negative)`` triplets of a batch.

    Builds an ``(n, n, n)`` boolean mask: about 16 MB for ``n = 256``.

    Parameters
    ----------
    labels : torch.Tensor of shape (n,)
        Class index of every sample.

    Returns
    -------
    indices_tuple : tuple of 3 torch.Tensor
        ``(a, p, n)``, sorted by anchor, then positive, then negative.

    Examples
    --------
    >>> import torch
    >>> a, p, n = get_all_triplets_indices(torch.tensor([0, 0, 1]))
    >>> a.tolist(), p.tolist(), n.tolist()
    ([0, 1], [1, 0], [2, 2])
    """
    positive, negative = label_masks(labels)
    valid = positive[:, :, None] & negative[:, None, :]
    a, p, n = torch.nonzero(valid, as_tuple=True)
    return a, p, n


def _unique_pairs(first, second, n_samples):
    """Deduplicate pairs ``(first[i], second[i])``; sorted row-major."""
    if first.numel() == 0:
        return first, second
    keys = torch.unique(first * n_samples + second)
    return keys // n_samples, keys % n_samples


def convert_to_pairs(indices_tuple, labels):
    """Express any index tuple as pairs ``(a1, p, a2, n)``.

    Parameters
    ----------
    indices_tuple : tuple of torch.Tensor or None
        ``None`` (all pairs of the batch), pairs (returned unchanged) or
        triplets.
    labels : torch.Tensor of shape (n,)
        Class index of every sample.

    Returns
    -------
    indices_tuple : tuple of 4 torch.Tensor
        Pairs. Triplets ``(a, p, n)`` give the *distinct* pairs ``(a, p)`` and
        ``(a, n)`` (pytorch-metric-learning keeps one copy per triplet).

    Examples
    --------
    >>> import torch
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> triplets = (torch.tensor([0, 0]), torch.tensor([1, 1]), torch.tensor([2, 3]))
    >>> [t.tolist() for t in convert_to_pairs(triplets, labels)]
    [[0], [1], [0, 0], [2, 3]]
    """
    if indices_tuple is None:
        return get_all_pairs_indices(labels)
    _check_tuple(indices_tuple)
    if len(indices_tuple) == 4:
        return tuple(indices_tuple)
    a, p, n = indices_tuple
    size = labels.shape[0]
    a1, p = _unique_pairs(a, p, size)
    a2, n = _unique_pairs(a, n, size)
    return a1, p, a2, n


def convert_to_triplets(indices_tuple, labels):
    """Express any index tuple as triplets ``(a, p, n)``.

    Parameters
    ----------
    indices_tuple : tuple of torch.Tensor or None
        ``None`` (all triplets of the batch), triplets (returned unchanged) or
        pairs.
    labels : torch.Tensor of shape (n,)
        Class index of every sample.

    Returns
    -------
    indices_tuple : tuple of 3 torch.Tensor
        Triplets. Pairs give every combination of a positive pair
        ``(a1[i], p[i])`` with a negative pair ``(a2[j], n[j])`` of the same
        anchor ``a1[i] == a2[j]``, ordered by positive pair, then by negative
        pair. Memory is linear in the number of triplets produced.

    Examples
    --------
    >>> import torch
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> pairs = (torch.tensor([0, 1]), torch.tensor([1, 0]),
    ...          torch.tensor([0, 0, 2]), torch.tensor([2, 3, 0]))
    >>> [t.tolist() for t in convert_to_triplets(pairs, labels)]
    [[0, 0], [1, 1], [2, 3]]
    """
    if indices_tuple is None:
        return get_all_triplets_indices(labels)
    _check_tuple(indices_tuple)
    if len(indices_tuple) == 3:
        return tuple(indices_tuple)
    a1, p, a2, n = indices_tuple
    device = a1.device
    # Join positive and negative pairs on their anchor with a sort: negatives
    # of anchor k occupy order[start[k]:start[k] + count[k]].
    size = labels.shape[0]
    order = torch.argsort(a2, stable=True)
    count = torch.bincount(a2, minlength=size)
    start = torch.cumsum(count, 0) - count
    per_pos = count[a1]
    pos_idx = torch.repeat_interleave(torch.arange(a1.shape[0], device=device), per_pos)
    first = torch.cumsum(per_pos, 0) - per_pos
    offset = torch.arange(pos_idx.shape[0], device=device) - first[pos_idx]
    neg_idx = order[start[a1[pos_idx]] + offset]
    return a1[pos_idx], p[pos_idx], n[neg_idx]


def _check_tuple(indices_tuple):
    if len(indices_tuple) not in (3, 4):
        raise ValueError(
            "indices_tuple must be None, triplets (a, p, n) or pairs "
            f"(a1, p, a2, n); got a tuple of length {len(indices_tuple)}."
        )


def restrict_to_queries(indices_tuple, n_queries):
    """Keep the pairs or triplets of ``indices_tuple`` whose anchor is a query.

    The queries are the first ``n_queries`` rows of the batch the tuples
    index (cross-batch memory stacks its batch on the memory).
    """
    _check_tuple(indices_tuple)
    if len(indices_tuple) == 3:
        a, p, n = indices_tuple
        keep = a < n_queries
        return a[keep], p[keep], n[keep]
    a1, p, a2, n = indices_tuple
    k1, k2 = a1 < n_queries, a2 < n_queries
    return a1[k1], p[k1], a2[k2], n[k2]
