"""Redundancy-reduction losses between two views of a batch (Barlow Twins)."""

from numbers import Real

import torch

from .._param_validation import Interval
from .._params import ParamsMixin

__all__ = ["BarlowTwinsLoss"]


class BarlowTwinsLoss(ParamsMixin, torch.nn.Module):
    """Barlow Twins loss: the cross-correlation of two views pulled to identity.

    ``loss(z_a, z_b)`` takes the embeddings of two views of the same batch
    (row ``i`` of both describe the same sample, or two samples that should
    map to the same point) and returns a scalar. Each dimension is
    standardised over the batch, and the cross-correlation matrix of the two
    views is pulled towards the identity: a diagonal of 1 makes the views
    agree, zero off-diagonal entries decorrelate the dimensions, which keeps
    the embedding from collapsing without any negative pair. No labels.

    Parameters
    ----------
    redundancy_weight : float, default=0.0051
        Weight :math:`\\lambda \\ge 0` of the off-diagonal (redundancy
        reduction) term. The default is that of Zbontar et al. for 8192
        dimensions; it should shrink as the dimension grows, since the term
        sums :math:`d (d - 1)` entries against :math:`d` on the diagonal.

    epsilon : float, default=1e-5
        Added to each dimension's batch variance before dividing by its
        square root (the ``eps`` of a batch normalisation).

    See Also
    --------
    sklearn_dml.TLDREmbedder : Trains an encoder with this loss on pairs of
        nearest neighbours.

    Notes
    -----
    With :math:`\\hat z^A, \\hat z^B` the views standardised per dimension
    over the :math:`n` rows of the batch (mean 0, biased variance 1),

    .. math::

        C_{ij} = \\frac{1}{n} \\sum_{b=1}^{n} \\hat z^A_{bi} \\hat z^B_{bj},
        \\qquad
        L = \\sum_i (1 - C_{ii})^2 + \\lambda \\sum_i \\sum_{j \\ne i} C_{ij}^2.

    A batch needs at least two rows (a dimension of one row has no
    variance); a constant dimension standardises to 0, so its diagonal
    term is 1 and its gradient pushes it to vary.

    References
    ----------
    .. [1] J. Zbontar, L. Jing, I. Misra, Y. LeCun and S. Deny, "Barlow
       Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import BarlowTwinsLoss
    >>> z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    >>> round(BarlowTwinsLoss()(z, z).item(), 4)  # equal, decorrelated views
    0.0
    >>> round(BarlowTwinsLoss()(z, -z).item(), 4)  # opposite views: (1 + 1)^2 twice
    8.0
    """

    _parameter_constraints = {
        "redundancy_weight": [Interval(Real, 0, None, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, redundancy_weight=0.0051, epsilon=1e-5):
        super().__init__()
        self.redundancy_weight = redundancy_weight
        self.epsilon = epsilon

    def _standardize(self, z):
        centred = z - z.mean(dim=0)
        variance = centred.square().mean(dim=0)
        return centred / torch.sqrt(variance + float(self.epsilon))

    def forward(self, z_a, z_b):
        """Loss of two views of one batch.

        Parameters
        ----------
        z_a : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the first view.
        z_b : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the second view, row for row.

        Returns
        -------
        loss : torch.Tensor of shape ()
            The Barlow Twins loss, differentiable with respect to both views.
        """
        if not (torch.is_tensor(z_a) and torch.is_tensor(z_b)):
            raise TypeError("z_a and z_b must be torch tensors.")
        if z_a.ndim != 2 or z_a.shape != z_b.shape:
            raise ValueError(
                "z_a and z_b must be 2-D tensors of the same shape (batch_size, "
                f"n_dims); got {tuple(z_a.shape)} and {tuple(z_b.shape)}."
            )
        if z_a.shape[0] < 2:
            raise ValueError(
                "BarlowTwinsLoss standardises each dimension over the batch and "
                f"needs at least 2 rows; got {z_a.shape[0]}."
            )
        n = z_a.shape[0]
        correlation = self._standardize(z_a).T @ self._standardize(z_b) / n
        diagonal = torch.diagonal(correlation)
        on_diagonal = (1.0 - diagonal).square().sum()
        off_diagonal = correlation.square().sum() - diagonal.square().sum()
        return on_diagonal + float(self.redundancy_weight) * off_diagonal
