"""Embedders trained as classifiers with normalised class weights (normalised softmax,
CosFace, ArcFace, large-margin softmax, equiangular basis).
"""

from numbers import Integral, Real

from .._docstrings import fill_doc
from .._param_validation import Interval
from ..losses import (
    ArcFaceLoss,
    CosFaceLoss,
    EquiangularBasisLoss,
    LargeMarginSoftmaxLoss,
    NormalizedSoftmaxLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
)
from ._method import LOSS_LEARNING_RATE_CONSTRAINT, MethodEmbedder


@fill_doc
class NormalizedSoftmaxEmbedder(MethodEmbedder):
    r"""Deep metric learning with the normalized softmax loss.

    A classification loss on cosine similarities to normalised class weights,
    divided by a temperature.

    Parameters
    ----------
    temperature : float, default=0.0886
        Temperature :math:`T` dividing the logits. Default: tuned value of
        Musgrave et al. (2020), the median of the optimal values on CUB200 /
        Cars196 / SOP (0.1087, 0.0886, 0.0630); the paper [1]_ uses 0.05.

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    CosFaceEmbedder : The same logits with a margin.
    sklearn_dml.losses.NormalizedSoftmaxLoss : The loss component.

    Notes
    -----
    With :math:`\hat W_c` the normalised weight of class :math:`c`,

    .. math::

        L = -\frac{1}{n} \sum_i \log \frac{e^{\cos(x_i, \hat W_{y_i}) / T}}
            {\sum_c e^{\cos(x_i, \hat W_c) / T}}.

    The loss's parameters (``loss_.proxies``) are created for the classes of
    ``y`` at the first fit and trained with the network in their own optimizer
    group (learning rate ``loss_learning_rate``); they are pickled, cloned
    (unconfigured) and moved to ``device`` with the estimator. The classes are
    then fixed: ``partial_fit`` needs every class on its first call
    (``classes=``), and a warm start on new classes raises an error.

    {mlrc_defaults_note}

    References
    ----------
    .. [1] Zhai, A. and Wu, H.-Y. "Classification is a Strong Baseline for
       Deep Metric Learning", BMVC 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import NormalizedSoftmaxEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = NormalizedSoftmaxEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> tuple(emb.loss_.proxies.shape)
    (10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = NormalizedSoftmaxLoss
    _loss_params = ("temperature",)
    _parameter_constraints = {
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _default_anchor_weight = 0.0  # a softmax over class weights: no anchor

    _method_parameters = {
        "temperature": 0.0886,
        "loss_learning_rate": 1e-2,
    }


@fill_doc
class CosFaceEmbedder(MethodEmbedder):
    r"""Deep metric learning with CosFace (large margin cosine loss).

    A scaled softmax over cosines to normalised class weights, with an
    additive margin subtracted from the target cosine.

    Parameters
    ----------
    margin : float, default=0.4324
        Margin :math:`m` subtracted from the target cosine. Default: tuned
        value of Musgrave et al. (2020), the median of the optimal values on
        CUB200 / Cars196 / SOP (0.6182, 0.4324, 0.3364); the paper [1]_ uses
        0.35.

    scale : float, default=100
        Scale :math:`s` of the logits. Default: tuned value of Musgrave et al.
        (2020), the median of the optimal values on CUB200 / Cars196 / SOP
        (100.0, 161.5, 100.0); the paper uses 64.

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ArcFaceEmbedder : The margin on the angle.
    sklearn_dml.losses.CosFaceLoss : The loss component.

    Notes
    -----
    .. math::

        L = -\frac{1}{n} \sum_i \log \frac{e^{s (\cos\theta_{iy_i} - m)}}
            {e^{s (\cos\theta_{iy_i} - m)} + \sum_{c \neq y_i} e^{s \cos\theta_{ic}}}

    The loss's parameters (``loss_.proxies``) are created for the classes of
    ``y`` at the first fit and trained with the network in their own optimizer
    group (learning rate ``loss_learning_rate``); they are pickled, cloned
    (unconfigured) and moved to ``device`` with the estimator. The classes are
    then fixed: ``partial_fit`` needs every class on its first call
    (``classes=``), and a warm start on new classes raises an error.

    {mlrc_defaults_note}

    References
    ----------
    .. [1] Wang, H., Wang, Y., Zhou, Z., Ji, X., Gong, D., Zhou, J., Li, Z.
       and Liu, W. "CosFace: Large Margin Cosine Loss for Deep Face
       Recognition", CVPR 2018.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import CosFaceEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = CosFaceEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> tuple(emb.loss_.proxies.shape)
    (10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = CosFaceLoss
    _loss_params = ("margin", "scale")
    _parameter_constraints = {
        "margin": [Interval(Real, 0, None, closed="left")],
        "scale": [Interval(Real, 0, None, closed="neither")],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _default_anchor_weight = 0.0  # a softmax over class weights: no anchor

    _method_parameters = {
        "margin": 0.4324,
        "scale": 100,
        "loss_learning_rate": 1e-2,
    }


@fill_doc
class ArcFaceEmbedder(MethodEmbedder):
    r"""Deep metric learning with ArcFace (additive angular margin loss).

    A scaled softmax over cosines to normalised class weights, with an
    additive margin on the angle to the target class.

    Parameters
    ----------
    margin : float, default=20.52
        Angular margin :math:`m` in degrees, as in pytorch-metric-learning,
        which the tuning used (20.52 degrees is 0.358 rad). Default: tuned
        value of Musgrave et al. (2020), the median of the optimal values on
        CUB200 / Cars196 / SOP (23.22, 20.52, 18.63 degrees); the paper [1]_
        uses 0.5 rad (28.6 degrees).

    scale : float, default=100
        Scale :math:`s` of the logits. Default: tuned value of Musgrave et al.
        (2020), the median of the optimal values on CUB200 / Cars196 / SOP
        (100.0, 49.50, 220.3); the paper uses 64.

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    SubCenterArcFaceEmbedder : Several weights per class.
    sklearn_dml.losses.ArcFaceLoss : The loss component.

    Notes
    -----
    .. math::

        L = -\frac{1}{n} \sum_i \log \frac{e^{s \cos(\theta_{iy_i} + m)}}
            {e^{s \cos(\theta_{iy_i} + m)} + \sum_{c \neq y_i} e^{s \cos\theta_{ic}}}

    The loss's parameters (``loss_.proxies``) are created for the classes of
    ``y`` at the first fit and trained with the network in their own optimizer
    group (learning rate ``loss_learning_rate``); they are pickled, cloned
    (unconfigured) and moved to ``device`` with the estimator. The classes are
    then fixed: ``partial_fit`` needs every class on its first call
    (``classes=``), and a warm start on new classes raises an error.

    {mlrc_defaults_note}

    References
    ----------
    .. [1] Deng, J., Guo, J., Xue, N. and Zafeiriou, S. "ArcFace: Additive
       Angular Margin Loss for Deep Face Recognition", CVPR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import ArcFaceEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = ArcFaceEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> tuple(emb.loss_.proxies.shape)
    (10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = ArcFaceLoss
    _loss_params = ("margin", "scale")
    _parameter_constraints = {
        "margin": [Interval(Real, 0, 90, closed="both")],
        "scale": [Interval(Real, 0, None, closed="neither")],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _default_anchor_weight = 0.0  # a softmax over class weights: no anchor

    _method_parameters = {
        "margin": 20.52,
        "scale": 100,
        "loss_learning_rate": 1e-2,
    }


@fill_doc
class SubCenterArcFaceEmbedder(MethodEmbedder):
    r"""Deep metric learning with sub-center ArcFace.

    ArcFace with several weight vectors (sub-centres) per class; a sample is
    compared with the closest sub-centre of each class, which tolerates noisy
    or multi-modal classes.

    Parameters
    ----------
    margin : float, default=28.6
        Angular margin :math:`m` in degrees.

    scale : float, default=64
        Scale :math:`s` of the logits.

    sub_centers : int, default=3
        Number :math:`K` of sub-centres per class.

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ArcFaceEmbedder : One weight per class.
    sklearn_dml.losses.SubCenterArcFaceLoss : The loss component.

    Notes
    -----
    With :math:`\cos\theta_{ic} = \max_k \cos(x_i, W_{ck})`,

    .. math::

        L = -\frac{1}{n} \sum_i \log \frac{e^{s \cos(\theta_{iy_i} + m)}}
            {e^{s \cos(\theta_{iy_i} + m)} + \sum_{c \neq y_i} e^{s \cos\theta_{ic}}}

    The loss's parameters (``loss_.proxies``) are created for the classes of
    ``y`` at the first fit and trained with the network in their own optimizer
    group (learning rate ``loss_learning_rate``); they are pickled, cloned
    (unconfigured) and moved to ``device`` with the estimator. The classes are
    then fixed: ``partial_fit`` needs every class on its first call
    (``classes=``), and a warm start on new classes raises an error.

    {defaults_note}

    "A Metric Learning Reality Check" (Musgrave, Belongie and Lim, ECCV 2020)
    published no tuned values for this loss, so these defaults stay the
    original paper's. Its tuned ArcFace values are not carried over: the
    sub-centres change the loss.

    References
    ----------
    .. [1] Deng, J., Guo, J., Liu, T., Gong, M. and Zafeiriou, S. "Sub-center
       ArcFace: Boosting Face Recognition by Large-Scale Noisy Web Faces",
       ECCV 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import SubCenterArcFaceEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = SubCenterArcFaceEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> tuple(emb.loss_.proxies.shape)
    (10, 3, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = SubCenterArcFaceLoss
    _loss_params = ("margin", "scale", "sub_centers")
    _parameter_constraints = {
        "margin": [Interval(Real, 0, 90, closed="both")],
        "scale": [Interval(Real, 0, None, closed="neither")],
        "sub_centers": [Interval(Integral, 1, None, closed="left")],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _default_anchor_weight = 0.0  # a softmax over class weights: no anchor

    _method_parameters = {
        "margin": 28.6,
        "scale": 64,
        "sub_centers": 3,
        "loss_learning_rate": 1e-2,
    }


@fill_doc
class LargeMarginSoftmaxEmbedder(MethodEmbedder):
    r"""Deep metric learning with the large-margin softmax (L-Softmax) or SphereFace.

    A softmax whose target logit uses :math:`\cos(m\theta)`, a multiplicative
    angular margin. With ``normalize_weights=True`` the class weights are
    normalised: SphereFace (A-Softmax).

    Parameters
    ----------
    margin : int, default=4
        Integer angle multiplier :math:`m`.

    scale : float, default=1
        Extra factor :math:`s` on every logit.

    normalize_weights : bool, default=False
        Normalise the class weights (SphereFace).

    {loss_learning_rate_proxy}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    ArcFaceEmbedder : An additive angular margin.
    sklearn_dml.losses.LargeMarginSoftmaxLoss : The loss component.
    sklearn_dml.losses.SphereFaceLoss : The normalised variant.

    Notes
    -----
    With :math:`\psi(\theta) = (-1)^k \cos(m\theta) - 2k` for
    :math:`\theta \in [k\pi/m, (k+1)\pi/m]`,

    .. math::

        L = -\frac{1}{n} \sum_i \log
            \frac{e^{s \|W_{y_i}\| \|x_i\| \psi(\theta_{iy_i})}}
            {e^{s \|W_{y_i}\| \|x_i\| \psi(\theta_{iy_i})}
            + \sum_{c \neq y_i} e^{s \|W_c\| \|x_i\| \cos\theta_{ic}}},

    with :math:`\|W_c\| = 1` for SphereFace.

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
    .. [1] Liu, W., Wen, Y., Yu, Z. and Yang, M. "Large-Margin Softmax Loss
       for Convolutional Neural Networks", ICML 2016.
    .. [2] Liu, W., Wen, Y., Yu, Z., Li, M., Raj, B. and Song, L. "SphereFace:
       Deep Hypersphere Embedding for Face Recognition", CVPR 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import LargeMarginSoftmaxEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = LargeMarginSoftmaxEmbedder(n_components=16, max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:2]).shape
    (2, 16)
    >>> tuple(emb.loss_.proxies.shape)
    (10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = LargeMarginSoftmaxLoss
    _loss_params = ("margin", "scale")
    _parameter_constraints = {
        "margin": [Interval(Integral, 1, None, closed="left")],
        "scale": [Interval(Real, 0, None, closed="neither")],
        "normalize_weights": ["boolean"],
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    _method_parameters = {
        "margin": 4,
        "scale": 1,
        "normalize_weights": False,
        "loss_learning_rate": 1e-2,
    }

    def _build_loss(self, n_classes, n_components):
        cls = SphereFaceLoss if self.normalize_weights else LargeMarginSoftmaxLoss
        return cls(margin=self.margin, scale=self.scale), None


@fill_doc
class EquiangularBasisEmbedder(MethodEmbedder):
    r"""Deep metric learning with equiangular basis vectors (EBV).

    A softmax over the scaled cosines between an embedding and one fixed
    unit vector per class, the class vectors being generated once to be as
    close to orthogonal as the dimension allows. Nothing per class is
    learned, so the trained parameters do not grow with the classes.

    Parameters
    ----------
    temperature : float, default=0.07
        Temperature :math:`\tau > 0` dividing the cosines.

    max_cosine : float, default=0.05
        Target :math:`\alpha` of the generation: the largest allowed
        :math:`|\cos|` between two class vectors, in [0, 1). Below what
        ``n_components`` allows (the Welch bound when there are more classes
        than dimensions) the generation returns the best it found, which
        can be far above the bound: keep ``n_components`` at least the
        number of classes (10 classes in 8 dimensions reach 0.75, the
        bound being 0.17), and check ``loss_.max_cosine_reached_``.

    basis_max_iter : int, default=1000
        Maximum number of gradient steps of the generation.

    basis_learning_rate : float, default=0.01
        Step size of the generation.

    basis_random_state : int or None, default=0
        Seed of the class vectors; ``None`` draws from the global torch
        random state (not reproducible).

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    NormalizedSoftmaxEmbedder : The same softmax with learned class vectors.
    sklearn_dml.losses.EquiangularBasisLoss : The loss component.

    Notes
    -----
    With class vectors :math:`W_c` (unit norm, pairwise
    :math:`|\cos| \le \alpha` where possible, ``loss_.basis_vectors``),

    .. math::

        L = -\frac{1}{n} \sum_{i} \log
            \frac{e^{\cos(x_i, W_{y_i}) / \tau}}{\sum_{c} e^{\cos(x_i, W_c) / \tau}}.

    The vectors are generated at the first fit for the classes of ``y``
    (``loss_.max_cosine_reached_`` reports the largest :math:`|\cos|`
    reached); the classes are then fixed: ``partial_fit`` needs every class
    on its first call (``classes=``), and a warm start on new classes raises
    an error. The temperature is the paper's 0.07; the paper generates with
    :math:`\alpha = 0.002` in as many dimensions as classes, which small
    embeddings cannot reach, hence the looser default 0.05.

    References
    ----------
    .. [1] Shen, Y., Sun, X. and Wei, X.-S. "Equiangular Basis Vectors", CVPR
       2023.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import EquiangularBasisEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = EquiangularBasisEmbedder(n_components=16, max_iter=5, random_state=0)
    >>> emb = emb.fit(X, y)
    >>> tuple(emb.loss_.basis_vectors.shape)
    (10, 16)
    >>> emb.score(X, y) > 0.5
    True
    """

    _loss_class = EquiangularBasisLoss
    _loss_params = (
        "temperature",
        "max_cosine",
        "basis_max_iter",
        "basis_learning_rate",
    )
    _parameter_constraints = {
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "max_cosine": [Interval(Real, 0, 1, closed="left")],
        "basis_max_iter": [Interval(Integral, 0, None, closed="left")],
        "basis_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "basis_random_state": [None, Interval(Integral, 0, 2**32 - 1, closed="both")],
    }

    _default_anchor_weight = 0.0  # a softmax over class weights: no anchor

    _method_parameters = {
        "temperature": 0.07,
        "max_cosine": 0.05,
        "basis_max_iter": 1000,
        "basis_learning_rate": 0.01,
        "basis_random_state": 0,
    }

    def _build_loss(self, n_classes, n_components):
        loss = EquiangularBasisLoss(
            temperature=self.temperature,
            max_cosine=self.max_cosine,
            max_iter=self.basis_max_iter,
            learning_rate=self.basis_learning_rate,
            random_state=self.basis_random_state,
        )
        return loss, None

    def _fixed_classes(self):
        # One fixed vector per class (a buffer, not a parameter).
        return getattr(self, "loss_", None) is not None
