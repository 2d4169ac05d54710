"""Scikit-learn scorers rating a transformer by the retrieval quality of its output."""

from ._clustering import ami_score, nmi_score
from ._retrieval import (
    map_at_r_score,
    mean_average_precision_score,
    mean_reciprocal_rank_score,
    precision_at_k_score,
    r_precision_score,
    recall_at_k_score,
)

__all__ = [
    "ami_scorer",
    "get_scorer",
    "make_retrieval_scorer",
    "map_at_r_scorer",
    "mean_average_precision_scorer",
    "mrr_scorer",
    "nmi_scorer",
    "precision_at_1_scorer",
    "r_precision_scorer",
    "recall_at_1_scorer",
]


class _RetrievalScorer:
    """Callable ``scorer(estimator, X, y)`` scoring ``estimator.transform(X)``.

    A class rather than a closure so that it pickles (``GridSearchCV`` with
    ``n_jobs > 1``) and prints readably.
    """

    def __init__(self, metric_func, kwargs):
        self.metric_func = metric_func
        self.kwargs = kwargs

    def __call__(self, estimator, X, y):
        if not hasattr(estimator, "transform"):
            raise TypeError(
                f"{type(estimator).__name__} has no transform method; a retrieval "
                "scorer rates the embedding returned by estimator.transform(X)."
            )
        if y is None:
            raise ValueError("A retrieval scorer needs the labels y of X.")
        return float(self.metric_func(estimator.transform(X), y, **self.kwargs))

    def __repr__(self):
        args = "".join(f", {key}={value!r}" for key, value in self.kwargs.items())
        return f"make_retrieval_scorer({self.metric_func.__name__}{args})"


def make_retrieval_scorer(metric_func, **kwargs):
    """Turn a retrieval metric into a scorer for model selection.

    Parameters
    ----------
    metric_func : callable
        Function ``metric_func(embeddings, labels, **kwargs) -> float``, higher
        is better, such as :func:`map_at_r_score`.
    **kwargs : dict
        Extra keyword arguments passed to ``metric_func`` on every call, for
        example ``k=5`` or ``metric="cosine"``.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)`` returning
        ``metric_func(estimator.transform(X), y, **kwargs)``. It fits the
        ``scoring`` argument of :class:`~sklearn.model_selection.GridSearchCV`
        and :func:`~sklearn.model_selection.cross_validate`, alone or as a
        value of a multi-metric ``{"name": scorer}`` dict.

    See Also
    --------
    get_scorer : Ready-made retrieval scorers by name.

    Notes
    -----
    The validation fold is scored in leave-one-out mode: each of its samples
    queries the other samples of the fold, so a fold needs at least two
    samples of some class (classes with one sample are skipped). A score of
    a fold is, for MAP@R,

    .. math::

        s = \\mathrm{MAP@R}\\bigl(f(X_{\\mathrm{val}}), y_{\\mathrm{val}}\\bigr)

    with :math:`f` the fitted transformer. The estimator must implement
    ``transform`` (a pipeline must end with the embedder, not a classifier).

    References
    ----------
    .. [1] K. Musgrave, S. Belongie and S.-N. Lim, "A Metric Learning Reality
       Check", ECCV 2020.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_dml.metrics import make_retrieval_scorer, precision_at_k_score
    >>> scorer = make_retrieval_scorer(precision_at_k_score, k=1)
    >>> X = [[0.0], [0.1], [1.0], [1.1]]
    >>> y = [0, 0, 1, 1]
    >>> scorer(StandardScaler().fit(X), X, y)
    1.0
    """
    if not callable(metric_func):
        raise TypeError(f"metric_func must be callable, got {metric_func!r}.")
    return _RetrievalScorer(metric_func, dict(kwargs))


map_at_r_scorer = make_retrieval_scorer(map_at_r_score)
precision_at_1_scorer = make_retrieval_scorer(precision_at_k_score, k=1)
r_precision_scorer = make_retrieval_scorer(r_precision_score)

recall_at_1_scorer = make_retrieval_scorer(recall_at_k_score, k=1)
mean_average_precision_scorer = make_retrieval_scorer(mean_average_precision_score)
mrr_scorer = make_retrieval_scorer(mean_reciprocal_rank_score)
# A fixed seed: the same embedding gets the same clustering score every time.
nmi_scorer = make_retrieval_scorer(nmi_score, random_state=0)
ami_scorer = make_retrieval_scorer(ami_score, random_state=0)

_SCORERS = {
    "ami": ami_scorer,
    "map_at_r": map_at_r_scorer,
    "mean_average_precision": mean_average_precision_scorer,
    "mrr": mrr_scorer,
    "nmi": nmi_scorer,
    "precision_at_1": precision_at_1_scorer,
    "r_precision": r_precision_scorer,
    "recall_at_1": recall_at_1_scorer,
}


def get_scorer(name):
    """Return a ready-made retrieval scorer by name.

    Parameters
    ----------
    name : {"map_at_r", "precision_at_1", "r_precision", "recall_at_1", \
"mean_average_precision", "mrr", "nmi", "ami"}
        The metric: :func:`map_at_r_score`, :func:`precision_at_k_score` with
        ``k=1``, :func:`r_precision_score`, :func:`recall_at_k_score` with
        ``k=1``, :func:`mean_average_precision_score` or
        :func:`mean_reciprocal_rank_score`, each in leave-one-out mode with
        the Euclidean distance; or :func:`nmi_score` or :func:`ami_score`
        with ``random_state=0`` (the same embedding always gets the same
        score).

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``, higher is better.

    See Also
    --------
    make_retrieval_scorer : Build a scorer with other options.

    Notes
    -----
    Each scorer computes :math:`s = m(f(X), y)` for its metric :math:`m` and
    the estimator's ``transform`` :math:`f`.

    References
    ----------
    .. [1] K. Musgrave, S. Belongie and S.-N. Lim, "A Metric Learning Reality
       Check", ECCV 2020.

    Examples
    --------
    >>> from sklearn_dml.metrics import get_scorer
    >>> get_scorer("map_at_r")
    make_retrieval_scorer(map_at_r_score)
    """
    try:
        return _SCORERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown retrieval scorer {name!r}; choose one of {sorted(_SCORERS)}."
        ) from None
