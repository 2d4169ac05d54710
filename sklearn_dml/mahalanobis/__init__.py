"""Linear (Mahalanobis) metric learners, solved in PyTorch.

Every learner fits a linear map ``L`` (``components_``) so that Euclidean
distances after ``transform`` are the learned Mahalanobis distances
``sqrt((x - x')^T L^T L (x - x'))``; ``get_mahalanobis_matrix`` returns
``L^T L``. They share the pair API of the deep embedders (``pair_distance``,
``pair_score``, ``get_metric``, ``calibrate_threshold``) and score with
MAP@R.
"""

from ._base import BaseMahalanobisLearner, MahalanobisMixin
from ._covariance import Covariance
from ._lfda import LFDA
from ._lmnn import LMNN
from ._mlkr import MLKR
from ._nca import LinearNCA
from ._rca import RCA

__all__ = [
    "LFDA",
    "LMNN",
    "MLKR",
    "RCA",
    "BaseMahalanobisLearner",
    "Covariance",
    "LinearNCA",
    "MahalanobisMixin",
]
