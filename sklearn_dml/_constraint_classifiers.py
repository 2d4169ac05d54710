"""The interface of the learners fitted on constraints (weak supervision).

A weakly supervised learner is fitted on *tuples* of samples rather than on
labelled samples:

* pairs ``(n_pairs, 2, n_features)`` with labels saying same/different
  (:class:`PairsClassifierMixin`: ITML, MMC, SDML, the deep contrastive
  embedder);
* triplets ``(n_triplets, 3, n_features)``, each stating that the first
  sample is closer to the second than to the third
  (:class:`TripletsClassifierMixin`: SCML, the deep triplet embedder);
* quadruplets ``(n_quadruplets, 4, n_features)``, each stating
  ``d(q0, q1) < d(q2, q3)`` (:class:`QuadrupletsClassifierMixin`: LSML).

Tuples are given as features, or as index tuples of shape ``(n, k)`` into
a feature array named by the ``preprocessor`` parameter (an array, or a
callable mapping a 1-D array of identifiers to their features), as in
metric-learn. Predictions on tuples follow the same rules, so
``GridSearchCV`` and ``cross_val_score`` split the tuples with any splitter
of scikit-learn.
"""

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import roc_auc_score
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from ._docstrings import fill_doc, register_doc
from ._verification import _same_mask

__all__ = [
    "PairsClassifierMixin",
    "QuadrupletsClassifierMixin",
    "TripletsClassifierMixin",
    "check_tuples",
]

_KIND = {2: "pairs", 3: "triplets", 4: "quadruplets"}

register_doc(
    "preprocessor_param",
    """
    preprocessor : array-like of shape (n_samples, n_features), callable or None, \
default=None
        How tuples of indices become tuples of features. ``None``: tuples
        must be given as features, of shape ``(n_tuples, k, n_features)``.
        An array ``X``: tuples may be integer indices into it, of shape
        ``(n_tuples, k)`` (``X[tuples]`` is used). A callable: tuples may
        hold any identifiers; it is called once with the 1-D array of the
        distinct identifiers and returns their features, one row each.
        Tuples of features are accepted in every case.
    """,
)


def _tuples_doc(size, what):
    kind = _KIND[size]
    return f"""
    {kind} : array-like of shape (n_{kind}, {size}, n_features) or (n_{kind}, {size})
        {what} Given as features, or as indices (identifiers) resolved
        through ``preprocessor``.
    """


register_doc("pairs_tuples_param", _tuples_doc(2, "Pairs of samples."))
register_doc(
    "triplets_tuples_param",
    _tuples_doc(
        3, "Triplets ``(a, p, n)``: ``a`` should be closer to ``p`` than to ``n``."
    ),
)
register_doc(
    "quadruplets_tuples_param",
    _tuples_doc(4, "Quadruplets ``(a, b, c, d)`` stating ``d(a, b) < d(c, d)``."),
)


def check_tuples(tuples, tuple_size, preprocessor=None, *, name=None, dtype=np.float64):
    """Validate tuples of samples and resolve them to features.

    Parameters
    ----------
    tuples : array-like of shape (n_tuples, tuple_size, n_features) or \
(n_tuples, tuple_size)
        Tuples of features, or of indices/identifiers with ``preprocessor``.
    tuple_size : {2, 3, 4}
        Samples per tuple.
    preprocessor : array-like, callable or None
        See the ``preprocessor`` parameter of the weakly supervised learners.
    name : str, default=None
        The argument's name in error messages (default: pairs, triplets or
        quadruplets).
    dtype : numpy dtype, default=np.float64
        dtype of the returned features.

    Returns
    -------
    features : ndarray of shape (n_tuples, tuple_size, n_features)
        A new array (the caller's data is never returned or modified).
    """
    kind = _KIND[tuple_size]
    name = kind if name is None else name
    expected = (
        f"an array of shape (n_{kind}, {tuple_size}, n_features) of features, or of "
        f"shape (n_{kind}, {tuple_size}) of indices with a preprocessor"
    )
    try:
        arr = np.asarray(tuples)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(
            f"{name} must be {expected}; got ragged input ({exc})."
        ) from None
    if arr.ndim == 3 and arr.shape[1] == tuple_size:
        features = check_array(
            arr, allow_nd=True, dtype=dtype, input_name=name, copy=True
        )
    elif arr.ndim == 2 and arr.shape[1] == tuple_size:
        features = _resolve_indices(arr, tuple_size, preprocessor, name, dtype)
    else:
        raise ValueError(f"{name} must be {expected}; got shape {arr.shape}.")
    if features.shape[0] == 0:
        raise ValueError(f"{name} holds no tuple; give at least one.")
    return features


def _resolve_indices(arr, tuple_size, preprocessor, name, dtype):
    kind = _KIND[tuple_size]
    if preprocessor is None:
        raise ValueError(
            f"{name} of shape {arr.shape} holds {kind} of indices, but the estimator "
            "has no preprocessor to resolve them: set preprocessor=X (the array they "
            f"index) or give {kind} of features, e.g. X[{name}], of shape "
            f"(n_{kind}, {tuple_size}, n_features)."
        )
    if callable(preprocessor):
        ids, inverse = np.unique(arr.ravel(), return_inverse=True)
        try:
            rows = np.asarray(preprocessor(ids))
        except Exception as exc:
            raise ValueError(
                f"The preprocessor failed on the {ids.shape[0]} distinct identifiers "
                f"of {name}: {type(exc).__name__}: {exc}."
            ) from exc
        if rows.ndim != 2 or rows.shape[0] != ids.shape[0]:
            raise ValueError(
                f"The preprocessor must return a 2-D array with one row of features "
                f"per identifier: called with {ids.shape[0]} identifiers, it "
                f"returned shape {rows.shape}."
            )
        rows = check_array(rows, dtype=dtype, input_name="the preprocessor's output")
        return rows[inverse.ravel()].reshape(arr.shape[0], tuple_size, -1)
    X = check_array(preprocessor, dtype=dtype, input_name="preprocessor")
    if arr.dtype.kind not in "iu":
        raise ValueError(
            f"{name} of shape {arr.shape} are read as indices into the preprocessor "
            f"array, so they must be integers; got dtype {arr.dtype}."
        )
    if arr.size and (arr.min() < 0 or arr.max() >= X.shape[0]):
        raise ValueError(
            f"{name} holds indices from {arr.min()} to {arr.max()}, outside the "
            f"{X.shape[0]} rows of the preprocessor array."
        )
    return X[arr]


class _ConstraintInputMixin:
    """Tuples resolved through ``preprocessor``, checked against the fit."""

    _tuple_size = 2

    def _tuples(self, tuples, *, reset=False, size=None, name=None):
        """Features of ``tuples`` (float64); ``reset`` sets ``n_features_in_``."""
        size = self._tuple_size if size is None else size
        features = check_tuples(tuples, size, self.preprocessor, name=name)
        if reset:
            self.n_features_in_ = features.shape[2]
        elif features.shape[2] != self.n_features_in_:
            raise ValueError(
                f"The {name or _KIND[size]} have {features.shape[2]} features, but "
                f"{type(self).__name__} was fitted on {self.n_features_in_}."
            )
        return features

    def _check_pairs(self, pairs):
        # The pair API (pair_distance, calibrate_threshold, ...) also takes
        # index pairs resolved through the preprocessor.
        check_is_fitted(self)
        return self._tuples(pairs, size=2, name="pairs")

    def _tuple_embeddings(self, tuples):
        """Embeddings of every sample of every tuple: (n, k, n_components)."""
        check_is_fitted(self)
        features = self._tuples(tuples)
        n, k, d = features.shape
        return np.asarray(self._embed(features.reshape(n * k, d)), np.float64).reshape(
            n, k, -1
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


class PairsClassifierMixin(_ConstraintInputMixin, ClassifierMixin):
    """Same/different classification of pairs, for learners fitted on pairs.

    ``fit(pairs, y)`` takes labels in ``{-1, 1}``, ``{0, 1}`` or booleans
    (the larger value, ``1`` or ``True``, meaning "same"); ``classes_``
    holds the two values and :meth:`predict` answers in them. After the
    metric is learned, ``fit`` calibrates ``threshold_`` on the training
    pairs for accuracy (:meth:`calibrate_threshold`; recalibrate on held-out
    pairs with another strategy at will).
    """

    _tuple_size = 2

    def _constraint_labels(self, n_pairs, y):
        """``(same, classes)`` from fit's ``y``: a boolean mask and the two values."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__}.fit(pairs, y) needs y, the label of each "
                "pair: 1/True for a same-class pair, -1/0/False for a different one."
            )
        same = _same_mask(y, n_pairs, name="y")
        return same, np.unique(np.asarray(y))

    def _finish_constraint_fit(self, pairs, labels):
        """Store ``classes_`` and calibrate ``threshold_`` on the training pairs."""
        same, self.classes_ = labels
        self.calibrate_threshold(pairs, same)

    @fill_doc
    def predict(self, pairs):
        """Predict whether the two samples of each pair are similar.

        Parameters
        ----------
        {pairs_tuples_param}

        Returns
        -------
        y_pred : ndarray of shape (n_pairs,)
            ``classes_[1]`` (same) where :meth:`decision_function` is
            positive, ``classes_[0]`` (different) elsewhere.
        """
        return np.where(
            self.decision_function(pairs) > 0, self.classes_[1], self.classes_[0]
        )

    @fill_doc
    def score(self, pairs, y):
        """Area under the ROC curve of the pair scores (higher is better).

        Threshold-free: it measures how well the learned distances rank
        same-class pairs before different-class ones, as metric-learn's
        pair learners do. For the accuracy of :meth:`predict`, use
        ``sklearn.metrics.accuracy_score`` or ``scoring="accuracy"``.

        Parameters
        ----------
        {pairs_tuples_param}

        y : array-like of shape (n_pairs,)
            Labels in the encoding of ``fit`` (``{-1, 1}``, ``{0, 1}`` or
            booleans); both kinds must occur.

        Returns
        -------
        score : float
            ROC AUC of :meth:`pair_score`, in [0, 1].
        """
        scores = self.pair_score(pairs)
        return float(roc_auc_score(_same_mask(y, scores.shape[0], name="y"), scores))


class _ComparisonClassifierMixin(_ConstraintInputMixin):
    """Tuples stating ``d(first pair) < d(second pair)``."""

    #: Positions of the two pairs compared in a tuple.
    _compared = ((0, 1), (0, 2))

    def _constraint_labels(self, n_tuples, y):
        if y is not None:
            raise ValueError(
                f"{type(self).__name__} is fitted on {_KIND[self._tuple_size]} alone "
                "(each one is a constraint, with no label); call fit(tuples) "
                "without y."
            )

    def _finish_constraint_fit(self, tuples, labels):
        pass

    def decision_function(self, tuples):
        """Margin of each constraint: the second distance minus the first.

        Parameters
        ----------
        tuples : array-like of shape (n_tuples, k, n_features) or (n_tuples, k)
            Triplets (``k = 3``) or quadruplets (``k = 4``), as in ``fit``.

        Returns
        -------
        decision : ndarray of shape (n_tuples,)
            ``d(t[0], t[2]) - d(t[0], t[1])`` for triplets and
            ``d(t[2], t[3]) - d(t[0], t[1])`` for quadruplets, in the learned
            metric: positive when the constraint holds.
        """
        Z = self._tuple_embeddings(tuples)
        (i, j), (k, m) = self._compared
        first = np.linalg.norm(Z[:, i] - Z[:, j], axis=1)
        second = np.linalg.norm(Z[:, k] - Z[:, m], axis=1)
        return second - first

    def predict(self, tuples):
        """Predict whether each constraint holds in the learned metric.

        Parameters
        ----------
        tuples : array-like of shape (n_tuples, k, n_features) or (n_tuples, k)
            Triplets (``k = 3``) or quadruplets (``k = 4``), as in ``fit``.

        Returns
        -------
        y_pred : ndarray of shape (n_tuples,), dtype int64
            ``1`` where the first pair is strictly closer than the second
            (positive :meth:`decision_function`), ``-1`` elsewhere.
        """
        return np.where(self.decision_function(tuples) > 0, 1, -1).astype(np.int64)

    def score(self, tuples, y=None):
        """Fraction of the constraints that hold in the learned metric.

        Parameters
        ----------
        tuples : array-like of shape (n_tuples, k, n_features) or (n_tuples, k)
            Triplets (``k = 3``) or quadruplets (``k = 4``), as in ``fit``.
        y : None
            Ignored (constraints carry no label).

        Returns
        -------
        score : float
            Accuracy of :meth:`predict` against "every constraint holds".
        """
        return float(np.mean(self.predict(tuples) == 1))


class TripletsClassifierMixin(_ComparisonClassifierMixin):
    """Triplets ``(a, p, n)``: ``predict`` says whether ``d(a, p) < d(a, n)``."""

    _tuple_size = 3
    _compared = ((0, 1), (0, 2))


class QuadrupletsClassifierMixin(_ComparisonClassifierMixin):
    """Quadruplets ``(a, b, c, d)``: ``predict`` says whether ``d(a, b) < d(c, d)``."""

    _tuple_size = 4
    _compared = ((0, 1), (2, 3))
