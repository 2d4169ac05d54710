"""Retrieval, clustering and embedding-geometry metrics, exact chunked kNN, scorers.

Functions ending in ``_score`` are higher-is-better and those ending in
``_loss`` lower-is-better; all take NumPy arrays of embeddings and labels and
return a float. ``*_scorer`` objects plug the scores into scikit-learn's
model selection (``GridSearchCV(scoring=...)``), and :func:`retrieval_report`
gathers every metric of an embedder on one dataset.
"""

from ._clustering import ami_score, nmi_score
from ._few_shot import few_shot_accuracy, make_few_shot_scorer
from ._geometry import alignment_loss, opis_loss, uniformity_loss, utilization_loss
from ._icnn import icnn_score
from ._knn import chunked_knn
from ._report import retrieval_report
from ._retrieval import (
    map_at_r_score,
    mean_average_precision_score,
    mean_reciprocal_rank_score,
    precision_at_k_score,
    r_precision_score,
    recall_at_k_score,
)
from ._scorer import (
    ami_scorer,
    get_scorer,
    make_retrieval_scorer,
    map_at_r_scorer,
    mean_average_precision_scorer,
    mrr_scorer,
    nmi_scorer,
    precision_at_1_scorer,
    r_precision_scorer,
    recall_at_1_scorer,
)
from ._spectral import rankme_score, wasserstein_uniformity_loss

__all__ = [
    "alignment_loss",
    "ami_score",
    "ami_scorer",
    "chunked_knn",
    "few_shot_accuracy",
    "get_scorer",
    "icnn_score",
    "make_few_shot_scorer",
    "make_retrieval_scorer",
    "map_at_r_score",
    "map_at_r_scorer",
    "mean_average_precision_score",
    "mean_average_precision_scorer",
    "mean_reciprocal_rank_score",
    "mrr_scorer",
    "nmi_score",
    "nmi_scorer",
    "opis_loss",
    "precision_at_1_scorer",
    "precision_at_k_score",
    "rankme_score",
    "r_precision_score",
    "r_precision_scorer",
    "recall_at_1_scorer",
    "recall_at_k_score",
    "retrieval_report",
    "uniformity_loss",
    "utilization_loss",
    "wasserstein_uniformity_loss",
]
