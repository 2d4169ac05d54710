"""Linear (Mahalanobis) metric learners.

Every learner fits a linear map ``L`` (``components_``) so that Euclidean
distances after ``transform`` are the learned Mahalanobis distances
``sqrt((x - x')^T L^T L (x - x'))``; ``get_mahalanobis_matrix`` returns
``L^T L``. They share the pair API of the deep embedders (``pair_distance``,
``pair_score``, ``get_metric``, ``calibrate_threshold``) and score with
MAP@R.

The weakly supervised learners (ITML, MMC, SDML on pairs; SCML on triplets;
LSML on quadruplets) are fitted on constraints; each has a ``<Name>Supervised``
counterpart that draws its constraints from class labels.
"""

from ._base import BaseMahalanobisLearner, MahalanobisMixin
from ._covariance import Covariance
from ._itml import ITML, ITMLSupervised
from ._lfda import LFDA
from ._lmnn import LMNN
from ._lsml import LSML, LSMLSupervised
from ._mlkr import MLKR
from ._mmc import MMC, MMCSupervised
from ._nca import LinearNCA
from ._rca import RCA
from ._scml import SCML, SCMLSupervised
from ._sdml import SDML, SDMLSupervised
from ._weak import BaseWeakMahalanobisLearner

__all__ = [
    "BaseMahalanobisLearner",
    "BaseWeakMahalanobisLearner",
    "Covariance",
    "ITML",
    "ITMLSupervised",
    "LFDA",
    "LMNN",
    "LSML",
    "LSMLSupervised",
    "LinearNCA",
    "MLKR",
    "MMC",
    "MMCSupervised",
    "MahalanobisMixin",
    "RCA",
    "SCML",
    "SCMLSupervised",
    "SDML",
    "SDMLSupervised",
]
