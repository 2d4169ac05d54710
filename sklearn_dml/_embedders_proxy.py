"""Embedders trained with a proxy or classification loss (learnable class
parameters) and with the NCA loss."""

from ._docstrings import fill_doc
from ._embedders import MLRC_NOTE  # noqa: F401 (registers the note)
from ._embedders_common import MethodEmbedder, check_param
from .losses import (
    ArcFaceLoss,
    CosFaceLoss,
    LargeMarginSoftmaxLoss,
    NCALoss,
    NormalizedSoftmaxLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    SoftTripleLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
)

__all__ = [
    "ProxyNCAEmbedder",
    "ProxyAnchorEmbedder",
    "NormalizedSoftmaxEmbedder",
    "CosFaceEmbedder",
    "ArcFaceEmbedder",
    "SubCenterArcFaceEmbedder",
    "LargeMarginSoftmaxEmbedder",
    "SoftTripleEmbedder",
    "NCAEmbedder",
]


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
        Cars196 / SOP (13.98, 7.97, 10.73); the paper [1]_ has no scale (1, the
        previous default).

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
    _loss_params = {
        "softmax_scale": ("real", 0, None, "neither"),
    }

    # A softmax over class weights or prototypes: the default backbone's
    # anchor costs much closed-set quality for little unseen-class gain here
    # (measured on digits; see the backbone parameter).
    _default_anchor_weight = 0.0

    def __init__(
        self,
        softmax_scale=10.73,
        loss_learning_rate=1e-2,
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
        self.softmax_scale = softmax_scale
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
    _loss_params = {
        "margin": ("real", 0, None, "left"),
        "alpha": ("real", 0, None, "neither"),
    }

    def __init__(
        self,
        margin=0.1,
        alpha=32,
        loss_learning_rate=1e-2,
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
        self.alpha = alpha
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
    _loss_params = {
        "temperature": ("real", 0, None, "neither"),
    }

    # A softmax over class weights or prototypes: the default backbone's
    # anchor costs much closed-set quality for little unseen-class gain here
    # (measured on digits; see the backbone parameter).
    _default_anchor_weight = 0.0

    def __init__(
        self,
        temperature=0.0886,
        loss_learning_rate=1e-2,
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
        self.temperature = temperature
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
    _loss_params = {
        "margin": ("real", 0, None, "left"),
        "scale": ("real", 0, None, "neither"),
    }

    # A softmax over class weights or prototypes: the default backbone's
    # anchor costs much closed-set quality for little unseen-class gain here
    # (measured on digits; see the backbone parameter).
    _default_anchor_weight = 0.0

    def __init__(
        self,
        margin=0.4324,
        scale=100,
        loss_learning_rate=1e-2,
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
        self.scale = scale
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
    _loss_params = {
        "margin": ("real", 0, 90, "both"),
        "scale": ("real", 0, None, "neither"),
    }

    # A softmax over class weights or prototypes: the default backbone's
    # anchor costs much closed-set quality for little unseen-class gain here
    # (measured on digits; see the backbone parameter).
    _default_anchor_weight = 0.0

    def __init__(
        self,
        margin=20.52,
        scale=100,
        loss_learning_rate=1e-2,
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
        self.scale = scale
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
    _loss_params = {
        "margin": ("real", 0, 90, "both"),
        "scale": ("real", 0, None, "neither"),
        "sub_centers": ("int", 1),
    }

    # A softmax over class weights or prototypes: the default backbone's
    # anchor costs much closed-set quality for little unseen-class gain here
    # (measured on digits; see the backbone parameter).
    _default_anchor_weight = 0.0

    def __init__(
        self,
        margin=28.6,
        scale=64,
        sub_centers=3,
        loss_learning_rate=1e-2,
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
        self.scale = scale
        self.sub_centers = sub_centers
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
    _loss_params = {
        "margin": ("int", 1),
        "scale": ("real", 0, None, "neither"),
    }

    def __init__(
        self,
        margin=4,
        scale=1,
        normalize_weights=False,
        loss_learning_rate=1e-2,
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
        self.scale = scale
        self.normalize_weights = normalize_weights
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

    def _check_extra(self):
        check_param(self, "normalize_weights", ("bool",))

    def _build_loss(self, n_classes, n_components):
        cls = SphereFaceLoss if self.normalize_weights else LargeMarginSoftmaxLoss
        return cls(margin=self.margin, scale=self.scale), None


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
    _loss_params = {
        "centers_per_class": ("int", 1),
        "la": ("real", 0, None, "neither"),
        "gamma": ("real", 0, None, "neither"),
        "margin": ("real", 0, None, "left"),
        "tau": ("real", 0, None, "left"),
    }

    # A softmax over class weights or prototypes: the default backbone's
    # anchor costs much closed-set quality for little unseen-class gain here
    # (measured on digits; see the backbone parameter).
    _default_anchor_weight = 0.0

    def __init__(
        self,
        centers_per_class=10,
        la=78.02,
        gamma=47.9,
        margin=0.3588,
        tau=0.0,
        loss_learning_rate=1e-2,
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
        self.centers_per_class = centers_per_class
        self.la = la
        self.gamma = gamma
        self.margin = margin
        self.tau = tau
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
    _loss_params = {
        "softmax_scale": ("real", 0, None, "neither"),
    }

    def __init__(
        self,
        softmax_scale=1,
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
        self.softmax_scale = softmax_scale
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
