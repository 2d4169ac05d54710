"""Embedding networks (backbones) for the estimators, in plain torch.

``_mlp`` holds the default :class:`ResidualMLP` (a PCA start with a zero
initialised MLP branch and its anchoring penalty), a plain :class:`MLP` and
:class:`L2Normalize`; ``_gaussian`` the :class:`GaussianHead` of the
probabilistic embedders; ``_set_pooling`` the backbones for rows made of
several feature vectors. Any ``torch.nn.Module`` works as ``backbone=``.
"""

from ._gaussian import GaussianHead
from ._mlp import MLP, L2Normalize, ResidualMLP
from ._set_pooling import AveragePooling, GeneralizedSumPooling, SetPoolingMLP

__all__ = [
    "AveragePooling",
    "GaussianHead",
    "GeneralizedSumPooling",
    "L2Normalize",
    "MLP",
    "ResidualMLP",
    "SetPoolingMLP",
]
