"""Embedding networks (backbones) for the estimators, in plain torch."""

import numpy as np
import torch
from torch import nn

__all__ = [
    "AveragePooling",
    "GaussianHead",
    "GeneralizedSumPooling",
    "L2Normalize",
    "MLP",
    "ResidualMLP",
    "SetPoolingMLP",
]


class L2Normalize(nn.Module):
    """Scale each row of a batch to unit Euclidean norm.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import L2Normalize
    >>> L2Normalize()(torch.tensor([[3.0, 4.0]]))
    tensor([[0.6000, 0.8000]])
    """

    def __init__(self, eps=1e-12):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        return nn.functional.normalize(x, p=2.0, dim=1, eps=self.eps)


class MLP(nn.Module):
    """Multi-layer perceptron mapping feature vectors to embeddings.

    ``Linear -> ReLU`` blocks of the given widths, then a linear layer to
    ``n_components``, optionally followed by L2 normalisation.

    Parameters
    ----------
    n_features : int
        Size of the input vectors.

    n_components : int
        Size of the embedding.

    hidden_layer_sizes : tuple of int, default=(256,)
        Widths of the hidden layers; ``()`` gives a linear map.

    normalize_embeddings : bool, default=True
        L2-normalise the output.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import MLP
    >>> net = MLP(n_features=8, n_components=3, hidden_layer_sizes=(16,))
    >>> net(torch.zeros(5, 8)).shape
    torch.Size([5, 3])
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden_layer_sizes=(256,),
        normalize_embeddings=True,
    ):
        super().__init__()
        layers = []
        width = n_features
        for size in hidden_layer_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, n_components))
        if normalize_embeddings:
            layers.append(L2Normalize())
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


_SKIP_INITS = ("pca", "identity", "random")


class ResidualMLP(nn.Module):
    """Linear skip path plus a residual MLP branch that starts at zero.

    The embedding is ``skip(x) + branch(x)``: ``skip`` is one linear layer
    and ``branch`` an MLP whose last layer is initialised to zero, so before
    training the network *is* the linear map of the skip path. With
    ``init="pca"`` that map is the principal-component projection of the
    training data (set by :meth:`initialize`), with ``init="identity"`` the
    identity; training then refines the raw geometry of the features instead
    of replacing it with a random one, which is what keeps an embedding
    useful for classes it never saw.

    Parameters
    ----------
    n_features : int
        Size of the input vectors.

    n_components : int
        Size of the embedding.

    hidden_layer_sizes : tuple of int, default=(256,)
        Widths of the hidden layers of the residual branch; ``()`` gives no
        branch (a linear embedding).

    init : {"pca", "identity", "random"}, default="pca"
        Start of the skip path. ``"pca"``: the projection on the first
        ``n_components`` principal axes of the data given to
        :meth:`initialize` (rows beyond the rank of the data are zero);
        ``"identity"``: the identity, which needs
        ``n_components == n_features``; ``"random"``: PyTorch's default
        initialisation of a linear layer.

    dropout : float, default=0.0
        Dropout probability after each hidden layer of the branch.

    normalize_embeddings : bool, default=True
        L2-normalise the output.

    anchor_weight : float, default=10.0
        Weight of the anchoring penalty (:meth:`training_penalty`) that the
        training engine adds to the loss: it keeps the pairwise cosine
        similarities of each batch close to those of the starting linear map
        (the PCA projection for ``init="pca"``), so that training refines the
        starting geometry instead of collapsing it onto the training classes.
        This is what keeps the embedding useful for classes not seen in
        training (see :ref:`unseen_classes`); ``0`` disables it.

    Attributes
    ----------
    skip : torch.nn.Linear
        The linear path.

    branch : torch.nn.Sequential or None
        The residual MLP (``None`` when ``hidden_layer_sizes=()``).

    initialized : bool
        Whether the skip path holds its final initialisation (always true
        for ``"identity"`` and ``"random"``, true after :meth:`initialize`
        for ``"pca"``).

    Notes
    -----
    With :math:`W_0` the skip weights at initialisation and :math:`g` the
    branch,

    .. math::

        f(x) = W x + b + g(x), \\qquad g \\equiv 0 \\text{ at the start},

    and for ``init="pca"`` :math:`W_0 = V_k^\\top`, :math:`b_0 = -V_k^\\top
    \\mu`, the top :math:`k` right singular vectors of the centred data, so
    that :math:`f(x) = V_k^\\top (x - \\mu)`, the PCA transform. Without
    normalisation, distances between embeddings then equal distances
    between the projected inputs.

    The anchoring penalty of a batch :math:`x_1, \\dots, x_n` compares the
    cosine similarities :math:`c_{ij}` of the embeddings with those of the
    start, :math:`c^0_{ij} = \\cos(W_0 x_i + b_0, W_0 x_j + b_0)`:

    .. math::

        R = \\lambda \\, \\frac{1}{n (n - 1)} \\sum_{i \\neq j}
            \\big(c_{ij} - c^0_{ij}\\big)^2,

    with :math:`\\lambda` = ``anchor_weight``; a relational (function-space)
    version of L2-SP [3]_ in the spirit of relational knowledge
    distillation [4]_, with the starting map as the teacher.

    References
    ----------
    .. [1] He, Zhang, Ren and Sun, "Deep Residual Learning for Image
       Recognition", CVPR 2016 (residual branches).
    .. [2] Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in
       1 Hour", arXiv:1706.02677, 2017 (a residual branch that starts at
       zero).
    .. [3] Li, Grandvalet and Davoine, "Explicit Inductive Bias for Transfer
       Learning with Convolutional Networks", ICML 2018 (L2-SP).
    .. [4] Park, Kim, Lu and Cho, "Relational Knowledge Distillation",
       CVPR 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import ResidualMLP
    >>> net = ResidualMLP(4, 4, init="identity", normalize_embeddings=False)
    >>> x = torch.randn(3, 4)
    >>> bool(torch.equal(net(x), x))
    True
    >>> net = ResidualMLP(8, 2, hidden_layer_sizes=(16,))
    >>> net.initialize(torch.randn(50, 8)).initialized
    True
    >>> net(torch.randn(5, 8)).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden_layer_sizes=(256,),
        init="pca",
        dropout=0.0,
        normalize_embeddings=True,
        anchor_weight=10.0,
    ):
        super().__init__()
        if init not in _SKIP_INITS:
            raise ValueError(f"init must be one of {_SKIP_INITS}, got {init!r}.")
        if init == "identity" and n_components != n_features:
            raise ValueError(
                "init='identity' needs n_components == n_features, got "
                f"n_components={n_components} and n_features={n_features}; use "
                "init='pca' to start from a projection on fewer dimensions."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        if not anchor_weight >= 0.0:
            raise ValueError(f"anchor_weight must be >= 0, got {anchor_weight!r}.")
        self.anchor_weight = float(anchor_weight)
        self.n_features = n_features
        self.n_components = n_components
        self.init = init
        self.skip = nn.Linear(n_features, n_components)
        self.branch = None
        if len(hidden_layer_sizes):
            layers, width = [], n_features
            for size in hidden_layer_sizes:
                layers += [nn.Linear(width, size), nn.ReLU()]
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
                width = size
            last = nn.Linear(width, n_components)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            layers.append(last)
            self.branch = nn.Sequential(*layers)
        self.normalize = L2Normalize() if normalize_embeddings else nn.Identity()
        if init == "identity":
            with torch.no_grad():
                self.skip.weight.copy_(torch.eye(n_features))
                self.skip.bias.zero_()
        self.register_buffer(
            "_initialized", torch.tensor(init != "pca"), persistent=True
        )
        # The starting linear map, which the anchoring penalty compares with.
        self.register_buffer("_start_weight", self.skip.weight.detach().clone())
        self.register_buffer("_start_bias", self.skip.bias.detach().clone())

    @property
    def initialized(self):
        return bool(self._initialized)

    @torch.no_grad()
    def initialize(self, X):
        """Set the skip path to the PCA projection of ``X`` (for ``init="pca"``).

        Does nothing for the other ``init`` values.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Training features.

        Returns
        -------
        self : ResidualMLP
            The module, initialised in place.
        """
        if self.init != "pca":
            return self
        if isinstance(X, torch.Tensor):
            X = X.detach().to(torch.float64)
        else:  # a copy: the user's array may be read-only and stays untouched
            X = torch.tensor(np.asarray(X), dtype=torch.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"initialize expects an array of shape (n_samples, {self.n_features}), "
                f"got {tuple(X.shape)}."
            )
        mean = X.mean(dim=0)
        # Right singular vectors of the centred data, largest variance first.
        _, _, vh = torch.linalg.svd(X - mean, full_matrices=False)
        k = min(self.n_components, vh.shape[0])
        weight = torch.zeros(self.n_components, self.n_features, dtype=torch.float64)
        weight[:k] = vh[:k]
        self.skip.weight.copy_(weight.to(self.skip.weight.dtype))
        self.skip.bias.copy_((-weight @ mean).to(self.skip.bias.dtype))
        self._start_weight.copy_(self.skip.weight)
        self._start_bias.copy_(self.skip.bias)
        self._initialized.fill_(True)
        return self

    def training_penalty(self, x, embeddings, y=None):
        """Anchoring term that the training engine adds to a batch's loss.

        Parameters
        ----------
        x : torch.Tensor of shape (n_samples, n_features)
            The batch.

        embeddings : torch.Tensor of shape (n_samples, n_components)
            This network's output for ``x`` (normalised or not: only cosine
            similarities enter).

        y : torch.Tensor, default=None
            The batch's labels (unused).

        Returns
        -------
        penalty : torch.Tensor or None
            ``anchor_weight`` times the mean, over the ordered pairs of
            distinct rows, of the squared difference between the cosine
            similarities of ``embeddings`` and those of the starting linear
            map applied to ``x``; ``None`` when ``anchor_weight`` is 0 or the
            batch has fewer than 2 rows.
        """
        if self.anchor_weight == 0.0 or x.shape[0] < 2:
            return None
        start = nn.functional.linear(x, self._start_weight, self._start_bias)
        start = nn.functional.normalize(start, dim=1)
        current = nn.functional.normalize(embeddings, dim=1)
        diff = current @ current.T - start @ start.T
        n = x.shape[0]
        return self.anchor_weight * diff.pow(2).sum() / (n * (n - 1))

    def forward(self, x):
        out = self.skip(x)
        if self.branch is not None:
            out = out + self.branch(x)
        return self.normalize(out)

    def forward_mixed_features(self, x, first, second, lam):
        """Embeddings of samples mixed at the first hidden layer (manifold mixup).

        Row ``k`` of the result is the embedding of the hidden state
        ``lam[k] * h(x[first[k]]) + (1 - lam[k]) * h(x[second[k]])``, where
        ``h`` is the first hidden block of the branch (linear, ReLU and
        dropout); the linear skip path is mixed with the same factor (being
        affine, that is the skip path of the mixed input).

        Parameters
        ----------
        x : torch.Tensor of shape (batch_size, n_features)
            The batch.
        first, second : torch.Tensor of shape (n_mixed,)
            Positions in the batch of the two samples of each mix.
        lam : torch.Tensor of shape (n_mixed,)
            Weight of ``first`` in each mix.

        Returns
        -------
        embeddings : torch.Tensor of shape (n_mixed, n_components)
            The embeddings of the mixed samples.

        Examples
        --------
        >>> import torch
        >>> from sklearn_dml.backbones import ResidualMLP
        >>> net = ResidualMLP(4, 2, hidden_layer_sizes=(8,), init="random")
        >>> x = torch.randn(3, 4)
        >>> out = net.forward_mixed_features(
        ...     x, torch.tensor([0]), torch.tensor([1]), torch.tensor([1.0])
        ... )
        >>> bool(torch.allclose(out, net(x[:1])))
        True
        """
        if self.branch is None:
            raise ValueError(
                "Feature mixup needs a hidden layer; this ResidualMLP has "
                "hidden_layer_sizes=(). Mix the inputs or the embeddings instead."
            )
        lam = lam.to(x.dtype)[:, None]
        skip = self.skip(x)
        skip = lam * skip[first] + (1 - lam) * skip[second]
        # The first hidden block: Linear, ReLU and, with dropout, Dropout.
        layers = list(self.branch)
        n_block = 3 if len(layers) > 2 and isinstance(layers[2], nn.Dropout) else 2
        head, tail = nn.Sequential(*layers[:n_block]), nn.Sequential(*layers[n_block:])
        hidden = head(x)
        hidden = lam * hidden[first] + (1 - lam) * hidden[second]
        return self.normalize(skip + tail(hidden))


class GaussianHead(nn.Module):
    """Gaussian (hedged) embeddings: a mean network and a log-variance network.

    Embeds a sample as the Gaussian :math:`\\mathcal{N}(\\mu(x),
    \\mathrm{diag}\\, \\sigma^2(x))` of hedged instance embeddings. In
    evaluation mode ``forward`` returns the means only (a point embedding,
    what ``transform`` gives); in training mode it returns the concatenation
    ``[mu, log_variance]`` of shape ``(batch, 2 * k)`` that
    :class:`~sklearn_dml.losses.HedgedInstanceLoss` expects. :meth:`moments`
    returns both in any mode.

    Parameters
    ----------
    mean : torch.nn.Module
        Maps ``(batch, n_features)`` inputs to ``(batch, k)`` means.

    log_variance : torch.nn.Module
        Maps the same inputs to ``(batch, k)`` log-variances
        :math:`\\log \\sigma^2`.

    normalize_embeddings : bool, default=True
        L2-normalise the means (the variances are left as they are: the
        Gaussian is centred on the unit sphere).

    Notes
    -----
    The two networks see the same input; a module ``mean`` with an
    ``initialize(X)`` method (such as :class:`ResidualMLP` with
    ``init="pca"``) is initialised by :meth:`initialize`.
    :meth:`from_sizes` builds the default pair: a :class:`ResidualMLP` for
    the means and an :class:`MLP` for the log-variances whose last layer
    starts at zero weights and a constant bias, so that every sample starts
    with the same variance.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import GaussianHead
    >>> net = GaussianHead.from_sizes(8, 3, hidden_layer_sizes=(16,))
    >>> net(torch.randn(5, 8)).shape  # training mode: means and log-variances
    torch.Size([5, 6])
    >>> with torch.no_grad():
    ...     mu, log_var = net.moments(torch.randn(5, 8))
    >>> mu.shape, float(log_var[0, 0])
    (torch.Size([5, 3]), -7.0)
    """

    def __init__(self, mean, log_variance, normalize_embeddings=True):
        super().__init__()
        self.mean = mean
        self.log_variance = log_variance
        self.normalize = L2Normalize() if normalize_embeddings else nn.Identity()

    @classmethod
    def from_sizes(
        cls,
        n_features,
        n_components,
        hidden_layer_sizes=(256,),
        init="pca",
        normalize_embeddings=True,
        init_log_variance=-7.0,
    ):
        """The default Gaussian embedding network.

        Parameters
        ----------
        n_features : int
            Size of the input vectors.
        n_components : int
            Size of the embedding (of the means and of the variances).
        hidden_layer_sizes : tuple of int, default=(256,)
            Hidden widths of both networks.
        init : {"pca", "identity", "random"}, default="pca"
            Start of the skip path of the mean network (:class:`ResidualMLP`).
        normalize_embeddings : bool, default=True
            L2-normalise the means.
        init_log_variance : float, default=-7.0
            Log-variance of every dimension of every sample at the start.

        Returns
        -------
        net : GaussianHead
        """
        mean = ResidualMLP(
            n_features,
            n_components,
            tuple(hidden_layer_sizes),
            init=init,
            normalize_embeddings=False,
        )
        log_variance = constant_start_mlp(
            n_features, n_components, hidden_layer_sizes, init_log_variance
        )
        return cls(mean, log_variance, normalize_embeddings=normalize_embeddings)

    def initialize(self, X):
        """Initialise the mean network on the training data, if it can be.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Training features.

        Returns
        -------
        self : GaussianHead
        """
        initialize = getattr(self.mean, "initialize", None)
        if callable(initialize):
            initialize(X)
        return self

    def moments(self, x):
        """Means and log-variances of the embeddings of ``x``.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, n_features)

        Returns
        -------
        mu, log_variance : torch.Tensor of shape (batch, k)
        """
        mu = self.normalize(self.mean(x))
        log_var = self.log_variance(x)
        if log_var.shape != mu.shape:
            raise ValueError(
                f"The log-variance network returned shape {tuple(log_var.shape)} "
                f"but the mean network {tuple(mu.shape)}; they must agree."
            )
        return mu, log_var

    def forward(self, x):
        if not self.training:
            return self.normalize(self.mean(x))
        return torch.cat(self.moments(x), dim=1)


def constant_start_mlp(n_features, n_out, hidden_layer_sizes, value):
    """An :class:`MLP` whose output is ``value`` everywhere at the start.

    Its last layer starts at zero weights and a constant bias (the
    log-variance network of :meth:`GaussianHead.from_sizes`).
    """
    net = MLP(n_features, n_out, tuple(hidden_layer_sizes), normalize_embeddings=False)
    last = net.layers[-1]
    nn.init.zeros_(last.weight)
    nn.init.constant_(last.bias, float(value))
    return net


class LogVarianceOf(nn.Module):
    """The log-variance output of a :class:`GaussianHead` as a module.

    Lets the engine's batched inference compute log-variances. The view
    shares the head's weights and starts in the head's mode, so running it
    leaves the head's mode as it was.
    """

    def __init__(self, head):
        super().__init__()
        self.head = head
        self.training = head.training

    def forward(self, x):
        return self.head.moments(x)[1]


def _check_fraction(mu):
    if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not 0 < mu <= 1:
        raise ValueError(
            f"mu (the fraction of the feature mass transported) must be in (0, 1]; "
            f"got {mu!r}. mu=1 is average pooling."
        )


class GeneralizedSumPooling(nn.Module):
    r"""Generalized sum pooling: a learnable, selective average of feature vectors.

    Pools a set of feature vectors (the cells of a convolutional feature map,
    the patches of an image, the tokens of a set) into one vector. Average
    pooling gives every vector the weight :math:`1/n`; generalized sum
    pooling (GSP) transports a fraction ``mu`` of the vectors' mass to
    learnable prototypes with entropy-smoothed optimal transport, and weights
    each vector by the mass it sends: vectors close to some prototype (the
    semantic entities the model learns to look for) dominate, the rest is
    left out as residual. ``mu=1`` gives back average pooling exactly, and so
    does a large ``epsilon``.

    Parameters
    ----------
    dim : int
        Size of the feature vectors.

    n_prototypes : int, default=16
        Number of learnable prototypes.

    mu : float, default=0.5
        Fraction of the total mass transported to the prototypes, in
        ``(0, 1]``; ``1`` is average pooling.

    epsilon : float, default=0.1
        Weight of the entropy smoothing (larger: smoother, more uniform
        weights; the costs lie in ``[0, 4]``).

    n_iter : int, default=30
        Maximum iterations of the solver of the transport problem (it stops
        earlier once the transported mass is within the square root of the
        floating-point precision of ``mu``, then one more Newton step).

    Attributes
    ----------
    prototypes : torch.nn.Parameter of shape (n_prototypes, dim)
        The prototypes (compared after L2 normalisation).

    Notes
    -----
    For the vectors :math:`x_1, \dots, x_n` of one sample, each of mass
    :math:`q_i = 1/n`, and prototypes :math:`z_1, \dots, z_m`, with costs
    :math:`C_{ji} = \lVert \hat z_j - \hat x_i \rVert^2` between the
    L2-normalised vectors, GSP solves the entropy-smoothed partial transport
    problem

    .. math::

        \min_{\pi \ge 0,\ \rho \ge 0}\ \sum_{j,i} C_{ji}\pi_{ji}
        + \epsilon \Big(\sum_{j,i} \pi_{ji}\log\pi_{ji}
        + \sum_i \rho_i \log \rho_i\Big)
        \quad\text{s.t.}\quad \rho_i + \sum_j \pi_{ji} = q_i,\quad
        \sum_{j,i} \pi_{ji} = \mu,

    where :math:`\rho_i` is the residual (not transported) mass of vector
    :math:`i`, and pools

    .. math::

        \operatorname{GSP}(x) = \sum_i w_i x_i, \qquad
        w_i = \frac{q_i - \rho_i}{\mu} = \frac{1}{\mu}\sum_j \pi_{ji},
        \qquad \sum_i w_i = 1.

    The optimality conditions give :math:`\pi_{ji} = u_i\, t\, e^{-C_{ji}/\epsilon}`
    and :math:`\rho_i = u_i`: with :math:`\ell_i = \log \sum_j
    e^{-C_{ji}/\epsilon}`, the transported mass of vector :math:`i` is
    :math:`q_i\, \sigma(\beta + \ell_i)` (:math:`\sigma` the logistic
    function) and the plan :math:`\pi_{ji} = q_i\,\sigma(\beta + \ell_i)\,
    \operatorname{softmax}_j(-C_{ji}/\epsilon)`, where the scalar
    :math:`\beta = \log t` solves :math:`\sum_i q_i \sigma(\beta + \ell_i) =
    \mu`. The Sinkhorn iterations of Gurbuz et al. alternate the two
    constraints, i.e. iterate on :math:`\beta`; they converge slowly when the
    selection is sharp, so :math:`\beta` is found here by Newton's method
    safeguarded by bisection (the left side is increasing in :math:`\beta`),
    vectorised over the batch, and its gradient comes from the implicit
    function theorem (one Newton step on the graph at the solution), exact
    at convergence. With :math:`\mu = 1` every :math:`\rho_i = 0` and
    :math:`w_i = 1/n`; as :math:`\epsilon \to \infty` every :math:`\ell_i`
    is the same and again :math:`w_i = 1/n`: average pooling.

    The paper initialises the prototypes from class proxies (greedy
    k-centre) and adds a zero-shot regularisation loss on the transport
    plans; neither is part of this layer (prototypes start random).

    References
    ----------
    .. [1] Gurbuz, Y. Z., Sener, O. and Alatan, A. A. "Generalized Sum
       Pooling for Metric Learning", ICCV 2023.
    .. [2] Cuturi, M. "Sinkhorn Distances: Lightspeed Computation of Optimal
       Transport", NeurIPS 2013.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import GeneralizedSumPooling
    >>> x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    >>> gsp = GeneralizedSumPooling(dim=3, n_prototypes=4, mu=0.4)
    >>> gsp(x).shape
    torch.Size([2, 3])
    >>> gsp.weights(x).sum(dim=1)
    tensor([1.0000, 1.0000], grad_fn=<SumBackward1>)
    >>> average = GeneralizedSumPooling(dim=3, mu=1.0)
    >>> bool(torch.allclose(average(x), x.mean(dim=1)))
    True
    """

    def __init__(self, dim, n_prototypes=16, mu=0.5, epsilon=0.1, n_iter=30):
        super().__init__()
        _check_fraction(mu)
        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}.")
        if int(n_prototypes) < 1 or int(n_iter) < 1:
            raise ValueError(
                "n_prototypes and n_iter must be positive integers, got "
                f"{n_prototypes!r} and {n_iter!r}."
            )
        self.dim = int(dim)
        self.n_prototypes = int(n_prototypes)
        self.mu = float(mu)
        self.epsilon = float(epsilon)
        self.n_iter = int(n_iter)
        self.prototypes = nn.Parameter(torch.randn(self.n_prototypes, self.dim))

    def _check_input(self, x):
        if x.ndim != 3 or x.shape[2] != self.dim:
            raise ValueError(
                "GeneralizedSumPooling expects a tensor of shape (batch, n_vectors, "
                f"{self.dim}); got {tuple(x.shape)}."
            )

    def costs(self, x):
        """Squared distances ``(batch, n_prototypes, n_vectors)`` of the unit vectors."""
        self._check_input(x)
        xn = nn.functional.normalize(x, dim=2)
        zn = nn.functional.normalize(self.prototypes.to(x.dtype), dim=1)
        # |z - x|^2 = 2 - 2 <z, x> for unit vectors.
        return (2.0 - 2.0 * torch.einsum("md,bnd->bmn", zn, xn)).clamp_min(0.0)

    def _solve_beta(self, ell, q):
        """The scalar dual ``beta`` of every sample (no gradient)."""
        mu = self.mu
        logit_mu = float(np.log(mu) - np.log1p(-mu))
        lo = logit_mu - ell.max(dim=1).values
        hi = logit_mu - ell.min(dim=1).values
        beta = 0.5 * (lo + hi)
        # The Newton step on the graph (in transport) squares this error.
        tol = float(np.sqrt(torch.finfo(ell.dtype).eps))
        for _ in range(self.n_iter):
            s = torch.sigmoid(beta[:, None] + ell)
            g = (q * s).sum(dim=1) - mu
            if float(g.abs().max()) <= tol:
                break
            lo = torch.where(g < 0, beta, lo)
            hi = torch.where(g < 0, hi, beta)
            slope = (q * s * (1.0 - s)).sum(dim=1)
            newton = beta - g / slope.clamp_min(torch.finfo(ell.dtype).tiny)
            inside = (newton > lo) & (newton < hi)
            beta = torch.where(inside, newton, 0.5 * (lo + hi))
        return beta

    def transport(self, x):
        """The transport plan and the residual masses.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, n_vectors, dim)
            Feature vectors.

        Returns
        -------
        plan : torch.Tensor of shape (batch, n_prototypes, n_vectors)
            Mass sent from each vector to each prototype (sums to ``mu``).
        residual : torch.Tensor of shape (batch, n_vectors)
            Mass of each vector left out (``1/n_vectors`` minus what it sends).
        """
        costs = self.costs(x)
        n = x.shape[1]
        q = torch.full((1, n), 1.0 / n, dtype=x.dtype, device=x.device)
        if self.mu >= 1.0:
            sent = q.expand(x.shape[0], n)
        else:
            logits = -costs / self.epsilon
            ell = torch.logsumexp(logits, dim=1)  # (batch, n)
            with torch.no_grad():
                beta = self._solve_beta(ell.detach(), q)
            # One Newton step on the graph: the value stays the solution, the
            # gradient is the implicit one, -dg/d(ell) / (dg/d(beta)).
            s = torch.sigmoid(beta[:, None] + ell)
            g = (q * s).sum(dim=1) - self.mu
            slope = (q * s * (1.0 - s)).sum(dim=1).detach()
            beta = beta - g / slope.clamp_min(torch.finfo(x.dtype).tiny)
            sent = q * torch.sigmoid(beta[:, None] + ell)
        plan = sent[:, None, :] * torch.softmax(-costs / self.epsilon, dim=1)
        return plan, q - sent

    def weights(self, x):
        """Pooling weights ``(batch, n_vectors)``, summing to one per sample."""
        plan, _ = self.transport(x)
        return plan.sum(dim=1) / self.mu

    def forward(self, x):
        """Pool ``(batch, n_vectors, dim)`` into ``(batch, dim)``."""
        return torch.einsum("bn,bnd->bd", self.weights(x), x)


class AveragePooling(nn.Module):
    """Mean over the vectors: ``(batch, n_vectors, dim) -> (batch, dim)``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import AveragePooling
    >>> AveragePooling()(torch.ones(2, 3, 4)).shape
    torch.Size([2, 4])
    """

    def forward(self, x):
        return x.mean(dim=1)


_POOLINGS = ("gsp", "average")


class SetPoolingMLP(nn.Module):
    r"""Embed a set of feature vectors given as one flat row: encode, pool, project.

    For inputs made of several feature vectors of the same size (patches of
    an image, cells of a feature map), given to an estimator as flat rows of
    ``n_vectors * vector_size`` features (vector after vector). Each row is
    reshaped to ``(n_vectors, vector_size)``, every vector goes through the
    same MLP (plus a learned embedding of its position, since pooling forgets
    order), the vectors are pooled (:class:`GeneralizedSumPooling` or
    :class:`AveragePooling`) and a linear head gives the embedding.

    Parameters
    ----------
    n_vectors : int
        Number of vectors in a row.

    vector_size : int
        Size of each vector.

    n_components : int
        Size of the embedding.

    hidden_layer_sizes : tuple of int, default=(64,)
        Widths of the per-vector MLP (``Linear -> ReLU`` blocks, at least
        one); the pooled vectors have the last width.

    pooling : {"gsp", "average"}, default="gsp"
        Generalized sum pooling or average pooling.

    n_prototypes : int, default=16
        Prototypes of the generalized sum pooling.

    mu : float, default=0.5
        Fraction of the mass transported by the generalized sum pooling.

    epsilon : float, default=0.1
        Entropy smoothing of the generalized sum pooling.

    position_embedding : bool, default=True
        Add a learned vector per position to the first layer's output.

    normalize_embeddings : bool, default=True
        L2-normalise the output.

    Attributes
    ----------
    encoder : torch.nn.Sequential
        The per-vector MLP (after the first linear layer).

    pool : GeneralizedSumPooling or AveragePooling
        The pooling layer.

    head : torch.nn.Linear
        The projection to ``n_components``.

    Notes
    -----
    With :math:`x_i` the :math:`i`-th vector of a row, :math:`p_i` its
    position embedding and :math:`h` the MLP,

    .. math::

        f(x) = W\, \mathrm{pool}\big(\{h(A x_i + b + p_i)\}_{i=1}^n\big) + c.

    References
    ----------
    .. [1] Gurbuz, Y. Z., Sener, O. and Alatan, A. A. "Generalized Sum
       Pooling for Metric Learning", ICCV 2023.
    .. [2] Zaheer, M. et al. "Deep Sets", NeurIPS 2017 (encode each element,
       pool, then transform).

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.backbones import SetPoolingMLP
    >>> net = SetPoolingMLP(n_vectors=16, vector_size=4, n_components=8)
    >>> net(torch.randn(5, 64)).shape
    torch.Size([5, 8])
    """

    def __init__(
        self,
        n_vectors,
        vector_size,
        n_components,
        hidden_layer_sizes=(64,),
        pooling="gsp",
        n_prototypes=16,
        mu=0.5,
        epsilon=0.1,
        position_embedding=True,
        normalize_embeddings=True,
    ):
        super().__init__()
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {pooling!r}.")
        sizes = tuple(hidden_layer_sizes)
        if not sizes:
            raise ValueError(
                "SetPoolingMLP needs at least one hidden layer (the per-vector "
                "MLP), e.g. hidden_layer_sizes=(64,)."
            )
        self.n_vectors = int(n_vectors)
        self.vector_size = int(vector_size)
        self.first = nn.Linear(self.vector_size, sizes[0])
        self.position = (
            nn.Parameter(torch.zeros(self.n_vectors, sizes[0]))
            if position_embedding
            else None
        )
        layers = [nn.ReLU()]
        for width, size in zip(sizes, sizes[1:]):
            layers += [nn.Linear(width, size), nn.ReLU()]
        self.encoder = nn.Sequential(*layers)
        # The head before the pooling: under one seed, both poolings start
        # with the same encoder and head.
        self.head = nn.Linear(sizes[-1], n_components)
        if pooling == "gsp":
            self.pool = GeneralizedSumPooling(sizes[-1], n_prototypes, mu, epsilon)
        else:
            self.pool = AveragePooling()
        self.normalize = L2Normalize() if normalize_embeddings else nn.Identity()

    def forward(self, x):
        n_flat = self.n_vectors * self.vector_size
        if x.ndim != 2 or x.shape[1] != n_flat:
            raise ValueError(
                f"SetPoolingMLP expects rows of n_vectors * vector_size = {n_flat} "
                f"features; got shape {tuple(x.shape)}."
            )
        h = self.first(x.reshape(x.shape[0], self.n_vectors, self.vector_size))
        if self.position is not None:
            h = h + self.position
        return self.normalize(self.head(self.pool(self.encoder(h))))
