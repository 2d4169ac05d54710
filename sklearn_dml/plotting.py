"""Quick looks at an embedding (a 2-D map coloured by class, a precision-at-k
curve) and at its training (the objective and each of its terms per epoch).

matplotlib is optional: it is imported when a function is called, and a clear
``ImportError`` says how to install it when it is missing.
"""

import numpy as np

from .metrics._knn import _as_2d_float
from .metrics._report import _check_ks, _embed
from .metrics._retrieval import _check_labels, precision_at_k_score

__all__ = ["plot_embedding", "plot_precision_at_k", "plot_training_history"]

_METHODS = ("pca", "tsne")


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "sklearn_dml.plotting needs matplotlib; install it with "
            "`pip install matplotlib`."
        ) from exc
    return plt


def _axes(ax):
    plt = _pyplot()  # fails early, before any computation, without matplotlib
    return (lambda: plt.subplots()[1]) if ax is None else (lambda: ax)


def plot_embedding(embedder, X, y, *, ax=None, method="pca", random_state=0):
    """Scatter plot of an embedding projected to 2-D, one colour per class.

    Parameters
    ----------
    embedder : estimator or None
        A fitted embedder (anything with ``transform``): ``X`` is embedded
        with it. ``None`` when ``X`` already holds embeddings.
    X : array-like of shape (n_samples, n_features)
        Samples (or embeddings), at least 2 features once embedded.
    y : array-like of shape (n_samples,)
        Their labels; each class gets its own colour and legend entry.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; ``None`` creates a new figure.
    method : {"pca", "tsne"}, default="pca"
        Projection to 2-D: :class:`~sklearn.decomposition.PCA` (fast,
        linear, keeps global distances) or :class:`~sklearn.manifold.TSNE`
        (slow, keeps neighbourhoods).
    random_state : int, RandomState instance or None, default=0
        Seed of the t-SNE optimisation (PCA is deterministic here).

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes drawn on: one scatter collection per class, in the order of
        ``numpy.unique(y)``, labelled by the class.

    See Also
    --------
    plot_precision_at_k : Retrieval quality against depth.

    Notes
    -----
    With PCA, the points are the embeddings :math:`z_i` projected on the two
    leading principal axes :math:`u_1, u_2` of the centred embeddings,

    .. math::

        p_i = \\bigl((z_i - \\bar z)^\\top u_1,\\ (z_i - \\bar z)^\\top u_2\\bigr).

    t-SNE uses a perplexity of ``min(30, n_samples - 1)``.

    References
    ----------
    .. [1] L. van der Maaten and G. Hinton, "Visualizing Data using t-SNE",
       JMLR, 2008.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml.plotting import plot_embedding
    >>> X, y = load_digits(return_X_y=True)
    >>> ax = plot_embedding(None, X[:200], y[:200])
    >>> len(ax.collections)
    10
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    get_ax = _axes(ax)
    embeddings = _as_2d_float(_embed(embedder, X), "embeddings").numpy()
    labels = _check_labels(y, embeddings.shape[0], "y", "X")
    if embeddings.shape[1] < 2 or embeddings.shape[0] < 3:
        raise ValueError(
            "plot_embedding needs at least 3 samples with at least 2 embedding "
            f"dimensions, got an embedding of shape {embeddings.shape}."
        )
    embeddings = embeddings.astype(np.float64)
    if method == "pca":
        from sklearn.decomposition import PCA

        points = PCA(n_components=2).fit_transform(embeddings)
    else:
        from sklearn.manifold import TSNE

        points = TSNE(
            n_components=2,
            perplexity=min(30.0, embeddings.shape[0] - 1.0),
            random_state=random_state,
        ).fit_transform(embeddings)
    classes, codes = np.unique(labels, return_inverse=True)
    codes = codes.ravel()
    plt_ax = get_ax()
    for code, label in enumerate(classes):
        members = codes == code
        plt_ax.scatter(points[members, 0], points[members, 1], s=10, label=str(label))
    plt_ax.set_xlabel(f"{method.upper()} 1")
    plt_ax.set_ylabel(f"{method.upper()} 2")
    plt_ax.set_title("Embedding by class")
    plt_ax.legend(title="class", fontsize="small", markerscale=1.5)
    return plt_ax


def plot_precision_at_k(
    embedder, X, y, *, ks=(1, 2, 5, 10, 20), ax=None, metric="euclidean"
):
    """Leave-one-out precision at k of an embedding against k.

    Parameters
    ----------
    embedder : estimator or None
        A fitted embedder (anything with ``transform``): ``X`` is embedded
        with it. ``None`` when ``X`` already holds embeddings.
    X : array-like of shape (n_samples, n_features)
        Samples (or embeddings).
    y : array-like of shape (n_samples,)
        Their labels.
    ks : int or sequence of int, default=(1, 2, 5, 10, 20)
        Depths plotted (sorted, duplicates dropped); each at most
        ``n_samples - 1``.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; ``None`` creates a new figure. Calling again on the
        same axes adds one line, to compare embedders.
    metric : {"euclidean", "cosine"}, default="euclidean"
        Distance ranking the neighbours.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes drawn on, with one new line of ``len(ks)`` points.

    See Also
    --------
    sklearn_dml.metrics.precision_at_k_score : The plotted value.
    plot_embedding : A 2-D view of the embedding.

    Notes
    -----
    The line joins the points :math:`(k, P@k)` with

    .. math::

        P@k = \\frac{1}{|Q|} \\sum_{q \\in Q} \\frac{1}{k}
        \\sum_{i=1}^{k} \\mathrm{rel}_q(i),

    see :func:`~sklearn_dml.metrics.precision_at_k_score`.

    References
    ----------
    .. [1] K. Musgrave, S. Belongie and S.-N. Lim, "A Metric Learning Reality
       Check", ECCV 2020.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml.plotting import plot_precision_at_k
    >>> X, y = load_digits(return_X_y=True)
    >>> ax = plot_precision_at_k(None, X[:300], y[:300], ks=(1, 5, 10))
    >>> ax.lines[0].get_xdata().tolist()
    [1, 5, 10]
    """
    ks = _check_ks(ks, "ks")
    get_ax = _axes(ax)
    embeddings = _embed(embedder, X)
    values = [precision_at_k_score(embeddings, y, k=k, metric=metric) for k in ks]
    plt_ax = get_ax()
    name = "embeddings" if embedder is None else type(embedder).__name__
    plt_ax.plot(ks, values, marker="o", label=name)
    plt_ax.set_xlabel("k")
    plt_ax.set_ylabel("precision at k")
    plt_ax.set_ylim(0.0, 1.05)
    plt_ax.set_title("Leave-one-out precision at k")
    plt_ax.legend()
    return plt_ax


def plot_training_history(embedder, *, ax=None, terms=True, log_scale=False):
    """Training curves of a fitted embedder: the objective and each of its terms.

    One line per epoch of ``embedder.history_``: the objective minimised
    (``loss``) and, with ``terms=True``, each of its terms (the metric
    loss, the default backbone's anchoring penalty, mixup, ...), so that a
    rising total can be told apart from a rising penalty. With early
    stopping, the validation MAP@R is drawn on a second y axis.

    Parameters
    ----------
    embedder : estimator
        A fitted sklearn-dml embedder (anything with a ``history_`` list of
        per-epoch records).
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; ``None`` creates a new figure.
    terms : bool, default=True
        Draw each term of the objective too.
    log_scale : bool, default=False
        Logarithmic y axis for the losses (terms of very different sizes).

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes of the losses: first the objective, then one line per term,
        each labelled by its name. The validation curve, when drawn, is on
        ``ax.right_ax``, a twin of ``ax``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import TripletEmbedder
    >>> from sklearn_dml.plotting import plot_training_history
    >>> X, y = load_digits(return_X_y=True)
    >>> emb = TripletEmbedder(n_components=8, max_iter=3, random_state=0)
    >>> ax = plot_training_history(emb.fit(X[:300] / 16, y[:300]))
    >>> [line.get_label() for line in ax.get_lines()]
    ['objective', 'metric', 'anchor']
    """
    history = getattr(embedder, "history_", None)
    if not history:
        raise ValueError(
            "plot_training_history needs a fitted embedder with a history_ of "
            "at least one epoch; fit it first."
        )
    ax = _axes(ax)()
    epochs = [record["epoch"] for record in history]
    ax.plot(epochs, [record["loss"] for record in history], label="objective", lw=2)
    if terms:
        names = list(dict.fromkeys(n for r in history for n in r.get("terms", {})))
        for name in names:
            values = [r.get("terms", {}).get(name, np.nan) for r in history]
            ax.plot(epochs, values, label=name, lw=1)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean over the epoch's batches")
    ax.legend(loc="upper left")
    scores = [r.get("validation_score", np.nan) for r in history]
    if not np.all(np.isnan(scores)):
        right = ax.twinx()
        right.plot(epochs, scores, color="black", ls="--", label="validation MAP@R")
        right.set_ylabel("validation MAP@R")
        right.legend(loc="upper right")
        ax.right_ax = right
    return ax
