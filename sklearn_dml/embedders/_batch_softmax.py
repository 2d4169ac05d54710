"""Embedders trained with a softmax over the other samples of the batch (N-pairs, NT-
Xent, SupCon, NCA).
"""

from numbers import Real

from .._docstrings import fill_doc
from .._param_validation import Interval
from ..losses import (
    NCALoss,
    NPairsLoss,
    NTXentLoss,
    SupConLoss,
)
from ._method import MINER_CONSTRAINT, MethodEmbedder


@fill_doc
class NPairsEmbedder(MethodEmbedder):
    r"""Deep metric learning with the N-pairs loss.

    Each anchor must pick its positive among all samples of other classes in
    the batch: a softmax cross-entropy over dot-product similarities.

    Parameters
    ----------
    {miner_param}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    NTXentEmbedder : The same softmax with a temperature.
    sklearn_dml.losses.NPairsLoss : The loss component.

    Notes
    -----
    With similarities :math:`s` of anchor :math:`a` to its positive :math:`p`
    and to the negatives :math:`n` of the batch,

    .. math::

        L_{ap} = \log\Big(1 + \sum_{n} e^{s_{an} - s_{ap}}\Big),

    averaged over the (anchor, positive) pairs. The method has no
    hyper-parameter.

    The default backbone's anchoring weight (``anchor_weight=None``) is 3,
    not the package's 10: without a temperature the loss's logits are
    cosines in [-1, 1], so its gradients are weak and a weight of 10 holds
    the embedding near its PCA start.

    {defaults_note}

    "A Metric Learning Reality Check" (Musgrave, Belongie and Lim, ECCV 2020)
    published no tuned values for this loss, so these defaults stay the
    original paper's.

    References
    ----------
    .. [1] Sohn, K. "Improved Deep Metric Learning with Multi-class N-pair
       Loss Objective", NIPS 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import NPairsEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = NPairsEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = NPairsLoss
    _loss_params = ()
    _parameter_constraints = {"miner": MINER_CONSTRAINT}

    # Unit-temperature logits give weak gradients: a lighter anchor.
    _default_anchor_weight = 3.0

    _method_parameters = {
        "miner": None,
    }


@fill_doc
class NTXentEmbedder(MethodEmbedder):
    r"""Deep metric learning with the NT-Xent (InfoNCE) loss.

    Normalised temperature-scaled cross-entropy: every positive pair competes
    with the anchor's negatives in a softmax over cosine similarities.

    Parameters
    ----------
    temperature : float, default=0.0091
        Temperature :math:`\tau` dividing the similarities. Default: tuned
        value of Musgrave et al. (2020), the median of the optimal values on
        CUB200 / Cars196 / SOP (0.0091, 0.0219, 0.0002);
        pytorch-metric-learning's default is 0.07.

    {miner_param}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    SupConEmbedder : All positives of an anchor in one term.
    sklearn_dml.losses.NTXentLoss : The loss component.

    Notes
    -----
    For a positive pair :math:`(a, p)` with negatives :math:`N_a` and cosine
    similarities :math:`s`,

    .. math::

        L_{ap} = -\log \frac{e^{s_{ap} / \tau}}
            {e^{s_{ap} / \tau} + \sum_{n \in N_a} e^{s_{an} / \tau}},

    averaged over the positive pairs.

    {mlrc_defaults_note}

    References
    ----------
    .. [1] Chen, T., Kornblith, S., Norouzi, M. and Hinton, G. "A Simple
       Framework for Contrastive Learning of Visual Representations",
       ICML 2020.
    .. [2] van den Oord, A., Li, Y. and Vinyals, O. "Representation Learning
       with Contrastive Predictive Coding", arXiv:1807.03748, 2018.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import NTXentEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = NTXentEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = NTXentLoss
    _loss_params = ("temperature",)
    _parameter_constraints = {
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "miner": MINER_CONSTRAINT,
    }

    _method_parameters = {
        "temperature": 0.0091,
        "miner": None,
    }


@fill_doc
class SupConEmbedder(MethodEmbedder):
    r"""Deep metric learning with the supervised contrastive loss.

    Each anchor's positives are pulled together against all other samples of
    the batch in a temperature-scaled softmax.

    Parameters
    ----------
    temperature : float, default=0.2
        Temperature :math:`\tau` dividing the similarities. Khosla et al.
        use 0.1 (:class:`~sklearn_dml.losses.SupConLoss`'s default); with
        the anchored, PCA-initialised default backbone the softer 0.2
        retrieves unseen classes better (measurements in
        :ref:`unseen_classes`).

    {miner_param}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    NTXentEmbedder : One softmax per positive pair.
    sklearn_dml.losses.SupConLoss : The loss component.

    Notes
    -----
    For anchor :math:`i` with positives :math:`P_i` and cosine similarities
    :math:`s`,

    .. math::

        L_i = -\frac{1}{|P_i|} \sum_{p \in P_i}
            \log \frac{e^{s_{ip} / \tau}}{\sum_{k \neq i} e^{s_{ik} / \tau}},

    averaged over the anchors with a positive.

    {defaults_note}

    "A Metric Learning Reality Check" (Musgrave, Belongie and Lim, ECCV 2020)
    published no tuned values for this loss, so these defaults stay the
    original paper's.

    References
    ----------
    .. [1] Khosla, P., Teterwak, P., Wang, C., Sarna, A., Tian, Y., Isola, P.,
       Maschinot, A., Liu, C. and Krishnan, D. "Supervised Contrastive
       Learning", NeurIPS 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import SupConEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = SupConEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = SupConLoss
    _loss_params = ("temperature",)
    _parameter_constraints = {
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "miner": MINER_CONSTRAINT,
    }

    _method_parameters = {
        "temperature": 0.2,
        "miner": None,
    }


@fill_doc
class NCAEmbedder(MethodEmbedder):
    r"""Deep metric learning with the neighbourhood components analysis loss.

    Every sample of a batch picks a neighbour among the others with a softmax
    over their distances; the loss is minus the log-probability of picking one
    of its class. A deep, mini-batch version of scikit-learn's
    :class:`~sklearn.neighbors.NeighborhoodComponentsAnalysis`.

    Parameters
    ----------
    softmax_scale : float, default=1
        Inverse temperature :math:`s` of the softmax.

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ProxyNCAEmbedder : The softmax over class proxies.
    sklearn.neighbors.NeighborhoodComponentsAnalysis : Linear, full-batch NCA.

    Notes
    -----
    With :math:`P_i` the other samples of :math:`i`'s class and squared
    distances :math:`d`,

    .. math::

        L = -\frac{1}{n} \sum_i \log \frac{\sum_{j \in P_i} e^{-s\, d_{ij}}}
            {\sum_{k \neq i} e^{-s\, d_{ik}}}.

    {defaults_note}

    "A Metric Learning Reality Check" (Musgrave, Belongie and Lim, ECCV 2020)
    published no tuned values for this loss, so these defaults stay the
    original paper's.

    References
    ----------
    .. [1] Goldberger, J., Roweis, S., Hinton, G. and Salakhutdinov, R.
       "Neighbourhood Components Analysis", NIPS 2004.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import NCAEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = NCAEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = NCALoss
    _loss_params = ("softmax_scale",)
    _parameter_constraints = {
        "softmax_scale": [Interval(Real, 0, None, closed="neither")],
    }

    _method_parameters = {
        "softmax_scale": 1,
    }
