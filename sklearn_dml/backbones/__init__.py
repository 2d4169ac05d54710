"""Embedding networks (backbones) for the estimators, in plain torch.

``_mlp`` holds the default :class:`ResidualMLP` (a PCA start with a zero
initialised MLP branch and its anchoring penalty), a plain :class:`MLP` and
:class:`L2Normalize`; ``_patch`` the default for image arrays
(:class:`PatchPCANet`: fixed filters from the images' patches under a
residual MLP); ``_conv`` the small convolutional networks for images
(:class:`ImageConvNet`, available as ``backbone=``) and the default for
sequences (:class:`SequenceConvNet`);
``_gaussian`` the :class:`GaussianHead` of the probabilistic embedders;
``_set_pooling`` the backbones for rows made of several feature vectors;
``_pretrained`` :func:`load_weights`, weights from a local file without
running code. Any ``torch.nn.Module`` works as ``backbone=``.
"""

from ._conv import ImageConvNet, SequenceConvNet
from ._gaussian import GaussianHead
from ._mlp import MLP, L2Normalize, ResidualMLP
from ._patch import PatchPCANet
from ._pretrained import load_weights
from ._set_pooling import AveragePooling, GeneralizedSumPooling, SetPoolingMLP

__all__ = [
    "AveragePooling",
    "GaussianHead",
    "GeneralizedSumPooling",
    "ImageConvNet",
    "L2Normalize",
    "MLP",
    "PatchPCANet",
    "ResidualMLP",
    "SequenceConvNet",
    "SetPoolingMLP",
    "load_weights",
]
