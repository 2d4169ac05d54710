"""Regularising losses with learnable parameters: center loss."""

import numbers

import torch

from .._docstrings import fill_doc, register_doc
from ..distances import LpDistance
from ._base import BaseMetricLoss, zero_loss

__all__ = ["CenterLoss"]

register_doc(
    "loss_configure_note",
    """
    The learnable parameters do not exist until :meth:`configure` is called
    (``__init__`` only stores its arguments): an estimator calls
    ``configure(n_classes, n_components)`` before it builds the optimizer, so
    that the optimizer sees them. Calling it again re-initialises them from
    the caller's torch random state. ``sklearn.base.clone`` gives an
    unconfigured copy; ``copy.deepcopy``, pickling, ``state_dict`` and
    ``.to(device)`` carry the parameters (plain :class:`torch.nn.Parameter`).
    """,
)


def resolve_size(stored, given, name):
    """The size to configure with: ``given`` or the one stored at ``__init__``.

    Raises ``ValueError`` when neither is known, when both are known and
    differ, or when the value is not a positive integer.
    """
    if given is None:
        given = stored
    elif stored is not None and stored != given:
        raise ValueError(
            f"{name}={given} passed to configure differs from {name}={stored} "
            "given to the constructor; pass the same value or leave one as None."
        )
    if given is None:
        raise ValueError(
            f"{name} is unknown: pass it to the constructor or to "
            f"configure({name}=...)."
        )
    if not isinstance(given, numbers.Integral) or isinstance(given, bool) or given < 1:
        raise ValueError(f"{name} must be a positive integer; got {given!r}.")
    return int(given)


def not_configured_error(obj, names):
    return RuntimeError(
        f"{type(obj).__name__} has no {names} yet: call "
        "configure(num_classes, embedding_size) before the first forward "
        "(estimators do this before building the optimizer)."
    )


@fill_doc
class CenterLoss(BaseMetricLoss):
    r"""Center loss: pull every embedding towards a learned centre of its class.

    A regulariser, usually added with a small weight to another loss
    (``total = main_loss(e, y) + lam * center_loss(e, y)``). Same forward
    signature as every loss.

    Parameters
    ----------
    num_classes : int, default=None
        Number of classes (labels must lie in ``[0, num_classes)``). ``None``
        takes it from :meth:`configure`.

    embedding_size : int, default=None
        Dimension of the embeddings. ``None`` takes it from :meth:`configure`.

    distance : BaseDistance, default=None
        How an embedding is compared with its centre. ``None`` means the
        squared Euclidean distance of the raw (not normalised) embeddings,
        ``LpDistance(power=2, normalize_embeddings=False)``. With a similarity
        the loss is minus the mean similarity to the centres.

    Attributes
    ----------
    centers : torch.nn.Parameter of shape (num_classes, embedding_size)
        The class centres, created by :meth:`configure` with standard normal
        entries.

    See Also
    --------
    MarginLoss : Also holds learnable per-class parameters.

    Notes
    -----
    For a batch of :math:`n` samples with labels :math:`y_i`:

    .. math::

        L = \frac{1}{2n} \sum_{i=1}^{n} \| x_i - c_{y_i} \|_2^2

    (:math:`d(x_i, c_{y_i})` for another distance, :math:`-s(x_i, c_{y_i})`
    for a similarity). The paper sums over the batch; the mean makes the
    weight independent of the batch size. With ``indices_tuple`` only the
    samples named in it count. The paper moves the centres with their own
    update rule (centre step :math:`\alpha = 0.5`, loss weight
    :math:`\lambda = 0.003` for its face models); here they are ordinary
    parameters trained by the optimizer through the gradient
    :math:`c_j - x_i`. The usual PyTorch equivalent gives the centres their
    own SGD learning rate of 0.5 (an estimator's learning rate for loss
    parameters).

    {loss_configure_note}

    Not in pytorch-metric-learning (which has no center loss).

    References
    ----------
    .. [1] Wen, Y., Zhang, K., Li, Z. and Qiao, Y. "A Discriminative Feature
       Learning Approach for Deep Face Recognition", ECCV 2016.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses._regularizers import CenterLoss
    >>> loss = CenterLoss().configure(num_classes=2, embedding_size=2)
    >>> with torch.no_grad():
    ...     loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    Parameter containing:
    tensor([[0., 0.],
            [1., 1.]], requires_grad=True)
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 2.0]])
    >>> loss(embeddings, torch.tensor([0, 0, 1])).item()
    1.0
    """

    def __init__(self, num_classes=None, embedding_size=None, distance=None):
        super().__init__(distance=distance)
        self.num_classes = num_classes
        self.embedding_size = embedding_size

    def _default_distance(self):
        return LpDistance(power=2, normalize_embeddings=False)

    def configure(self, num_classes=None, embedding_size=None):
        """Create the class centres.

        Parameters
        ----------
        num_classes : int, default=None
            Number of classes; ``None`` uses the constructor's value.
        embedding_size : int, default=None
            Dimension of the embeddings; ``None`` uses the constructor's
            value.

        Returns
        -------
        self : CenterLoss
            This loss, with ``centers`` of shape ``(num_classes,
            embedding_size)`` drawn from the caller's torch random state.
        """
        n = resolve_size(self.num_classes, num_classes, "num_classes")
        d = resolve_size(self.embedding_size, embedding_size, "embedding_size")
        self.centers = torch.nn.Parameter(torch.randn(n, d))
        return self

    def _compute(self, embeddings, labels, indices_tuple, distance):
        centers = getattr(self, "centers", None)
        if centers is None:
            raise not_configured_error(self, "centers")
        if embeddings.shape[1] != centers.shape[1]:
            raise ValueError(
                f"embeddings have {embeddings.shape[1]} dimensions but the "
                f"centers have {centers.shape[1]}; call configure with the "
                "embedding size."
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(centers)):
            raise ValueError(
                f"labels must lie in [0, {len(centers)}) (one centre per class); "
                f"got values from {int(labels.min())} to {int(labels.max())}."
            )
        if indices_tuple is not None:
            named = torch.cat([t.reshape(-1) for t in indices_tuple])
            if named.numel() == 0:
                return zero_loss(embeddings)
            keep = torch.unique(named)
            embeddings_, labels_ = embeddings[keep], labels[keep]
        else:
            embeddings_, labels_ = embeddings, labels
        if labels_.numel() == 0:
            return zero_loss(embeddings)
        own = centers[labels_].to(embeddings.dtype)
        values = distance.pairwise(embeddings_, own)
        if distance.is_inverted:
            values = -values
        return 0.5 * values.mean()
