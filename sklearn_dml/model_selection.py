"""Class-disjoint cross-validation: evaluate an embedding on classes it never saw.

A metric learner is usually deployed on new classes (new faces, new products),
so its model selection should measure retrieval among classes held out from
training. The splitters of this module assign whole classes to the training or
the test side of each split, never both: the open-set protocol of Musgrave et
al., "A Metric Learning Reality Check". They are ordinary scikit-learn
cross-validators and plug into ``GridSearchCV(cv=...)`` and
``cross_validate(cv=...)``; a retrieval scorer then rates leave-one-out
retrieval among the unseen classes of each test fold.
"""

import numbers

import numpy as np
from sklearn.model_selection import BaseCrossValidator, BaseShuffleSplit
from sklearn.utils import check_random_state, column_or_1d, indexable

__all__ = ["ClassDisjointKFold", "ClassDisjointShuffleSplit"]


def _class_codes(X, y, splitter):
    """Validate ``(X, y)`` and return ``(n_samples, n_classes, codes)``."""
    if y is None:
        raise ValueError(
            f"{splitter} splits by class and needs the labels: call "
            "split(X, y), or pass y to GridSearchCV.fit / cross_validate."
        )
    X, y = indexable(X, y)
    y = column_or_1d(y, warn=True)
    _, codes = np.unique(y, return_inverse=True)
    codes = codes.ravel()
    return codes.shape[0], int(codes.max(initial=-1)) + 1, codes


def _check_random_state_param(random_state):
    if random_state is not None and not isinstance(
        random_state, (numbers.Integral, np.random.RandomState)
    ):
        raise TypeError(
            "random_state must be None, an int or a numpy RandomState; got "
            f"{type(random_state).__name__}."
        )


class ClassDisjointKFold(BaseCrossValidator):
    """K-fold cross-validation over classes: train and test never share a class.

    The classes of ``y`` are divided into ``n_splits`` folds of (almost) equal
    numbers of classes; each fold in turn is the test set and the samples of
    all other classes form the training set. Every sample is in exactly one
    test set. Use it to select a metric learner for retrieval of classes unseen
    during training.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2 and at most the number of classes.

    shuffle : bool, default=False
        Shuffle the classes before dividing them into folds. Without shuffling
        the folds take the classes in sorted order.

    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling of the classes when ``shuffle=True``; must be left
        to ``None`` otherwise.

    See Also
    --------
    ClassDisjointShuffleSplit : Random class-disjoint train/test splits.
    sklearn.model_selection.GroupKFold : The same idea for arbitrary groups,
        balancing sample counts instead of class counts.

    Notes
    -----
    With :math:`C` classes and :math:`K` folds, fold :math:`k` holds the
    :math:`k`-th block of the (optionally shuffled) sorted classes, of size

    .. math::

        |C_k| = \\lfloor C / K \\rfloor + [k < C \\bmod K],

    and the split ``k`` is ``train = {i : y_i \\notin C_k}``,
    ``test = {i : y_i \\in C_k}``. The ``groups`` argument of :meth:`split`
    is accepted for compatibility and ignored: classes are the groups.

    References
    ----------
    .. [1] K. Musgrave, S. Belongie and S.-N. Lim, "A Metric Learning Reality
       Check", ECCV 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.model_selection import ClassDisjointKFold
    >>> y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    >>> X = np.zeros((8, 2))
    >>> for train, test in ClassDisjointKFold(n_splits=2).split(X, y):
    ...     print(np.unique(y[train]), np.unique(y[test]))
    [2 3] [0 1]
    [0 1] [2 3]
    """

    def __init__(self, n_splits=5, *, shuffle=False, random_state=None):
        if isinstance(n_splits, bool) or not isinstance(n_splits, numbers.Integral):
            raise TypeError(
                f"n_splits must be an integer, got {type(n_splits).__name__}."
            )
        if n_splits < 2:
            raise ValueError(
                "ClassDisjointKFold needs n_splits >= 2 (one fold of classes to "
                f"test while training on the others), got n_splits={n_splits}."
            )
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}.")
        _check_random_state_param(random_state)
        if not shuffle and random_state is not None:
            raise ValueError(
                "random_state has no effect when shuffle=False; leave random_state "
                "to None or set shuffle=True."
            )
        self.n_splits = int(n_splits)
        self.shuffle = shuffle
        self.random_state = random_state

    def split(self, X, y=None, groups=None):
        """Generate indices splitting the data into class-disjoint train and test sets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (only its length is used).
        y : array-like of shape (n_samples,)
            Class labels; required.
        groups : None
            Ignored; present for API compatibility.

        Yields
        ------
        train : ndarray of int
            The training set indices for that split, in increasing order.
        test : ndarray of int
            The test set indices for that split, in increasing order.
        """
        n_samples, n_classes, codes = _class_codes(X, y, type(self).__name__)
        if self.n_splits > n_classes:
            raise ValueError(
                f"ClassDisjointKFold(n_splits={self.n_splits}) needs at least "
                f"{self.n_splits} classes (one per fold), but y holds {n_classes}. "
                "Lower n_splits or provide more classes."
            )
        order = np.arange(n_classes)
        if self.shuffle:
            order = check_random_state(self.random_state).permutation(n_classes)
        # fold_of[c]: the fold whose test set holds class c.
        fold_of = np.empty(n_classes, dtype=np.int64)
        sizes = np.full(self.n_splits, n_classes // self.n_splits)
        sizes[: n_classes % self.n_splits] += 1
        fold_of[order] = np.repeat(np.arange(self.n_splits), sizes)
        sample_fold = fold_of[codes]
        for fold in range(self.n_splits):
            in_test = sample_fold == fold
            yield np.flatnonzero(~in_test), np.flatnonzero(in_test)

    def get_n_splits(self, X=None, y=None, groups=None):
        """Return the number of splits.

        Parameters
        ----------
        X, y, groups : object
            Ignored; present for API compatibility.

        Returns
        -------
        n_splits : int
            The number of folds.
        """
        return self.n_splits


def _check_size(value, name):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(
        value, (numbers.Integral, numbers.Real)
    ):
        raise TypeError(
            f"{name} must be a float in (0, 1) (a fraction of the classes), a "
            f"positive int (a number of classes) or None; got {value!r}."
        )
    if isinstance(value, numbers.Integral):
        if value < 1:
            raise ValueError(
                f"{name}={value} must be at least 1 class when given as an int."
            )
    elif not 0 < value < 1:
        raise ValueError(
            f"{name}={value} must lie strictly between 0 and 1 when given as a "
            "fraction of the classes."
        )


class ClassDisjointShuffleSplit(BaseShuffleSplit):
    """Random train/test splits of the classes: train and test never share a class.

    Each split draws a random set of test classes and a disjoint set of
    training classes; the samples of a class all go to its side. Sizes count
    classes, not samples.

    Parameters
    ----------
    n_splits : int, default=5
        Number of random splits.

    test_size : float or int, default=None
        Fraction (float in (0, 1)) or number (int) of the classes in the test
        set. ``None`` means the complement of ``train_size``, or ``0.5`` when
        ``train_size`` is also ``None``.

    train_size : float or int, default=None
        Fraction or number of the classes in the training set. ``None`` means
        all the classes not in the test set.

    random_state : int, RandomState instance or None, default=None
        Seeds the draws; an int gives the same splits on every call.

    See Also
    --------
    ClassDisjointKFold : Every class tested exactly once.
    sklearn.model_selection.GroupShuffleSplit : The same idea for arbitrary
        groups.

    Notes
    -----
    With :math:`C` classes, a float ``test_size`` :math:`t` and
    ``train_size`` :math:`s` give

    .. math::

        n_{\\mathrm{test}} = \\lceil t\\,C \\rceil, \\qquad
        n_{\\mathrm{train}} = \\lfloor s\\,C \\rfloor

    classes (scikit-learn's rounding for sample counts), and each split takes
    the first :math:`n_{\\mathrm{test}}` classes of a random permutation as the
    test classes and the next :math:`n_{\\mathrm{train}}` as the training
    classes. ``groups`` is ignored: classes are the groups.

    References
    ----------
    .. [1] K. Musgrave, S. Belongie and S.-N. Lim, "A Metric Learning Reality
       Check", ECCV 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.model_selection import ClassDisjointShuffleSplit
    >>> y = np.repeat(np.arange(6), 3)
    >>> X = np.zeros((18, 2))
    >>> cv = ClassDisjointShuffleSplit(n_splits=3, test_size=2, random_state=0)
    >>> [(len(np.unique(y[tr])), len(np.unique(y[te]))) for tr, te in cv.split(X, y)]
    [(4, 2), (4, 2), (4, 2)]
    """

    def __init__(
        self, n_splits=5, *, test_size=None, train_size=None, random_state=None
    ):
        if isinstance(n_splits, bool) or not isinstance(n_splits, numbers.Integral):
            raise TypeError(
                f"n_splits must be an integer, got {type(n_splits).__name__}."
            )
        if n_splits < 1:
            raise ValueError(f"n_splits must be at least 1, got {n_splits}.")
        _check_size(test_size, "test_size")
        _check_size(train_size, "train_size")
        _check_random_state_param(random_state)
        super().__init__(
            n_splits=int(n_splits),
            test_size=test_size,
            train_size=train_size,
            random_state=random_state,
        )
        self._default_test_size = 0.5

    def _class_counts(self, n_classes):
        """Number of test and train classes for ``n_classes`` classes."""
        test_size, train_size = self.test_size, self.train_size
        if test_size is None and train_size is None:
            test_size = self._default_test_size

        def count(size, round_up):
            if isinstance(size, numbers.Integral):
                return int(size)
            return int(
                np.ceil(size * n_classes) if round_up else np.floor(size * n_classes)
            )

        n_test = None if test_size is None else count(test_size, True)
        n_train = None if train_size is None else count(train_size, False)
        if n_test is None:
            n_test = n_classes - n_train
        if n_train is None:
            n_train = n_classes - n_test
        if n_test < 1 or n_train < 1 or n_test + n_train > n_classes:
            raise ValueError(
                f"With {n_classes} classes, test_size={self.test_size!r} and "
                f"train_size={self.train_size!r} give {n_test} test and {n_train} "
                "training classes; each side needs at least 1 class and together "
                f"at most {n_classes}. Adjust the sizes or provide more classes."
            )
        return n_test, n_train

    def _iter_indices(self, X, y=None, groups=None):
        n_samples, n_classes, codes = _class_codes(X, y, type(self).__name__)
        n_test, n_train = self._class_counts(n_classes)
        rng = check_random_state(self.random_state)
        for _ in range(self.n_splits):
            # side[c]: 0 test, 1 train, 2 unused.
            side = np.full(n_classes, 2, dtype=np.int64)
            perm = rng.permutation(n_classes)
            side[perm[:n_test]] = 0
            side[perm[n_test : n_test + n_train]] = 1
            sample_side = side[codes]
            yield np.flatnonzero(sample_side == 1), np.flatnonzero(sample_side == 0)

    def split(self, X, y=None, groups=None):
        """Generate indices splitting the data into class-disjoint train and test sets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (only its length is used).
        y : array-like of shape (n_samples,)
            Class labels; required.
        groups : None
            Ignored; present for API compatibility.

        Yields
        ------
        train : ndarray of int
            The training set indices for that split, in increasing order.
        test : ndarray of int
            The test set indices for that split, in increasing order.
        """
        yield from self._iter_indices(X, y, groups)

    def get_n_splits(self, X=None, y=None, groups=None):
        """Return the number of splits.

        Parameters
        ----------
        X, y, groups : object
            Ignored; present for API compatibility.

        Returns
        -------
        n_splits : int
            The number of random splits.
        """
        return self.n_splits
