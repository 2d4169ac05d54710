"""Backbones for rows made of several feature vectors: set pooling (generalised sum,
average) and the MLP around it.
"""

import numpy as np
import torch
from torch import nn

from ._mlp import L2Normalize


def _check_fraction(mu):
    if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not 0 < mu <= 1:
        raise ValueError(
            f"mu (the fraction of the feature mass transported) must be in (0, 1]; "
            f"got {mu!r}. mu=1 is average pooling."
        )


_POOLINGS = ("gsp", "average")


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
