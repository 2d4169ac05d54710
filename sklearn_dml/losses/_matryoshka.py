"""Matryoshka wrapper: one loss applied to nested prefixes of the embedding."""

import copy
import numbers

import torch

from .._params import ParamsMixin

__all__ = ["MatryoshkaLoss"]


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

    def __init__(self, loss, nested_dims, normalize=True, weights=None):
        super().__init__()
        self.loss = loss
        self.nested_dims = nested_dims
        self.normalize = normalize
        self.weights = weights

    def _checked_weights(self, n_terms):
        if self.weights is None:
            return [1.0 / n_terms] * n_terms
        weights = self.weights
        if not isinstance(weights, (tuple, list)) or len(weights) != n_terms:
            raise ValueError(
                f"MatryoshkaLoss needs one weight per prefix plus one for the full "
                f"embedding ({n_terms}); got weights={weights!r}."
            )
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, numbers.Real) or w < 0:
                raise ValueError(
                    f"MatryoshkaLoss weights must be non-negative numbers; got "
                    f"{weights!r}."
                )
        total = float(sum(weights))
        if total <= 0:
            raise ValueError("MatryoshkaLoss weights must not all be zero.")
        return [float(w) / total for w in weights]

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
        if not isinstance(self.loss, torch.nn.Module):
            raise TypeError(
                "MatryoshkaLoss needs a loss module, e.g. TripletMarginLoss(); got "
                f"{type(self.loss).__name__}."
            )
        if embedding_size is None:
            raise ValueError("MatryoshkaLoss.configure needs the embedding_size.")
        dims = check_nested_dims(self.nested_dims, embedding_size) + (
            int(embedding_size),
        )
        self._checked_weights(len(dims))
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
        weights = self._checked_weights(len(self.dims_))
        total = None
        for k, part, w in zip(self.dims_, self.parts, weights):
            prefix = embeddings[:, :k]
            if self.normalize:
                prefix = torch.nn.functional.normalize(prefix, p=2.0, dim=1)
            term = w * part(prefix, labels, indices_tuple)
            total = term if total is None else total + term
        return total
