"""The embedders: thin estimators that name a loss (and miner) for the engine."""

import numbers

from sklearn.utils import check_scalar

from ._docstrings import fill_doc, register_doc
from ._embedders_common import (
    check_component,
    check_learning_rate,
    fresh_component,
)
from .base import BaseDeepMetricLearner
from .losses import ContrastiveLoss, MultiSimilarityLoss, TripletMarginLoss
from .miners import BatchHardMiner, MultiSimilarityMiner, TripletMarginMiner

# Registered here, in the first estimator module the package imports, for the
# method modules too (they import ``MLRC_NOTE`` to make the order explicit).
MLRC_NOTE = "mlrc_defaults_note"
register_doc(
    MLRC_NOTE,
    """
    The loss defaults are tuned values from Musgrave, Belongie and Lim,
    "A Metric Learning Reality Check" (ECCV 2020), which tuned every loss by
    Bayesian optimisation (50 steps, 4-fold cross-validation) on CUB200,
    Cars196 and Stanford Online Products with a BN-Inception backbone,
    128-dimensional embeddings and batches of 32. Each default is the median
    of the three datasets' optima, as listed (per dataset) in the "Optimal
    hyperparameters" table of the paper's companion page
    (github.com/KevinMusgrave/powerful-benchmarker, docs/papers/mlrc.md);
    the median avoids one dataset's outliers. The paper used
    pytorch-metric-learning's losses, whose parameter conventions are ours,
    so no value is converted. Learning rates of the loss's own parameters
    were tuned together with the paper's much smaller backbone learning rate
    and are not carried over; nor are the shared training defaults (Adam,
    learning rate 1e-3, batches of 128 with 4 samples per class), which are
    the package's. The values suit natural-image retrieval of unseen classes;
    tune with ``GridSearchCV`` and a class-disjoint split
    (:mod:`sklearn_dml.model_selection`) on other data.
    """,
)

__all__ = [
    "DeepMetricEmbedder",
    "TripletEmbedder",
    "ContrastiveEmbedder",
    "MultiSimilarityEmbedder",
]


@fill_doc
class DeepMetricEmbedder(BaseDeepMetricLearner):
    """Deep metric learning with any loss and miner components.

    The generic embedder: pass a loss object from :mod:`sklearn_dml.losses`
    (or your own module with the same ``forward(embeddings, labels,
    indices_tuple)`` signature) and optionally a miner from
    :mod:`sklearn_dml.miners`. Their own hyper-parameters can be tuned with the
    ``loss__<name>`` / ``miner__<name>`` syntax in ``GridSearchCV``.

    Parameters
    ----------
    loss : torch.nn.Module, default=None
        The metric loss. ``None`` means ``TripletMarginLoss(margin=0.1)``.
        ``fit`` trains a fresh clone of it; the object passed in is not
        modified (see ``loss_`` for the trained copy). A loss with learnable
        parameters (proxies, class weights, centres) is configured for the
        classes of ``y`` and the embedding size, trains them with the
        backbone, and fixes the classes: ``partial_fit`` then needs every
        class on its first call. Combine losses (e.g. a regulariser) with
        :class:`~sklearn_dml.losses.CombinedLoss`.

    miner : torch.nn.Module, default=None
        Selects the pairs or triplets of each batch that the loss uses.
        ``None`` uses every pair/triplet.

    {loss_learning_rate_none}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    TripletEmbedder : Triplet loss with a miner, as plain parameters.
    sklearn.neighbors.NeighborhoodComponentsAnalysis : Linear metric learning.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import DeepMetricEmbedder
    >>> from sklearn_dml.losses import ContrastiveLoss
    >>> X, y = load_digits(return_X_y=True)
    >>> emb = DeepMetricEmbedder(loss=ContrastiveLoss(neg_margin=0.8),
    ...                          max_iter=5, random_state=0).fit(X / 16, y)
    >>> emb.transform(X[:3] / 16).shape
    (3, 64)
    >>> emb.score(X / 16, y) > 0.5
    True
    """

    def __init__(
        self,
        loss=None,
        miner=None,
        loss_learning_rate=None,
        *,
        n_components=64,
        hidden_layer_sizes=(256,),
        backbone=None,
        normalize_embeddings=True,
        nested_dims=None,
        mixup=None,
        energy_confusion=0.0,
        procsim=None,
        max_iter=50,
        batch_size=128,
        samples_per_class=4,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="stratified",
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.loss = loss
        self.miner = miner
        self.loss_learning_rate = loss_learning_rate
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.backbone = backbone
        self.normalize_embeddings = normalize_embeddings
        self.nested_dims = nested_dims
        self.mixup = mixup
        self.energy_confusion = energy_confusion
        self.procsim = procsim
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _check_method_params(self):
        check_component(self.loss, "loss", "losses")
        check_component(self.miner, "miner", "miners")
        check_learning_rate(self.loss_learning_rate, "loss_learning_rate")

    def _loss_learning_rate(self):
        return self.loss_learning_rate

    def _build_loss(self, n_classes, n_components):
        # The base class configures the loss (learnable parameters) afterwards.
        if self.loss is None:
            loss = TripletMarginLoss(margin=0.1)
        else:
            loss = fresh_component(self.loss)
        miner = None if self.miner is None else fresh_component(self.miner)
        return loss, miner


_TRIPLET_MINING = ("batch_hard", "semihard", "hard", "all")


@fill_doc
class TripletEmbedder(BaseDeepMetricLearner):
    """Deep metric learning with the triplet margin loss.

    Learns an embedding in which each anchor is closer to a sample of its own
    class (positive) than to a sample of another class (negative) by at least
    ``margin``, over the triplets that the mining strategy selects in each
    class-balanced batch.

    Parameters
    ----------
    margin : float, default=0.0961
        Required gap between the anchor-negative and anchor-positive
        distances (Euclidean, on the unit sphere when
        ``normalize_embeddings=True``). Default: tuned value of Musgrave et al.
        (2020), the median of the optimal values on CUB200 / Cars196 / SOP
        (0.0961, 0.1190, 0.0451); FaceNet [1]_ used 0.2 on squared distances;
        the previous default was 0.1.

    mining : {"batch_hard", "semihard", "hard", "all"}, default="semihard"
        Which triplets of a batch train the model: the hardest positive and
        negative of each anchor (``"batch_hard"``), triplets whose negative
        lies inside the margin but beyond the positive (``"semihard"``),
        triplets whose negative is closer than the positive (``"hard"``), or
        every triplet (``"all"``; the loss averages over the violating ones).

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    DeepMetricEmbedder : Any loss and miner.
    ContrastiveEmbedder : Pair-based loss.

    Notes
    -----
    For a triplet :math:`(a, p, n)` with distances :math:`d`,

    .. math::

        \\ell(a, p, n) = \\max(0, d(a, p) - d(a, n) + m),

    averaged over the triplets with a positive loss.

    {mlrc_defaults_note}

    References
    ----------
    .. [1] Schroff, Kalenichenko and Philbin, "FaceNet: A Unified Embedding
       for Face Recognition and Clustering", CVPR 2015.
    .. [2] Hermans, Beyer and Leibe, "In Defense of the Triplet Loss for
       Person Re-Identification", arXiv:1703.07737, 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import TripletEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> emb = TripletEmbedder(n_components=16, max_iter=5, random_state=0)
    >>> emb.fit(X / 16, y).transform(X[:2] / 16).shape
    (2, 16)
    >>> emb.score(X / 16, y) > 0.5
    True
    """

    def __init__(
        self,
        margin=0.0961,
        mining="semihard",
        *,
        n_components=64,
        hidden_layer_sizes=(256,),
        backbone=None,
        normalize_embeddings=True,
        nested_dims=None,
        mixup=None,
        energy_confusion=0.0,
        procsim=None,
        max_iter=50,
        batch_size=128,
        samples_per_class=4,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="stratified",
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.margin = margin
        self.mining = mining
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.backbone = backbone
        self.normalize_embeddings = normalize_embeddings
        self.nested_dims = nested_dims
        self.mixup = mixup
        self.energy_confusion = energy_confusion
        self.procsim = procsim
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _check_method_params(self):
        check_scalar(self.margin, "margin", numbers.Real, min_val=0)
        if self.mining not in _TRIPLET_MINING:
            raise ValueError(
                f"mining must be one of {_TRIPLET_MINING}, got {self.mining!r}."
            )

    def _build_loss(self, n_classes, n_components):
        loss = TripletMarginLoss(margin=self.margin)
        if self.mining == "batch_hard":
            miner = BatchHardMiner()
        elif self.mining == "all":
            miner = None
        else:
            miner = TripletMarginMiner(margin=self.margin, type_of_triplets=self.mining)
        return loss, miner


@fill_doc
class ContrastiveEmbedder(BaseDeepMetricLearner):
    """Deep metric learning with the contrastive (pair) loss.

    Pulls same-class pairs closer than ``pos_margin`` and pushes
    different-class pairs beyond ``neg_margin``.

    Parameters
    ----------
    pos_margin : float, default=0.5
        Distance below which positive pairs are not penalised (Euclidean, on
        the unit sphere by default, where distances lie in [0, 2]).
        Hadsell et al. [1]_ use 0.

    neg_margin : float, default=1.2
        Distance beyond which negative pairs are not penalised. The defaults
        suit the default backbone, which starts at the normalised PCA map:
        there, on standardised ``load_digits``, no different-class pair is
        closer than 0.513 (the margin tuned by Musgrave et al. (2020) for
        image backbones, the previous default, with ``pos_margin=0.2652``),
        so that loss only pulled classes together. 0.5 / 1.2 raise
        closed-set MAP@R on digits and MNIST-5k and unseen-class MAP@R on
        digits (see the unseen-classes guide for the numbers).

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    TripletEmbedder : Triplet loss.
    MultiSimilarityEmbedder : Weighted pair loss with mining.

    Notes
    -----
    With :math:`d_{ij}` the distance of a pair,

    .. math::

        \\ell = \\overline{[d_{ap} - m_+]_+} + \\overline{[m_- - d_{an}]_+},

    each term averaged over the pairs where it is positive.

    {mlrc_defaults_note}

    References
    ----------
    .. [1] Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an
       Invariant Mapping", CVPR 2006.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import ContrastiveEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> emb = ContrastiveEmbedder(max_iter=5, random_state=0).fit(X / 16, y)
    >>> emb.score(X / 16, y) > 0.5
    True
    """

    def __init__(
        self,
        pos_margin=0.5,
        neg_margin=1.2,
        *,
        n_components=64,
        hidden_layer_sizes=(256,),
        backbone=None,
        normalize_embeddings=True,
        nested_dims=None,
        mixup=None,
        energy_confusion=0.0,
        procsim=None,
        max_iter=50,
        batch_size=128,
        samples_per_class=4,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="stratified",
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.backbone = backbone
        self.normalize_embeddings = normalize_embeddings
        self.nested_dims = nested_dims
        self.mixup = mixup
        self.energy_confusion = energy_confusion
        self.procsim = procsim
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _check_method_params(self):
        check_scalar(self.pos_margin, "pos_margin", numbers.Real, min_val=0)
        check_scalar(self.neg_margin, "neg_margin", numbers.Real, min_val=0)
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
class MultiSimilarityEmbedder(BaseDeepMetricLearner):
    """Deep metric learning with the multi-similarity loss and miner.

    Weighs every pair of a batch by its own similarity and by its relation to
    the other pairs of the same anchor, after mining the informative pairs.

    Parameters
    ----------
    alpha : float, default=15.94
        Scale of the positive-pair term. Default: tuned value of Musgrave et
        al. (2020), the median of the optimal values on CUB200 / Cars196 / SOP
        (17.97, 7.49, 15.94, loss with miner); the paper [1]_ uses 2.

    beta : float, default=75.66
        Scale of the negative-pair term. Default: tuned value of Musgrave et
        al. (2020), the median of the optimal values on CUB200 / Cars196 / SOP
        (75.66, 47.99, 156.61); the paper uses 50.

    base : float, default=0.72
        Similarity offset :math:`\\lambda`. Default: tuned value of Musgrave et
        al. (2020), the median of the optimal values on CUB200 / Cars196 / SOP
        (0.77, 0.63, 0.72); the previous default was 0.5.

    epsilon : float, default=0.39
        Mining margin; ``None`` disables mining. Default: tuned value of
        Musgrave et al. (2020), the median of the optimal values on CUB200 /
        Cars196 / SOP (0.39, 0.72, 0.34); the paper uses 0.1. Without the miner
        their optima were alpha 0.01 / 14.35 / 8.49, beta 50.60 / 75.83 / 57.38
        and base 0.56 / 0.66 / 0.41 (medians 8.49, 57.38, 0.56).

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ContrastiveEmbedder : Plain pair loss.

    Notes
    -----
    With cosine similarities :math:`S`, for each anchor :math:`i` with mined
    positives :math:`P_i` and negatives :math:`N_i`,

    .. math::

        \\ell_i = \\frac{1}{\\alpha} \\log\\Big(1 + \\sum_{k \\in P_i}
        e^{-\\alpha (S_{ik} - \\lambda)}\\Big) + \\frac{1}{\\beta} \\log\\Big(1 +
        \\sum_{k \\in N_i} e^{\\beta (S_{ik} - \\lambda)}\\Big).

    The previous defaults followed the paper as adopted by
    pytorch-metric-learning (alpha=2, beta=50, base=0.5, epsilon=0.1).

    {mlrc_defaults_note}

    References
    ----------
    .. [1] Wang, Han, Huang, Dong and Scott, "Multi-Similarity Loss with
       General Pair Weighting for Deep Metric Learning", CVPR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import MultiSimilarityEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> emb = MultiSimilarityEmbedder(max_iter=5, random_state=0).fit(X / 16, y)
    >>> emb.score(X / 16, y) > 0.5
    True
    """

    def __init__(
        self,
        alpha=15.94,
        beta=75.66,
        base=0.72,
        epsilon=0.39,
        *,
        n_components=64,
        hidden_layer_sizes=(256,),
        backbone=None,
        normalize_embeddings=True,
        nested_dims=None,
        mixup=None,
        energy_confusion=0.0,
        procsim=None,
        max_iter=50,
        batch_size=128,
        samples_per_class=4,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="stratified",
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.alpha = alpha
        self.beta = beta
        self.base = base
        self.epsilon = epsilon
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.backbone = backbone
        self.normalize_embeddings = normalize_embeddings
        self.nested_dims = nested_dims
        self.mixup = mixup
        self.energy_confusion = energy_confusion
        self.procsim = procsim
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _check_method_params(self):
        for name in ("alpha", "beta"):
            check_scalar(
                getattr(self, name),
                name,
                numbers.Real,
                min_val=0,
                include_boundaries="neither",
            )
        check_scalar(self.base, "base", numbers.Real)
        if self.epsilon is not None:
            check_scalar(self.epsilon, "epsilon", numbers.Real, min_val=0)

    def _build_loss(self, n_classes, n_components):
        loss = MultiSimilarityLoss(alpha=self.alpha, beta=self.beta, base=self.base)
        miner = (
            None if self.epsilon is None else MultiSimilarityMiner(epsilon=self.epsilon)
        )
        return loss, miner
