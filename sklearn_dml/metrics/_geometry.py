"""Pair-distance diagnostics of an embedding; lower is better for all of them.

:func:`alignment_loss` and :func:`uniformity_loss` (Wang & Isola) measure how
close same-class points are and how evenly the points spread;
:func:`opis_loss` (Zhang et al.) measures how differently one common distance
threshold behaves across classes. All look at every pair of points, block by
block: memory grows with ``chunk_size x n_samples``, never with the square of
``n_samples``.
"""

import math
from numbers import Real

import numpy as np
import torch

from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval
from ._knn import _as_2d_float, _check_positive_int
from ._retrieval import _check_labels, _prepare

__all__ = ["alignment_loss", "opis_loss", "uniformity_loss", "utilization_loss"]

# A positive finite real number (not a bool).
_POSITIVE = Interval(Real, 0, None, closed="neither")

# Number of float64 distances in one (query chunk x reference) block: 32 MiB.
_BLOCK_ENTRIES = 2**22
# Negative-pair distances gathered at once to locate the calibration range;
# above it an exact radix selection in four passes is used instead.
_SELECT_BUDGET = 2**22
_UTILITIES = ("f1", "accuracy")

register_doc(
    "pair_chunk_size",
    """
    chunk_size : int, default=None
        Number of rows compared with all the others at once. ``None`` keeps
        one block of distances near 32 MiB. It bounds memory and does not
        change the result beyond rounding.
    """,
)


def _unit_rows(points):
    """Rows scaled to unit L2 norm; zero rows stay zero."""
    norms = torch.linalg.vector_norm(points, dim=1, keepdim=True)
    return points * torch.where(norms > 0, norms.reciprocal(), norms)


def _distance_blocks(query, reference, metric, chunk_size):
    """Yield ``(start, stop, distances)`` for consecutive chunks of query rows.

    ``distances`` is a float64 tensor of shape ``(stop - start,
    n_references)``: Euclidean distances from coordinate differences (a
    duplicate is at distance exactly 0), or one minus the cosine similarity
    clipped to [0, 2] (a zero vector is at distance 1 from everything).
    """
    n_references = reference.shape[0]
    if chunk_size is None:
        chunk_size = max(1, _BLOCK_ENTRIES // n_references)
    reference = reference.to(torch.float64)
    if metric == "cosine":
        reference = _unit_rows(reference)
    for start in range(0, query.shape[0], chunk_size):
        stop = min(start + chunk_size, query.shape[0])
        rows = query[start:stop].to(torch.float64)
        if metric == "euclidean":
            block = torch.cdist(
                rows, reference, compute_mode="donot_use_mm_for_euclid_dist"
            )
        else:
            block = torch.mm(_unit_rows(rows), reference.T).neg_().add_(1.0)
            block.clamp_(0.0, 2.0)
        # No negative zero: the bit patterns of the distances sort like them.
        yield start, stop, block.add_(0.0)


def _off_diagonal(start, stop, n_columns):
    """Mask of a row block that is False where row index equals column index."""
    rows = torch.arange(start, stop).unsqueeze(1)
    return rows != torch.arange(n_columns).unsqueeze(0)


@fill_doc
def alignment_loss(embeddings, labels, *, alpha=2.0, chunk_size=None):
    """Alignment of Wang & Isola: mean distance between same-class points.

    Parameters
    ----------
    embeddings : array-like of shape (n_samples, n_features)
        Embedded points, usually L2-normalised.
    labels : array-like of shape (n_samples,)
        Class of each point (integers or strings).
    alpha : float, default=2.0
        Power applied to the Euclidean distances (2: squared distances).
    {pair_chunk_size}

    Returns
    -------
    loss : float
        Mean over same-class pairs of the distance to the power ``alpha``;
        0 when every class collapses to one point. Lower is better.

    See Also
    --------
    uniformity_loss : The companion measure of spread.

    Notes
    -----
    With :math:`P = \\{(i, j) : i \\ne j,\\ y_i = y_j\\}` the same-class
    pairs,

    .. math::

        \\mathcal{L}_{\\mathrm{align}} = \\frac{1}{|P|} \\sum_{(i, j) \\in P}
        \\lVert x_i - x_j \\rVert_2^{\\alpha}.

    Classes of one sample have no pair and do not count; a ``ValueError`` is
    raised when no class has two samples. The loss depends on the scale of
    the embedding: compare embeddings of the same norm (on the unit
    hypersphere, as in the paper).

    References
    ----------
    .. [1] T. Wang and P. Isola, "Understanding Contrastive Representation
       Learning through Alignment and Uniformity on the Hypersphere",
       ICML 2020.

    Examples
    --------
    >>> from sklearn_dml.metrics import alignment_loss
    >>> X = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [-1.0, 0.0]]
    >>> y = [0, 0, 1, 1]
    >>> alignment_loss(X, y)
    1.0

    Class 0 has two points at squared distance 2, class 1 two equal points:
    the mean over the four ordered pairs is :math:`(2 + 2 + 0 + 0) / 4`.
    """
    if not _POSITIVE.is_satisfied_by(alpha):
        raise ValueError(f"alpha must be a positive number, got {alpha!r}.")
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    points = _as_2d_float(embeddings, "embeddings")
    labels = _check_labels(labels, points.shape[0], "labels", "embeddings")
    _, codes = np.unique(labels, return_inverse=True)
    codes = torch.from_numpy(codes.ravel())
    counts = torch.bincount(codes).to(torch.float64)
    n_pairs = float((counts * (counts - 1)).sum())
    if n_pairs == 0:
        raise ValueError(
            "alignment_loss needs a class with at least 2 samples; every class "
            "in labels has a single sample."
        )
    total = torch.zeros((), dtype=torch.float64)
    for start, stop, block in _distance_blocks(points, points, "euclidean", chunk_size):
        same = codes[start:stop].unsqueeze(1) == codes.unsqueeze(0)
        same &= _off_diagonal(start, stop, points.shape[0])
        total += block[same].pow(float(alpha)).sum()
    return float(total) / n_pairs


@fill_doc
def uniformity_loss(embeddings, *, t=2.0, chunk_size=None):
    """Uniformity of Wang & Isola: log of the mean Gaussian potential of pairs.

    Parameters
    ----------
    embeddings : array-like of shape (n_samples, n_features)
        Embedded points, usually L2-normalised. At least two.
    t : float, default=2.0
        Scale of the Gaussian potential.
    {pair_chunk_size}

    Returns
    -------
    loss : float
        At most 0 (all points equal); more negative when the points spread
        more evenly. Lower is better.

    See Also
    --------
    alignment_loss : The companion measure of same-class closeness.

    Notes
    -----
    Over all pairs of distinct samples (each unordered pair counted once;
    ordered pairs give the same mean),

    .. math::

        \\mathcal{L}_{\\mathrm{uniform}} = \\log \\frac{2}{n (n - 1)}
        \\sum_{i < j} e^{-t \\lVert x_i - x_j \\rVert_2^2}.

    Computed as a running log-sum-exp over blocks, which stays finite when
    every potential underflows. Labels are not used. The loss depends on the
    scale of the embedding: compare embeddings of the same norm (on the unit
    hypersphere, as in the paper).

    References
    ----------
    .. [1] T. Wang and P. Isola, "Understanding Contrastive Representation
       Learning through Alignment and Uniformity on the Hypersphere",
       ICML 2020.

    Examples
    --------
    >>> import math
    >>> from sklearn_dml.metrics import uniformity_loss
    >>> X = [[1.0, 0.0], [-1.0, 0.0]]
    >>> uniformity_loss(X) == -8.0  # log exp(-2 * 2**2)
    True
    """
    if not _POSITIVE.is_satisfied_by(t):
        raise ValueError(f"t must be a positive number, got {t!r}.")
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    points = _as_2d_float(embeddings, "embeddings")
    n_samples = points.shape[0]
    if n_samples < 2:
        raise ValueError(f"uniformity_loss needs at least 2 samples, got {n_samples}.")
    log_total = torch.tensor(-math.inf, dtype=torch.float64)
    for start, stop, block in _distance_blocks(points, points, "euclidean", chunk_size):
        exponents = block.square_().mul_(-float(t))
        exponents.masked_fill_(~_off_diagonal(start, stop, n_samples), -math.inf)
        log_total = torch.logaddexp(log_total, torch.logsumexp(exponents.ravel(), 0))
    return float(log_total) - math.log(n_samples * (n_samples - 1))


def _pair_masks(start, stop, query_codes, reference_codes, self_index):
    """Positive (same-class) and negative masks of a block, self pairs removed."""
    positive = query_codes[start:stop].unsqueeze(1) == reference_codes.unsqueeze(0)
    negative = ~positive
    if self_index is not None:
        other = _off_diagonal(start, stop, reference_codes.shape[0])
        positive &= other
        negative &= other
    return positive, negative


def _kth_smallest(blocks, ks, total):
    """Exact ``k``-th smallest (1-based) of a stream of non-negative float64 values.

    ``blocks()`` returns a fresh iterator of 1-D float64 arrays each time it
    is called; ``total`` is the number of values it yields. When they fit
    within ``_SELECT_BUDGET`` they are gathered once and partitioned;
    otherwise a radix selection on the IEEE-754 bit patterns (which sort like
    non-negative floats) fixes 16 bits of each answer per pass, in four
    passes with 65536 counters.
    """
    ks = np.asarray(ks, dtype=np.int64)
    if total <= _SELECT_BUDGET:
        values = np.concatenate(list(blocks()))
        return np.partition(values, ks - 1)[ks - 1]
    prefixes = np.zeros(ks.size, dtype=np.uint64)
    remaining = ks.copy()
    for shift in (48, 32, 16, 0):
        counts = np.zeros((ks.size, 2**16), dtype=np.int64)
        for values in blocks():
            bits = values.view(np.uint64)
            for i in range(ks.size):  # two calibration bounds
                selected = (
                    bits if shift == 48 else bits[(bits >> (shift + 16)) == prefixes[i]]
                )
                digits = ((selected >> shift) & 0xFFFF).astype(np.intp)
                counts[i] += np.bincount(digits, minlength=2**16)
        cumulative = np.cumsum(counts, axis=1)
        for i in range(ks.size):
            digit = int(np.searchsorted(cumulative[i], remaining[i]))
            remaining[i] -= cumulative[i, digit - 1] if digit > 0 else 0
            prefixes[i] = (prefixes[i] << np.uint64(16)) | np.uint64(digit)
    return prefixes.view(np.float64)


def _check_far_range(far_range):
    try:
        low, high = (float(value) for value in far_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"far_range must be a pair (low, high) of rates, got {far_range!r}."
        ) from None
    if not 0.0 < low <= high <= 1.0:
        raise ValueError(
            f"far_range must satisfy 0 < low <= high <= 1, got {far_range!r}."
        )
    return low, high


def _check_thresholds(thresholds):
    values = np.asarray(thresholds, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError(
            "thresholds must be a non-empty 1-D array of finite distances, got "
            f"{thresholds!r}."
        )
    return np.sort(values)


def _utility(accepted_positive, accepted_negative, n_positive, n_negative, kind):
    if kind == "f1":
        false_negative = n_positive - accepted_positive
        return (
            2
            * accepted_positive
            / (2 * accepted_positive + accepted_negative + false_negative)
        )
    rejected_negative = n_negative - accepted_negative
    return (accepted_positive + rejected_negative) / (n_positive + n_negative)


def opis_loss(
    embeddings,
    labels,
    *,
    reference_embeddings=None,
    reference_labels=None,
    far_range=(1e-4, 1e-2),
    n_thresholds=50,
    thresholds=None,
    utility="f1",
    metric="euclidean",
    chunk_size=None,
):
    """Operating-point inconsistency score (OPIS) of Zhang et al.; lower is better.

    A verification system declares two points the same class when their
    distance is at most a threshold :math:`d`. OPIS measures how much the
    quality of that decision at one common threshold varies from class to
    class, over a range of thresholds: 0 means every class is served equally
    well by any threshold of the range.

    Parameters
    ----------
    embeddings : array-like of shape (n_samples, n_features)
        Embedded query points.
    labels : array-like of shape (n_samples,)
        Class of each query (integers or strings).
    reference_embeddings : array-like of shape (n_references, n_features), \
default=None
        Points paired with the queries. ``None`` pairs every sample with all
        the others (each unordered pair then appears once from each side).
    reference_labels : array-like of shape (n_references,), default=None
        Classes of ``reference_embeddings``; given together with them.
    far_range : tuple of float, default=(1e-4, 1e-2)
        Calibration range as false accept rates (FAR) over all negative
        pairs: the thresholds run from the distance reaching the lower FAR to
        the one reaching the upper FAR. Set it to the range in which the
        deployed threshold will be chosen. Ignored when ``thresholds`` is
        given.
    n_thresholds : int, default=50
        Number of evenly spaced thresholds across the calibration range.
    thresholds : array-like of shape (n_thresholds,), default=None
        Explicit distance thresholds, overriding ``far_range`` and
        ``n_thresholds``.
    utility : {"f1", "accuracy"}, default="f1"
        Per-class quality of the same/different decision: the F1 score of
        the accepted pairs, or the accuracy over the class's pairs.
    metric : {"euclidean", "cosine"}, default="euclidean"
        Distance between points, see :func:`chunked_knn`.
    chunk_size : int, default=None
        Number of queries compared with all references at once. ``None``
        keeps one block of distances near 32 MiB.

    Returns
    -------
    loss : float
        The OPIS, in [0, 1]. Lower is better.

    See Also
    --------
    map_at_r_score : Ranking quality, which OPIS complements: a model can
        rank well with class-dependent distance scales.

    Notes
    -----
    The pairs are (query, reference) with the query's class, the self pair
    excluded in leave-one-out mode. For class :math:`c` and threshold
    :math:`d`, with :math:`TP_c(d)` its positive (same-class) pairs at
    distance at most :math:`d`, :math:`FN_c(d)` the other positive pairs,
    :math:`FP_c(d)` and :math:`TN_c(d)` its negative pairs at distance at most
    :math:`d` and above, the utility is
    :math:`U_c(d) = 2 TP_c / (2 TP_c + FP_c + FN_c)` (``"f1"``) or
    :math:`(TP_c + TN_c) / (TP_c + FN_c + FP_c + TN_c)` (``"accuracy"``);
    :math:`\\bar U(d)` is the same utility of all pairs pooled. Over the
    :math:`T` classes having a positive pair and the calibration range
    :math:`[d_{\\min}, d_{\\max}]`,

    .. math::

        \\mathrm{OPIS} = \\frac{1}{T} \\sum_{c=1}^{T}
        \\frac{1}{d_{\\max} - d_{\\min}} \\int_{d_{\\min}}^{d_{\\max}}
        \\bigl(U_c(d) - \\bar U(d)\\bigr)^2 \\, \\mathrm{d}d,

    the integral being the average over ``n_thresholds`` evenly spaced
    thresholds (the classes are weighted equally, the paper's default). With
    :math:`N` negative pairs in all, :math:`d_{\\min}` is the
    :math:`\\lceil N \\cdot \\mathrm{FAR}_{\\mathrm{low}} \\rceil`-th smallest
    negative-pair distance (at least the first) and :math:`d_{\\max}` the
    same for the upper FAR, located exactly without storing all distances.

    References
    ----------
    .. [1] Q. Zhang, L. Xu, Q. Tang, J. Fang, Y. N. Wu, J. Tighe and Y. Xing,
       "Threshold-Consistent Margin Loss for Open-World Deep Metric
       Learning", ICLR 2024.

    Examples
    --------
    >>> from sklearn_dml.metrics import opis_loss
    >>> X = [[0.0], [1.0], [10.0], [11.0]]
    >>> y = [0, 0, 1, 1]
    >>> opis_loss(X, y, thresholds=[1.5])
    0.0

    Both classes have the same spread, so one threshold serves them equally.
    """
    if utility not in _UTILITIES:
        raise ValueError(f"utility must be one of {_UTILITIES}, got {utility!r}.")
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    if thresholds is None:
        far_low, far_high = _check_far_range(far_range)
        n_thresholds = _check_positive_int(
            n_thresholds, "n_thresholds", allow_none=False
        )
    else:
        thresholds = _check_thresholds(thresholds)
    query, reference, query_codes, reference_codes, n_relevant, self_index = _prepare(
        embeddings, labels, reference_embeddings, reference_labels, metric
    )
    n_available = reference.shape[0] - (0 if self_index is None else 1)
    n_positive = n_relevant.astype(np.int64)
    n_negative = n_available - n_positive
    if n_negative.sum() == 0:
        raise ValueError(
            "opis_loss needs pairs of different classes: every reference shares "
            "its query's label."
        )
    if not (n_positive > 0).any():
        raise ValueError(
            "opis_loss needs pairs of the same class: no query has a reference "
            "with its label."
        )
    query_codes_t = torch.from_numpy(query_codes)
    reference_codes_t = torch.from_numpy(reference_codes)

    def blocks():
        for start, stop, block in _distance_blocks(
            query, reference, metric, chunk_size
        ):
            masks = _pair_masks(
                start, stop, query_codes_t, reference_codes_t, self_index
            )
            yield start, stop, block, masks

    if thresholds is None:
        total = int(n_negative.sum())
        ks = [max(1, math.ceil(total * far)) for far in (far_low, far_high)]
        low, high = _kth_smallest(
            lambda: (
                block[negative].numpy() for _, _, block, (_, negative) in blocks()
            ),
            ks,
            total,
        )
        thresholds = np.linspace(low, high, n_thresholds)

    n_codes = int(max(query_codes.max(), reference_codes.max())) + 1
    width = thresholds.size + 1
    sorted_thresholds = torch.from_numpy(thresholds)
    histogram = {True: 0, False: 0}
    for start, stop, block, (positive, negative) in blocks():
        # Number of thresholds below each distance: a pair is accepted at
        # threshold j (distance <= thresholds[j]) exactly when j >= it.
        slot = torch.searchsorted(sorted_thresholds, block, side="left")
        slot += query_codes_t[start:stop].unsqueeze(1) * width
        for is_positive, mask in ((True, positive), (False, negative)):
            histogram[is_positive] = histogram[is_positive] + torch.bincount(
                slot[mask], minlength=n_codes * width
            )
    accepted = {
        key: torch.cumsum(torch.as_tensor(value).reshape(n_codes, width), dim=1)[:, :-1]
        .numpy()
        .astype(np.float64)
        for key, value in histogram.items()
    }
    class_positive = np.bincount(query_codes, weights=n_positive, minlength=n_codes)
    class_negative = np.bincount(query_codes, weights=n_negative, minlength=n_codes)
    pooled = _utility(
        accepted[True].sum(axis=0),
        accepted[False].sum(axis=0),
        class_positive.sum(),
        class_negative.sum(),
        utility,
    )
    scored = class_positive > 0
    per_class = _utility(
        accepted[True][scored],
        accepted[False][scored],
        class_positive[scored, None],
        class_negative[scored, None],
        utility,
    )
    return float(np.mean((per_class - pooled) ** 2))


def utilization_loss(embeddings, reference_embeddings, *, metric="euclidean"):
    """Utilization of Metrix: mean distance of queries to the nearest reference.

    Parameters
    ----------
    embeddings : array-like of shape (n_queries, n_features)
        Embedded query points, usually of the test set.
    reference_embeddings : array-like of shape (n_references, n_features)
        Embedded reference points, usually of the training set.
    metric : {"euclidean", "cosine"}, default="euclidean"
        Euclidean distance, or one minus the cosine similarity.

    Returns
    -------
    loss : float
        Mean over the queries of the distance to their nearest reference.
        Lower is better: the training embeddings cover the region where the
        test embeddings fall.

    See Also
    --------
    sklearn_dml.mixup.Metrix : The mixup that the measure was introduced for.
    uniformity_loss : How evenly points spread on the hypersphere.

    Notes
    -----
    With :math:`Q` the queries and :math:`X` the references,

    .. math::

        u(Q) = \\frac{1}{|Q|} \\sum_{q \\in Q} \\min_{x \\in X} d(q, x).

    Venkataramanan et al. [1]_ measure it between test and training
    embeddings to show that mixup makes training explore more of the
    embedding space, so that test samples land closer to training samples.
    The value depends on the scale of the embedding: compare embeddings of
    the same norm (unit vectors by default in sklearn-dml). The nearest
    reference is found exactly by :func:`chunked_knn`, without a full
    distance matrix.

    References
    ----------
    .. [1] Venkataramanan, S., Psomas, B., Kijak, E., Amsaleg, L.,
       Karantzalos, K. and Avrithis, Y. "It Takes Two to Tango: Mixup for
       Deep Metric Learning", ICLR 2022.

    Examples
    --------
    >>> from sklearn_dml.metrics import utilization_loss
    >>> train = [[0.0, 0.0], [4.0, 0.0]]
    >>> test = [[1.0, 0.0], [4.0, 3.0]]
    >>> utilization_loss(test, train)
    2.0

    The first query is at distance 1 from its nearest training point, the
    second at distance 3.
    """
    from ._knn import chunked_knn

    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}.")
    query = _as_2d_float(embeddings, "embeddings")
    reference = _as_2d_float(reference_embeddings, "reference_embeddings")
    if query.shape[1] != reference.shape[1]:
        raise ValueError(
            f"embeddings have {query.shape[1]} features but reference_embeddings "
            f"have {reference.shape[1]}."
        )
    distances, _ = chunked_knn(query, 1, reference, metric=metric)
    return float(distances[:, 0].mean())
