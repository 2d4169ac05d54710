"""Metric losses: ``loss(embeddings, labels, indices_tuple=None) -> 0-d tensor``.

Every loss is a :class:`torch.nn.Module` with scikit-learn style
``get_params``/``set_params``, usable on its own in any PyTorch training loop
or passed to an estimator as a hyper-parameter.
"""

from ._base import BaseMetricLoss
from ._pair import ContrastiveLoss, MultiSimilarityLoss, TripletMarginLoss

__all__ = [
    "BaseMetricLoss",
    "ContrastiveLoss",
    "MultiSimilarityLoss",
    "TripletMarginLoss",
]
