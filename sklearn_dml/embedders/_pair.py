"""Embedders trained with margin losses on the pairs and triplets of a batch."""

from numbers import Real

import torch

from .._docstrings import fill_doc
from .._param_validation import Interval, StrOptions
from .._params import fresh_component
from ..base import BaseDeepMetricLearner
from ..losses import (
    AngularLoss,
    CircleLoss,
    CombinedLoss,
    ContrastiveLoss,
    GeneralizedLiftedStructureLoss,
    MarginLoss,
    MultiSimilarityLoss,
    SignalToNoiseRatioContrastiveLoss,
    TCMRegularizer,
    TripletMarginLoss,
    TupletMarginLoss,
)
from ..miners import (
    BatchHardMiner,
    DistanceWeightedMiner,
    MultiSimilarityMiner,
    TripletMarginMiner,
)
from ._method import LOSS_LEARNING_RATE_CONSTRAINT, MINER_CONSTRAINT, MethodEmbedder


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
        (0.0961, 0.1190, 0.0451); FaceNet [1]_ used 0.2 on squared distances.

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
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = TripletEmbedder(n_components=16, max_iter=5, random_state=0)
    >>> emb.fit(X, y).transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _method_parameters = {
        "margin": 0.0961,
        "mining": "semihard",
    }

    _parameter_constraints = {
        "margin": [Interval(Real, 0, None, closed="left")],
        "mining": [StrOptions({"batch_hard", "semihard", "hard", "all"})],
    }

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
        suit the default backbone, which starts at the normalised PCA map,
        where different-class pairs already lie far apart: a smaller negative
        margin (such as the 0.513 Musgrave et al. (2020) tuned for image
        backbones) would leave most of them unpenalised, and the loss would
        only pull classes together (measurements in :ref:`unseen_classes`).

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
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = ContrastiveEmbedder(max_iter=5, random_state=0).fit(X, y)
    >>> emb.score(X, y) > 0.5
    True
    """

    _method_parameters = {
        "pos_margin": 0.5,
        "neg_margin": 1.2,
    }

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
        (0.77, 0.63, 0.72); the paper uses 0.5.

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

    The paper's values, which pytorch-metric-learning keeps as its
    defaults, are alpha=2, beta=50, base=0.5 and epsilon=0.1.

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
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = MultiSimilarityEmbedder(max_iter=5, random_state=0).fit(X, y)
    >>> emb.score(X, y) > 0.5
    True
    """

    _method_parameters = {
        "alpha": 15.94,
        "beta": 75.66,
        "base": 0.72,
        "epsilon": 0.39,
    }

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "beta": [Interval(Real, 0, None, closed="neither")],
        "base": [Interval(Real, None, None, closed="neither")],
        "epsilon": [None, Interval(Real, 0, None, closed="left")],
    }

    def _build_loss(self, n_classes, n_components):
        loss = MultiSimilarityLoss(alpha=self.alpha, beta=self.beta, base=self.base)
        miner = (
            None if self.epsilon is None else MultiSimilarityMiner(epsilon=self.epsilon)
        )
        return loss, miner


@fill_doc
class CircleEmbedder(MethodEmbedder):
    r"""Deep metric learning with the circle loss.

    Re-weights every positive and negative similarity of a batch by its
    distance from its optimum, so that the pairs far from it get the larger
    gradients, with a circular decision boundary.

    Parameters
    ----------
    m : float, default=0.4
        Relaxation margin: optima at 1 + m (positives) and -m (negatives).

    gamma : float, default=80
        Scale factor of the similarities.

    {miner_param}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    MultiSimilarityEmbedder : Another pair-weighting loss.
    sklearn_dml.losses.CircleLoss : The loss component.

    Notes
    -----
    With cosine similarities :math:`s` of anchor :math:`i` to its positives
    :math:`P_i` and negatives :math:`N_i`,

    .. math::

        L_i = \log\Big(1 + \sum_{p \in P_i} \sum_{n \in N_i}
            e^{\gamma \alpha_n (s_{in} - m) - \gamma \alpha_p (s_{ip} - 1 + m)}\Big),

    with :math:`\alpha_p = [1 + m - s_{ip}]_+` and
    :math:`\alpha_n = [s_{in} + m]_+` held constant in the backward pass.
    The defaults (0.4, 80) are the paper's values for fine-grained retrieval.

    {defaults_note}

    "A Metric Learning Reality Check" (Musgrave, Belongie and Lim, ECCV 2020)
    published no tuned values for this loss, so these defaults stay the
    original paper's.

    References
    ----------
    .. [1] Sun, Y., Cheng, C., Zhang, Y., Zhang, C., Zheng, L., Wang, Z. and
       Wei, Y. "Circle Loss: A Unified Perspective of Pair Similarity
       Optimization", CVPR 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import CircleEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = CircleEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = CircleLoss
    _loss_params = ("m", "gamma")
    _parameter_constraints = {
        "m": [Interval(Real, 0, None, closed="left")],
        "gamma": [Interval(Real, 0, None, closed="neither")],
        "miner": MINER_CONSTRAINT,
    }

    _method_parameters = {
        "m": 0.4,
        "gamma": 80,
        "miner": None,
    }


@fill_doc
class LiftedStructureEmbedder(MethodEmbedder):
    r"""Deep metric learning with the (generalised) lifted structure loss.

    Compares every positive pair with all negatives of the batch through a
    smooth maximum (log-sum-exp), in the generalised form of Hermans et al.

    Parameters
    ----------
    neg_margin : float, default=1.0
        Margin :math:`m_-` the negative distances should exceed.

    pos_margin : float, default=0.0
        Margin :math:`m_+` below which positive distances are not penalised.

    {miner_param}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ContrastiveEmbedder : The pair loss it smooths.
    sklearn_dml.losses.GeneralizedLiftedStructureLoss : The loss component.

    Notes
    -----
    With Euclidean distances :math:`d` of anchor :math:`i` to its positives
    :math:`P_i` and negatives :math:`N_i`,

    .. math::

        L_i = \Big[\log \sum_{p \in P_i} e^{d_{ip} - m_+}
            + \log \sum_{n \in N_i} e^{m_- - d_{in}}\Big]_+,

    averaged over the anchors.

    {defaults_note}

    "A Metric Learning Reality Check" (Musgrave, Belongie and Lim, ECCV 2020)
    published no tuned values for this loss, so these defaults stay the
    original paper's.

    References
    ----------
    .. [1] Oh Song, H., Xiang, Y., Jegelka, S. and Savarese, S. "Deep Metric
       Learning via Lifted Structured Feature Embedding", CVPR 2016.
    .. [2] Hermans, A., Beyer, L. and Leibe, B. "In Defense of the Triplet Loss
       for Person Re-Identification", arXiv:1703.07737, 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import LiftedStructureEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = LiftedStructureEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = GeneralizedLiftedStructureLoss
    _loss_params = ("neg_margin", "pos_margin")
    _parameter_constraints = {
        "neg_margin": [Interval(Real, None, None, closed="both")],
        "pos_margin": [Interval(Real, None, None, closed="both")],
        "miner": MINER_CONSTRAINT,
    }

    _method_parameters = {
        "neg_margin": 1.0,
        "pos_margin": 0.0,
        "miner": None,
    }


@fill_doc
class SNRContrastiveEmbedder(MethodEmbedder):
    r"""Deep metric learning with the signal-to-noise-ratio contrastive loss.

    The contrastive loss on the SNR distance
    (:class:`~sklearn_dml.distances.SNRDistance`): the variance of the
    difference of two embeddings relative to the variance of the first.

    Parameters
    ----------
    pos_margin : float, default=0.3264
        SNR distance below which positive pairs are not penalised. Default:
        tuned value of Musgrave et al. (2020), the median of the optimal values
        on CUB200 / Cars196 / SOP (0.3264, 0.1670, 0.3759);
        pytorch-metric-learning's default is 0.

    neg_margin : float, default=0.9337
        SNR distance beyond which negative pairs are not penalised. Default:
        tuned value of Musgrave et al. (2020), the median of the optimal values
        on CUB200 / Cars196 / SOP (0.8446, 0.9337, 1.0831);
        pytorch-metric-learning's default is 1. Their regulariser weight was
        0.1382, 0, 0 (median 0), so none is added.

    {miner_param}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ContrastiveEmbedder : The same loss on the Euclidean distance.
    sklearn_dml.distances.SNRDistance : The distance.

    Notes
    -----
    With :math:`d(a, b) = \operatorname{Var}(b - a) / \operatorname{Var}(a)`,

    .. math::

        L = \overline{[d_{ap} - m_+]_+} + \overline{[m_- - d_{an}]_+},

    each term averaged over the pairs where it is positive.

    {mlrc_defaults_note}

    References
    ----------
    .. [1] Yuan, T., Deng, W., Tang, J., Tang, Y. and Chen, B. "Signal-to-Noise
       Ratio: A Robust Distance Metric for Deep Metric Learning", CVPR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import SNRContrastiveEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = SNRContrastiveEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = SignalToNoiseRatioContrastiveLoss
    _loss_params = ("pos_margin", "neg_margin")
    _parameter_constraints = {
        "pos_margin": [Interval(Real, 0, None, closed="left")],
        "neg_margin": [Interval(Real, 0, None, closed="left")],
        "miner": MINER_CONSTRAINT,
    }

    _method_parameters = {
        "pos_margin": 0.3264,
        "neg_margin": 0.9337,
        "miner": None,
    }

    def _check_method_params(self):
        if self.neg_margin <= self.pos_margin:
            raise ValueError(
                f"neg_margin ({self.neg_margin}) must be larger than pos_margin "
                f"({self.pos_margin})."
            )


@fill_doc
class MarginEmbedder(MethodEmbedder):
    r"""Deep metric learning with the margin loss and distance-weighted sampling.

    Positive distances should fall below, negative distances above a boundary
    :math:`\beta` (learned by default) by a margin, over pairs drawn with
    distance-weighted sampling.

    Parameters
    ----------
    margin : float, default=0.0878
        Half-width :math:`\alpha` of the band around the boundary. Default:
        tuned value of Musgrave et al. (2020), the median of the optimal values
        on CUB200 / Cars196 / SOP (0.0878, 0.0781, 0.0915); the paper [1]_ uses
        0.2. With ``per_class_beta=True`` their optima were 0.0779, 0.0776,
        0.0518 (median 0.0776).

    nu : float, default=0.0
        Weight :math:`\nu` of the penalty on the learned boundary.

    beta : float, default=1.1072
        Initial (or fixed) boundary :math:`\beta`. Default: tuned value of
        Musgrave et al. (2020), the median of the optimal values on CUB200 /
        Cars196 / SOP (0.7838, 1.3164, 1.1072); the paper uses 1.2. With
        ``per_class_beta=True`` their optima were 0.9796, 0.9598, 0.8424
        (median 0.9598).

    learn_beta : bool, default=True
        Learn :math:`\beta` (stored in ``loss_.betas``).

    per_class_beta : bool, default=False
        Learn one boundary per class (fixes the classes at the first fit).

    miner : "distance_weighted", torch.nn.Module or None, default="distance_weighted"
        Pair selection: the paper's
        :class:`~sklearn_dml.miners.DistanceWeightedMiner` (cutoff 0.5, non-
        zero-loss cutoff 1.4), any miner component, or ``None`` for all pairs.

    {loss_learning_rate_none}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ContrastiveEmbedder : A fixed-margin pair loss.
    sklearn_dml.losses.MarginLoss : The loss component.

    Notes
    -----
    For the pairs of the triplets :math:`(a, p, n)` of a batch,

    .. math::

        L = \frac{1}{D} \sum_{(a, p, n)}
            \big([d_{ap} - \beta + \alpha]_+ + [\beta - d_{an} + \alpha]_+\big)
            + \nu \beta,

    with :math:`D` the number of non-zero terms (a per-class
    :math:`\beta_{y_a}` with ``per_class_beta=True``).

    {mlrc_defaults_note}

    References
    ----------
    .. [1] Wu, C.-Y., Manmatha, R., Smola, A. J. and Krähenbühl, P. "Sampling
       Matters in Deep Embedding Learning", ICCV 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import MarginEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = MarginEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.loss_.betas.shape
    torch.Size([1])
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = MarginLoss
    _loss_params = ("margin", "nu", "beta", "learn_beta", "per_class_beta")
    _parameter_constraints = {
        "margin": [Interval(Real, 0, None, closed="left")],
        "nu": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, None, None, closed="both")],
        "learn_beta": ["boolean"],
        "per_class_beta": ["boolean"],
        "miner": [None, StrOptions({"distance_weighted"}), torch.nn.Module],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _method_parameters = {
        "margin": 0.0878,
        "nu": 0.0,
        "beta": 1.1072,
        "learn_beta": True,
        "per_class_beta": False,
        "miner": "distance_weighted",
        "loss_learning_rate": None,
    }

    def _build_miner(self):
        if isinstance(self.miner, str):
            return DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)
        return None if self.miner is None else fresh_component(self.miner)


@fill_doc
class TupletMarginEmbedder(MethodEmbedder):
    r"""Deep metric learning with the tuplet margin loss.

    A scaled softmax over cosine similarities in which each positive gets an
    angular margin, so that easy positives are not ignored.

    Parameters
    ----------
    margin : float, default=5.73
        Angular margin :math:`\beta` in degrees.

    scale : float, default=64
        Scale :math:`s` of the cosines.

    {miner_param}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    NPairsEmbedder : The same softmax without margin or scale.
    sklearn_dml.losses.TupletMarginLoss : The loss component.

    Notes
    -----
    With :math:`\theta` the angles between embeddings,

    .. math::

        L_{ap} = \log\Big(1 + \sum_{n} e^{s (\cos\theta_{an}
            - \cos(\theta_{ap} - \beta))}\Big),

    averaged over the positive pairs.

    {defaults_note}

    "A Metric Learning Reality Check" (Musgrave, Belongie and Lim, ECCV 2020)
    published no tuned values for this loss, so these defaults stay the
    original paper's.

    References
    ----------
    .. [1] Yu, B. and Tao, D. "Deep Metric Learning with Tuplet Margin Loss",
       ICCV 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import TupletMarginEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = TupletMarginEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = TupletMarginLoss
    _loss_params = ("margin", "scale")
    _parameter_constraints = {
        "margin": [Interval(Real, 0, 90, closed="left")],
        "scale": [Interval(Real, 0, None, closed="neither")],
        "miner": MINER_CONSTRAINT,
    }

    _method_parameters = {
        "margin": 5.73,
        "scale": 64,
        "miner": None,
    }


@fill_doc
class AngularEmbedder(MethodEmbedder):
    r"""Deep metric learning with the angular loss.

    Constrains the angle at the negative of the triangle formed by anchor,
    positive and negative, a scale-invariant form of the triplet loss.

    Parameters
    ----------
    alpha : float, default=40
        Upper bound :math:`\alpha` of the angle, in degrees.

    {miner_param}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    TripletEmbedder : The triplet loss.
    sklearn_dml.losses.AngularLoss : The loss component.

    Notes
    -----
    For a positive pair :math:`(a, p)` and the negatives :math:`n` of the
    batch,

    .. math::

        L_{ap} = \log\Big(1 + \sum_{n} e^{4 \tan^2\alpha\, (x_a + x_p)^\top x_n
            - 2 (1 + \tan^2\alpha)\, x_a^\top x_p}\Big).

    {defaults_note}

    "A Metric Learning Reality Check" (Musgrave, Belongie and Lim, ECCV 2020)
    published no tuned values for this loss, so these defaults stay the
    original paper's.

    References
    ----------
    .. [1] Wang, J., Zhou, F., Wen, S., Liu, X. and Lin, Y. "Deep Metric
       Learning with Angular Loss", ICCV 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import AngularEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = AngularEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = AngularLoss
    _loss_params = ("alpha",)
    _parameter_constraints = {
        "alpha": [Interval(Real, 0, 90, closed="neither")],
        "miner": MINER_CONSTRAINT,
    }

    _method_parameters = {
        "alpha": 40,
        "miner": None,
    }


@fill_doc
class TCMEmbedder(MethodEmbedder):
    r"""Deep metric learning with any base loss plus the TCM regulariser.

    Trains with ``base_loss`` plus the threshold-consistent margin (TCM)
    term, which penalises positive pairs of low and negative pairs of high
    cosine similarity, so that one distance threshold separates same from
    different classes about equally well for every class (lower
    :func:`~sklearn_dml.metrics.opis_loss`).

    Parameters
    ----------
    base_loss : torch.nn.Module or None, default=None
        The loss the TCM term is added to, any loss of
        :mod:`sklearn_dml.losses` (or your own with the same signature);
        ``fit`` trains a clone. ``None`` uses
        :class:`~sklearn_dml.losses.MultiSimilarityLoss` with its defaults.
        A loss with class parameters (proxies) works too: they are created
        and trained as in its own embedder.

    margin_plus : float, default=0.9
        Cosine margin :math:`m_+`: positive pairs with a cosine at or below
        it are penalised. In [-1, 1].

    margin_minus : float, default=0.5
        Cosine margin :math:`m_-`: negative pairs with a cosine at or above
        it are penalised. In [-1, 1].

    lambda_plus : float, default=1.0
        Weight :math:`\lambda_+ \ge 0` of the positive part.

    lambda_minus : float, default=1.0
        Weight :math:`\lambda_- \ge 0` of the negative part. ``lambda_plus``
        and ``lambda_minus`` cannot both be 0.

    {miner_param}
        The mined pairs or triplets go to both the base loss and the TCM
        term.

    {loss_learning_rate_none}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    sklearn_dml.losses.TCMRegularizer : The regulariser alone.
    sklearn_dml.metrics.opis_loss : The threshold inconsistency TCM reduces.

    Notes
    -----
    With :math:`L_{base}` the base loss, :math:`S_{ij}` the cosine
    similarity and :math:`P` (:math:`N`) the positive (negative) pairs of the
    batch,

    .. math::

        L = L_{base}
          + \lambda_+ \frac{\sum_{P} (m_+ - S_{ij})\, \mathbb{1}[S_{ij} \le m_+]}
                          {\sum_{P} \mathbb{1}[S_{ij} \le m_+]}
          + \lambda_- \frac{\sum_{N} (S_{ij} - m_-)\, \mathbb{1}[S_{ij} \ge m_-]}
                          {\sum_{N} \mathbb{1}[S_{ij} \ge m_-]}.

    This is the one obvious way to add TCM to a loss; it trains exactly
    ``DeepMetricEmbedder(loss=CombinedLoss([base_loss,
    TCMRegularizer(margin_plus, margin_minus, lambda_plus, lambda_minus)]))``
    (``loss_`` is that combination), but checks the TCM parameters before
    training and exposes them to ``GridSearchCV``. The margins and weights
    are those of :class:`~sklearn_dml.losses.TCMRegularizer`
    (:math:`m_+ = 0.9`, :math:`m_- = 0.5`, :math:`\lambda_\pm = 1`); the
    default base loss is the package's choice (the paper adds TCM to
    several losses).

    References
    ----------
    .. [1] Zhang, Q., Xu, L., Tang, Q., Fang, J., Wu, Y. N., Tighe, J. and
       Xing, Y. "Threshold-Consistent Margin Loss for Open-World Deep Metric
       Learning", ICLR 2024, arXiv:2307.04047.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import TCMEmbedder
    >>> from sklearn_dml.losses import ContrastiveLoss
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = TCMEmbedder(base_loss=ContrastiveLoss(), n_components=16,
    ...                   max_iter=5, random_state=0).fit(X, y)
    >>> [type(part).__name__ for part in emb.loss_.parts]
    ['ContrastiveLoss', 'TCMRegularizer']
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = TCMRegularizer
    _loss_params = ("margin_plus", "margin_minus", "lambda_plus", "lambda_minus")
    _parameter_constraints = {
        "margin_plus": [Interval(Real, -1, 1, closed="both")],
        "margin_minus": [Interval(Real, -1, 1, closed="both")],
        "lambda_plus": [Interval(Real, 0, None, closed="left")],
        "lambda_minus": [Interval(Real, 0, None, closed="left")],
        "base_loss": [None, torch.nn.Module],
        "miner": MINER_CONSTRAINT,
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _method_parameters = {
        "base_loss": None,
        "margin_plus": 0.9,
        "margin_minus": 0.5,
        "lambda_plus": 1.0,
        "lambda_minus": 1.0,
        "miner": None,
        "loss_learning_rate": None,
    }

    def _check_method_params(self):
        if isinstance(self.base_loss, TCMRegularizer):
            raise ValueError(
                "base_loss is a TCMRegularizer, which TCMEmbedder adds itself; "
                "pass the loss to regularise, e.g. MultiSimilarityLoss()."
            )
        if self.lambda_plus == 0 and self.lambda_minus == 0:
            raise ValueError(
                "lambda_plus and lambda_minus are both 0, so the TCM term vanishes; "
                "give one a positive weight, or train the base loss alone with "
                "DeepMetricEmbedder(loss=base_loss)."
            )

    def _build_loss(self, n_classes, n_components):
        base = (
            MultiSimilarityLoss()
            if self.base_loss is None
            else fresh_component(self.base_loss)
        )
        tcm = TCMRegularizer(**{n: getattr(self, n) for n in self._loss_params})
        return CombinedLoss([base, tcm], weights=[1.0, 1.0]), self._build_miner()
