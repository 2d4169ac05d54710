"""Weak supervision built from class labels: pairs, triplets, quadruplets, chunks.

The weakly supervised learners (:class:`~sklearn_dml.mahalanobis.ITML`,
:class:`~sklearn_dml.mahalanobis.SCML`, ...) learn from *constraints*
rather than labels: pairs declared same/different, triplets ``(a, p, n)``
stating that ``a`` is closer to ``p`` than to ``n``, quadruplets ``(a, b,
c, d)`` stating that ``d(a, b) < d(c, d)``. The functions here draw such
constraints from labelled data, as index tuples into the sample array: give
that array to the learner as its ``preprocessor``, or index it yourself
(``X[tuples]`` is the ``(n, k, n_features)`` array of tuples).

Every function is vectorised, reproducible with ``random_state`` and raises
``ValueError`` when the labels cannot give what is asked (a single class,
no class with two samples, ...).
"""

from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets

from ._param_validation import Interval, validate_params

__all__ = [
    "chunks_from_labels",
    "knn_triplets",
    "positive_negative_pairs",
    "quadruplets_from_labels",
    "triplets_from_labels",
]

_COUNT = [None, Interval(Integral, 1, None, closed="left")]


class _Classes:
    """Samples grouped by class, for vectorised draws of partners.

    ``order`` lists the sample indices class by class; class ``c`` occupies
    ``order[start[c]:start[c] + size[c]]`` and sample ``i`` sits at position
    ``rank[i]`` of that list.
    """

    def __init__(self, y):
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be a 1-D array of labels; got shape {y.shape}.")
        check_classification_targets(y)
        _, self.codes = np.unique(y, return_inverse=True)
        self.codes = self.codes.ravel()
        self.n = self.codes.shape[0]
        self.order = np.argsort(self.codes, kind="stable")
        self.size = np.bincount(self.codes)
        self.start = np.concatenate([[0], np.cumsum(self.size)[:-1]])
        self.rank = np.empty(self.n, dtype=np.int64)
        self.rank[self.order] = np.arange(self.n)

    def n_classes(self):
        return self.size.shape[0]

    def anchors_with_positive(self, rng, count):
        eligible = np.flatnonzero(self.size[self.codes] >= 2)
        if eligible.size == 0:
            raise ValueError(
                "No class of y has two samples, so no same-class (positive) pair "
                "exists; give at least two samples of some class."
            )
        return eligible[rng.randint(eligible.size, size=count)]

    def anchors_with_negative(self, rng, count):
        if self.n_classes() < 2:
            raise ValueError(
                "y holds a single class, so no different-class (negative) pair "
                "exists; give samples of at least two classes."
            )
        return rng.randint(self.n, size=count)

    def positives(self, rng, anchors):
        """A uniformly drawn other sample of each anchor's class."""
        c = self.codes[anchors]
        offset = 1 + rng.randint(np.iinfo(np.int64).max, size=anchors.shape[0]) % (
            self.size[c] - 1
        )
        position = (self.rank[anchors] - self.start[c] + offset) % self.size[c]
        return self.order[self.start[c] + position]

    def negatives(self, rng, anchors):
        """A uniformly drawn sample of another class than each anchor's."""
        c = self.codes[anchors]
        r = rng.randint(np.iinfo(np.int64).max, size=anchors.shape[0]) % (
            self.n - self.size[c]
        )
        # Skip the block of the anchor's own class in the class-sorted order.
        r = np.where(r < self.start[c], r, r + self.size[c])
        return self.order[r]


def _default_count(classes, n_constraints):
    return 20 * classes.n_classes() ** 2 if n_constraints is None else n_constraints


def positive_negative_pairs(y, n_constraints=None, *, random_state=None):
    """Draw same-class and different-class pairs of samples from labels.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels.

    n_constraints : int, default=None
        Number of pairs of *each* kind; ``None`` draws ``20 * n_classes**2``
        of each (metric-learn's default number of constraints).

    random_state : int, RandomState instance or None, default=None
        Seed of the draws.

    Returns
    -------
    pairs : ndarray of shape (2 * n_constraints, 2), dtype int64
        Index pairs into the samples: the positive pairs first, then the
        negative ones. Each pair is drawn independently (anchor uniform among
        the samples that have a partner, partner uniform among the valid
        ones), so a pair may repeat.
    y_pairs : ndarray of shape (2 * n_constraints,), dtype int64
        ``1`` for a same-class pair, ``-1`` for a different-class pair.

    Examples
    --------
    >>> from sklearn_dml.constraints import positive_negative_pairs
    >>> pairs, y_pairs = positive_negative_pairs([0, 0, 1, 1], 2, random_state=0)
    >>> pairs.shape, y_pairs.tolist()
    ((4, 2), [1, 1, -1, -1])
    """
    validate_params(
        {"n_constraints": _COUNT, "random_state": ["random_state"]},
        {"n_constraints": n_constraints, "random_state": random_state},
        "positive_negative_pairs",
    )
    classes = _Classes(y)
    count = _default_count(classes, n_constraints)
    rng = check_random_state(random_state)
    a = classes.anchors_with_positive(rng, count)
    b = classes.positives(rng, a)
    c = classes.anchors_with_negative(rng, count)
    d = classes.negatives(rng, c)
    pairs = np.concatenate([np.stack([a, b], 1), np.stack([c, d], 1)])
    y_pairs = np.concatenate([np.ones(count, np.int64), -np.ones(count, np.int64)])
    return pairs.astype(np.int64), y_pairs


def triplets_from_labels(y, n_constraints=None, *, random_state=None):
    """Draw random triplets ``(anchor, positive, negative)`` from labels.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels.

    n_constraints : int, default=None
        Number of triplets; ``None`` draws ``20 * n_classes**2``.

    random_state : int, RandomState instance or None, default=None
        Seed of the draws.

    Returns
    -------
    triplets : ndarray of shape (n_constraints, 3), dtype int64
        Index triplets: ``y[t[0]] == y[t[1]] != y[t[2]]``, ``t[0] != t[1]``.

    See Also
    --------
    knn_triplets : Triplets of nearest neighbours, which carry more information.

    Examples
    --------
    >>> from sklearn_dml.constraints import triplets_from_labels
    >>> triplets_from_labels([0, 0, 1, 1], 3, random_state=0).shape
    (3, 3)
    """
    validate_params(
        {"n_constraints": _COUNT, "random_state": ["random_state"]},
        {"n_constraints": n_constraints, "random_state": random_state},
        "triplets_from_labels",
    )
    classes = _Classes(y)
    count = _default_count(classes, n_constraints)
    rng = check_random_state(random_state)
    a = classes.anchors_with_positive(rng, count)
    classes.anchors_with_negative(rng, 0)  # raises for a single class
    return np.stack(
        [a, classes.positives(rng, a), classes.negatives(rng, a)], 1
    ).astype(np.int64)


def knn_triplets(X, y, *, k_genuine=3, k_impostor=10):
    """Triplets of each sample with its nearest same-class and other-class samples.

    For every sample ``a``, its ``k_genuine`` nearest neighbours ``p`` of
    the same class and its ``k_impostor`` nearest neighbours ``n`` of other
    classes (Euclidean distance) give the ``k_genuine * k_impostor``
    triplets ``(a, p, n)``: the local constraints of LMNN and of the
    supervised SCML.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Samples.

    y : array-like of shape (n_samples,)
        Class labels; every class needs more than ``k_genuine`` samples.

    k_genuine : int, default=3
        Same-class neighbours per sample.

    k_impostor : int, default=10
        Other-class neighbours per sample; at most the size of the smallest
        complement of a class.

    Returns
    -------
    triplets : ndarray of shape (n_samples * k_genuine * k_impostor, 3), dtype int64
        Index triplets, grouped by anchor.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.constraints import knn_triplets
    >>> X = np.array([[0.0], [0.1], [0.2], [1.0], [1.1], [1.2]])
    >>> knn_triplets(X, [0, 0, 0, 1, 1, 1], k_genuine=1, k_impostor=1)[:2].tolist()
    [[0, 1, 3], [1, 0, 3]]
    """
    from sklearn.neighbors import NearestNeighbors
    from sklearn.utils import check_X_y

    validate_params(
        {
            "k_genuine": [Interval(Integral, 1, None, closed="left")],
            "k_impostor": [Interval(Integral, 1, None, closed="left")],
        },
        {"k_genuine": k_genuine, "k_impostor": k_impostor},
        "knn_triplets",
    )
    X, y = check_X_y(X, y, dtype=np.float64)
    classes = _Classes(y)
    if classes.n_classes() < 2:
        raise ValueError("y holds a single class; triplets need two classes.")
    smallest = int(classes.size.min())
    if smallest <= k_genuine:
        raise ValueError(
            f"k_genuine={k_genuine} needs more than {k_genuine} samples in every "
            f"class, but the smallest class has {smallest}; lower k_genuine."
        )
    complement = int((classes.n - classes.size).min())
    if complement < k_impostor:
        raise ValueError(
            f"k_impostor={k_impostor} exceeds the {complement} samples outside the "
            "largest class; lower k_impostor."
        )
    genuine = np.empty((classes.n, k_genuine), dtype=np.int64)
    impostor = np.empty((classes.n, k_impostor), dtype=np.int64)
    for c in range(classes.n_classes()):  # one neighbour search per class
        inside = np.flatnonzero(classes.codes == c)
        outside = np.flatnonzero(classes.codes != c)
        nn = NearestNeighbors(n_neighbors=k_genuine + 1).fit(X[inside])
        found = nn.kneighbors(X[inside], return_distance=False)
        # Drop each sample itself (not always in column 0 when duplicates exist).
        not_self = found != np.arange(inside.size)[:, None]
        keep = np.cumsum(not_self, axis=1) <= k_genuine
        genuine[inside] = inside[found[not_self & keep].reshape(inside.size, -1)]
        nn = NearestNeighbors(n_neighbors=k_impostor).fit(X[outside])
        impostor[inside] = outside[nn.kneighbors(X[inside], return_distance=False)]
    a = np.repeat(np.arange(classes.n), k_genuine * k_impostor)
    p = np.repeat(genuine, k_impostor, axis=1).ravel()
    n = np.tile(impostor, (1, k_genuine)).ravel()
    return np.stack([a, p, n], 1)


def quadruplets_from_labels(y, n_constraints=None, *, random_state=None):
    """Draw quadruplets ``(a, b, c, d)`` with ``(a, b)`` same-class, ``(c, d)`` not.

    Each states that ``d(a, b) < d(c, d)``: the constraints of LSML.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels.

    n_constraints : int, default=None
        Number of quadruplets; ``None`` draws ``20 * n_classes**2``.

    random_state : int, RandomState instance or None, default=None
        Seed of the draws.

    Returns
    -------
    quadruplets : ndarray of shape (n_constraints, 4), dtype int64
        Index quadruplets: a positive pair then an independently drawn
        negative pair.

    Examples
    --------
    >>> from sklearn_dml.constraints import quadruplets_from_labels
    >>> quadruplets_from_labels([0, 0, 1, 1], 5, random_state=0).shape
    (5, 4)
    """
    pairs, _ = positive_negative_pairs(y, n_constraints, random_state=random_state)
    half = pairs.shape[0] // 2
    return np.concatenate([pairs[:half], pairs[half:]], axis=1)


def chunks_from_labels(y, n_chunks=100, chunk_size=2, *, random_state=None):
    """Group samples into disjoint chunks of one class each (for RCA).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels.

    n_chunks : int, default=100
        Number of chunks.

    chunk_size : int, default=2
        Samples per chunk.

    random_state : int, RandomState instance or None, default=None
        Seed of the draws.

    Returns
    -------
    chunks : ndarray of shape (n_samples,), dtype int64
        The chunk of each sample, in ``0..n_chunks - 1``, or ``-1`` for a
        sample in no chunk. The chunks are drawn uniformly among the
        ``sum_c floor(n_c / chunk_size)`` disjoint blocks that a random
        shuffle of each class ``c`` (of ``n_c`` samples) cuts.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.constraints import chunks_from_labels
    >>> chunks = chunks_from_labels([0, 0, 0, 1, 1, 1], 2, random_state=0)
    >>> sorted(np.bincount(chunks[chunks >= 0]).tolist())
    [2, 2]
    """
    validate_params(
        {
            "n_chunks": [Interval(Integral, 1, None, closed="left")],
            "chunk_size": [Interval(Integral, 2, None, closed="left")],
            "random_state": ["random_state"],
        },
        {"n_chunks": n_chunks, "chunk_size": chunk_size, "random_state": random_state},
        "chunks_from_labels",
    )
    classes = _Classes(y)
    available = int((classes.size // chunk_size).sum())
    if n_chunks > available:
        raise ValueError(
            f"n_chunks={n_chunks} chunks of {chunk_size} samples of one class do not "
            f"fit in y: its classes hold {available} disjoint chunks at most; lower "
            "n_chunks or chunk_size."
        )
    rng = check_random_state(random_state)
    # Shuffle within classes, then cut each class into blocks of chunk_size.
    order = np.lexsort((rng.random_sample(classes.n), classes.codes))
    rank = np.arange(classes.n) - classes.start[classes.codes[order]]
    block = rank // chunk_size
    full = block < (classes.size // chunk_size)[classes.codes[order]]
    block_start = np.concatenate([[0], np.cumsum(classes.size // chunk_size)[:-1]])
    block_id = np.where(full, block_start[classes.codes[order]] + block, -1)
    chosen = np.full(available, -1, dtype=np.int64)
    chosen[rng.choice(available, size=n_chunks, replace=False)] = np.arange(n_chunks)
    chunks = np.full(classes.n, -1, dtype=np.int64)
    chunks[order] = np.where(block_id >= 0, chosen[np.maximum(block_id, 0)], -1)
    return chunks
