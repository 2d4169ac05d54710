"""Retrieval metrics, exact chunked nearest neighbours and scorers.

Functions ending in ``_score`` are higher-is-better and take NumPy arrays of
embeddings and labels; ``*_scorer`` objects plug them into scikit-learn's
model selection (``GridSearchCV(scoring=...)``).
"""

from ._knn import chunked_knn
from ._retrieval import map_at_r_score, precision_at_k_score, r_precision_score
from ._scorer import (
    get_scorer,
    make_retrieval_scorer,
    map_at_r_scorer,
    precision_at_1_scorer,
    r_precision_scorer,
)

__all__ = [
    "chunked_knn",
    "get_scorer",
    "make_retrieval_scorer",
    "map_at_r_score",
    "map_at_r_scorer",
    "precision_at_1_scorer",
    "precision_at_k_score",
    "r_precision_score",
    "r_precision_scorer",
]
