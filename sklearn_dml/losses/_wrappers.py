"""Losses built from other losses: weighted sums, nested dimensions (Matryoshka),
ProcSim confidence weighting.
"""

import copy
import math
import numbers
from numbers import Real

import torch
import torch.nn.functional as F

from .._param_validation import Interval, InvalidParameterError, TupleOf
from .._params import ParamsMixin
from .._tuples import check_embeddings_labels
from ._base import (
    POSITIVE_INT,
    SIZE_CONSTRAINT,
    BaseMetricLoss,
    not_configured_error,
    resolve_size,
)

_POSITIVE_REAL = Interval(Real, 0, None, closed="neither")
_NON_NEGATIVE_REAL = Interval(Real, 0, None, closed="left")


class _ListOfModules:
    """Parameter constraint: a non-empty list (or tuple) of ``torch.nn.Module``."""

    def is_satisfied_by(self, value):
        return (
            isinstance(value, (list, tuple))
            and len(value) > 0
            and all(isinstance(part, torch.nn.Module) for part in value)
        )

    def __str__(self):
        return "a non-empty list of torch.nn.Module losses"


class _Weights(TupleOf):
    """Parameter constraint: a list (or tuple) of non-negative finite numbers."""

    def __init__(self):
        super().__init__(_NON_NEGATIVE_REAL)

    def __str__(self):
        return "a list of non-negative finite numbers"


class _SampleWeightLoss:
    """Parameter constraint: a loss module with the sample-weight hook."""

    def is_satisfied_by(self, value):
        return isinstance(value, torch.nn.Module) and bool(
            getattr(value, "supports_sample_weight", False)
        )

    def __str__(self):
        return (
            "a loss that accepts per-sample weights (supports_sample_weight=True: "
            "ContrastiveLoss, MultiSimilarityLoss or TripletMarginLoss)"
        )


class CombinedLoss(BaseMetricLoss):
    r"""Weighted sum of several losses on the same batch.

    Combines any losses with the common ``forward(embeddings, labels,
    indices_tuple)`` signature, typically a metric loss and a regulariser
    such as :class:`~sklearn_dml.losses.CenterLoss`. :meth:`configure` is
    passed on to every part, so learnable parameters of any part (proxies,
    centres, boundaries) are created, trained, moved and saved with the
    combination.

    Parameters
    ----------
    losses : list of torch.nn.Module
        The parts. ``fit`` of an estimator trains a clone, so the objects
        passed in stay untouched.

    weights : list of float, default=None
        One non-negative weight per part; ``None`` gives every part weight 1.

    Attributes
    ----------
    parts : torch.nn.ModuleList
        The parts of ``losses`` registered as sub-modules, created by
        :meth:`configure`; their parameters are the combination's
        parameters.

    See Also
    --------
    sklearn_dml.losses.CenterLoss : The regulariser usually combined.
    sklearn_dml.DeepMetricEmbedder : Trains any loss, a combined one too.

    Notes
    -----
    With parts :math:`L_k` and weights :math:`w_k`:

    .. math::

        L(x, y) = \sum_{k} w_k L_k(x, y).

    A mined ``indices_tuple`` is given to every part unchanged. The parts
    are registered as sub-modules (so that ``parameters()``, ``.to(device)``
    and ``state_dict`` see them) by :meth:`configure`, which estimators
    call before training; call it yourself in a hand-written loop.

    References
    ----------
    .. [1] Wen, Y., Zhang, K., Li, Z. and Qiao, Y. "A Discriminative Feature
       Learning Approach for Deep Face Recognition", ECCV 2016 (the metric
       loss plus :math:`\lambda` times center loss).

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import CenterLoss, CombinedLoss, ContrastiveLoss
    >>> loss = CombinedLoss([ContrastiveLoss(), CenterLoss()], weights=[1.0, 0.01])
    >>> loss = loss.configure(num_classes=2, embedding_size=3)
    >>> [tuple(p.shape) for p in loss.parameters()]
    [(2, 3)]
    >>> emb = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    >>> labels = torch.tensor([0, 0, 0, 1, 1, 1])
    >>> value = loss(emb, labels)
    >>> parts = loss.parts[0](emb, labels) + 0.01 * loss.parts[1](emb, labels)
    >>> bool(torch.isclose(value, parts))
    True
    """

    _parameter_constraints = {
        "losses": [_ListOfModules()],
        "weights": [None, _Weights()],
    }

    def __init__(self, losses, weights=None):
        super().__init__()
        self.losses = losses
        self.weights = weights

    def _check_param_relations(self, params):
        weights = params["weights"]
        if weights is not None and len(weights) != len(params["losses"]):
            raise InvalidParameterError(
                "The 'weights' parameter of CombinedLoss must hold one weight per "
                f"loss ({len(params['losses'])}); got {weights!r}."
            )

    def _parts(self):
        """The parts and their weights as floats."""
        losses = list(self.losses)
        weights = [1.0] * len(losses) if self.weights is None else self.weights
        return losses, [float(w) for w in weights]

    def configure(self, num_classes=None, embedding_size=None):
        """Configure every part and register the parts as sub-modules.

        Parameters
        ----------
        num_classes : int, default=None
            Number of classes, passed to each part's ``configure``.
        embedding_size : int, default=None
            Dimension of the embeddings, passed on likewise.

        Returns
        -------
        self : CombinedLoss
            This loss, with ``parts`` holding the configured parts.
        """
        self._validate_params()
        losses, _ = self._parts()
        for part in losses:
            if hasattr(part, "configure"):
                part.configure(num_classes, embedding_size)
        self.parts = torch.nn.ModuleList(losses)
        return self

    def forward(self, embeddings, labels, indices_tuple=None):
        """Weighted sum of the parts' losses on one batch.

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the batch.
        labels : torch.Tensor of shape (batch_size,)
            Class index of every embedding.
        indices_tuple : tuple of torch.Tensor, default=None
            Mined pairs or triplets, given to every part.

        Returns
        -------
        loss : torch.Tensor of shape ()
            The weighted sum.
        """
        losses, weights = self._parts()
        total = None
        for part, weight in zip(losses, weights):
            term = weight * part(embeddings, labels, indices_tuple)
            total = term if total is None else total + term
        return total


def check_nested_dims(nested_dims, embedding_size=None, name="nested_dims"):
    """Validate ``nested_dims`` and return it as a tuple of ints.

    A non-empty, strictly increasing sequence of positive integers, each
    smaller than ``embedding_size`` when that is given (the full embedding is
    always trained as well, so it is not listed).
    """
    if isinstance(nested_dims, numbers.Integral) and not isinstance(nested_dims, bool):
        nested_dims = (nested_dims,)
    if not isinstance(nested_dims, (tuple, list)) or not nested_dims:
        raise ValueError(
            f"{name} must be a non-empty tuple of embedding sizes, e.g. (8, 16, 32); "
            f"got {nested_dims!r}."
        )
    for k in nested_dims:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(
                f"{name} must hold positive integers (prefix sizes); got "
                f"{nested_dims!r}."
            )
    dims = tuple(int(k) for k in nested_dims)
    if any(b <= a for a, b in zip(dims, dims[1:])):
        raise ValueError(
            f"{name} must be strictly increasing, e.g. (8, 16, 32); got {dims!r}."
        )
    if embedding_size is not None and dims[-1] >= embedding_size:
        raise ValueError(
            f"Every entry of {name} must be smaller than the embedding size "
            f"({embedding_size}), which is always trained; got {dims!r}. Drop the "
            f"entries >= {embedding_size} or increase n_components."
        )
    return dims


class MatryoshkaLoss(ParamsMixin, torch.nn.Module):
    r"""Apply one metric loss to nested leading prefixes of the embedding.

    Matryoshka Representation Learning trains the first :math:`k`
    dimensions of an embedding, for each :math:`k` of a nested list, to be a
    good embedding on their own, so that the same model serves any of these
    sizes by truncation (with a graceful loss of quality in between). This
    wrapper computes ``loss`` on each prefix ``embeddings[:, :k]``
    (re-normalised to unit length when ``normalize=True``) and on the whole
    embedding, and averages. Estimators build it from their ``nested_dims``
    parameter; it also works in a hand-written training loop.

    Parameters
    ----------
    loss : torch.nn.Module
        The metric loss applied to every prefix. Losses with learnable
        parameters (proxies, centres) get one independent copy per prefix,
        configured for that prefix's size, so proxies live in the space of
        their prefix.

    nested_dims : tuple of int
        Prefix sizes, strictly increasing, each smaller than the embedding
        size; the full embedding is always added.

    normalize : bool, default=True
        L2-normalise every prefix before the loss (use it when the model's
        embeddings are normalised: a prefix of a unit vector is shorter than
        one).

    weights : tuple of float or None, default=None
        Non-negative weight of each term, ``len(nested_dims) + 1`` of them
        (the last for the full embedding); ``None`` gives equal weights.
        The weights are divided by their sum.

    Attributes
    ----------
    parts : torch.nn.ModuleList
        One configured copy of ``loss`` per prefix (the last for the full
        embedding), created by :meth:`configure`.

    dims_ : tuple of int
        The prefix sizes trained, the full embedding size last (set by
        :meth:`configure`).

    See Also
    --------
    sklearn_dml.BaseDeepMetricLearner.transform_nested : The prefix
        embedding of a fitted estimator.

    Notes
    -----
    With prefix sizes :math:`k_1 < \dots < k_M < d` (the last term is the
    full embedding, :math:`k_{M+1} = d`), weights :math:`c_m` and
    :math:`z^{(k)} = x_{1:k} / \lVert x_{1:k} \rVert`,

    .. math::

        L(x, y) = \frac{\sum_{m=1}^{M+1} c_m\, \ell_m\big(z^{(k_m)}, y\big)}
                       {\sum_{m=1}^{M+1} c_m},

    where :math:`\ell_m` is the copy of the loss for size :math:`k_m`.
    Kusupati et al. sum the terms with :math:`c_m = 1`; dividing by the sum
    of the weights keeps the objective on the scale of the plain loss, so
    learning rates tuned without nesting carry over. Mined tuples
    (``indices_tuple``, found on the full embedding) are shared by every
    prefix.

    References
    ----------
    .. [1] Kusupati, A., Bhatt, G., Rege, A., Wallingford, M., Sinha, A.,
       Ramanujan, V., Howard-Snyder, W., Chen, K., Kakade, S., Jain, P. and
       Farhadi, A. "Matryoshka Representation Learning", NeurIPS 2022.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import MatryoshkaLoss, TripletMarginLoss
    >>> loss = MatryoshkaLoss(TripletMarginLoss(), nested_dims=(2, 4))
    >>> loss = loss.configure(num_classes=2, embedding_size=8)
    >>> loss.dims_
    (2, 4, 8)
    >>> emb = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    >>> labels = torch.tensor([0, 0, 0, 1, 1, 1])
    >>> terms = [
    ...     TripletMarginLoss()(torch.nn.functional.normalize(emb[:, :k]), labels)
    ...     for k in (2, 4, 8)
    ... ]
    >>> bool(torch.isclose(loss(emb, labels), sum(terms) / 3))
    True
    """

    _parameter_constraints = {
        "loss": [torch.nn.Module],
        "nested_dims": [POSITIVE_INT, TupleOf(POSITIVE_INT, min_length=1)],
        "normalize": ["boolean"],
        "weights": [None, _Weights()],
    }

    def __init__(self, loss, nested_dims, normalize=True, weights=None):
        super().__init__()
        self.loss = loss
        self.nested_dims = nested_dims
        self.normalize = normalize
        self.weights = weights

    @property
    def mean_over_anchors(self):
        """Whether the loss is a mean over the rows (a weighted sum of the
        base loss, so that of the base loss)."""
        return bool(getattr(self.loss, "mean_over_anchors", False))

    def _check_param_relations(self, params):
        nested = params["nested_dims"]
        dims = (nested,) if isinstance(nested, numbers.Integral) else tuple(nested)
        if any(b <= a for a, b in zip(dims, dims[1:])):
            raise InvalidParameterError(
                "The 'nested_dims' parameter of MatryoshkaLoss must be strictly "
                f"increasing, e.g. (8, 16, 32); got {nested!r}."
            )
        weights = params["weights"]
        if weights is None:
            return
        if len(weights) != len(dims) + 1:
            raise InvalidParameterError(
                "The 'weights' parameter of MatryoshkaLoss must hold one weight per "
                f"prefix plus one for the full embedding ({len(dims) + 1}); got "
                f"{weights!r}."
            )
        if not sum(weights) > 0:
            raise InvalidParameterError(
                "The 'weights' parameter of MatryoshkaLoss must not be all zero; "
                f"got {weights!r}."
            )

    def _normalized_weights(self, n_terms):
        if self.weights is None:
            return [1.0 / n_terms] * n_terms
        total = float(sum(self.weights))
        return [float(w) / total for w in self.weights]

    def configure(self, num_classes=None, embedding_size=None):
        """Create one configured copy of ``loss`` per prefix size.

        Parameters
        ----------
        num_classes : int, default=None
            Number of classes, passed to each copy's ``configure``.
        embedding_size : int
            Dimension of the full embedding.

        Returns
        -------
        self : MatryoshkaLoss
            This loss, with ``parts`` and ``dims_`` set.
        """
        self._validate_params()
        if embedding_size is None:
            raise ValueError("MatryoshkaLoss.configure needs the embedding_size.")
        dims = check_nested_dims(self.nested_dims, embedding_size) + (
            int(embedding_size),
        )
        parts = []
        for k in dims:
            part = copy.deepcopy(self.loss)
            if hasattr(part, "configure"):
                part = part.configure(num_classes, k) or part
            parts.append(part)
        self.parts = torch.nn.ModuleList(parts)
        self.dims_ = dims
        return self

    def forward(self, embeddings, labels, indices_tuple=None):
        """Weighted mean of the loss over the prefixes of one batch.

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the batch (``n_dims`` is the size given to
            :meth:`configure`).
        labels : torch.Tensor of shape (batch_size,)
            Class index of every embedding.
        indices_tuple : tuple of torch.Tensor, default=None
            Mined pairs or triplets, given to every prefix's loss.

        Returns
        -------
        loss : torch.Tensor of shape ()
            The weighted mean.
        """
        if not hasattr(self, "parts"):
            raise RuntimeError(
                "MatryoshkaLoss must be configured before use: call "
                "configure(num_classes, embedding_size) (estimators do it)."
            )
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dims_[-1]:
            raise ValueError(
                f"MatryoshkaLoss was configured for embeddings of size "
                f"{self.dims_[-1]}; got shape {tuple(embeddings.shape)}."
            )
        weights = self._normalized_weights(len(self.dims_))
        total = None
        for k, part, w in zip(self.dims_, self.parts, weights):
            prefix = embeddings[:, :k]
            if self.normalize:
                prefix = torch.nn.functional.normalize(prefix, p=2.0, dim=1)
            term = w * part(prefix, labels, indices_tuple)
            total = term if total is None else total + term
        return total


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
    >>> from sklearn_dml.losses._wrappers import lambertw
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
        the down-weighting (the benchmark behind the default is on the
        :ref:`noisy_labels` page).

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

    _parameter_constraints = {
        "threshold": [_POSITIVE_REAL],
        "regularization": [_POSITIVE_REAL],
        "proxy_scale": [_POSITIVE_REAL],
        "num_classes": SIZE_CONSTRAINT,
        "embedding_size": SIZE_CONSTRAINT,
    }

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
        self._validate_params()
        c = resolve_size(self, "num_classes", num_classes)
        d = resolve_size(self, "embedding_size", embedding_size)
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

    _parameter_constraints = {
        "loss": [_SampleWeightLoss()],
        "weighting": [None, ProcSimWeighting],
    }

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
        self._validate_params()
        base = copy.deepcopy(self.loss)
        if hasattr(base, "configure"):
            base.configure(num_classes, embedding_size)
        weighting = ProcSimWeighting() if self.weighting is None else self.weighting
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
