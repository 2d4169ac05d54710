"""Multi-layer perceptron backbones: the default residual MLP with its PCA start and
anchoring, a plain MLP, L2 normalisation.
"""

import numpy as np
import torch
from torch import nn

_SKIP_INITS = ("pca", "identity", "random")


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


def _float64_chunks(X, rows_per_chunk):
    """``X`` (NumPy array or tensor) as float64 tensors of a few rows each."""
    for start in range(0, X.shape[0], rows_per_chunk):
        rows = X[start : start + rows_per_chunk]
        if isinstance(rows, torch.Tensor):
            yield rows.to(torch.float64)
        else:
            yield torch.from_numpy(np.array(rows, dtype=np.float64))


def principal_axes(X):
    r"""Mean and principal axes of ``X`` from its covariance matrix.

    The axes are the eigenvectors of the ``d x d`` scatter matrix
    :math:`\sum_i (x_i - \bar x)(x_i - \bar x)^\top`, accumulated in
    float64 a few rows at a time: the right singular vectors of the centred
    data (what an SVD of the whole ``n x d`` array gives) at the cost of one
    ``n x d x d`` product and a ``d x d`` eigendecomposition, without a
    float64 copy of the data.

    Parameters
    ----------
    X : ndarray or torch.Tensor of shape (n_samples, n_features)
        The data (not modified).

    Returns
    -------
    mean : torch.Tensor of shape (n_features,), float64
        The mean row.
    components : torch.Tensor of shape (min(n_samples, n_features), n_features)
        Orthonormal axes, largest variance first; the sign of each is set so
        that its largest-magnitude entry is positive (the first such entry
        on ties), independent of the LAPACK routine.
    """
    n_samples, n_features = X.shape
    step = max(1, 2**20 // max(1, n_features))
    total = torch.zeros(n_features, dtype=torch.float64)
    for rows in _float64_chunks(X, step):
        total += rows.sum(dim=0)
    mean = total / n_samples
    scatter = torch.zeros((n_features, n_features), dtype=torch.float64)
    for rows in _float64_chunks(X, step):
        rows -= mean
        scatter.addmm_(rows.T, rows)
    _, vectors = torch.linalg.eigh(scatter)
    components = vectors.flip(1).T[: min(n_samples, n_features)].contiguous()
    top = components.abs().argmax(dim=1, keepdim=True)
    signs = torch.sign(torch.gather(components, 1, top))
    components *= torch.where(signs == 0, 1.0, signs)
    return mean, components


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
            X = X.detach()
        else:  # read only, converted a few rows at a time: never modified
            X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"initialize expects an array of shape (n_samples, {self.n_features}), "
                f"got {tuple(X.shape)}."
            )
        mean, components = principal_axes(X)
        k = min(self.n_components, components.shape[0])
        vh = components
        weight = torch.zeros(self.n_components, self.n_features, dtype=torch.float64)
        weight[:k] = vh[:k]
        self.skip.weight.copy_(weight.to(self.skip.weight.dtype))
        self.skip.bias.copy_((-weight @ mean).to(self.skip.bias.dtype))
        self._start_weight.copy_(self.skip.weight)
        self._start_bias.copy_(self.skip.bias)
        self._initialized.fill_(True)
        return self

    @torch.no_grad()
    def blend_with_start(self, share):
        """Move the network toward its starting linear map, in place.

        Afterwards the output before normalisation is ``(1 - share)`` times
        the current one plus ``share`` times the starting map's
        :math:`W_0 x + b_0`: the skip path is interpolated with the start
        and the residual branch's output layer scaled by ``1 - share``. The
        network keeps its architecture and its anchor (further training
        starts from the blend). ``share=0`` changes nothing, ``share=1``
        restores the start (the PCA projection for ``init="pca"``).

        Parameters
        ----------
        share : float in [0, 1]
            Weight of the starting map in the blend.

        Returns
        -------
        self : ResidualMLP
            The module, blended in place.

        Examples
        --------
        >>> import torch
        >>> from sklearn_dml.backbones import ResidualMLP
        >>> net = ResidualMLP(6, 3, hidden_layer_sizes=(8,), normalize_embeddings=False)
        >>> net = net.initialize(torch.randn(40, 6))
        >>> start = net(torch.ones(1, 6))
        >>> with torch.no_grad():
        ...     _ = net.branch[-1].weight.normal_()
        >>> trained = net(torch.ones(1, 6))
        >>> half = net.blend_with_start(0.5)(torch.ones(1, 6))
        >>> bool(torch.allclose(half, (start + trained) / 2, atol=1e-6))
        True
        """
        share = float(share)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share!r}.")
        keep = 1.0 - share
        self.skip.weight.mul_(keep).add_(self._start_weight, alpha=share)
        self.skip.bias.mul_(keep).add_(self._start_bias, alpha=share)
        if self.branch is not None:
            self.branch[-1].weight.mul_(keep)
            self.branch[-1].bias.mul_(keep)
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
