"""Metrix: mixup for deep metric learning, a training option of the embedders.

Every embedder has a ``mixup`` parameter. ``mixup="embedding"`` (or
``"input"``, ``"feature"``, or a :class:`Metrix` object for the other
hyper-parameters) adds to the loss of each training batch the loss of mixed
samples with interpolated (soft) labels, computed by the training engine
with the loss's :meth:`~sklearn_dml.losses.BaseMetricLoss.soft_forward`.
"""

from dataclasses import dataclass
from numbers import Real

import torch
import torch.nn.functional as F

from ._param_validation import Interval, StrOptions
from ._params import ParamsMixin

__all__ = ["Metrix", "mix_batch"]

MIXUP_PLACES = ("input", "feature", "embedding")


class Metrix(ParamsMixin):
    """Metric Mix (Metrix): mixup of samples of different classes in training.

    Pass it (or one of the strings ``"input"``, ``"feature"``,
    ``"embedding"``, shortcuts for ``Metrix(on=...)``) as the ``mixup``
    parameter of an embedder whose loss supports soft labels
    (:class:`~sklearn_dml.losses.ContrastiveLoss`,
    :class:`~sklearn_dml.losses.MultiSimilarityLoss`,
    :class:`~sklearn_dml.losses.ProxyAnchorLoss`,
    :class:`~sklearn_dml.losses.ProxyNCALoss`,
    :class:`~sklearn_dml.losses.NormalizedSoftmaxLoss`). Its parameters are
    tunable as ``mixup__alpha`` etc. in ``GridSearchCV``.

    Parameters
    ----------
    on : {"embedding", "input", "feature"}, default="embedding"
        What is interpolated: the embeddings of the two samples
        (re-normalised when the estimator normalises its embeddings), the
        input features (the mixed input is then embedded by the backbone), or
        the first hidden layer of the default
        :class:`~sklearn_dml.backbones.ResidualMLP` backbone (manifold mixup;
        not available for a user backbone or ``hidden_layer_sizes=()``).

    alpha : float, default=2.0
        Every mixed sample draws its interpolation factor
        :math:`\\lambda \\sim \\mathrm{Beta}(\\alpha, \\alpha)`; ``alpha=1``
        is uniform on [0, 1], large values concentrate it near 0.5.

    weight : float, default=1.0
        Weight :math:`w` of the mixed loss added to the clean loss.

    See Also
    --------
    sklearn_dml.losses.BaseMetricLoss.soft_forward : The mixed loss.
    sklearn_dml.metrics.utilization_loss : The paper's utilization measure.

    Notes
    -----
    For a batch of samples :math:`x_i` with classes :math:`y_i`, each sample
    :math:`i` with some sample of another class in the batch is paired with
    one such sample :math:`j(i)` drawn uniformly, and gives one mixed sample
    with its own :math:`\\lambda_i`:

    .. math::

        \\tilde z_i = \\lambda_i z_i + (1 - \\lambda_i) z_{j(i)}, \\qquad
        \\tilde t_i = \\lambda_i e_{y_i} + (1 - \\lambda_i) e_{y_{j(i)}},

    where :math:`z` is the input, the hidden layer or the embedding, and
    :math:`e_c` the one-hot label of class :math:`c`. For an anchor
    :math:`a` of class :math:`y_a`, a mixed sample is positive with weight
    :math:`\\tilde t_{i, y_a}` and negative with weight
    :math:`1 - \\tilde t_{i, y_a}`: a mix of a positive and a negative of
    :math:`a` is partly both, a mix of two negatives a negative. The
    objective of a batch is

    .. math::

        L = \\ell(\\text{clean batch}) + w\\, \\tilde\\ell(\\text{clean anchors},
        \\text{mixed samples}),

    with :math:`\\tilde\\ell` the loss's soft-label form (each supporting loss
    gives its formula in its Notes). Anchors stay clean, as in the paper;
    proxy losses use their proxies as anchors.

    References
    ----------
    .. [1] Venkataramanan, S., Psomas, B., Kijak, E., Amsaleg, L.,
       Karantzalos, K. and Avrithis, Y. "It Takes Two to Tango: Mixup for
       Deep Metric Learning", ICLR 2022.
    .. [2] Zhang, H., Cisse, M., Dauphin, Y. N. and Lopez-Paz, D. "mixup:
       Beyond Empirical Risk Minimization", ICLR 2018.
    .. [3] Verma, V. et al. "Manifold Mixup: Better Representations by
       Interpolating Hidden States", ICML 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import ContrastiveEmbedder
    >>> from sklearn_dml.mixup import Metrix
    >>> X, y = load_digits(return_X_y=True)
    >>> emb = ContrastiveEmbedder(
    ...     n_components=8, max_iter=2, mixup=Metrix(on="input", alpha=1.0),
    ...     random_state=0,
    ... )
    >>> emb.fit(X[:300], y[:300]).transform(X[:2]).shape
    (2, 8)
    >>> emb.get_params()["mixup__alpha"]
    1.0
    """

    _parameter_constraints = {
        "on": [StrOptions(MIXUP_PLACES)],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "weight": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, on="embedding", alpha=2.0, weight=1.0):
        self.on = on
        self.alpha = alpha
        self.weight = weight

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


def resolve_mixup(value):
    """A validated copy of the ``mixup`` parameter as a :class:`Metrix` (or None)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in MIXUP_PLACES:
            raise ValueError(
                f"mixup must be None, one of {MIXUP_PLACES} or a "
                f"sklearn_dml.mixup.Metrix object; got {value!r}."
            )
        return Metrix(on=value)
    # By class name too: a second copy of this module (pytest's importlib
    # doctest collection) defines an equal but distinct class.
    if isinstance(value, Metrix) or (
        type(value).__name__ == "Metrix" and hasattr(value, "get_params")
    ):
        # A new Metrix validates its parameters (also those assigned directly).
        return Metrix(**value.get_params(deep=False))
    raise ValueError(
        f"mixup must be None, one of {MIXUP_PLACES} or a sklearn_dml.mixup.Metrix "
        f"object; got {type(value).__name__} {value!r}."
    )


def mix_batch(labels, n_classes, alpha):
    """Draw the Metrix mixing pairs, factors and soft labels of one batch.

    Parameters
    ----------
    labels : torch.Tensor of shape (batch_size,)
        Class indices of the batch.
    n_classes : int
        Number of classes (columns of the soft labels).
    alpha : float
        :math:`\\lambda \\sim \\mathrm{Beta}(\\alpha, \\alpha)`.

    Returns
    -------
    first, second : torch.Tensor of shape (n_mixed,)
        Positions of the two mixed samples; ``labels[first] != labels[second]``.
        Every sample with a sample of another class in the batch is a
        ``first`` once, its partner drawn uniformly among those.
    lam : torch.Tensor of shape (n_mixed,)
        Weight of ``first``.
    targets : torch.Tensor of shape (n_mixed, n_classes)
        Soft labels ``lam * e[labels[first]] + (1 - lam) * e[labels[second]]``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.mixup import mix_batch
    >>> _ = torch.manual_seed(0)
    >>> first, second, lam, targets = mix_batch(torch.tensor([0, 0, 1]), 2, 2.0)
    >>> first.tolist(), second.tolist()
    ([0, 1, 2], [2, 2, 1])
    >>> bool(torch.allclose(targets.sum(dim=1), torch.ones(3)))
    True
    """
    n = labels.shape[0]
    other = labels[:, None] != labels[None, :]
    # Uniform draw among the other-class samples: argmax of uniform scores.
    scores = torch.rand(n, n, device=labels.device).masked_fill(~other, -1.0)
    second = scores.argmax(dim=1)
    keep = other.any(dim=1)
    first = torch.arange(n, device=labels.device)[keep]
    second = second[keep]
    concentration = torch.full((first.shape[0],), float(alpha))
    lam = torch.distributions.Beta(
        concentration, concentration, validate_args=False
    ).sample()
    lam = lam.to(labels.device)
    one_hot = F.one_hot(labels, n_classes).to(lam.dtype)
    targets = lam[:, None] * one_hot[first] + (1.0 - lam[:, None]) * one_hot[second]
    return first, second, lam, targets


@dataclass
class MixupPlan:
    """What the engine needs to add the Metrix term to a batch loss."""

    metrix: Metrix
    n_classes: int
    normalize: bool

    def mixed_loss(self, backbone, loss, xb, yb, embeddings):
        """The (unweighted) mixed loss of one batch."""
        first, second, lam, targets = mix_batch(yb, self.n_classes, self.metrix.alpha)
        lam_col = lam.to(xb.dtype)[:, None]
        on = self.metrix.on
        if on == "embedding":
            mixed = lam_col * embeddings[first] + (1 - lam_col) * embeddings[second]
            if self.normalize:
                mixed = F.normalize(mixed, dim=1)
        elif on == "input":
            mixed = backbone(lam_col * xb[first] + (1 - lam_col) * xb[second])
        else:
            mixed = backbone.forward_mixed_features(xb, first, second, lam)
        return loss.soft_forward(embeddings, yb, mixed, targets.to(embeddings.dtype))
