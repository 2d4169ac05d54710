"""Embedders trained against class prototypes of the batch (ProtoTriplet, ICNN)."""

from numbers import Integral, Real

from .._docstrings import fill_doc
from .._param_validation import Interval
from ..losses import (
    CombinedLoss,
    ICNNLoss,
    ProtoTripletLoss,
    PrototypicalLoss,
)
from ._method import MINER_CONSTRAINT, MethodEmbedder


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

    _default_anchor_weight = 0.0  # a softmax over class weights: no anchor

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

    _default_anchor_weight = 0.0  # a softmax over class weights: no anchor

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
