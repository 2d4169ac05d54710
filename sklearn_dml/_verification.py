"""Same/different verification of sample pairs with a learned embedding.

:class:`PairVerificationMixin` gives every deep metric learner the pair API
of metric-learn: distances and scores of pairs of raw samples, a picklable
distance function for scikit-learn's neighbour estimators, and a distance
threshold calibrated on labelled pairs that turns distances into same/
different decisions. Pairs are arrays of shape ``(n_pairs, 2, n_features)``:
``pairs[i, 0]`` and ``pairs[i, 1]`` are the two raw samples of pair ``i``.
"""

import functools
import types
from numbers import Real

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from ._docstrings import fill_doc, register_doc
from ._param_validation import Interval, StrOptions, validate_params
from .metrics import map_at_r_score

__all__ = ["PairVerificationMixin", "RetrievalScoreMixin"]

_STRATEGIES = ("accuracy", "f_beta", "tpr_at_fpr")

register_doc(
    "pairs_param",
    """
    pairs : array-like of shape (n_pairs, 2, n_features_in_)
        Pairs of raw samples: ``pairs[i, 0]`` and ``pairs[i, 1]`` are the two
        samples of pair ``i``. Build it from two aligned sample arrays with
        ``np.stack([X_a, X_b], axis=1)``.
    """,
)


class _requires_threshold:
    """Method descriptor: the method exists only once ``threshold_`` is set.

    Before :meth:`PairVerificationMixin.calibrate_threshold` has run, accessing
    the method raises :class:`~sklearn.exceptions.NotFittedError` (an
    ``AttributeError``) with advice, so ``hasattr(est, "decision_function")``
    is ``False`` and scikit-learn's tools do not mistake an uncalibrated
    embedder for a classifier of samples.
    """

    def __init__(self, func):
        self.func = func
        functools.update_wrapper(self, func)

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        _check_threshold(obj, self.func.__name__)
        return types.MethodType(self.func, obj)


def _check_threshold(estimator, method):
    if not hasattr(estimator, "threshold_"):
        raise NotFittedError(
            f"This {type(estimator).__name__} has no calibrated threshold, which "
            f"{method} needs: call calibrate_threshold(pairs, y_same) on labelled "
            "pairs first (after fit)."
        )


class _EmbeddingDistance:
    """Picklable ``f(u, v)``: Euclidean distance between two embedded raw samples."""

    def __init__(self, embed, n_features):
        self.embed = embed
        self.n_features = n_features

    def __call__(self, u, v):
        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        if u.shape != (self.n_features,) or v.shape != (self.n_features,):
            raise ValueError(
                "The embedding metric compares two 1-D samples of "
                f"{self.n_features} features each; got shapes {u.shape} and "
                f"{v.shape}."
            )
        differ = np.flatnonzero(u != v)
        if differ.size == 0:
            return 0.0
        # Embed the two rows in a canonical order: a batch's rounding may depend
        # on the row position, and the metric must be exactly symmetric.
        first, second = (u, v) if u[differ[0]] < v[differ[0]] else (v, u)
        Z = self.embed(np.stack([first, second])).astype(np.float64)
        return float(np.linalg.norm(Z[0] - Z[1]))

    def __repr__(self):
        return f"<embedding distance on {self.n_features} features>"


def _same_mask(y_same, n_pairs, name="y_same"):
    """Turn bool, {0, 1} or {-1, 1} labels into a boolean "same" mask.

    ``name`` is the argument's name in the error messages.
    """
    y = np.asarray(y_same)
    if y.ndim != 1 or y.shape[0] != n_pairs:
        raise ValueError(
            f"{name} must be a 1-D array with one label per pair ({n_pairs}), got "
            f"shape {y.shape}."
        )
    if y.dtype == bool:
        same = y.copy()
    else:
        values = np.unique(y) if y.dtype != object else np.unique(y.astype(str))
        ok = y.dtype.kind in "iuf" and (
            set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {-1, 1}
        )
        if not ok:
            raise ValueError(
                f"{name} must hold booleans, {{0, 1}} or {{-1, 1}} (1/True for a "
                f"same-class pair); got the values {values.tolist()[:5]}."
            )
        same = y == 1
    n_same = int(same.sum())
    if n_same == 0 or n_same == n_pairs:
        kind = "same-class" if n_same else "different-class"
        raise ValueError(
            f"{name} holds only {kind} pairs; both same-class and different-class "
            "pairs are needed."
        )
    return same


class PairVerificationMixin:
    """Pair distances, a picklable metric and a calibrated same/different threshold.

    Mixed into :class:`~sklearn_dml.BaseDeepMetricLearner`, so every embedder
    offers it. The embedding distance of a pair is the Euclidean distance of
    its two embeddings; :meth:`calibrate_threshold` chooses the distance below
    which a pair is declared "same class", after which
    :meth:`decision_function` and :meth:`predict_pairs` are available. The
    threshold is fitted state (``threshold_``): it pickles with the estimator,
    ``clone`` drops it, and training again (``fit``, ``partial_fit``) discards
    it, since the embedding changes.

    A class using the mixin provides ``n_features_in_`` and two hooks:
    ``_embed(X)`` (embeddings of a validated 2-D array) and
    ``_frozen_embed()`` (a picklable function embedding a 2-D array with a
    copy of the current model).

    Notes
    -----
    For a pair :math:`(x, x')` and the embedding :math:`f`,

    .. math::

        d(x, x') = \\lVert f(x) - f(x') \\rVert_2, \\qquad
        \\mathrm{decision}(x, x') = \\tau - d(x, x'),

    and the pair is predicted "same class" when the decision is positive.

    References
    ----------
    .. [1] W. de Vazelhes, C. J. Carey, Y. Tang, N. Vauquier and A. Bellet,
       "metric-learn: Metric Learning Algorithms in Python", JMLR 21(138),
       2020.
    """

    def _check_pairs(self, pairs):
        check_is_fitted(self)
        pairs = check_array(
            pairs,
            allow_nd=True,
            ensure_2d=False,
            dtype=[np.float32, np.float64],
            input_name="pairs",
        )
        sample = tuple(getattr(self, "input_shape_", None) or (self.n_features_in_,))
        expected = (2, *sample)
        if pairs.ndim != 2 + len(sample) or pairs.shape[1:] != expected:
            raise ValueError(
                "pairs must be an array of shape (n_pairs, 2, *input_shape_) = "
                f"(n_pairs, {', '.join(map(str, expected))}), got shape "
                f"{pairs.shape}. "
                "Stack two aligned sample arrays with np.stack([X_a, X_b], axis=1)."
            )
        return pairs

    @fill_doc
    def pair_distance(self, pairs):
        """Euclidean distance between the embeddings of the two samples of each pair.

        Parameters
        ----------
        {pairs_param}

        Returns
        -------
        distances : ndarray of shape (n_pairs,), dtype float64
            ``||f(pairs[i, 0]) - f(pairs[i, 1])||`` for the embedding ``f``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from sklearn_dml import TripletEmbedder
        >>> X, y = load_digits(return_X_y=True)
        >>> X = X / 16
        >>> emb = TripletEmbedder(n_components=8, hidden_layer_sizes=(32,),
        ...                       max_iter=2, random_state=0).fit(X[:500], y[:500])
        >>> pairs = np.stack([X[:3], X[3:6]], axis=1)
        >>> emb.pair_distance(pairs).shape
        (3,)
        """
        pairs = self._check_pairs(pairs)
        n_pairs = pairs.shape[0]
        Z = self._embed(pairs.reshape(2 * n_pairs, *pairs.shape[2:]))
        Z = Z.reshape(n_pairs, 2, -1).astype(np.float64)
        return np.linalg.norm(Z[:, 0] - Z[:, 1], axis=1)

    @fill_doc
    def pair_score(self, pairs):
        """Similarity of each pair: the negated embedding distance (higher is more similar).

        Parameters
        ----------
        {pairs_param}

        Returns
        -------
        scores : ndarray of shape (n_pairs,), dtype float64
            ``-pair_distance(pairs)``; use it with ``roc_auc_score`` and
            other ranking metrics of same/different labels.
        """
        return -self.pair_distance(pairs)

    def get_metric(self):
        """Return the learned distance as a function of two raw samples.

        Returns
        -------
        metric : callable
            ``metric(u, v) -> float``, the Euclidean distance between the
            embeddings of the 1-D samples ``u`` and ``v`` of
            ``n_features_in_`` features. It holds a copy of the current model
            (later training does not change it) and pickles, so it works as
            ``KNeighborsClassifier(metric=emb.get_metric(),
            algorithm="brute")`` or in ``scipy.spatial.distance.cdist``. It
            embeds two samples per call: for many samples, ``transform``
            once and use the Euclidean metric on the embeddings instead.

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from sklearn_dml import TripletEmbedder
        >>> X, y = load_digits(return_X_y=True)
        >>> X = X / 16
        >>> emb = TripletEmbedder(n_components=8, hidden_layer_sizes=(32,),
        ...                       max_iter=2, random_state=0).fit(X[:500], y[:500])
        >>> metric = emb.get_metric()
        >>> metric(X[0], X[0])
        0.0
        >>> bool(abs(metric(X[0], X[1]) - emb.pair_distance([[X[0], X[1]]])[0]) < 1e-6)
        True
        """
        check_is_fitted(self)
        return _EmbeddingDistance(self._frozen_embed(), self.n_features_in_)

    @fill_doc
    def calibrate_threshold(
        self, pairs, y_same, *, strategy="accuracy", beta=1.0, max_fpr=0.01
    ):
        """Choose the distance threshold separating same-class from other pairs.

        Searches exactly over every distinct split of the sorted pair
        distances (pairs at or below a cut predicted "same") and keeps the
        best by ``strategy``; ties go to the smallest threshold. Sets
        ``threshold_`` and enables :meth:`decision_function` and
        :meth:`predict_pairs`. Calibrate on pairs held out from training.

        Parameters
        ----------
        {pairs_param}

        y_same : array-like of shape (n_pairs,)
            Whether each pair is of the same class: booleans, ``{0, 1}`` or
            ``{-1, 1}`` (``True``/``1`` for same). Both kinds must occur.

        strategy : {"accuracy", "f_beta", "tpr_at_fpr"}, default="accuracy"
            What the threshold maximises: the accuracy of the same/different
            predictions, their F-beta score (same-class pairs positive), or
            the true positive rate among thresholds whose false positive rate
            is at most ``max_fpr``.

        beta : float, default=1.0
            Weight of recall against precision for ``strategy="f_beta"``.

        max_fpr : float, default=0.01
            Largest false positive rate allowed for ``strategy="tpr_at_fpr"``,
            in [0, 1].

        Returns
        -------
        self : object
            The estimator, with ``threshold_`` set.

        Notes
        -----
        With the calibration distances sorted into distinct values
        :math:`u_1 < \\dots < u_m`, candidate :math:`k \\in \\{0, \\dots, m\\}`
        predicts "same" for the pairs with :math:`d \\le u_k` (none for
        :math:`k = 0`). Counting true positives :math:`TP_k` and false
        positives :math:`FP_k` among :math:`P` same and :math:`N` different
        pairs, the strategies maximise

        .. math::

            \\frac{TP_k + N - FP_k}{P + N}, \\quad
            \\frac{(1 + \\beta^2) TP_k}{(1 + \\beta^2) TP_k + \\beta^2 (P - TP_k)
            + FP_k}, \\quad
            \\frac{TP_k}{P} \\text{ s.t. } \\frac{FP_k}{N} \\le
            \\mathrm{max\\_fpr},

        all from cumulative sums in :math:`O(n \\log n)`. The threshold is
        placed halfway between :math:`u_k` and :math:`u_{k+1}`, so that on the
        calibration pairs the decision is never zero; for :math:`k = 0` or
        :math:`k = m` it lies half the mean gap of the :math:`u` beyond the
        extreme distance.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from sklearn_dml import TripletEmbedder
        >>> X, y = load_digits(return_X_y=True)
        >>> X = X / 16
        >>> emb = TripletEmbedder(n_components=16, hidden_layer_sizes=(64,),
        ...                       max_iter=3, random_state=0).fit(X[:600], y[:600])
        >>> rng = np.random.RandomState(0)
        >>> a, b = rng.randint(600, len(X), size=(2, 400))
        >>> pairs, same = np.stack([X[a], X[b]], axis=1), y[a] == y[b]
        >>> emb.calibrate_threshold(pairs, same).threshold_ > 0
        True
        >>> float(np.mean(emb.predict_pairs(pairs) == same)) > 0.8
        True
        """
        validate_params(
            {
                "strategy": [StrOptions(set(_STRATEGIES))],
                "beta": [Interval(Real, 0, None, closed="neither")],
                "max_fpr": [Interval(Real, 0, 1, closed="both")],
            },
            {"strategy": strategy, "beta": beta, "max_fpr": max_fpr},
            f"{type(self).__name__}.calibrate_threshold",
        )
        distances = self.pair_distance(pairs)
        same = _same_mask(y_same, distances.shape[0])

        values, inverse = np.unique(distances, return_inverse=True)
        m = values.shape[0]
        pos = np.bincount(inverse.ravel(), weights=same, minlength=m)
        tot = np.bincount(inverse.ravel(), minlength=m)
        tp = np.concatenate([[0.0], np.cumsum(pos)])
        fp = np.concatenate([[0.0], np.cumsum(tot - pos)])
        n_pos = float(same.sum())
        n_neg = same.shape[0] - n_pos
        if strategy == "accuracy":
            objective = (tp + n_neg - fp) / (n_pos + n_neg)
        elif strategy == "f_beta":
            b2 = float(beta) ** 2
            objective = (1 + b2) * tp / ((1 + b2) * tp + b2 * (n_pos - tp) + fp)
        else:
            objective = np.where(fp / n_neg <= max_fpr, tp / n_pos, -1.0)
        k = int(np.argmax(objective))

        spread = values[-1] - values[0] if m > 1 else abs(values[0])
        half_gap = (spread if spread > 0 else 1.0) / (2 * max(m - 1, 1))
        if k == 0:
            threshold = values[0] - half_gap
        elif k == m:
            threshold = values[-1] + half_gap
        else:
            threshold = (values[k - 1] + values[k]) / 2
        self.threshold_ = float(threshold)
        return self

    @_requires_threshold
    @fill_doc
    def decision_function(self, pairs):
        """Signed margin of each pair to the calibrated threshold.

        Available once :meth:`calibrate_threshold` has set ``threshold_``;
        before, accessing it raises ``NotFittedError``.

        Parameters
        ----------
        {pairs_param}

        Returns
        -------
        decision : ndarray of shape (n_pairs,), dtype float64
            ``threshold_ - pair_distance(pairs)``: positive means "same
            class", negative "different class".
        """
        return self.threshold_ - self.pair_distance(pairs)

    @fill_doc
    def predict_pairs(self, pairs):
        """Predict whether the two samples of each pair are of the same class.

        Parameters
        ----------
        {pairs_param}

        Returns
        -------
        y_pred : ndarray of shape (n_pairs,), dtype int
            ``1`` for "same class" (embedding distance below ``threshold_``,
            i.e. positive :meth:`decision_function`), ``0`` for "different
            class".

        Raises
        ------
        NotFittedError
            If no threshold was calibrated with :meth:`calibrate_threshold`.
        """
        _check_threshold(self, "predict_pairs")
        return (self.decision_function(pairs) > 0).astype(np.int64)


class RetrievalScoreMixin:
    """``score``: MAP@R of the transformed samples, leave-one-out."""

    def score(self, X, y):
        """MAP@R of the transform of ``X``, leave-one-out (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples; each one queries all the others.
        y : array-like of shape (n_samples,)
            Their labels.

        Returns
        -------
        score : float
            Mean average precision at R, in [0, 1].
        """
        return float(map_at_r_score(self.transform(X), np.asarray(y)))
