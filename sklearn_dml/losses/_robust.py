"""Regularisation and robustness components: the energy-confusion term of
ECAML and the ProcSim proxy-based confidence weighting for noisy labels."""

import math

import torch
import torch.nn.functional as F

from .._params import ParamsMixin, is_positive_finite
from .._tuples import check_embeddings_labels, convert_to_pairs
from ._base import BaseMetricLoss, zero_loss
from ._regularizers import not_configured_error, resolve_size

__all__ = ["EnergyConfusionRegularizer", "ProcSimLoss", "ProcSimWeighting"]

# Floor of the energy inside the logarithm: a batch whose negative pairs all
# coincide gives a finite (very negative) term, not -inf.
_ENERGY_FLOOR = 1e-12


class EnergyConfusionRegularizer(ParamsMixin, torch.nn.Module):
    r"""Energy-confusion term of Energy Confused Adversarial Metric Learning.

    The logarithm of the mean "energy" of the pairs of samples from
    different classes. Minimising it *pulls different classes together*: it
    confuses the metric on the seen classes, against the metric loss that
    separates them, so that the embedding cannot rely on the few features
    that separate the training classes most easily [1]_.

    The component has no hyper-parameters; its weight is set where it is
    used (``CombinedLoss`` weights, or the estimators' ``energy_confusion``).

    See Also
    --------
    sklearn_dml.losses.CombinedLoss : Adds it to a metric loss.

    Notes
    -----
    With :math:`N` the pairs :math:`i < j` of the batch with
    :math:`y_i \neq y_j` (or the negative pairs of ``indices_tuple``):

    .. math::

        L_{EC} = \log E, \qquad
        E = \frac{1}{|N|} \sum_{(i,j) \in N} \tfrac{1}{2}
            \lVert f_i - f_j \rVert_2^2

    (0 when the batch has no negative pair; :math:`E` is floored at
    :math:`10^{-12}` inside the logarithm).

    The paper trains the two terms adversarially by letting them act on
    different parameters: the metric loss trains the whole network, the
    energy-confusion term trains only the embedding layer (the "metric"
    :math:`W`), its gradient stopped at the features entering that layer.
    The estimators' ``energy_confusion=lambda`` option does exactly that
    (see the engine); used inside :class:`CombinedLoss`, or on its own, the
    term is a plain regulariser whose gradient reaches every parameter that
    produced the embeddings. The authors' implementation draws a few random
    partners per sample instead of using every pair; this is the exact
    (all-pairs) mean. The authors' released configuration weighs the
    term 0.13, next to a binomial-deviance metric loss.

    References
    ----------
    .. [1] Chen, B. and Deng, W. "Energy Confused Adversarial Metric Learning
       for Zero-Shot Image Retrieval and Clustering", AAAI 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import EnergyConfusionRegularizer
    >>> emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    >>> labels = torch.tensor([0, 1, 1])
    >>> # negative pairs (0, 1) and (0, 2): energies 1 and 1, log(1) = 0
    >>> EnergyConfusionRegularizer()(emb, labels).item()
    0.0
    """

    def __init__(self):
        super().__init__()

    def forward(self, embeddings, labels, indices_tuple=None):
        """Energy-confusion term of one batch.

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the batch.
        labels : torch.Tensor of shape (batch_size,)
            Class index of every embedding.
        indices_tuple : tuple of torch.Tensor, default=None
            Mined pairs or triplets: their negative pairs are used; ``None``
            uses every pair of different classes.

        Returns
        -------
        loss : torch.Tensor of shape ()
            :math:`\\log E` (0 without negative pairs).
        """
        check_embeddings_labels(embeddings, labels)
        if indices_tuple is None:
            neg = labels[:, None] != labels[None, :]
            count = neg.sum() // 2
            if int(count) == 0:
                return zero_loss(embeddings)
            sq = _squared_distances(embeddings)
            energy = 0.25 * torch.where(neg, sq, 0.0).sum() / count
        else:
            _, _, a2, n = convert_to_pairs(indices_tuple, labels)
            if a2.numel() == 0:
                return zero_loss(embeddings)
            diff = embeddings[a2] - embeddings[n]
            energy = 0.5 * (diff * diff).sum(dim=1).mean()
        return torch.log(energy.clamp_min(_ENERGY_FLOOR))


def _squared_distances(x):
    """Pairwise squared Euclidean distances (Gram form, clamped at 0)."""
    sq = (x * x).sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)


@torch.no_grad()
def lambertw(z, n_iter=30):
    """Principal branch :math:`W_0` of the Lambert W function, elementwise.

    Solves :math:`w e^w = z` for :math:`z \\ge -1/e` by Halley's iteration
    (computed in float64, returned in the dtype of ``z``).

    Parameters
    ----------
    z : torch.Tensor
        Arguments, at least :math:`-1/e` (smaller values are clipped to it).
    n_iter : int, default=30
        Halley iterations (cubic convergence: a handful suffice away from the
        branch point).

    Returns
    -------
    w : torch.Tensor
        :math:`W_0(z)`, no gradient.

    Examples
    --------
    >>> import math, torch
    >>> from sklearn_dml.losses._robust import lambertw
    >>> round(lambertw(torch.tensor([math.e]))[0].item(), 6)
    1.0
    """
    x = z.to(torch.float64).clamp_min(-1.0 / math.e)
    # Start near the branch point with its square-root expansion, elsewhere
    # with log(1 + x).
    p = torch.sqrt((2.0 * (math.e * x + 1.0)).clamp_min(0.0))
    w = torch.where(x < -0.25, -1.0 + p - p * p / 3.0, torch.log1p(x.clamp_min(-0.25)))
    for _ in range(n_iter):
        ew = torch.exp(w)
        f = w * ew - x
        wp1 = w + 1.0
        safe = torch.where(wp1.abs() > 1e-12, wp1, torch.full_like(wp1, 1e-12))
        denom = ew * wp1 - (w + 2.0) * f / (2.0 * safe)
        ok = denom.abs() > 1e-300
        w = w - torch.where(ok, f / torch.where(ok, denom, 1.0), 0.0)
    return w.to(z.dtype)


class ProcSimWeighting(ParamsMixin, torch.nn.Module):
    r"""ProcSim confidence of every sample from learned class proxies.

    Each class has a proxy (a learned unit vector). A sample close to its
    own class's proxy and far from the others gets a confidence above 1; a
    sample that sits nearer another class's proxy than its own, as a
    mislabelled one does, gets a confidence below 1 [1]_. The confidences
    weight the samples of a metric loss (see :class:`ProcSimLoss`, or the
    estimators' ``procsim`` option).

    Parameters
    ----------
    threshold : float, default=1.0
        :math:`\tau`: normalised distances above it get a confidence below
        1. With the normalisation below, 1 is the point where a sample is as
        close to another class's proxy as to its own.

    regularization : float, default=0.2
        :math:`\lambda` of the confidence mapping: the smaller, the sharper
        the down-weighting. The default was picked among 0.2, 0.5 and 1 on
        two seeds of the digits label-noise benchmark
        (``benchmarks/newer_robust.py``, 40 % flipped labels).

    proxy_scale : float, default=16.0
        Scale :math:`s` of the softmax of the proxy loss that learns the
        proxies.

    num_classes : int, default=None
        Number of proxies; ``None`` takes it from :meth:`configure`.

    embedding_size : int, default=None
        Proxy dimension; ``None`` takes it from :meth:`configure`.

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, embedding_size)
        The class proxies, created by :meth:`configure` and initialised at
        the first training batch with the (normalised) mean embedding of
        each class present in it.

    See Also
    --------
    ProcSimLoss : A metric loss weighted by these confidences.

    Notes
    -----
    With :math:`\hat f_i` the L2-normalised embedding, :math:`\hat p_c` the
    normalised proxies and :math:`d(u, v) = \lVert u - v \rVert^2`, the
    normalised distance of sample :math:`i` to its class representative is

    .. math::

        \ell_i = \frac{d(\hat f_i, \hat p_{y_i})}
                      {\min_{c \neq y_i} d(\hat f_i, \hat p_c)}

    and its confidence is the closed-form minimiser of the SuperLoss [2]_
    :math:`(\ell_i - \tau)\sigma + \lambda (\log \sigma)^2`:

    .. math::

        \sigma_i = \exp\Big(-W_0\big(\tfrac{1}{2}
            \max(-\tfrac{2}{e}, \beta_i)\big)\Big),
        \qquad \beta_i = \frac{\ell_i - \tau}{\lambda}

    (:math:`W_0` the Lambert W function): 1 at :math:`\ell_i = \tau`,
    decreasing in :math:`\ell_i`, between 0 and :math:`e`. The confidences
    are constants for the backward pass. The proxies are learned by a
    proxy-NCA loss on the *detached* embeddings, weighted by the same
    confidences,

    .. math::

        L_{proxy} = \frac{\sum_i \sigma_i \big(-\log \mathrm{softmax}_c
            (s \langle \hat f_i, \hat p_c \rangle)_{y_i}\big)}{\sum_i \sigma_i},

    so the proxies follow the class geometry without training the backbone
    themselves: ProcSim only re-weights the base loss.

    ProcSim [1]_ gives each sample "a confidence score using the normalized
    distance to its class representative" (a proxy of a proxy-based loss)
    and weights the loss with it, following the SuperLoss. The normalisation
    by the nearest other proxy and the detached proxy loss are this
    library's choices: the authors' code was not available to check them.

    References
    ----------
    .. [1] Barbany, O., Lin, X., Bastan, M. and Dhua, A. "ProcSim:
       Proxy-based Confidence for Robust Similarity Learning", WACV 2024
       (arXiv:2311.00668).
    .. [2] Castells, T., Weinzaepfel, P. and Revaud, J. "SuperLoss: A Generic
       Loss for Robust Curriculum Learning", NeurIPS 2020.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import ProcSimWeighting
    >>> weighting = ProcSimWeighting().configure(num_classes=2, embedding_size=2)
    >>> with torch.no_grad():
    ...     _ = weighting.proxies.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    ...     _ = weighting._initialized.fill_(True)
    >>> emb = torch.tensor([[1.0, 0.1], [0.1, 1.0], [1.0, 0.0]])
    >>> labels = torch.tensor([0, 1, 1])  # the last one sits on proxy 0
    >>> conf = weighting.confidence(emb, labels)
    >>> bool(conf[0] > 1 and conf[1] > 1 and conf[2] < 1)
    True
    """

    def __init__(
        self,
        threshold=1.0,
        regularization=0.2,
        proxy_scale=16.0,
        num_classes=None,
        embedding_size=None,
    ):
        super().__init__()
        self.threshold = threshold
        self.regularization = regularization
        self.proxy_scale = proxy_scale
        self.num_classes = num_classes
        self.embedding_size = embedding_size

    def _check_params(self):
        """Raise ``ValueError`` for invalid hyper-parameters."""
        for name in ("threshold", "regularization", "proxy_scale"):
            value = getattr(self, name)
            if not is_positive_finite(value):
                raise ValueError(
                    f"ProcSimWeighting.{name} must be a positive finite number; "
                    f"got {value!r}."
                )

    def configure(self, num_classes=None, embedding_size=None):
        """Create the class proxies (uninitialised until the first batch).

        Parameters
        ----------
        num_classes : int, default=None
            Number of classes (``None``: the constructor's value).
        embedding_size : int, default=None
            Embedding dimension (``None``: the constructor's value).

        Returns
        -------
        self : ProcSimWeighting
            This component, with ``proxies``.
        """
        self._check_params()
        c = resolve_size(self.num_classes, num_classes, "num_classes")
        d = resolve_size(self.embedding_size, embedding_size, "embedding_size")
        self.proxies = torch.nn.Parameter(F.normalize(torch.randn(c, d), dim=1))
        self.register_buffer("_initialized", torch.tensor(False), persistent=True)
        return self

    def _proxies(self):
        proxies = getattr(self, "proxies", None)
        if proxies is None:
            raise not_configured_error(self, "proxies")
        return proxies

    @torch.no_grad()
    def _initialize(self, embeddings, labels):
        """Proxies of the classes in the batch := their normalised mean embedding."""
        proxies = self._proxies()
        emb = F.normalize(embeddings.detach().to(proxies.dtype), dim=1)
        sums = torch.zeros_like(proxies).index_add_(0, labels, emb)
        present = torch.bincount(labels, minlength=proxies.shape[0]) > 0
        means = F.normalize(sums, dim=1)
        proxies.copy_(torch.where(present[:, None], means, proxies))
        self._initialized.fill_(True)

    def _check_labels(self, labels):
        n_proxies = self._proxies().shape[0]
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_proxies):
            raise ValueError(
                f"labels must lie in [0, {n_proxies}) (one proxy per class); got "
                f"values in [{int(labels.min())}, {int(labels.max())}]."
            )

    def normalized_distance(self, embeddings, labels):
        r"""The normalised distances :math:`\ell_i` (no gradient).

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the batch.
        labels : torch.Tensor of shape (batch_size,)
            Class index of every embedding.

        Returns
        -------
        ell : torch.Tensor of shape (batch_size,)
            Distance to the own proxy over the distance to the nearest other
            proxy.
        """
        check_embeddings_labels(embeddings, labels)
        self._check_labels(labels)
        proxies = self._proxies()
        if proxies.shape[0] < 2:
            raise ValueError("ProcSimWeighting needs at least 2 classes.")
        with torch.no_grad():
            emb = F.normalize(embeddings.detach().to(proxies.dtype), dim=1)
            prox = F.normalize(proxies.detach(), dim=1)
            d = (2.0 - 2.0 * emb @ prox.T).clamp_min(0.0)
            own = d.gather(1, labels[:, None])[:, 0]
            others = d.scatter(1, labels[:, None], float("inf")).min(dim=1).values
            return own / others.clamp_min(1e-12)

    def confidence(self, embeddings, labels):
        r"""Confidence :math:`\sigma_i` of every sample (no gradient).

        During training, the first call initialises the proxies from the
        batch (see ``proxies``).

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the batch.
        labels : torch.Tensor of shape (batch_size,)
            Class index of every embedding.

        Returns
        -------
        sigma : torch.Tensor of shape (batch_size,)
            Confidences in :math:`(0, e]`, in the embeddings' dtype.
        """
        check_embeddings_labels(embeddings, labels)
        self._check_labels(labels)
        if self.training and not bool(self._initialized):
            self._initialize(embeddings, labels)
        ell = self.normalized_distance(embeddings, labels).to(torch.float64)
        beta = (ell - self.threshold) / self.regularization
        sigma = torch.exp(-lambertw(0.5 * beta.clamp_min(-2.0 / math.e)))
        return sigma.to(embeddings.dtype)

    def proxy_loss(self, embeddings, labels, sample_weight=None):
        """The (weighted) proxy-NCA loss that learns the proxies.

        The embeddings are detached: only the proxies receive its gradient.

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the batch.
        labels : torch.Tensor of shape (batch_size,)
            Class index of every embedding.
        sample_weight : torch.Tensor of shape (batch_size,), default=None
            Weights of the samples (the confidences); ``None`` is uniform.

        Returns
        -------
        loss : torch.Tensor of shape ()
            Weighted mean cross-entropy over the proxies.
        """
        proxies = self._proxies()
        emb = F.normalize(embeddings.detach().to(proxies.dtype), dim=1)
        logits = self.proxy_scale * emb @ F.normalize(proxies, dim=1).T
        ce = F.cross_entropy(logits, labels, reduction="none")
        if sample_weight is None:
            return ce.mean().to(embeddings.dtype)
        w = sample_weight.detach().to(ce.dtype)
        total = w.sum()
        if not bool(total > 0):
            return (ce.sum() * 0.0).to(embeddings.dtype)
        return ((w * ce).sum() / total).to(embeddings.dtype)

    def forward(self, embeddings, labels, indices_tuple=None):
        """The proxy loss weighted by the confidences (a loss component).

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the batch.
        labels : torch.Tensor of shape (batch_size,)
            Class index of every embedding.
        indices_tuple : tuple of torch.Tensor, default=None
            Ignored (the proxies see every sample).

        Returns
        -------
        loss : torch.Tensor of shape ()
            ``proxy_loss(embeddings, labels, confidence(embeddings, labels))``.
        """
        return self.proxy_loss(embeddings, labels, self.confidence(embeddings, labels))


class ProcSimLoss(BaseMetricLoss):
    r"""A metric loss weighted sample by sample with ProcSim confidences.

    Parameters
    ----------
    loss : BaseMetricLoss
        The base loss; it must accept ``sample_weight`` (``ContrastiveLoss``,
        ``MultiSimilarityLoss``, ``TripletMarginLoss``).

    weighting : ProcSimWeighting, default=None
        The confidence model; ``None`` uses ``ProcSimWeighting()``.

    Attributes
    ----------
    loss_ : BaseMetricLoss
        The configured base loss (a copy of ``loss``), created by
        :meth:`configure`.
    weighting_ : ProcSimWeighting
        The configured confidence model (a copy of ``weighting``).

    See Also
    --------
    ProcSimWeighting : The confidences and the proxies.

    Notes
    -----
    With confidences :math:`\sigma` from :class:`ProcSimWeighting` (treated
    as constants):

    .. math::

        L = L_{base}(f, y; \sigma) + L_{proxy}(f, y; \sigma)

    where :math:`L_{base}(\cdot; \sigma)` is the base loss with
    ``sample_weight=sigma`` (each loss documents how the weights of a pair
    or triplet combine) and :math:`L_{proxy}` only trains the proxies. This
    is what the estimators' ``procsim`` option trains.

    References
    ----------
    .. [1] Barbany, O., Lin, X., Bastan, M. and Dhua, A. "ProcSim:
       Proxy-based Confidence for Robust Similarity Learning", WACV 2024.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import MultiSimilarityLoss, ProcSimLoss
    >>> loss = ProcSimLoss(MultiSimilarityLoss()).configure(2, 3)
    >>> emb = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    >>> labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    >>> loss(emb, labels).shape
    torch.Size([])
    """

    def __init__(self, loss, weighting=None):
        super().__init__()
        self.loss = loss
        self.weighting = weighting

    def configure(self, num_classes=None, embedding_size=None):
        """Copy and configure the base loss and the weighting.

        Parameters
        ----------
        num_classes : int, default=None
            Number of classes.
        embedding_size : int, default=None
            Embedding dimension.

        Returns
        -------
        self : ProcSimLoss
            This loss, with ``loss_`` and ``weighting_``.
        """
        import copy

        check_procsim_base_loss(self.loss)
        base = copy.deepcopy(self.loss)
        if hasattr(base, "configure"):
            base.configure(num_classes, embedding_size)
        weighting = ProcSimWeighting() if self.weighting is None else self.weighting
        if not isinstance(weighting, ProcSimWeighting):
            raise TypeError(
                "ProcSimLoss.weighting must be a ProcSimWeighting or None; got "
                f"{type(weighting).__name__}."
            )
        weighting = copy.deepcopy(weighting).configure(num_classes, embedding_size)
        self.loss_ = base
        self.weighting_ = weighting
        return self

    def forward(self, embeddings, labels, indices_tuple=None, sample_weight=None):
        """Confidence-weighted base loss plus the proxy loss.

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the batch.
        labels : torch.Tensor of shape (batch_size,)
            Class index of every embedding.
        indices_tuple : tuple of torch.Tensor, default=None
            Mined pairs or triplets, passed to the base loss.
        sample_weight : None
            Not supported (the confidences are the weights).

        Returns
        -------
        loss : torch.Tensor of shape ()
            The objective.
        """
        if sample_weight is not None:
            raise TypeError("ProcSimLoss computes its own sample weights.")
        if not hasattr(self, "weighting_"):
            raise not_configured_error(self, "configured parts")
        check_embeddings_labels(embeddings, labels)
        sigma = self.weighting_.confidence(embeddings, labels)
        base = self.loss_(embeddings, labels, indices_tuple, sample_weight=sigma)
        return base + self.weighting_.proxy_loss(embeddings, labels, sigma)


def check_procsim_base_loss(loss):
    """Raise ``ValueError`` unless ``loss`` has the sample-weight hook."""
    if not getattr(loss, "supports_sample_weight", False):
        raise ValueError(
            f"procsim needs a base loss that accepts per-sample weights; "
            f"{type(loss).__name__} does not. Use ContrastiveLoss, "
            "MultiSimilarityLoss or TripletMarginLoss (ContrastiveEmbedder, "
            "MultiSimilarityEmbedder, TripletEmbedder or DeepMetricEmbedder with "
            "one of them), or set procsim=None."
        )
