"""Distances and similarities between embeddings.

A distance object turns embeddings into a matrix of dissimilarities
(:class:`LpDistance`, small means close) or similarities
(:class:`CosineSimilarity`, :class:`DotProductSimilarity`, large means close;
``is_inverted = True``). Losses and miners never look at the sign themselves:
they ask the distance through :meth:`BaseDistance.margin`.
"""

import math
from numbers import Real

import torch

from ._param_validation import Interval, Options
from ._params import ParamsMixin

__all__ = [
    "BaseDistance",
    "CosineSimilarity",
    "DotProductSimilarity",
    "LpDistance",
    "SNRDistance",
]


class BaseDistance(ParamsMixin, torch.nn.Module):
    """Base class of distances and similarities.

    Subclasses implement ``_matrix(query, ref)`` and ``_rowwise(x, y)`` on
    already normalised embeddings.

    Parameters
    ----------
    normalize_embeddings : bool, default=True
        Scale every embedding to unit norm before comparing.

    Attributes
    ----------
    is_inverted : bool
        Class attribute: ``False`` for distances (small = close), ``True`` for
        similarities (large = close).

    Notes
    -----
    The parameters are checked against the class's ``_parameter_constraints``
    once the object is built and by ``set_params``, never at every call. A
    subclass with parameters of its own declares them there too
    (``{**BaseDistance._parameter_constraints, "q": [Interval(Real, 0, None,
    closed="neither")]}``).

    Examples
    --------
    A Manhattan distance needs the matrix and the row-wise versions:

    >>> import torch
    >>> from sklearn_dml.distances import BaseDistance
    >>> class ManhattanDistance(BaseDistance):
    ...     def _matrix(self, query, ref):
    ...         return torch.cdist(query, query if ref is None else ref, p=1)
    ...     def _rowwise(self, x, y):
    ...         return (x - y).abs().sum(dim=1)
    >>> dist = ManhattanDistance(normalize_embeddings=False)
    >>> x = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    >>> dist(x)
    tensor([[0., 3.],
            [3., 0.]])
    >>> dist.pairwise(x, x.flip(0))
    tensor([3., 3.])
    """

    is_inverted = False
    _norm_p = 2

    _parameter_constraints = {"normalize_embeddings": ["boolean"]}

    def __init__(self, normalize_embeddings=True):
        super().__init__()
        self.normalize_embeddings = normalize_embeddings

    def _maybe_normalize(self, x):
        if self.normalize_embeddings:
            return torch.nn.functional.normalize(x, p=self._norm_p, dim=1)
        return x

    def forward(self, query, ref=None):
        """Compare every query row with every reference row.

        Parameters
        ----------
        query : torch.Tensor of shape (n_query, n_dims)
            Query embeddings.
        ref : torch.Tensor of shape (n_ref, n_dims), default=None
            Reference embeddings; ``None`` compares ``query`` with itself (the
            diagonal is then exactly the self-distance).

        Returns
        -------
        mat : torch.Tensor of shape (n_query, n_ref)
            ``mat[i, j]`` compares ``query[i]`` with ``ref[j]``.
        """
        _check_2d(query, "query")
        q = self._maybe_normalize(query)
        if ref is None:
            return self._matrix(q, None)
        _check_2d(ref, "ref")
        if ref.shape[1] != query.shape[1]:
            raise ValueError(
                f"query has {query.shape[1]} columns but ref has {ref.shape[1]}."
            )
        return self._matrix(q, self._maybe_normalize(ref))

    def pairwise(self, x, y):
        """Compare rows ``x[i]`` and ``y[i]`` one to one.

        Parameters
        ----------
        x, y : torch.Tensor of shape (n, n_dims)
            Embeddings to compare row by row.

        Returns
        -------
        values : torch.Tensor of shape (n,)
            ``values[i]`` compares ``x[i]`` with ``y[i]``; equal to the
            diagonal of ``self(x, y)``.
        """
        _check_2d(x, "x")
        _check_2d(y, "y")
        if x.shape != y.shape:
            raise ValueError(
                f"x and y must have the same shape; got {x.shape} and {y.shape}."
            )
        return self._rowwise(self._maybe_normalize(x), self._maybe_normalize(y))

    def margin(self, x, y):
        """How much closer ``x`` is than ``y``, in this distance's units.

        ``y - x`` for a distance, ``x - y`` for a similarity; positive when the
        pair measured by ``x`` is the closer one. Broadcasts like subtraction.

        This is the negative of pytorch-metric-learning's
        ``BaseDistance.margin`` (which measures how much *farther* ``x`` is).

        Parameters
        ----------
        x, y : torch.Tensor or float
            Values produced by this distance.

        Returns
        -------
        margin : torch.Tensor or float
        """
        return x - y if self.is_inverted else y - x

    def _matrix(self, query, ref):
        raise NotImplementedError

    def _rowwise(self, x, y):
        raise NotImplementedError


def _check_2d(x, name):
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D tensor of shape (n_samples, n_dims); got "
            f"{getattr(x, 'shape', type(x).__name__)}."
        )


class DistanceConstraint:
    """Parameter constraint: a distance of a given class with given attributes.

    For the ``distance`` parameter of a loss or miner defined for one kind of
    comparison only, e.g. ``DistanceConstraint(LpDistance, p=2,
    normalize_embeddings=True)`` or ``DistanceConstraint(is_inverted=True)``
    (any similarity).

    Parameters
    ----------
    kind : type, default=BaseDistance
        The accepted class (subclasses included).
    **attributes : dict
        Attribute names mapped to the value each must equal.
    """

    def __init__(self, kind=None, **attributes):
        self.kind = BaseDistance if kind is None else kind
        self.attributes = attributes

    def is_satisfied_by(self, value):
        missing = object()
        return isinstance(value, self.kind) and all(
            getattr(value, key, missing) == wanted
            for key, wanted in self.attributes.items()
        )

    def __str__(self):
        if not self.attributes:
            return f"an instance of {self.kind.__name__}"
        wanted = ", ".join(f"{k}={v!r}" for k, v in self.attributes.items())
        return f"a {self.kind.__name__} with {wanted}"


class _SafeSqrt(torch.autograd.Function):
    """Square root of a non-negative tensor with a zero gradient at zero.

    One kernel forward and two backward, where masking the input and the
    output with ``torch.where`` would cost four and six.
    """

    @staticmethod
    def forward(ctx, squared):
        root = torch.sqrt(squared)
        ctx.save_for_backward(root)
        return root

    @staticmethod
    def backward(ctx, grad):
        (root,) = ctx.saved_tensors
        return torch.where(root > 0, grad / (2.0 * root), 0.0)


def _safe_sqrt(squared):
    """Square root whose gradient is 0, not inf or NaN, where the input is <= 0."""
    return _SafeSqrt.apply(squared.clamp_min(0.0))


class LpDistance(BaseDistance):
    """Minkowski (Lp) distance, optionally raised to a power.

    Parameters
    ----------
    p : float, default=2
        Order of the norm (``2`` Euclidean, ``1`` Manhattan, ``float("inf")``
        Chebyshev). With ``normalize_embeddings=True`` embeddings are scaled to
        unit Lp norm of the same order.

    power : float, default=1
        Exponent applied to the distance (``power=2`` gives the squared
        Euclidean distance).

    normalize_embeddings : bool, default=True
        Scale every embedding to unit norm before comparing.

    Notes
    -----
    .. math::

        d(x, y) = \\Big(\\sum_k |x_k - y_k|^p\\Big)^{\\mathrm{power} / p}

    For ``p=2`` the matrix is computed as
    :math:`\\sqrt{\\max(0, \\|x\\|^2 + \\|y\\|^2 - 2 x^\\top y)}` with one matrix
    product, the self-distance diagonal set to exactly zero, and a square root
    whose gradient is zero (not NaN) at zero distance. Nearly equal rows lose
    some precision in float32 (absolute error about ``1e-3`` on unit
    vectors). Other orders use :func:`torch.cdist`. :meth:`pairwise` equals
    the diagonal of the matrix exactly (pytorch-metric-learning's
    ``pairwise_distance`` adds ``1e-6`` to every coordinate difference).

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.distances import LpDistance
    >>> x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
    >>> LpDistance()(x)
    tensor([[0.0000, 1.4142, 0.0000],
            [1.4142, 0.0000, 1.4142],
            [0.0000, 1.4142, 0.0000]])
    >>> LpDistance(normalize_embeddings=False, power=2).pairwise(x[:2], x[1:])
    tensor([2., 5.])
    """

    is_inverted = False

    _parameter_constraints = {
        **BaseDistance._parameter_constraints,
        "p": [Interval(Real, 0, None, closed="neither"), Options(float, {math.inf})],
        "power": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, p=2, power=1, normalize_embeddings=True):
        super().__init__(normalize_embeddings=normalize_embeddings)
        self.p = p
        self.power = power

    @property
    def _norm_p(self):
        return self.p

    def _matrix(self, query, ref):
        if self.p == 2:
            same = ref is None
            ref = query if same else ref
            sq_q = (query * query).sum(1)
            sq_r = sq_q if same else (ref * ref).sum(1)
            # |q|^2 + |r|^2 - 2 q.r in one fused matrix product
            squared = torch.addmm(
                sq_q[:, None] + sq_r[None, :], query, ref.T, alpha=-2.0
            )
            if same:
                squared.fill_diagonal_(0.0)
            mat = _safe_sqrt(squared)
        else:
            mat = torch.cdist(query, query if ref is None else ref, p=self.p)
        return self._apply_power(mat)

    def _rowwise(self, x, y):
        diff = x - y
        if self.p == 2:
            values = _safe_sqrt((diff * diff).sum(1))
        else:
            values = torch.linalg.vector_norm(diff, ord=self.p, dim=1)
        return self._apply_power(values)

    def _apply_power(self, values):
        return values if self.power == 1 else values**self.power


class DotProductSimilarity(BaseDistance):
    """Inner product of embeddings (a similarity: large means close).

    Parameters
    ----------
    normalize_embeddings : bool, default=False
        Scale every embedding to unit L2 norm first, which turns this into
        :class:`CosineSimilarity`. Unlike pytorch-metric-learning, whose
        default is ``True``, the default here is the plain dot product.

    Notes
    -----
    .. math::

        s(x, y) = x^\\top y

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.distances import DotProductSimilarity
    >>> x = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    >>> DotProductSimilarity()(x)
    tensor([[5., 3.],
            [3., 9.]])
    """

    is_inverted = True

    def __init__(self, normalize_embeddings=False):
        super().__init__(normalize_embeddings=normalize_embeddings)

    def _matrix(self, query, ref):
        return query @ (query if ref is None else ref).T

    def _rowwise(self, x, y):
        return (x * y).sum(1)


class CosineSimilarity(DotProductSimilarity):
    """Cosine of the angle between embeddings (a similarity in ``[-1, 1]``).

    Embeddings are always normalised to unit L2 norm; the only difference from
    ``DotProductSimilarity(normalize_embeddings=True)`` is that this cannot be
    switched off.

    Notes
    -----
    .. math::

        s(x, y) = \\frac{x^\\top y}{\\|x\\|_2 \\, \\|y\\|_2}

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.distances import CosineSimilarity
    >>> x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    >>> CosineSimilarity()(x)
    tensor([[1.0000, 0.7071, 0.0000],
            [0.7071, 1.0000, 0.7071],
            [0.0000, 0.7071, 1.0000]])
    """

    _parameter_constraints = {}

    def __init__(self):
        super().__init__(normalize_embeddings=True)


def _snr_signal(squared_norms):
    """Centred squared norms floored away from zero (see :class:`SNRDistance`)."""
    return squared_norms.clamp_min(1e-12)


class SNRDistance(BaseDistance):
    r"""Signal-to-noise ratio distance: noise variance over signal variance.

    The "signal" is the query embedding and the "noise" its difference with
    the reference embedding. The distance is not symmetric: ``d(x, y)``
    divides by the variance of ``x``.

    Parameters
    ----------
    normalize_embeddings : bool, default=True
        Scale every embedding to unit L2 norm before comparing.

    Notes
    -----
    With :math:`\operatorname{var}(v)` the variance of the coordinates of
    :math:`v`:

    .. math::

        d(x, y) = \frac{\operatorname{var}(x - y)}{\operatorname{var}(x)}
                = \frac{\|\bar x - \bar y\|^2}{\|\bar x\|^2}

    where :math:`\bar v = v - \operatorname{mean}(v)` is the centred vector.
    The matrix is computed from one matrix product of centred embeddings
    (no ``(n, n, d)`` tensor), clamped at zero, with an exactly zero
    diagonal when a batch is compared with itself. The signal term is
    floored at ``1e-12``: an embedding with constant
    coordinates (e.g. the all-zero embedding of a sample at the data mean)
    gets a very large but finite distance instead of the infinite or NaN one
    of pytorch-metric-learning, so training does not stop on it.

    References
    ----------
    .. [1] Yuan, T., Deng, W., Tang, J., Tang, Y. and Chen, B. "Signal-to-Noise
       Ratio: A Robust Distance Metric for Deep Metric Learning", CVPR 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.distances import SNRDistance
    >>> x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    >>> SNRDistance(normalize_embeddings=False)(x)
    tensor([[0.0000, 3.0000, 1.0000],
            [3.0000, 0.0000, 1.0000],
            [1.0000, 1.0000, 0.0000]])
    """

    is_inverted = False

    def __init__(self, normalize_embeddings=True):
        super().__init__(normalize_embeddings=normalize_embeddings)

    def _matrix(self, query, ref):
        same = ref is None
        q = query - query.mean(dim=1, keepdim=True)
        r = q if same else ref - ref.mean(dim=1, keepdim=True)
        sq_q = (q * q).sum(1)
        sq_r = sq_q if same else (r * r).sum(1)
        noise = (sq_q[:, None] + sq_r[None, :] - 2.0 * (q @ r.T)).clamp_min(0.0)
        if same:
            eye = torch.eye(q.shape[0], dtype=torch.bool, device=q.device)
            noise = torch.where(eye, torch.zeros_like(noise), noise)
        return noise / _snr_signal(sq_q)[:, None]

    def _rowwise(self, x, y):
        xc = x - x.mean(dim=1, keepdim=True)
        diff = x - y
        diff = diff - diff.mean(dim=1, keepdim=True)
        return (diff * diff).sum(1) / _snr_signal((xc * xc).sum(1))


class DistanceUserMixin:
    """What a loss or miner with a ``distance`` parameter shares.

    ``distance=None`` means the class's :meth:`_default_distance`, built
    once and reused (no distance is constructed at every batch) until
    ``set_params`` changes a parameter.
    """

    def _default_distance(self):
        return LpDistance()

    def _get_distance(self):
        if self.distance is not None:
            return self.distance
        default = self.__dict__.get("_default_distance_cache")
        if default is None:
            default = self._default_distance()
            object.__setattr__(self, "_default_distance_cache", default)
        return default

    def set_params(self, **params):
        """Set constructor parameters, nested ones with ``<component>__<name>``.

        The new values are validated before anything is set (an invalid one
        raises ``InvalidParameterError`` and leaves the component unchanged).

        Parameters
        ----------
        **params : dict
            Parameter names mapped to their new values.

        Returns
        -------
        self : object
            This component.
        """
        super().set_params(**params)
        self.__dict__.pop("_default_distance_cache", None)
        return self
