"""Embedders trained against class prototypes of the batch (ProtoTriplet, ICNN,
angular prototypical)."""

from numbers import Integral, Real

from .._docstrings import fill_doc
from .._param_validation import Interval
from ..losses import (
    AngularPrototypicalLoss,
    CombinedLoss,
    ICNNLoss,
    ProtoTripletLoss,
    PrototypicalLoss,
)
from ._method import LOSS_LEARNING_RATE_CONSTRAINT, MINER_CONSTRAINT, MethodEmbedder


@fill_doc
class ProtoTripletEmbedder(MethodEmbedder):
    r"""Deep metric learning with the Proto-Triplet loss.

    A triplet loss whose positive is the prototype (mean embedding) of the
    anchor's class and whose negatives are the prototypes of the other
    classes of the batch, as in prototypical few-shot learning.

    Parameters
    ----------
    margin : float, default=0.05
        Required gap :math:`m \ge 0` between the distance to a negative
        prototype and to the positive one.

    {miner_param}
        Only the anchors of the mined tuples are used; the prototypes use
        the whole batch.

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    TripletEmbedder : Triplets of samples.
    ICNNEmbedder : The other loss of the same paper.
    sklearn_dml.losses.ProtoTripletLoss : The loss component.

    Notes
    -----
    With :math:`\mu_c` the mean embedding of class :math:`c` in the batch,
    :math:`\mu_i^+` that of the other samples of :math:`i`'s class and
    :math:`T` the (anchor, other class) pairs,

    .. math::

        L = \frac{1}{|T|} \sum_{(i, c) \in T}
            [d(x_i, \mu_i^+) - d(x_i, \mu_c) + m]_+.

    :math:`d` is the Euclidean distance of L2-normalised embeddings. The
    paper's margin was not at hand: the default is that of
    :class:`TripletEmbedder`, so the two compare at equal margin. The
    component's Notes list the other choices.

    References
    ----------
    .. [1] Mendez-Ruiz, M. et al. "SuSana Distancia is all you need:
       Enforcing class separability in metric learning via two novel
       distance-based loss functions for few-shot image classification",
       2023, arXiv:2305.09062.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import ProtoTripletEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = ProtoTripletEmbedder(n_components=16, max_iter=5, random_state=0)
    >>> emb.fit(X, y).transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = ProtoTripletLoss
    _loss_params = ("margin",)
    _parameter_constraints = {
        "margin": [Interval(Real, 0, None, closed="left")],
        "miner": MINER_CONSTRAINT,
    }

    _default_anchor_weight = 0.0  # trained on the batch's class prototypes: no anchor

    _method_parameters = {
        "margin": 0.05,
        "miner": None,
    }


@fill_doc
class ICNNEmbedder(MethodEmbedder):
    r"""Deep metric learning with the ICNN loss (and the prototypical loss).

    Minimises minus the log of the inter- and intra-class nearest
    neighbours (ICNN) score of each batch (neighbourhoods of one class,
    same-class neighbours close and other-class neighbours far) plus, as the
    paper trains it, the cross-entropy of a prototypical network.

    Parameters
    ----------
    n_neighbors : int, default=4
        Number :math:`k \ge 1` of nearest neighbours scored per sample (the
        authors' default); at most ``batch_size - 1`` are used.

    prototypical_weight : float, default=1.0
        Weight :math:`w \ge 0` of the prototypical cross-entropy
        (:class:`~sklearn_dml.losses.PrototypicalLoss`) added to the ICNN
        loss. ``0`` trains the ICNN loss alone, a weak training signal on
        its own (the score's neighbour purity part has no gradient).

    temperature : float, default=0.1
        Temperature :math:`T > 0` of the prototypical softmax.

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ProtoTripletEmbedder : The other loss of the same paper.
    sklearn_dml.losses.ICNNLoss : The loss component (formula in its Notes).
    sklearn_dml.losses.PrototypicalLoss : The cross-entropy added to it.
    sklearn_dml.metrics.icnn_score : The score on a whole dataset.

    Notes
    -----
    With :math:`\Lambda^+` the intra-class compactness, :math:`\Lambda^-`
    the inter-class spread and :math:`\gamma` the share of same-class
    neighbours among the :math:`k` nearest (defined in
    :class:`~sklearn_dml.losses.ICNNLoss`),

    and :math:`L_{proto}` the prototypical cross-entropy over the classes
    of the batch (squared distances to the class means divided by :math:`T`),

    .. math::

        L = -\log \frac{1}{2}\Big(\frac{\Lambda^+ + \Lambda^-}{2} + \gamma\Big)
            + w\, L_{proto}.

    ``loss_`` is ``CombinedLoss([ICNNLoss(n_neighbors),
    PrototypicalLoss(temperature)], [1, w])`` (``ICNNLoss`` alone when
    :math:`w = 0`). The authors train the ICNN loss with the cross-entropy
    of their prototypical network, in equal weights, hence :math:`w = 1`;
    :math:`T = 0.1` is the package's choice for L2-normalised embeddings
    (the paper's embeddings are not normalised). Distances are Euclidean
    between L2-normalised embeddings. The loss uses every sample of a
    batch, so the embedder takes no miner.

    References
    ----------
    .. [1] Mendez-Ruiz, M. et al. "SuSana Distancia is all you need:
       Enforcing class separability in metric learning via two novel
       distance-based loss functions for few-shot image classification",
       2023, arXiv:2305.09062.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import ICNNEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = ICNNEmbedder(n_components=16, max_iter=5, random_state=0)
    >>> emb.fit(X, y).transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = ICNNLoss
    _loss_params = ("n_neighbors",)
    _parameter_constraints = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "prototypical_weight": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    _default_anchor_weight = 0.0  # trained on the batch's class prototypes: no anchor

    _method_parameters = {
        "n_neighbors": 4,
        "prototypical_weight": 1.0,
        "temperature": 0.1,
    }

    def _build_loss(self, n_classes, n_components):
        icnn = ICNNLoss(n_neighbors=self.n_neighbors)
        if self.prototypical_weight == 0:
            return icnn, None
        proto = PrototypicalLoss(temperature=self.temperature)
        weights = [1.0, float(self.prototypical_weight)]
        return CombinedLoss([icnn, proto], weights=weights), None


@fill_doc
class AngularPrototypicalEmbedder(MethodEmbedder):
    r"""Deep metric learning with the angular prototypical loss.

    In each batch, one sample of every class is a query and the mean of the
    class's other samples its prototype; each query is classified among the
    prototypes of the batch by a softmax over learned-scale cosines. Meant
    for many classes with few samples each (open-set problems such as
    speaker or face verification).

    Parameters
    ----------
    init_scale : float, default=10.0
        Initial value of the learned scale :math:`w > 0` of the cosines (the
        authors' implementation's).

    init_bias : float, default=-5.0
        Initial value of the learned bias :math:`b` (the authors'
        implementation's; it cancels in the softmax, see Notes).

    {loss_learning_rate_none}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ProtoTripletEmbedder : A hinge against the prototypes of the batch.
    NormalizedSoftmaxEmbedder : Scaled cosines to learned class weights.
    sklearn_dml.losses.AngularPrototypicalLoss : The loss component.
    sklearn_dml.metrics.few_shot_accuracy : Few-shot evaluation on unseen
        classes.

    Notes
    -----
    With :math:`q_j` the query and :math:`c_j` the prototype of class
    :math:`j` among the :math:`N` classes of the batch with at least two
    samples, and :math:`S_{jk} = w \cos(q_j, c_k) + b`,

    .. math::

        L = -\frac{1}{N} \sum_{j=1}^{N}
            \log \frac{e^{S_{jj}}}{\sum_{k=1}^{N} e^{S_{jk}}}.

    The bias shifts all logits of a query alike and so never changes the
    loss; it is kept as in the paper. Every batch must hold at least two
    samples of a class (``samples_per_class >= 2``, checked by ``fit``):
    the paper trains with two (one query, one support sample), the package's
    default of 4 gives three-sample prototypes. The classes of a batch are
    the classes of the softmax: ``batch_size // samples_per_class`` of them.
    The loss uses every sample of a batch, so the embedder takes no miner.
    The default backbone is not anchored (``anchor_weight=None`` means 0),
    as for the other softmax losses over class weights or prototypes.

    References
    ----------
    .. [1] J. S. Chung, J. Huh, S. Mun, M. Lee, H. S. Heo, S. Choe, C. Ham,
       S. Jung, B.-J. Lee and I. Han, "In defence of metric learning for
       speaker recognition", Interspeech 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import AngularPrototypicalEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = AngularPrototypicalEmbedder(n_components=16, max_iter=5, random_state=0)
    >>> emb.fit(X, y).transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = AngularPrototypicalLoss
    _loss_params = ("init_scale", "init_bias")
    _parameter_constraints = {
        "init_scale": [Interval(Real, 0, None, closed="neither")],
        "init_bias": [Interval(Real, None, None, closed="neither")],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _default_anchor_weight = 0.0  # a softmax over prototypes: no anchor

    _method_parameters = {
        "init_scale": 10.0,
        "init_bias": -5.0,
        "loss_learning_rate": None,
    }

    def _check_method_params(self):
        if self.samples_per_class < 2:
            raise ValueError(
                "AngularPrototypicalEmbedder needs at least 2 samples of a class "
                "in every batch (a query and a prototype); got "
                f"samples_per_class={self.samples_per_class}. Set "
                "samples_per_class >= 2."
            )
