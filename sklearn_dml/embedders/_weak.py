"""Deep embedders fitted on constraints: labelled pairs or triplets.

The network embeds samples as usual; a constraint is a short tuple of
samples. Training goes through the one engine unchanged: the tuples are
flattened to rows of ``k * n_features`` features, the backbone is wrapped
(:class:`_TupleNetwork`) to embed the ``k`` samples of each row, and the
loss is wrapped (:class:`_TupleLoss`) to apply the package's pair or
triplet loss to exactly the given tuples: ``(q0, q1)`` of each pair,
``(a, p, n)`` of each triplet, never combinations across tuples (which
weak supervision says nothing about). The engine's class-balanced sampler
sees the pair labels as classes, so every batch holds similar and
dissimilar pairs in equal numbers.
"""

from numbers import Real

import numpy as np
import torch

from .._constraint_classifiers import PairsClassifierMixin, TripletsClassifierMixin
from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval
from .._shared_parameters import SHARED_PARAMETERS, TRAINING_OPTIONS
from ..base import BaseDeepMetricLearner, _training_penalty, check_float32_range
from ..losses import ContrastiveLoss, TripletMarginLoss
from ..training import engine
from ..training.objective import MetricLossTerm, PenaltyTerm

__all__ = ["WeakContrastiveEmbedder", "WeakTripletEmbedder"]


class _TupleNetwork(torch.nn.Module):
    """Embed rows of ``k`` flattened samples: ``(B, k * d) -> (B, k * n_out)``."""

    def __init__(self, net, tuple_size):
        super().__init__()
        self.net = net
        self.tuple_size = tuple_size

    def forward(self, x):
        rows = x.shape[0]
        return self.net(x.reshape(rows * self.tuple_size, -1)).reshape(rows, -1)

    def training_penalty(self, x, embeddings, y=None):
        """The wrapped network's penalty (its anchoring) on the samples of the batch."""
        penalty = _training_penalty(self.net)
        if penalty is None:
            return None
        k = self.tuple_size
        return penalty(
            x.reshape(x.shape[0] * k, -1), embeddings.reshape(x.shape[0] * k, -1)
        )


class _TupleLoss(torch.nn.Module):
    """A pair or triplet loss on the given tuples of a batch of tuple embeddings.

    Embeddings ``(B, k * n_out)`` are unstacked into ``k * B`` rows (all
    first samples, then all second ones, ...); pairs become the index tuple
    ``(a1, p, a2, n)`` of their two rows (``labels == 1``: same), triplets
    ``(a, p, n)``.
    """

    def __init__(self, loss, tuple_size):
        super().__init__()
        self.loss = loss
        self.tuple_size = tuple_size

    def forward(self, embeddings, labels, indices_tuple=None):
        rows, k = embeddings.shape[0], self.tuple_size
        E = embeddings.reshape(rows, k, -1).transpose(0, 1).reshape(rows * k, -1)
        idx = torch.arange(rows, device=embeddings.device)
        if k == 2:
            same = labels == 1
            tuples = (idx[same], idx[same] + rows, idx[~same], idx[~same] + rows)
        else:
            tuples = (idx, idx + rows, idx + 2 * rows)
        positions = torch.arange(rows * k, device=embeddings.device)
        return self.loss(E, positions, tuples)


class _WeakDeepEmbedder(BaseDeepMetricLearner):
    """Base of the deep embedders fitted on tuples; see the module docstring."""

    _method_parameters = {"preprocessor": None}
    _parameter_constraints = {"preprocessor": [None, "array-like", "callable"]}

    @property
    def partial_fit(self):
        raise AttributeError(
            f"{type(self).__name__} has no partial_fit: it is fitted on tuples with "
            "fit(tuples, y); call fit again (training restarts)."
        )

    def _check_training_options(self):
        used = self._training_options_in_use()
        for name in ("early_stopping", "warm_start"):
            if getattr(self, name) != SHARED_PARAMETERS[name].default:
                used.append(name)
        if used:
            raise ValueError(
                f"{type(self).__name__} trains on tuples and does not support "
                f"{', '.join(used)} (options of the embedders fitted on labelled "
                f"samples: {', '.join(TRAINING_OPTIONS)}, early_stopping, "
                "warm_start); leave them at their defaults."
            )

    def fit(self, tuples, y=None):
        """Train the embedding on constraints.

        Parameters
        ----------
        tuples : array-like of shape (n_tuples, k, n_features) or (n_tuples, k)
            Pairs (``k = 2``) or triplets (``k = 3``), as features or as
            indices resolved through ``preprocessor``.
        y : array-like of shape (n_tuples,) or None
            For pairs, each pair's label (``1``/``True`` same,
            ``-1``/``0``/``False`` different); ``None`` for triplets.

        Returns
        -------
        self : object
            The fitted embedder.
        """
        with self._transaction():
            self._validate_params()
            features = self._tuples(tuples, reset=True, name="tuples")
            check_float32_range(features)
            labels = self._constraint_labels(features.shape[0], y)
            n, k, d = features.shape
            codes = np.zeros(n, np.int64) if labels is None else labels[0].astype(int)
            config = self._training_config()
            config.objective = (MetricLossTerm(),)
            self.anchor_weight_ = (
                self._anchor_weight() if self.backbone is None else None
            )
            self.anchor_selection_ = None
            self.start_share_, self.start_share_scores_ = 0.0, None
            self.backbone_init_ = "pca" if self.backbone is None else None
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                samples = np.unique(features.reshape(n * k, d), axis=0)
                net = self._build_backbone(d, samples)
                self._n_features_out = self._probe_backbone(net, d)
                loss, _ = self._build_loss(1, self._n_features_out)
            network = _TupleNetwork(net, k)
            if _training_penalty(net) is not None:  # the anchoring of ResidualMLP
                config.objective += (PenaltyTerm(network.training_penalty, "anchor"),)
            state = engine.TrainingState(
                backbone=network, loss=_TupleLoss(loss, k), miner=None
            )
            state = engine.fit(state, config, features.reshape(n, k * d), codes)
            self.backbone_ = state.backbone.net
            self.loss_ = state.loss.loss
            self.miner_ = None
            self.n_iter_ = state.n_iter
            self.history_ = state.history
            self.loss_curve_ = [rec["loss"] for rec in state.history]
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.__dict__.pop("threshold_", None)
            self._finish_constraint_fit(features, labels)
            return self


register_doc(
    "weak_embedder_common",
    """
    preprocessor : array-like of shape (n_samples, n_features), callable or None, \
default=None
        How tuples of indices become tuples of features: ``None`` (tuples
        of features only), an array that integer index tuples point into,
        or a callable mapping a 1-D array of identifiers to their feature
        rows. Tuples of features are accepted in every case.
    """,
)

register_doc(
    "weak_embedder_notes",
    """
    The options of the embedders fitted on labelled samples that do not
    apply to tuples (``nested_dims``, ``mixup``, ``energy_confusion``,
    ``procsim``, ``early_stopping``, ``warm_start``) raise an error when
    set; ``anchor_weight="auto"`` uses the default weight, as its choice
    needs classes; there is no ``partial_fit``. ``transform``, ``score``
    (on tuples here) and the pair API work as for every embedder.
    """,
)


@fill_doc
class WeakContrastiveEmbedder(PairsClassifierMixin, _WeakDeepEmbedder):
    """Deep metric learning with the contrastive loss on labelled pairs.

    The weakly supervised form of :class:`~sklearn_dml.ContrastiveEmbedder`:
    trained on given pairs of samples, each labelled same or different,
    with no class labels. Each batch holds as many same as different pairs;
    the loss sees exactly those pairs.

    Parameters
    ----------
    pos_margin : float, default=0.5
        Distance below which same pairs are not penalised.

    neg_margin : float, default=1.2
        Distance beyond which different pairs are not penalised.

    {weak_embedder_common}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    classes_ : ndarray of shape (2,)
        The two pair labels seen in ``fit`` (different, same).

    threshold_ : float
        Distance threshold of :meth:`predict`, calibrated for accuracy on
        the training pairs.

    See Also
    --------
    ContrastiveEmbedder : The same loss on labelled samples.
    sklearn_dml.mahalanobis.ITML : A linear metric on labelled pairs.

    Notes
    -----
    On pairs :math:`(x_i, x_j)` with embedding distances :math:`d_{ij}`,

    .. math::

        \\ell = \\overline{[d_{ij} - m_+]_+}^{\\,\\text{same}}
              + \\overline{[m_- - d_{ij}]_+}^{\\,\\text{different}},

    each mean over the batch's pairs where the term is positive
    (:class:`~sklearn_dml.losses.ContrastiveLoss`).

    {weak_embedder_notes}

    References
    ----------
    .. [1] Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an
       Invariant Mapping", CVPR 2006.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import WeakContrastiveEmbedder
    >>> from sklearn_dml.constraints import positive_negative_pairs
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X[:500] / 16
    >>> pairs, y_pairs = positive_negative_pairs(y[:500], 300, random_state=0)
    >>> emb = WeakContrastiveEmbedder(n_components=8, max_iter=5, random_state=0,
    ...                               preprocessor=X).fit(pairs, y_pairs)
    >>> emb.transform(X[:2]).shape
    (2, 8)
    >>> emb.score(pairs, y_pairs) > 0.9
    True
    """

    _method_parameters = {"pos_margin": 0.5, "neg_margin": 1.2, "preprocessor": None}
    _parameter_constraints = {
        "pos_margin": [Interval(Real, 0, None, closed="left")],
        "neg_margin": [Interval(Real, 0, None, closed="left")],
    }

    def _check_method_params(self):
        if self.neg_margin <= self.pos_margin:
            raise ValueError(
                f"neg_margin ({self.neg_margin}) must be larger than pos_margin "
                f"({self.pos_margin})."
            )

    def _build_loss(self, n_classes, n_components):
        return ContrastiveLoss(
            pos_margin=self.pos_margin, neg_margin=self.neg_margin
        ), None


@fill_doc
class WeakTripletEmbedder(TripletsClassifierMixin, _WeakDeepEmbedder):
    """Deep metric learning with the triplet margin loss on given triplets.

    The weakly supervised form of :class:`~sklearn_dml.TripletEmbedder`:
    trained on triplets ``(a, p, n)`` stating that ``a`` is closer to ``p``
    than to ``n``, with no class labels; the loss sees exactly those
    triplets (no mining).

    Parameters
    ----------
    margin : float, default=0.0961
        Required gap between the anchor-negative and anchor-positive
        distances.

    {weak_embedder_common}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    TripletEmbedder : The same loss on labelled samples, with mining.
    sklearn_dml.mahalanobis.SCML : A linear metric on triplets.

    Notes
    -----
    On triplets :math:`(a, p, n)` with embedding distances :math:`d`,

    .. math::

        \\ell(a, p, n) = \\max(0, d(a, p) - d(a, n) + m),

    averaged over the batch's triplets with a positive loss
    (:class:`~sklearn_dml.losses.TripletMarginLoss`).

    {weak_embedder_notes}

    References
    ----------
    .. [1] Schroff, Kalenichenko and Philbin, "FaceNet: A Unified Embedding
       for Face Recognition and Clustering", CVPR 2015.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import WeakTripletEmbedder
    >>> from sklearn_dml.constraints import triplets_from_labels
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X[:500] / 16
    >>> triplets = triplets_from_labels(y[:500], 300, random_state=0)
    >>> emb = WeakTripletEmbedder(n_components=8, max_iter=5, random_state=0,
    ...                           preprocessor=X).fit(triplets)
    >>> emb.score(triplets) > 0.9
    True
    """

    _method_parameters = {"margin": 0.0961, "preprocessor": None}
    _parameter_constraints = {"margin": [Interval(Real, 0, None, closed="left")]}

    def _build_loss(self, n_classes, n_components):
        return TripletMarginLoss(margin=self.margin), None
