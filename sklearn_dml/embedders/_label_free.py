"""Embedders learned without labels: TLDR (twin learning on nearest neighbours)."""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from .._param_validation import Interval, StrOptions, TupleOf, validate_params
from .._shared_parameters import SHARED_PARAMETERS
from ..base import check_float32_range, embed_checked
from ..losses import BarlowTwinsLoss
from ..metrics import chunked_knn
from ..training import engine

__all__ = ["TLDREmbedder"]


def _mlp(sizes, bias):
    """``Linear -> BatchNorm -> ReLU`` for each hidden size, then a ``Linear``."""
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [
            torch.nn.Linear(n_in, n_out, bias=False),
            torch.nn.BatchNorm1d(n_out),
            torch.nn.ReLU(),
        ]
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1], bias=bias))
    return torch.nn.Sequential(*layers)


class _ProjectedTwinLoss(torch.nn.Module):
    """The training-only projector followed by the Barlow Twins loss."""

    def __init__(self, projector, criterion):
        super().__init__()
        self.projector = projector
        self.criterion = criterion

    def forward(self, z_a, z_b):
        return self.criterion(self.projector(z_a), self.projector(z_b))


class _NeighbourPairTerm:
    """The objective of TLDR: each sample against one of its neighbours.

    The engine's batch holds the samples' indices as class codes
    (``batch.y``); for each one a neighbour is drawn uniformly among its
    ``k`` nearest, embedded by the backbone and compared with the sample's
    embedding by ``state.loss``.
    """

    name = "barlow_twins"

    def __init__(self, X, neighbors):
        self.X = X
        self.neighbors = neighbors

    def __call__(self, state, batch):
        rows = batch.y.cpu()
        pick = torch.randint(self.neighbors.shape[1], (rows.shape[0],))
        partners = self.X[self.neighbors[rows, pick]].to(batch.x.device)
        return state.loss(batch.embeddings, state.backbone(partners))


def _shared(name):
    return SHARED_PARAMETERS[name].constraints


class TLDREmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """TLDR: label-free dimensionality reduction by twin learning on neighbours.

    A linear (or MLP) encoder is trained so that every sample and one of its
    ``n_neighbors`` nearest neighbours in the input space map to
    representations whose cross-correlation, after a projector used only in
    training, is the identity (the Barlow Twins loss). It needs no labels:
    ``fit(X)``, ``transform(X)``, a drop-in replacement for
    :class:`~sklearn.decomposition.PCA` in a
    :class:`~sklearn.pipeline.Pipeline`, that keeps neighbourhoods rather
    than variance.

    Parameters
    ----------
    n_components : int, default=32
        Dimension of the output.

    hidden_layer_sizes : tuple of int, default=()
        Hidden layers of the encoder, each ``Linear -> BatchNorm -> ReLU``.
        ``()`` is the paper's linear encoder (one ``Linear`` layer with a
        bias); ``(512,)`` an MLP with one hidden layer.

    projector_layer_sizes : tuple of int, default=(256, 256, 256)
        Layers of the projector (hidden layers ``Linear -> BatchNorm ->
        ReLU``, the last one a plain ``Linear``) mapping the output to the
        space where the loss is computed; discarded after training. The
        paper's projector has 2048 units per layer (its code's default),
        sized for millions of samples; 256 keeps a fit on thousands of
        samples at a few seconds on one CPU core.

    n_neighbors : int, default=3
        Number :math:`k` of nearest neighbours (Euclidean, exact) of each
        sample among which its partner is drawn at every step (the value of
        the paper's main experiments). At most ``n_samples - 1`` are used.

    redundancy_weight : float, default=0.0039
        Weight :math:`\\lambda` of the off-diagonal term of the Barlow Twins
        loss: the value of the authors' code, kept with the smaller
        projector.

    max_iter : int, default=100
        Number of epochs (passes over the samples), the paper's value.

    batch_size : int, default=256
        Samples per batch (the loss standardises over the batch). The paper
        uses 1024 on large sets; 256 keeps several steps per epoch on small
        ones.

    learning_rate_init : float, default=1e-3
        Learning rate of Adam (the paper uses LARS with a warm-up; Adam
        needs no schedule on these scales).

    weight_decay : float, default=0.0
        L2 penalty of the optimizer.

    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        The optimizer (``"sgd"`` with momentum 0.9).

    device : str or torch.device, default="auto"
        Device of training and inference: ``"auto"`` picks CUDA when
        available. The fitted model lives on the CPU.

    verbose : int, default=0
        ``1`` rewrites one progress line per epoch, ``2`` prints one.

    random_state : int, RandomState instance or None, default=None
        Seed of the initial weights, the batches and the neighbour draws.
        The same seed and torch thread count give the same embedding.

    Attributes
    ----------
    backbone_ : torch.nn.Module
        The trained encoder (on the CPU, in evaluation mode).
    n_neighbors_ : int
        The number of neighbours used (``n_neighbors`` or fewer on tiny
        data).
    n_iter_ : int
        Number of epochs run.
    loss_curve_ : list of float
        Mean loss of every epoch.
    history_ : list of dict
        One record per epoch (loss, time).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen during ``fit``, when they are strings.

    See Also
    --------
    sklearn.decomposition.PCA : The linear baseline TLDR replaces.
    sklearn_dml.losses.BarlowTwinsLoss : The loss component.
    sklearn_dml.metrics.rankme_score : A label-free check of the embedding.

    Notes
    -----
    With :math:`f` the encoder, :math:`g` the projector and
    :math:`\\mathcal{N}_k(x)` the :math:`k` nearest neighbours of :math:`x`
    in the training set, each step draws a batch :math:`x_1, \\dots, x_n`
    and one :math:`x'_b \\in \\mathcal{N}_k(x_b)` uniformly per sample, and
    minimises the Barlow Twins loss of :math:`z^A_b = g(f(x_b))` and
    :math:`z^B_b = g(f(x'_b))`,

    .. math::

        L = \\sum_i (1 - C_{ii})^2 + \\lambda \\sum_{i \\ne j} C_{ij}^2,

    :math:`C` being the cross-correlation of the batch-standardised views
    (:class:`~sklearn_dml.losses.BarlowTwinsLoss`). The neighbours are found
    once, exactly, by :func:`~sklearn_dml.metrics.chunked_knn` without an
    :math:`n \\times n` distance matrix. Training runs in the package's
    engine (seeding, device, progress); ``y`` is ignored. Like PCA, the
    result depends on the scale of the features: standardise them first
    when their units differ. ``fit`` validates every parameter and the data
    before it changes anything, and a failed fit leaves a fitted estimator
    as it was.

    References
    ----------
    .. [1] Y. Kalantidis, C. Lassance, J. Almazán and D. Larlus, "TLDR: Twin
       Learning for Dimensionality Reduction", Transactions on Machine
       Learning Research, 2022.
    .. [2] J. Zbontar, L. Jing, I. Misra, Y. LeCun and S. Deny, "Barlow
       Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_dml import TLDREmbedder
    >>> X, _ = load_digits(return_X_y=True)
    >>> tldr = make_pipeline(
    ...     StandardScaler(), TLDREmbedder(n_components=8, max_iter=5, random_state=0)
    ... )
    >>> tldr.fit_transform(X[:500]).shape
    (500, 8)
    """

    _parameter_constraints = {
        "n_components": _shared("n_components"),
        "hidden_layer_sizes": _shared("hidden_layer_sizes"),
        "projector_layer_sizes": [
            TupleOf(Interval(Integral, 1, None, closed="left"), min_length=1)
        ],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "redundancy_weight": [Interval(Real, 0, None, closed="left")],
        "max_iter": _shared("max_iter"),
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "learning_rate_init": _shared("learning_rate_init"),
        "weight_decay": _shared("weight_decay"),
        "optimizer": [StrOptions({"adam", "adamw", "sgd"})],
        "device": _shared("device"),
        "verbose": _shared("verbose"),
        "random_state": _shared("random_state"),
    }

    def __init__(
        self,
        n_components=32,
        *,
        hidden_layer_sizes=(),
        projector_layer_sizes=(256, 256, 256),
        n_neighbors=3,
        redundancy_weight=0.0039,
        max_iter=100,
        batch_size=256,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.projector_layer_sizes = projector_layer_sizes
        self.n_neighbors = n_neighbors
        self.redundancy_weight = redundancy_weight
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _training_config(self, seed, objective):
        return engine.TrainingConfig(
            max_iter=self.max_iter,
            batch_size=self.batch_size,
            samples_per_class=1,
            learning_rate_init=self.learning_rate_init,
            weight_decay=self.weight_decay,
            optimizer=self.optimizer,
            n_iter_no_change=self.max_iter,
            tol=0.0,
            device=self.device,
            verbose=self.verbose,
            seed=seed,
            name=type(self).__name__,
            objective=objective,
        )

    def fit(self, X, y=None):
        """Train the encoder on unlabelled samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples (at least 2).
        y : None
            Ignored; present for the scikit-learn API.

        Returns
        -------
        self : TLDREmbedder
            The fitted estimator.
        """
        validate_params(
            self._parameter_constraints,
            self.get_params(deep=False),
            type(self).__name__,
        )
        before = dict(self.__dict__)
        try:
            return self._fit(X)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit(self, X):
        X = validate_data(self, X, dtype=[np.float32, np.float64], ensure_min_samples=2)
        check_float32_range(X)
        n_samples, n_features = X.shape
        k = min(int(self.n_neighbors), n_samples - 1)
        _, neighbors = chunked_knn(X, k, metric="euclidean", exclude_self=True)
        seed = engine.seed_from(self.random_state)
        sizes = (n_features, *self.hidden_layer_sizes, int(self.n_components))
        projector_sizes = (int(self.n_components), *self.projector_layer_sizes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = _mlp(sizes, bias=True)
            loss = _ProjectedTwinLoss(
                _mlp(projector_sizes, bias=False),
                BarlowTwinsLoss(redundancy_weight=self.redundancy_weight),
            )
        term = _NeighbourPairTerm(
            engine.as_float_tensor(X), torch.from_numpy(neighbors)
        )
        state = engine.TrainingState(backbone=encoder, loss=loss, miner=None)
        config = self._training_config(seed, (term,))
        state = engine.fit(state, config, X, np.arange(n_samples))
        self.backbone_ = state.backbone
        self.n_neighbors_ = k
        self.n_iter_ = state.n_iter
        self.history_ = state.history
        self.loss_curve_ = [record["loss"] for record in state.history]
        self._n_features_out = int(self.n_components)
        return self

    def transform(self, X):
        """Embed samples with the trained encoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to embed.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components), dtype float32
            The embeddings.
        """
        check_is_fitted(self, "backbone_")
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        return embed_checked(self, X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
