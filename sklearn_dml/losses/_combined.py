"""A weighted sum of losses, e.g. a metric loss plus the center-loss regulariser."""

import numbers

import torch

from ._base import BaseMetricLoss

__all__ = ["CombinedLoss"]


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

    def __init__(self, losses, weights=None):
        super().__init__()
        self.losses = losses
        self.weights = weights

    def _checked(self):
        """The parts and their weights, validated."""
        losses = self.losses
        if not isinstance(losses, (list, tuple)) or not losses:
            raise TypeError(
                "CombinedLoss needs losses as a non-empty list of loss modules, "
                f"e.g. [TripletMarginLoss(), CenterLoss()]; got {losses!r}."
            )
        for part in losses:
            if not isinstance(part, torch.nn.Module):
                raise TypeError(
                    "Every entry of CombinedLoss.losses must be a torch.nn.Module "
                    f"loss; got {type(part).__name__}."
                )
        weights = [1.0] * len(losses) if self.weights is None else self.weights
        if not isinstance(weights, (list, tuple)) or len(weights) != len(losses):
            raise ValueError(
                f"CombinedLoss needs one weight per loss ({len(losses)}); got "
                f"weights={self.weights!r}."
            )
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, numbers.Real) or w < 0:
                raise ValueError(
                    "CombinedLoss weights must be non-negative numbers; got "
                    f"{self.weights!r}."
                )
        return list(losses), [float(w) for w in weights]

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
        losses, _ = self._checked()
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
        losses, weights = self._checked()
        total = None
        for part, weight in zip(losses, weights):
            term = weight * part(embeddings, labels, indices_tuple)
            total = term if total is None else total + term
        return total
