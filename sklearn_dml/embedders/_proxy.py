"""Embedders trained against learned class proxies (Proxy-NCA, Proxy-Anchor,
SoftTriple, mean-field losses).
"""

from numbers import Integral, Real

from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval
from ..losses import (
    MeanFieldClassWiseMultiSimilarityLoss,
    MeanFieldContrastiveLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    SoftTripleLoss,
)
from ._method import LOSS_LEARNING_RATE_CONSTRAINT, MethodEmbedder

register_doc(
    "mean_field_embedder_note",
    """
    The mean fields (``loss_.proxies``) are created for the classes of
    ``y`` at the first fit and trained with the network in their own optimizer
    group (learning rate ``loss_learning_rate``, ten times the network's by
    default, the package's choice for every class parameter); they are
    pickled, cloned (unconfigured) and moved to ``device`` with the
    estimator. The classes are then fixed: ``partial_fit`` needs every class
    on its first call (``classes=``), and a warm start on new classes raises
    an error.
    """,
)


@fill_doc
class ProxyNCAEmbedder(MethodEmbedder):
    r"""Deep metric learning with the Proxy-NCA loss.

    Every sample picks its class's learnable proxy in a softmax over its
    distances to all proxies.

    Parameters
    ----------
    softmax_scale : float, default=10.73
        Inverse temperature :math:`s` of the softmax. Default: tuned value of
        Musgrave et al. (2020), the median of the optimal values on CUB200 /
        Cars196 / SOP (13.98, 7.97, 10.73); the paper [1]_ has no scale (a scale of 1).

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    NCAEmbedder : The softmax over samples.
    sklearn_dml.losses.ProxyNCALoss : The loss component.

    Notes
    -----
    With proxies :math:`p_c` and squared distances :math:`d`,

    .. math::

        L = -\frac{1}{n} \sum_i \log \frac{e^{-s\, d(x_i, p_{y_i})}}
            {\sum_c e^{-s\, d(x_i, p_c)}}.

    The loss's parameters (``loss_.proxies``) are created for the classes of
    ``y`` at the first fit and trained with the network in their own optimizer
    group (learning rate ``loss_learning_rate``); they are pickled, cloned
    (unconfigured) and moved to ``device`` with the estimator. The classes are
    then fixed: ``partial_fit`` needs every class on its first call
    (``classes=``), and a warm start on new classes raises an error.

    {mlrc_defaults_note}

    References
    ----------
    .. [1] Movshovitz-Attias, Y., Toshev, A., Leung, T. K., Ioffe, S. and
       Singh, S. "No Fuss Distance Metric Learning using Proxies", ICCV 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import ProxyNCAEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = ProxyNCAEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> tuple(emb.loss_.proxies.shape)
    (10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = ProxyNCALoss
    _loss_params = ("softmax_scale",)
    _parameter_constraints = {
        "softmax_scale": [Interval(Real, 0, None, closed="neither")],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _default_anchor_weight = 0.0  # a softmax over class weights: no anchor

    _method_parameters = {
        "softmax_scale": 10.73,
        "loss_learning_rate": 1e-2,
    }


@fill_doc
class ProxyAnchorEmbedder(MethodEmbedder):
    r"""Deep metric learning with the Proxy-Anchor loss.

    Each learnable class proxy acts as an anchor pulling the samples of its
    class and pushing all others, weighted by their hardness.

    Parameters
    ----------
    margin : float, default=0.1
        Margin :math:`\delta` on the cosine similarity.

    alpha : float, default=32
        Scale :math:`\alpha`.

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ProxyNCAEmbedder : Softmax of each sample over the proxies.
    sklearn_dml.losses.ProxyAnchorLoss : The loss component.

    Notes
    -----
    With :math:`P^+` the proxies of the classes in the batch, :math:`X_p^+`
    and :math:`X_p^-` the samples of and not of proxy :math:`p`'s class,

    .. math::

        L = \frac{1}{|P^+|} \sum_{p \in P^+}
            \log\Big(1 + \sum_{x \in X_p^+} e^{-\alpha (s(x, p) - \delta)}\Big)
          + \frac{1}{|P|} \sum_{p \in P}
            \log\Big(1 + \sum_{x \in X_p^-} e^{\alpha (s(x, p) + \delta)}\Big).

    The loss's parameters (``loss_.proxies``) are created for the classes of
    ``y`` at the first fit and trained with the network in their own optimizer
    group (learning rate ``loss_learning_rate``); they are pickled, cloned
    (unconfigured) and moved to ``device`` with the estimator. The classes are
    then fixed: ``partial_fit`` needs every class on its first call
    (``classes=``), and a warm start on new classes raises an error.

    {defaults_note}

    "A Metric Learning Reality Check" (Musgrave, Belongie and Lim, ECCV 2020)
    published no tuned values for this loss, so these defaults stay the
    original paper's.

    References
    ----------
    .. [1] Kim, S., Kim, D., Cho, M. and Kwak, S. "Proxy Anchor Loss for Deep
       Metric Learning", CVPR 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import ProxyAnchorEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = ProxyAnchorEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> tuple(emb.loss_.proxies.shape)
    (10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = ProxyAnchorLoss
    _loss_params = ("margin", "alpha")
    _parameter_constraints = {
        "margin": [Interval(Real, 0, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _method_parameters = {
        "margin": 0.1,
        "alpha": 32,
        "loss_learning_rate": 1e-2,
    }


@fill_doc
class SoftTripleEmbedder(MethodEmbedder):
    r"""Deep metric learning with the SoftTriple loss.

    A softmax over classes that each hold several learnable centres,
    combined by a soft maximum.

    Parameters
    ----------
    centers_per_class : int, default=10
        Number :math:`K` of centres per class.

    la : float, default=78.02
        Scale :math:`\lambda` of the class logits. Default: tuned value of
        Musgrave et al. (2020), the median of the optimal values on CUB200 /
        Cars196 / SOP (78.02, 17.69, 100.00); the paper [1]_ uses 20.

    gamma : float, default=47.9
        Temperature :math:`\gamma` combining a class's centres. Default: tuned
        value of Musgrave et al. (2020), the median of the optimal values on
        CUB200 / Cars196 / SOP (58.95, 19.18, 47.90; pytorch-metric-learning's
        ``gamma`` argument is this temperature, as ours); the paper uses 0.1.
        So large a temperature averages a class's centres almost uniformly.

    margin : float, default=0.3588
        Margin :math:`\delta` on the target similarity. Default: tuned value of
        Musgrave et al. (2020), the median of the optimal values on CUB200 /
        Cars196 / SOP (0.4307, 0.3588, 0.3145); the paper uses 0.01.

    tau : float, default=0.0
        Weight of the regulariser merging similar centres (paper: 0.2).
        Musgrave et al. (2020) tuned it to 0.3754 on CUB200 and 0.0669 on
        Cars196 and left it out on SOP; the default keeps it off, as
        pytorch-metric-learning.

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    SubCenterArcFaceEmbedder : Several centres, hard maximum.
    sklearn_dml.losses.SoftTripleLoss : The loss component.

    Notes
    -----
    With :math:`S_{ick}` the cosine to centre :math:`k` of class :math:`c`
    and :math:`\mathcal{S}_{ic} = \sum_k \mathrm{softmax}_k(S_{ick} / \gamma)
    S_{ick}`,

    .. math::

        L = -\frac{1}{n} \sum_i \log
            \frac{e^{\lambda (\mathcal{S}_{iy_i} - \delta)}}
            {e^{\lambda (\mathcal{S}_{iy_i} - \delta)}
            + \sum_{c \neq y_i} e^{\lambda \mathcal{S}_{ic}}}

    (plus :math:`\tau` times the centre-merging regulariser).

    The loss's parameters (``loss_.proxies``) are created for the classes of
    ``y`` at the first fit and trained with the network in their own optimizer
    group (learning rate ``loss_learning_rate``); they are pickled, cloned
    (unconfigured) and moved to ``device`` with the estimator. The classes are
    then fixed: ``partial_fit`` needs every class on its first call
    (``classes=``), and a warm start on new classes raises an error.

    {mlrc_defaults_note}

    References
    ----------
    .. [1] Qian, Q., Shang, L., Sun, B., Hu, J., Li, H. and Jin, R.
       "SoftTriple Loss: Deep Metric Learning Without Triplet Sampling",
       ICCV 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import SoftTripleEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = SoftTripleEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> tuple(emb.loss_.proxies.shape)
    (10, 10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = SoftTripleLoss
    _loss_params = ("centers_per_class", "la", "gamma", "margin", "tau")
    _parameter_constraints = {
        "centers_per_class": [Interval(Integral, 1, None, closed="left")],
        "la": [Interval(Real, 0, None, closed="neither")],
        "gamma": [Interval(Real, 0, None, closed="neither")],
        "margin": [Interval(Real, 0, None, closed="left")],
        "tau": [Interval(Real, 0, None, closed="left")],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _default_anchor_weight = 0.0  # a softmax over class weights: no anchor

    _method_parameters = {
        "centers_per_class": 10,
        "la": 78.02,
        "gamma": 47.9,
        "margin": 0.3588,
        "tau": 0.0,
        "loss_learning_rate": 1e-2,
    }


@fill_doc
class MeanFieldContrastiveEmbedder(MethodEmbedder):
    r"""Deep metric learning with the mean-field contrastive loss.

    The contrastive loss with every partner of a pair replaced by a
    learnable "mean field" of its class: each sample is pulled towards its
    class's mean field and pushed away from the others', at a cost linear in
    the batch size.

    Parameters
    ----------
    pos_margin : float, default=0.02
        Margin :math:`m_+` on the distance :math:`1 - \cos` to the sample's
        own mean field. Must be below ``neg_margin``.

    neg_margin : float, default=0.3
        Margin :math:`m_-` on the distance to the other mean fields (and
        between mean fields in the regulariser).

    mf_reg : float, default=0.0
        Weight :math:`\lambda_{MF}` of the regulariser keeping mean fields of
        different classes apart (0 leaves it out).

    mf_power : float, default=2
        Power :math:`p` of the regulariser's hinge.

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ContrastiveEmbedder : The pair loss it is derived from.
    MeanFieldClassWiseMultiSimilarityEmbedder : The multi-similarity analogue.
    sklearn_dml.losses.MeanFieldContrastiveLoss : The loss component.

    Notes
    -----
    With :math:`d_{ic} = 1 - \cos(x_i, \Psi_c)` the distance of sample
    :math:`i` to mean field :math:`\Psi_c` and :math:`D_{cc'}` the same
    between mean fields,

    .. math::

        L = \frac{1}{n} \sum_i \Big( [d_{iy_i} - m_+]_+
              + \sum_{c \neq y_i} [m_- - d_{ic}]_+ \Big)
          + \frac{\lambda_{MF}}{C} \sum_{c} \sum_{c' \neq c}
              [m_- - D_{cc'}]_+^{p}.

    {mean_field_embedder_note}

    The defaults are those of the paper's code for the contrastive loss
    (:math:`m_+ = 0.02`, :math:`m_- = 0.3`, no regulariser); the shared
    training defaults (Adam, learning rate 1e-3, batches of 128 with 4
    samples per class) are the package's. Its own anchoring weight (what
    ``anchor_weight=None`` uses and ``"auto"`` weighs against a free
    network) is 3, lighter than the package's 10: the hinges stop pulling
    once a sample is within the margins, and a heavier anchor keeps the
    embedding near its start.

    References
    ----------
    .. [1] Furusawa, T. "Mean Field Theory in Deep Metric Learning", ICLR
       2024, arXiv:2306.15368.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import MeanFieldContrastiveEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = MeanFieldContrastiveEmbedder(n_components=16, max_iter=5, random_state=0)
    >>> emb = emb.fit(X, y)
    >>> tuple(emb.loss_.proxies.shape)
    (10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = MeanFieldContrastiveLoss
    _loss_params = ("pos_margin", "neg_margin", "mf_reg", "mf_power")

    # The hinges stop pulling once a sample is within the margins of the
    # mean fields, so the package's anchor (10) held the embedding near its
    # start (closed-set digits 0.72); 3 lets the loss act (0.88) and kept
    # unseen-class MAP@R on the transfer checks of
    # ``benchmarks/zoo_defaults.py`` (results/zoo_defaults.md).
    _default_anchor_weight = 3.0
    _parameter_constraints = {
        "pos_margin": [Interval(Real, 0, None, closed="left")],
        "neg_margin": [Interval(Real, 0, None, closed="neither")],
        "mf_reg": [Interval(Real, 0, None, closed="left")],
        "mf_power": [Interval(Real, 0, None, closed="neither")],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _method_parameters = {
        "pos_margin": 0.02,
        "neg_margin": 0.3,
        "mf_reg": 0.0,
        "mf_power": 2,
        "loss_learning_rate": 1e-2,
    }

    def _check_method_params(self):
        if self.pos_margin >= self.neg_margin:
            raise ValueError(
                f"pos_margin ({self.pos_margin!r}) must be smaller than neg_margin "
                f"({self.neg_margin!r}): a sample is pulled within pos_margin of its "
                "own mean field and pushed beyond neg_margin of the others."
            )


@fill_doc
class MeanFieldClassWiseMultiSimilarityEmbedder(MethodEmbedder):
    r"""Deep metric learning with the mean-field class-wise multi-similarity loss.

    The class-wise multi-similarity loss with every class's samples replaced,
    as partners, by a learnable mean field of the class.

    Parameters
    ----------
    alpha : float, default=0.01
        Scale :math:`\alpha > 0` of the positive exponents.

    beta : float, default=80
        Scale :math:`\beta > 0` of the negative exponents.

    base : float, default=0.8
        Similarity offset :math:`\lambda`, in [-1, 1].

    mf_reg : float, default=0.0
        Weight :math:`\lambda_{MF}` of the mean-field regulariser.

    mf_power : float, default=2
        Power :math:`p` of the regulariser.

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    MultiSimilarityEmbedder : The pair loss it descends from.
    MeanFieldContrastiveEmbedder : The contrastive analogue.
    sklearn_dml.losses.MeanFieldClassWiseMultiSimilarityLoss : The loss
        component (its Notes give the regulariser).

    Notes
    -----
    With :math:`s_{ic} = \cos(x_i, \Psi_c)`, :math:`B` the classes of the
    batch and :math:`n_c` the number of samples of class :math:`c`,

    .. math::

        P_c = \frac{1}{n_c} \sum_{y_i = c} e^{-\alpha (s_{ic} - \lambda)},
        \qquad
        N_{cc'} = \frac{1}{n_c} \sum_{y_i = c} e^{\beta (s_{ic'} - \lambda)},

    .. math::

        L = \frac{1}{\alpha |B|} \sum_{c \in B} \log(1 + P_c)
          + \frac{1}{\beta |B|} \sum_{\{c, c'\},\, c \neq c'}
              \log(1 + N_{cc'} + N_{c'c}) + \lambda_{MF} R_{MF}.

    {mean_field_embedder_note}

    The defaults are the paper's setting for every benchmark
    (:math:`\alpha = 0.01`, :math:`\beta = 80`, :math:`\lambda = 0.8`, no
    regulariser); the shared training defaults are the package's.

    References
    ----------
    .. [1] Furusawa, T. "Mean Field Theory in Deep Metric Learning", ICLR
       2024, arXiv:2306.15368.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import MeanFieldClassWiseMultiSimilarityEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = MeanFieldClassWiseMultiSimilarityEmbedder(
    ...     n_components=16, max_iter=5, random_state=0
    ... ).fit(X, y)
    >>> tuple(emb.loss_.proxies.shape)
    (10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = MeanFieldClassWiseMultiSimilarityLoss
    _loss_params = ("alpha", "beta", "base", "mf_reg", "mf_power")
    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "beta": [Interval(Real, 0, None, closed="neither")],
        "base": [Interval(Real, -1, 1, closed="both")],
        "mf_reg": [Interval(Real, 0, None, closed="left")],
        "mf_power": [Interval(Real, 0, None, closed="neither")],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _method_parameters = {
        "alpha": 0.01,
        "beta": 80,
        "base": 0.8,
        "mf_reg": 0.0,
        "mf_power": 2,
        "loss_learning_rate": 1e-2,
    }
