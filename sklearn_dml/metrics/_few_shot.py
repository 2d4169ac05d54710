"""Few-shot evaluation: N-way K-shot episodes drawn from labelled embeddings.

:func:`few_shot_accuracy` draws seeded episodes (``n_way`` classes,
``n_shot`` support and ``n_query`` query samples of each), classifies the
queries by their nearest class prototype or nearest support sample, and
reports the mean accuracy with its 95 % confidence interval;
:func:`make_few_shot_scorer` turns it into a scorer for model selection.
Episodes are processed in vectorised chunks of bounded size.
"""

from numbers import Integral

import numpy as np
import torch
from sklearn.utils import Bunch, check_random_state

from .._param_validation import Interval, StrOptions, validate_params
from ._knn import _as_2d_float
from ._retrieval import _check_labels
from ._scorer import _RetrievalScorer

__all__ = ["few_shot_accuracy", "make_few_shot_scorer"]

# Floats drawn or gathered at once for one chunk of episodes (32 MiB).
_CHUNK_ENTRIES = 2**22
# Episodes drawn from one seed.
_BLOCK = 16

_POSITIVE_INT = Interval(Integral, 1, None, closed="left")
_CONSTRAINTS = {
    "n_way": [Interval(Integral, 2, None, closed="left")],
    "n_shot": [_POSITIVE_INT],
    "n_query": [_POSITIVE_INT],
    "n_episodes": [_POSITIVE_INT],
    "classifier": [StrOptions({"prototype", "nearest_neighbor"})],
    "metric": [StrOptions({"euclidean", "cosine"})],
    "random_state": ["random_state"],
}


def _distances(query, reference, metric):
    """Batched ``(episodes, n_query, n_reference)`` distances (float64)."""
    if metric == "cosine":
        query = torch.nn.functional.normalize(query, dim=-1)
        reference = torch.nn.functional.normalize(reference, dim=-1)
        return 1.0 - query @ reference.transpose(1, 2)
    return torch.cdist(query, reference, compute_mode="donot_use_mm_for_euclid_dist")


def _draw_episodes(rng, members, starts, sizes, eligible, n_episodes, n_way, n_take):
    """Sample indices of shape ``(n_episodes, n_way, n_take)``: distinct classes
    per episode, distinct samples per class."""
    classes = eligible[
        np.argsort(rng.random_sample((n_episodes, eligible.size)), axis=1)[:, :n_way]
    ]
    largest = int(sizes[classes].max())
    keys = rng.random_sample((n_episodes, n_way, largest))
    keys[np.arange(largest) >= sizes[classes][..., None]] = np.inf
    within = np.argpartition(keys, n_take - 1, axis=2)[..., :n_take]
    return members[starts[classes][..., None] + within]


def few_shot_accuracy(
    embeddings,
    labels,
    *,
    n_way=5,
    n_shot=1,
    n_query=15,
    n_episodes=600,
    classifier="prototype",
    metric="euclidean",
    random_state=None,
):
    """Accuracy of N-way K-shot classification in episodes drawn from ``labels``.

    Each episode draws ``n_way`` distinct classes, then ``n_shot`` support
    and ``n_query`` query samples of each class (all distinct). Every query
    is given the class of its nearest prototype (the mean of a class's
    support embeddings, as in prototypical networks) or of its nearest
    support sample. Use it on embeddings of classes the embedder never saw
    in training to measure few-shot transfer.

    Parameters
    ----------
    embeddings : array-like of shape (n_samples, n_features)
        Embedded samples.
    labels : array-like of shape (n_samples,)
        Class of each sample. Only classes with at least ``n_shot +
        n_query`` samples are drawn; at least ``n_way`` of them are needed.
    n_way : int, default=5
        Number of classes per episode.
    n_shot : int, default=1
        Support samples per class.
    n_query : int, default=15
        Query samples per class (15 in the protocols of Snell et al. and
        Vinyals et al.).
    n_episodes : int, default=600
        Number of episodes averaged.
    classifier : {"prototype", "nearest_neighbor"}, default="prototype"
        Nearest class prototype, or nearest single support sample. Both
        coincide when ``n_shot=1``.
    metric : {"euclidean", "cosine"}, default="euclidean"
        Distance between a query and a prototype or support sample: the
        Euclidean distance or one minus the cosine similarity.
    random_state : int, RandomState instance or None, default=None
        Seed of the episodes. The same seed draws the same episodes for any
        embedding of the same labels, so embedders compare on equal terms.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        With keys (also attributes) ``accuracy`` (the mean accuracy over
        the episodes), ``ci95`` (the half-width of its 95 % confidence
        interval) and ``episode_accuracies`` (ndarray of shape
        ``(n_episodes,)``).

    See Also
    --------
    make_few_shot_scorer : The same measure as a model-selection scorer.
    sklearn_dml.model_selection.ClassDisjointKFold : Folds of unseen classes.

    Notes
    -----
    For an episode with support sets :math:`S_c` of the classes
    :math:`c = 1, \\dots, N` the prototypes are
    :math:`\\mu_c = \\frac{1}{K} \\sum_{x \\in S_c} f(x)` and a query
    :math:`q` is assigned :math:`\\arg\\min_c d(f(q), \\mu_c)`
    (``"prototype"``) or the class of
    :math:`\\arg\\min_{x \\in \\cup_c S_c} d(f(q), f(x))`
    (``"nearest_neighbor"``). With :math:`a_e` the accuracy of episode
    :math:`e` over its :math:`N \\times Q` queries, the result is

    .. math::

        \\bar a = \\frac{1}{E} \\sum_{e=1}^{E} a_e, \\qquad
        \\mathrm{ci95} = 1.96 \\, \\frac{\\operatorname{std}(a)}{\\sqrt{E}},

    with the standard deviation over episodes (divided by :math:`E`). The
    Euclidean distance is the default: Snell et al. found it better than
    the cosine for prototypes, as the class mean is the representative that
    minimises squared Euclidean distances (a Bregman divergence), not
    angles; Matching Networks compared with the cosine, offered by
    ``metric="cosine"``. On L2-normalised embeddings the two rank support
    samples alike but not prototypes, whose norms differ. Ties go to the
    lower class position in the episode. Episodes are drawn in chunks of
    bounded memory and scored in batched tensor operations.

    References
    ----------
    .. [1] O. Vinyals, C. Blundell, T. Lillicrap, K. Kavukcuoglu and
       D. Wierstra, "Matching Networks for One Shot Learning", NeurIPS 2016.
    .. [2] J. Snell, K. Swersky and R. Zemel, "Prototypical Networks for
       Few-shot Learning", NeurIPS 2017.
    .. [3] M. Boudiaf, I. Ziko, J. Rony, J. Dolz, P. Piantanida and I. Ben
       Ayed, "Transductive Few-Shot Learning: Clustering is All You Need?",
       2021, arXiv:2106.09516.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml.metrics import few_shot_accuracy
    >>> X, y = load_digits(return_X_y=True)
    >>> result = few_shot_accuracy(X, y, n_way=5, n_shot=5, n_episodes=100,
    ...                            random_state=0)
    >>> bool(result.accuracy > 0.8), bool(0 < result.ci95 < 0.05)
    (True, True)
    """
    validate_params(
        _CONSTRAINTS,
        {name: value for name, value in locals().items() if name in _CONSTRAINTS},
        "few_shot_accuracy",
    )
    points = _as_2d_float(embeddings, "embeddings").to(torch.float64)
    labels = _check_labels(labels, points.shape[0], "labels", "embeddings")
    _, codes = np.unique(labels, return_inverse=True)
    codes = codes.ravel()
    members = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_take = n_shot + n_query
    eligible = np.flatnonzero(sizes >= n_take)
    if eligible.size < n_way:
        raise ValueError(
            f"few_shot_accuracy needs {n_way} classes (n_way) with at least "
            f"{n_take} samples each (n_shot + n_query); labels has "
            f"{eligible.size}. Lower n_way, n_shot or n_query."
        )
    # Episodes are drawn in blocks of _BLOCK, each with its own seed, so the
    # episodes do not depend on how many blocks one chunk holds.
    n_blocks = -(-n_episodes // _BLOCK)
    seeds = check_random_state(random_state).randint(0, 2**31 - 1, size=n_blocks)
    per_episode = n_way * max(int(sizes[eligible].max()), n_take * points.shape[1])
    blocks_per_chunk = max(1, _CHUNK_ENTRIES // (per_episode * _BLOCK))
    way = torch.arange(n_way)
    truth = way.repeat_interleave(n_query)
    accuracies = []
    for first in range(0, n_blocks, blocks_per_chunk):
        index = np.concatenate(
            [
                _draw_episodes(
                    np.random.RandomState(seed),
                    members,
                    starts,
                    sizes,
                    eligible,
                    min(_BLOCK, n_episodes - block * _BLOCK),
                    n_way,
                    n_take,
                )
                for block, seed in enumerate(
                    seeds[first : first + blocks_per_chunk], start=first
                )
            ]
        )
        index = torch.from_numpy(index)
        support = points[index[..., :n_shot]]  # (E, N, K, d)
        query = points[index[..., n_shot:]].flatten(1, 2)  # (E, N * Q, d)
        if classifier == "prototype":
            distances = _distances(query, support.mean(dim=2), metric)
            predicted = distances.argmin(dim=2)
        else:
            distances = _distances(query, support.flatten(1, 2), metric)
            predicted = distances.argmin(dim=2) // n_shot
        accuracies.append((predicted == truth).to(torch.float64).mean(dim=1))
    episode_accuracies = torch.cat(accuracies).numpy()
    return Bunch(
        accuracy=float(episode_accuracies.mean()),
        ci95=float(1.96 * episode_accuracies.std() / np.sqrt(n_episodes)),
        episode_accuracies=episode_accuracies,
    )


class _FewShotScorer(_RetrievalScorer):
    """``scorer(estimator, X, y)``: mean few-shot accuracy of the embedding."""

    def __init__(self, kwargs):
        super().__init__(few_shot_accuracy, kwargs)

    def __call__(self, estimator, X, y):
        if not hasattr(estimator, "transform"):
            raise TypeError(
                f"{type(estimator).__name__} has no transform method; a few-shot "
                "scorer rates the embedding returned by estimator.transform(X)."
            )
        if y is None:
            raise ValueError("A few-shot scorer needs the labels y of X.")
        return few_shot_accuracy(estimator.transform(X), y, **self.kwargs).accuracy

    def __repr__(self):
        args = ", ".join(f"{key}={value!r}" for key, value in self.kwargs.items())
        return f"make_few_shot_scorer({args})"


def make_few_shot_scorer(
    *,
    n_way=5,
    n_shot=1,
    n_query=15,
    n_episodes=600,
    classifier="prototype",
    metric="euclidean",
    random_state=0,
):
    """A scorer rating a transformer by few-shot accuracy on the validation fold.

    Parameters
    ----------
    n_way : int, default=5
        Number of classes per episode.
    n_shot : int, default=1
        Support samples per class.
    n_query : int, default=15
        Query samples per class.
    n_episodes : int, default=600
        Number of episodes averaged.
    classifier : {"prototype", "nearest_neighbor"}, default="prototype"
        Nearest class prototype or nearest support sample.
    metric : {"euclidean", "cosine"}, default="euclidean"
        Distance between queries and prototypes or support samples.
    random_state : int, RandomState instance or None, default=0
        Seed of the episodes. The fixed default gives every candidate of a
        grid search the same episodes on the same fold.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)`` returning
        ``few_shot_accuracy(estimator.transform(X), y, ...).accuracy``,
        for the ``scoring`` argument of
        :class:`~sklearn.model_selection.GridSearchCV` or
        :func:`~sklearn.model_selection.cross_validate`.

    See Also
    --------
    few_shot_accuracy : The measure, with its confidence interval.
    sklearn_dml.model_selection.ClassDisjointKFold : Validation folds whose
        classes were not seen in training, the setting of few-shot
        evaluation.

    Notes
    -----
    Each validation fold must hold ``n_way`` classes with at least
    ``n_shot + n_query`` samples each. With
    :class:`~sklearn_dml.model_selection.ClassDisjointKFold`, the episodes
    are drawn from classes the candidate never saw in training.

    References
    ----------
    .. [1] O. Vinyals, C. Blundell, T. Lillicrap, K. Kavukcuoglu and
       D. Wierstra, "Matching Networks for One Shot Learning", NeurIPS 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn_dml.metrics import make_few_shot_scorer
    >>> from sklearn_dml.model_selection import ClassDisjointKFold
    >>> X, y = load_digits(return_X_y=True)
    >>> scorer = make_few_shot_scorer(n_way=5, n_shot=5, n_episodes=100)
    >>> scores = cross_val_score(PCA(16), X, y, scoring=scorer,
    ...                          cv=ClassDisjointKFold(n_splits=2))
    >>> bool(scores.min() > 0.8)
    True
    """
    kwargs = {name: value for name, value in locals().items() if name in _CONSTRAINTS}
    validate_params(_CONSTRAINTS, kwargs, "make_few_shot_scorer")
    return _FewShotScorer(kwargs)
