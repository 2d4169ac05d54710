"""Write shared parameter documentation once and insert it into every estimator.

A docstring marks the place of a shared block with a line holding only
``{block_name}`` (braces included); :func:`fill_doc` replaces that line with the
block, indented like the marker.
"""

import textwrap

_DOCS = {}


def register_doc(name, text):
    """Register a shared documentation block under ``name``."""
    _DOCS[name] = textwrap.dedent(text).strip("\n")


def fill_doc(obj):
    """Class or function decorator inserting the registered blocks."""
    doc = obj.__doc__
    if not doc:
        return obj
    lines = []
    for line in doc.splitlines():
        stripped = line.strip()
        if (
            stripped.startswith("{")
            and stripped.endswith("}")
            and stripped[1:-1] in _DOCS
        ):
            indent = line[: len(line) - len(line.lstrip())]
            lines.append(textwrap.indent(_DOCS[stripped[1:-1]], indent))
        else:
            lines.append(line)
    obj.__doc__ = "\n".join(lines)
    return obj


register_doc(
    "backbone_params",
    """
    n_components : int, default=64
        Dimension of the embedding produced by the default backbone. Ignored
        when ``backbone`` is given (its output size is the embedding size).

    hidden_layer_sizes : tuple of int, default=(256,)
        Widths of the hidden layers of the residual branch of the default
        backbone (:class:`~sklearn_dml.backbones.ResidualMLP`). An empty tuple
        gives a linear embedding.

    backbone : torch.nn.Module, default=None
        A module mapping ``(batch, n_features)`` float32 tensors to
        ``(batch, n_out)`` embeddings. ``fit`` trains a deep copy of it; the
        object passed in is never modified. ``None`` builds a
        :class:`~sklearn_dml.backbones.ResidualMLP` from ``hidden_layer_sizes``
        and ``n_components`` whose linear path starts at the PCA projection of
        the training data, and whose anchoring penalty keeps the embedding's
        pairwise similarities close to that start (the default that protects
        classes not seen in training; see :ref:`unseen_classes`). The
        embedders trained with a softmax over class weights or prototypes
        (normalized softmax, ProxyNCA, SoftTriple, ArcFace, CosFace,
        sub-center ArcFace, equiangular basis, Proto-Triplet, ICNN) build
        it without the anchor: on digits it bought them at most +0.03
        unseen MAP@R for 0.09-0.25 of closed-set MAP@R. A module
        with an ``initialize(X)`` method gets it called on the training data
        before training; one with a ``training_penalty(x, embeddings, y)``
        method has that term added to the loss of each batch.

    normalize_embeddings : bool, default=True
        L2-normalise the embeddings (unit hypersphere), also on top of a
        user ``backbone``.

    nested_dims : tuple of int or None, default=None
        Matryoshka Representation Learning (Kusupati et al., NeurIPS 2022):
        also apply the loss to these leading prefixes of the embedding
        (strictly increasing sizes, each smaller than the embedding size; the
        prefixes re-normalised when ``normalize_embeddings``), averaging the
        prefix losses and the full one, so that the first ``k`` dimensions
        form a usable embedding on their own: get them with
        ``transform_nested(X, k)``. Losses with per-class parameters get one
        copy per prefix (see :class:`~sklearn_dml.losses.MatryoshkaLoss`).
        The default backbone is then not anchored to its PCA start (the
        anchor would fight the reordering of the coordinates). ``None``
        trains the full embedding only.

    mixup : None, {"embedding", "input", "feature"} or Metrix, default=None
        Metrix mixup (Venkataramanan et al., ICLR 2022): every training batch
        also scores mixes of two samples of different classes, with
        interpolated soft labels, against the clean samples, and adds that
        loss (weight ``Metrix.weight``) to the clean one. A string mixes
        the embeddings, the inputs, or the first hidden layer of the default
        backbone, with :class:`~sklearn_dml.mixup.Metrix` defaults; a
        :class:`~sklearn_dml.mixup.Metrix` object sets ``alpha`` and
        ``weight`` too (tunable as ``mixup__alpha``). Needs a loss with soft
        labels (contrastive, multi-similarity, Proxy-Anchor, Proxy-NCA,
        normalized softmax); other estimators raise ``ValueError`` in
        ``fit``. ``None`` disables it.

    energy_confusion : float, default=0.0
        Weight :math:`\\lambda` of the energy-confusion term of Energy
        Confused Adversarial Metric Learning (Chen and Deng, AAAI 2019):
        :math:`\\lambda \\log` of the mean of
        :math:`\\frac{1}{2}\\lVert f_i - f_j \\rVert^2` over the pairs of
        different classes of the batch
        (:class:`~sklearn_dml.losses.EnergyConfusionRegularizer`) is added to
        the loss, its gradient reaching only the backbone's output
        ``Linear`` layers (the "metric"; the default backbone's skip
        projection and last branch layer), which it trains to confuse the
        classes against the metric loss. ``0`` disables it.

    procsim : None, True or ProcSimWeighting, default=None
        ProcSim confidence weighting for noisy labels (Barbany et al., WACV
        2024): class proxies learned alongside give every sample a
        confidence from its distance to its class's proxy relative to the
        nearest other proxy, and the loss weighs the samples by it
        (:class:`~sklearn_dml.losses.ProcSimLoss`). ``True`` uses
        ``ProcSimWeighting()``; a
        :class:`~sklearn_dml.losses.ProcSimWeighting` sets its
        hyper-parameters (a copy is trained). Needs a loss with per-sample
        weights (contrastive, multi-similarity, triplet margin); ``None``
        disables it.
    """,
)

register_doc(
    "engine_params",
    """
    max_iter : int, default=50
        Maximum number of epochs. One epoch draws about ``n_samples`` samples
        in class-balanced batches.

    batch_size : int, default=128
        Number of samples per training batch.

    samples_per_class : int, default=4
        Minimum number of samples of each class drawn into a batch (the "m" of
        m-per-class sampling). With few classes, each class gets
        ``batch_size // n_classes`` samples instead, so batches stay full.

    learning_rate_init : float, default=1e-3
        Learning rate of the optimizer for the backbone.

    weight_decay : float, default=0.0
        L2 penalty (``AdamW``-style decoupled for ``optimizer="adamw"``).

    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        Optimizer for the backbone and any learnable loss parameters.

    early_stopping : bool, default=False
        Hold out part of the training data (see ``validation_split``) and
        stop when its leave-one-out MAP@R has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; the best weights are restored, those
        before the first epoch included (training that only lowers the
        validation score gives the starting model back).

    validation_fraction : float, default=0.1
        Share of the training samples (``validation_split="stratified"``) or
        of the classes (``"class_disjoint"``) held out when
        ``early_stopping=True``.

    validation_split : {"stratified", "class_disjoint"}, default="stratified"
        How the early-stopping hold-out is drawn. ``"stratified"`` holds out
        samples of every class (closed-set retrieval). ``"class_disjoint"``
        holds out ``validation_fraction`` of the classes (rounded, at least 2,
        leaving at least 2 to train on; needs 4 classes or more) and trains
        on the others only, so early stopping tracks retrieval of unseen
        classes, the open-set goal of most metric learning.

    n_iter_no_change : int, default=10
        Epochs without improvement tolerated before stopping early.

    tol : float, default=1e-4
        Minimum improvement of the validation MAP@R that counts.

    warm_start : bool, default=False
        Reuse the trained backbone (and loss parameters) of a previous ``fit``
        instead of starting afresh.

    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Torch device for training and inference; ``"auto"`` uses CUDA when
        available. The fitted model is kept on the CPU, so a fitted
        estimator pickles and loads anywhere.

    verbose : int, default=0
        ``1`` prints one line per epoch (loss, validation score, time).

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, batch sampling and dropout through a
        forked torch generator; the global torch random state is left as it
        was. Same value, same data: identical embeddings on the CPU.
    """,
)

register_doc(
    "fitted_attributes",
    """
    backbone_ : torch.nn.Module
        The trained embedding network (on the CPU, in evaluation mode).

    loss_ : torch.nn.Module
        The loss component used for training, with any learned parameters.

    miner_ : torch.nn.Module or None
        The miner used for training.

    classes_ : ndarray of shape (n_classes,)
        The class labels seen during ``fit``.

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit``, when ``X`` has string column
        names.

    n_iter_ : int
        Number of epochs run on the current model (cumulative over
        ``warm_start`` and ``partial_fit`` calls).

    loss_curve_ : list of float
        Mean training loss of each epoch.

    validation_scores_ : list of float or None
        Validation MAP@R of each epoch when ``early_stopping=True``.

    best_validation_score_ : float or None
        Best validation MAP@R when ``early_stopping=True``.

    history_ : list of dict
        One record per epoch (``epoch``, ``loss``, ``time``, and
        ``validation_score`` when early stopping); ``pandas.DataFrame(
        est.history_)`` turns it into a table for plotting.

    threshold_ : float
        Distance below which a pair is predicted "same class"; set by
        :meth:`calibrate_threshold` (absent until then, removed by further
        training).
    """,
)
