"""The one fit/transform/score contract shared by every deep metric learner."""

import copy
import functools
import numbers

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    clone,
)
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import check_scalar
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _engine
from ._verification import PairVerificationMixin
from .backbones import L2Normalize, ResidualMLP
from .losses._base import soft_label_losses
from .losses._matryoshka import MatryoshkaLoss, check_nested_dims
from .mixup import MixupPlan, resolve_mixup

__all__ = ["BaseDeepMetricLearner"]

_OPTIMIZERS = ("adam", "adamw", "sgd")
# The training options every embedder has, with their defaults (off).
TRAINING_OPTION_DEFAULTS = {
    "nested_dims": None,
    "mixup": None,
    "energy_confusion": 0.0,
    "procsim": None,
}
_VALIDATION_SPLITS = ("stratified", "class_disjoint")


class BaseDeepMetricLearner(
    PairVerificationMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Base class of the deep metric learning estimators.

    A subclass stores its constructor arguments (the shared backbone and
    engine parameters, and its method's own) and implements one hook,
    :meth:`_build_loss`, returning the loss component and the miner (or
    ``None``) to train with. Validation, the backbone, training (through the
    engine), ``transform``, ``score`` and ``partial_fit`` live here, and the
    pair verification API (``pair_distance``, ``get_metric``,
    ``calibrate_threshold``, ...) comes from
    :class:`~sklearn_dml._verification.PairVerificationMixin`.

    Examples
    --------
    Every embedder is one; the shared API works the same on all of them:

    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import BaseDeepMetricLearner, TripletEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> emb = TripletEmbedder(n_components=8, max_iter=2, random_state=0)
    >>> emb.fit(X[:300], y[:300]).transform(X[:3]).shape
    (3, 8)
    >>> emb.get_feature_names_out()[:2].tolist()
    ['tripletembedder0', 'tripletembedder1']
    >>> issubclass(TripletEmbedder, BaseDeepMetricLearner)
    True
    """

    # Weight of the default backbone's anchoring to its PCA start (see
    # ResidualMLP); a method whose target is another geometry (distillation
    # from a teacher) sets 0.
    _default_anchor_weight = 10.0

    # ------------------------------------------------------------------ hooks
    def _build_loss(self, n_classes, n_components):
        """Return ``(loss, miner)`` fresh components for a new fit."""
        raise NotImplementedError

    def _check_method_params(self):
        """Validate the method's own hyper-parameters (raise ValueError)."""

    def _loss_learning_rate(self):
        """Learning rate for learnable loss parameters (None: same as backbone)."""
        return None

    def _training_targets(self, X, y, config, first):
        """Per-sample targets handed to the engine with ``X`` (default: none).

        ``X`` and ``y`` are the validated training data, ``first`` says
        whether the model is new (not warm-started nor a later
        ``partial_fit`` call). Knowledge distillation returns the teacher's
        embeddings of ``X`` here; they are sliced with every batch.
        """
        return None

    # ------------------------------------------------------------- validation
    def _check_params(self):
        check_scalar(self.max_iter, "max_iter", numbers.Integral, min_val=1)
        check_scalar(self.batch_size, "batch_size", numbers.Integral, min_val=2)
        check_scalar(
            self.samples_per_class, "samples_per_class", numbers.Integral, min_val=1
        )
        check_scalar(
            self.learning_rate_init,
            "learning_rate_init",
            numbers.Real,
            min_val=0,
            include_boundaries="neither",
        )
        check_scalar(self.weight_decay, "weight_decay", numbers.Real, min_val=0)
        check_scalar(
            self.validation_fraction,
            "validation_fraction",
            numbers.Real,
            min_val=0,
            max_val=1,
            include_boundaries="neither",
        )
        check_scalar(
            self.n_iter_no_change, "n_iter_no_change", numbers.Integral, min_val=1
        )
        check_scalar(self.tol, "tol", numbers.Real, min_val=0)
        if self._validation_split_param() not in _VALIDATION_SPLITS:
            raise ValueError(
                f"validation_split must be one of {_VALIDATION_SPLITS}, got "
                f"{self._validation_split_param()!r}: 'stratified' holds out samples "
                "of every class, 'class_disjoint' holds out whole classes."
            )
        check_scalar(self.verbose, "verbose", (numbers.Integral, bool), min_val=0)
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}."
            )
        if self.backbone is None:
            check_scalar(self.n_components, "n_components", numbers.Integral, min_val=1)
            sizes = self.hidden_layer_sizes
            if not isinstance(sizes, (tuple, list)) or not all(
                isinstance(s, numbers.Integral) and s >= 1 for s in sizes
            ):
                raise ValueError(
                    "hidden_layer_sizes must be a tuple of positive integers, e.g. "
                    f"(256,) or () for a linear embedding; got {sizes!r}."
                )
        elif not isinstance(self.backbone, torch.nn.Module):
            raise TypeError(
                "backbone must be a torch.nn.Module (or None for the default MLP); "
                f"got {type(self.backbone).__name__}."
            )
        _engine.resolve_device(self.device)
        self._check_training_options()
        self._check_method_params()

    def _check_training_options(self):
        """Validate ``nested_dims``, ``mixup``, ``energy_confusion``, ``procsim``.

        ``nested_dims`` is checked here against ``n_components`` (and against
        the output size of a user backbone once it is probed, in
        :meth:`_new_state`); whether the loss can honour ``mixup`` and
        ``procsim`` is checked once it is built, still before training.
        """
        nested_dims = getattr(self, "nested_dims", None)
        if nested_dims is not None:
            check_nested_dims(
                nested_dims, self.n_components if self.backbone is None else None
            )
        resolve_mixup(getattr(self, "mixup", None))
        self._check_energy_confusion()
        self._procsim_weighting()

    def _training_options_in_use(self):
        """Names of the training options set to something other than off."""
        return [
            name
            for name, default in TRAINING_OPTION_DEFAULTS.items()
            if getattr(self, name, default) is not default
            and getattr(self, name, default) != default
        ]

    def _check_energy_confusion(self):
        """``energy_confusion``: a finite weight >= 0 (ECAML)."""
        value = getattr(self, "energy_confusion", 0.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not np.isfinite(value)
            or value < 0
        ):
            raise ValueError(
                "energy_confusion must be a finite number >= 0 (the weight of the "
                f"ECAML energy-confusion term; 0 disables it); got {value!r}."
            )

    def _procsim_weighting(self):
        """``procsim`` validated: None, or a fresh unconfigured ProcSimWeighting."""
        from .losses import ProcSimWeighting

        value = getattr(self, "procsim", None)
        if value is None or value is False:
            return None
        if value is True:
            return ProcSimWeighting()
        if isinstance(value, ProcSimWeighting):
            value._check_params()
            return clone(value)
        raise ValueError(
            "procsim must be None, True (default ProcSimWeighting()) or a "
            f"sklearn_dml.losses.ProcSimWeighting instance; got {value!r}."
        )

    def _configure_training_options(self, config, state):
        """Put the training options into ``config.extra`` for the engine.

        Called by ``fit`` and ``partial_fit`` once the loss and backbone
        exist, before any training step; raises ``ValueError`` for an option
        the components cannot honour.
        """
        if getattr(self, "energy_confusion", 0.0):
            config.extra["energy_confusion"] = float(self.energy_confusion)
        metrix = resolve_mixup(getattr(self, "mixup", None))
        if metrix is None:
            config.extra.pop("mixup", None)
            return config
        if not getattr(state.loss, "supports_soft_labels", False):
            raise ValueError(
                "mixup is supported by the estimators whose loss handles soft "
                f"labels ({', '.join(soft_label_losses())}); "
                f"{type(self).__name__} trains {type(state.loss).__name__}. Set "
                "mixup=None or use one of those losses."
            )
        if metrix.on == "feature" and not (
            isinstance(state.backbone, ResidualMLP)
            and state.backbone.branch is not None
        ):
            raise ValueError(
                "mixup on='feature' mixes the first hidden layer of the default "
                "backbone (ResidualMLP with hidden_layer_sizes not empty); this "
                "estimator has a user backbone or no hidden layer. Use "
                "mixup='input' or mixup='embedding'."
            )
        config.extra["mixup"] = MixupPlan(
            metrix=metrix,
            n_classes=len(self.classes_),
            normalize=bool(self.normalize_embeddings),
        )
        return config

    def _validate_training_data(self, X, y, reset):
        X, y = validate_data(
            self,
            X,
            y,
            reset=reset,
            dtype=[np.float32, np.float64],
            ensure_min_samples=2,
        )
        check_classification_targets(y)
        return X, y

    # ------------------------------------------------------------- building
    def _anchor_weight(self):
        """Anchoring weight of the default backbone for this fit.

        Off with ``nested_dims``: Matryoshka training reorders what the
        leading coordinates carry, which an anchor on the starting geometry
        of the whole embedding fights (the full embedding then loses most of
        its quality).
        """
        if getattr(self, "nested_dims", None) is not None:
            return 0.0
        return self._default_anchor_weight

    def _build_backbone(self, n_features, X=None):
        """A fresh backbone; data-dependent initialisation (PCA) from ``X``."""
        if self.backbone is None:
            net = ResidualMLP(
                n_features,
                self.n_components,
                tuple(self.hidden_layer_sizes),
                init="pca",
                normalize_embeddings=self.normalize_embeddings,
                anchor_weight=self._anchor_weight(),
            )
        else:
            net = copy.deepcopy(self.backbone)
        initialize = getattr(net, "initialize", None)
        if X is not None and callable(initialize):
            initialize(X)
        if self.backbone is not None and self.normalize_embeddings:
            net = torch.nn.Sequential(net, L2Normalize())
        return net

    def _probe_backbone(self, backbone, n_features):
        """Run two dummy rows through the backbone to report shape errors early."""
        was_training = backbone.training
        backbone.eval()
        try:
            with torch.no_grad():
                out = backbone(torch.zeros(2, n_features))
        except Exception as exc:  # the user's module: report any failure clearly
            raise ValueError(
                f"The backbone could not embed a batch of shape (2, {n_features}) "
                f"(n_features of X): {type(exc).__name__}: {exc}. Make its first "
                f"layer accept {n_features} input features."
            ) from exc
        finally:
            backbone.train(was_training)
        if out.ndim != 2 or out.shape[0] != 2:
            raise ValueError(
                "The backbone must return a 2-D tensor (batch, n_components); it "
                f"returned shape {tuple(out.shape)} for 2 input rows."
            )
        return int(out.shape[1])

    def _training_config(self):
        return _engine.TrainingConfig(
            max_iter=self.max_iter,
            batch_size=self.batch_size,
            samples_per_class=self.samples_per_class,
            learning_rate_init=self.learning_rate_init,
            weight_decay=self.weight_decay,
            optimizer=self.optimizer,
            early_stopping=self.early_stopping,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            device=self.device,
            verbose=self.verbose,
            seed=_engine.seed_from(self.random_state),
            loss_learning_rate=self._loss_learning_rate(),
            name=type(self).__name__,
        )

    def _new_state(self, n_features, config, X=None):
        # Initialise under the fit's seed so the weights are reproducible.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            backbone = self._build_backbone(n_features, X)
            n_out = self._probe_backbone(backbone, n_features)
            loss, miner = self._build_loss(len(self.classes_), n_out)
            loss = self._with_training_option_losses(loss, backbone, n_out)
            loss = self._wrap_nested(loss, n_out)
            # Learnable loss parameters (proxies, centres, boundaries) must exist
            # before the engine builds the optimizer and moves the modules.
            if hasattr(loss, "configure"):
                loss.configure(len(self.classes_), n_out)
        return _engine.TrainingState(backbone=backbone, loss=loss, miner=miner), n_out

    def _with_training_option_losses(self, loss, backbone, n_out):
        """Wrap the loss for ``procsim``; check ``energy_confusion`` can apply."""
        if getattr(self, "energy_confusion", 0.0) and not (
            _engine.metric_layer_parameters(backbone, n_out)
        ):
            raise ValueError(
                "energy_confusion > 0 trains the backbone's output layer (a "
                f"torch.nn.Linear with {n_out} output features, the metric of "
                "ECAML), but the backbone has none. Give the backbone a final "
                "Linear layer or set energy_confusion=0."
            )
        weighting = self._procsim_weighting()
        if weighting is not None:
            from .losses import ProcSimLoss
            from .losses._robust import check_procsim_base_loss

            check_procsim_base_loss(loss)
            loss = ProcSimLoss(loss, weighting)
        return loss

    def _wrap_nested(self, loss, n_out):
        """The loss, wrapped in :class:`MatryoshkaLoss` when ``nested_dims`` is set."""
        nested_dims = getattr(self, "nested_dims", None)
        if nested_dims is None:
            return loss
        try:
            dims = check_nested_dims(nested_dims, n_out)
        except ValueError as exc:
            raise ValueError(
                f"{exc} (the backbone returns embeddings of size {n_out})"
            ) from None
        return MatryoshkaLoss(loss, dims, normalize=bool(self.normalize_embeddings))

    def _state_from_fitted(self):
        nested = getattr(self, "nested_dims", None)
        fitted = getattr(self.loss_, "dims_", (None,))[:-1] or None
        if isinstance(self.loss_, MatryoshkaLoss) != (nested is not None) or (
            nested is not None and tuple(check_nested_dims(nested)) != fitted
        ):
            raise ValueError(
                f"nested_dims={nested!r} differs from the value the model was "
                f"trained with ({fitted!r}); training cannot resume with other "
                "nested dimensions. Refit with warm_start=False (or restore "
                "nested_dims)."
            )
        return _engine.TrainingState(
            backbone=self.backbone_,
            loss=self.loss_,
            miner=self.miner_,
            optimizer_state=self._optimizer_state,
            n_iter=self.n_iter_,
            history=list(self.history_),
            best_validation_score=self.best_validation_score_,
        )

    def _store_state(self, state):
        self.backbone_ = state.backbone
        self.loss_ = state.loss
        self.miner_ = state.miner
        self._optimizer_state = state.optimizer_state
        self.n_iter_ = state.n_iter
        self.history_ = state.history
        self.loss_curve_ = [rec["loss"] for rec in state.history]
        scores = [
            rec["validation_score"]
            for rec in state.history
            if "validation_score" in rec
        ]
        self.validation_scores_ = scores if scores else None
        self.best_validation_score_ = state.best_validation_score
        # A calibrated threshold belongs to the previous embedding.
        self.__dict__.pop("threshold_", None)

    # ---------------------------------------------------------------- fitting
    def _validation_split_param(self):
        # An estimator written before the parameter existed keeps the old split.
        return getattr(self, "validation_split", "stratified")

    def _validation_split(self, X, codes, seed):
        """Indices ``(train, val)`` of the early-stopping hold-out."""
        if self._validation_split_param() == "class_disjoint":
            return self._class_disjoint_split(codes, seed)
        return self._stratified_split(X, codes, seed)

    def _class_disjoint_split(self, codes, seed):
        """Hold out ``validation_fraction`` of the classes (at least 2, rounded)."""
        present = np.unique(codes)
        n_classes = present.shape[0]
        if n_classes < 4:
            raise ValueError(
                "validation_split='class_disjoint' holds out whole classes and needs "
                f"at least 4 classes (2 to validate on, 2 to train on); y has "
                f"{n_classes}. Use validation_split='stratified' or disable "
                "early_stopping."
            )
        n_val = int(np.floor(self.validation_fraction * n_classes + 0.5))
        n_val = min(max(n_val, 2), n_classes - 2)
        rng = np.random.RandomState(seed % 2**32)
        held_out = rng.permutation(present)[:n_val]
        in_val = np.isin(codes, held_out)
        val = np.flatnonzero(in_val)
        if np.bincount(codes[val]).max(initial=0) < 2:
            raise ValueError(
                "early_stopping=True with validation_split='class_disjoint' needs "
                "held-out classes with at least two samples each to score retrieval, "
                f"but the {n_val} held-out classes have one sample each. Provide more "
                "samples per class or use validation_split='stratified'."
            )
        return np.flatnonzero(~in_val), val

    def _stratified_split(self, X, codes, seed):
        """Stratified hold-out for early stopping (plain shuffle if a class is tiny)."""
        counts = np.bincount(codes)
        stratify = counts.min() >= 2 and int(
            self.validation_fraction * len(codes)
        ) >= len(counts)
        splitter_cls = StratifiedShuffleSplit if stratify else ShuffleSplit
        splitter = splitter_cls(
            n_splits=1, test_size=self.validation_fraction, random_state=seed
        )
        train, val = next(splitter.split(X, codes if stratify else None))
        if np.bincount(codes[val]).max(initial=0) < 2:
            raise ValueError(
                "early_stopping=True needs a validation set holding at least two samples "
                f"of some class, but validation_fraction={self.validation_fraction} of "
                f"{len(codes)} samples gives {len(val)} samples with no repeated class. "
                "Increase validation_fraction, provide more data, or disable early_stopping."
            )
        return train, val

    def _run_engine(self, X, codes, state, config, n_epochs, targets=None):
        from .metrics import map_at_r_score

        validation = None
        if self.early_stopping:
            train, val = self._validation_split(X, codes, config.seed)
            validation = (X[val], codes[val])
            X, codes = X[train], codes[train]
            targets = None if targets is None else targets[train]
        return _engine.fit(
            state,
            config,
            X,
            codes,
            n_epochs=n_epochs,
            validation=validation,
            score_func=map_at_r_score,
            targets=targets,
        )

    def fit(self, X, y):
        """Train the embedding on labelled samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features (dense; convert sparse input with ``.toarray()``).
        y : array-like of shape (n_samples,)
            Class labels (integers or strings), at least two classes.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._check_params()
        warm = self.warm_start and hasattr(self, "backbone_")
        X, y = self._validate_training_data(X, y, reset=not warm)
        classes = np.unique(y)
        if warm:
            new = np.setdiff1d(classes, self.classes_)
            if new.size and self._fixed_classes():
                raise ValueError(
                    f"y holds labels {new.tolist()} that the previous fit did not "
                    f"see, but the loss of {type(self).__name__} learns one "
                    "parameter per class, fixed at the first fit. Refit with "
                    "warm_start=False on data holding every class."
                )
            self.classes_ = (
                np.concatenate([self.classes_, new]) if new.size else self.classes_
            )
        else:
            self.classes_ = classes
            self._classes_declared = False
        if classes.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes to learn a "
                f"metric; y holds 1 class ({classes[0]!r})."
            )
        codes = self._encode(y)
        config = self._training_config()
        if warm:
            state = self._state_from_fitted()
        else:
            state, self._n_features_out = self._new_state(X.shape[1], config, X)
        self._configure_training_options(config, state)
        targets = self._training_targets(X, y, config, first=not warm)
        state = self._run_engine(X, codes, state, config, config.max_iter, targets)
        self._store_state(state)
        return self

    def partial_fit(self, X, y, classes=None):
        """Run one epoch on ``(X, y)``, initialising the model on the first call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features.
        y : array-like of shape (n_samples,)
            Class labels.
        classes : array-like of shape (n_classes,), default=None
            All classes that will appear over the calls; required by losses
            with one learned parameter per class. Labels outside it raise an
            error when it is given.

        Returns
        -------
        self : object
            The updated estimator.
        """
        first = not hasattr(self, "backbone_")
        if first:
            self._check_params()
        X, y = self._validate_training_data(X, y, reset=first)
        if first:
            self.classes_ = np.unique(y if classes is None else np.asarray(classes))
            self._classes_declared = classes is not None
            if self.classes_.shape[0] < 2:
                raise ValueError(
                    f"{type(self).__name__}.partial_fit needs at least 2 classes on the "
                    "first call (in y or in classes=)."
                )
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            if self._classes_declared or self._fixed_classes():
                raise ValueError(
                    f"y holds labels {unknown.tolist()} that are not in classes_. Pass "
                    "every class in classes= on the first partial_fit call."
                )
            self.classes_ = np.concatenate([self.classes_, unknown])
        codes = self._encode(y)
        config = self._training_config()
        if first:
            state, self._n_features_out = self._new_state(X.shape[1], config, X)
        else:
            state = self._state_from_fitted()
        self._configure_training_options(config, state)
        targets = self._training_targets(X, y, config, first=first)
        state = _engine.fit(state, config, X, codes, n_epochs=1, targets=targets)
        self._store_state(state)
        return self

    def _fixed_classes(self):
        """Whether the fitted loss has per-class parameters (then classes are fixed).

        Decided by configuring an unconfigured copy of ``loss_`` for one more
        class: if any parameter changes shape, the parameters are per class.
        """
        loss = getattr(self, "loss_", None)
        if loss is None or not hasattr(loss, "configure"):
            return False
        shapes = [tuple(p.shape) for p in loss.parameters()]
        if not shapes:
            return False
        probe = clone(loss) if hasattr(loss, "get_params") else copy.deepcopy(loss)
        try:
            with torch.random.fork_rng(devices=[]):
                probe.configure(len(self.classes_) + 1, self._n_features_out)
        except ValueError:
            # The loss was built for a fixed number of classes.
            return True
        return [tuple(p.shape) for p in probe.parameters()] != shapes

    def _encode(self, y):
        # classes_ may be unsorted after classes were appended: map via a sort.
        order = np.argsort(self.classes_, kind="stable")
        pos = np.searchsorted(self.classes_[order], y)
        return order[pos].astype(np.int64)

    # -------------------------------------------------------------- inference
    def _embed(self, X):
        """Embeddings of an already validated 2-D array (NumPy float32)."""
        check_is_fitted(self, "backbone_")
        return _engine.embed(self.backbone_, X, _engine.resolve_device(self.device))

    def _frozen_embed(self):
        """A picklable function embedding a 2-D array with a copy of the model (CPU)."""
        check_is_fitted(self, "backbone_")
        return functools.partial(_engine.embed, copy.deepcopy(self.backbone_))

    def transform(self, X):
        """Embed samples.

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
        return self._embed(X)

    def transform_nested(self, X, n_dims):
        """Embed samples with the first ``n_dims`` dimensions of the embedding.

        The leading ``n_dims`` coordinates of :meth:`transform`, re-normalised
        to unit length when ``normalize_embeddings=True``. Models trained with
        ``nested_dims`` (Matryoshka Representation Learning) are trained for
        these prefixes to be embeddings on their own; for other models this
        is plain truncation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to embed.
        n_dims : int
            Number of leading dimensions kept, from 1 to the embedding size
            (any size; those in ``nested_dims`` were trained directly).

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_dims), dtype float32
            The prefix embeddings.

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from sklearn_dml import TripletEmbedder
        >>> X, y = load_digits(return_X_y=True)
        >>> emb = TripletEmbedder(
        ...     n_components=8, nested_dims=(2, 4), max_iter=2, random_state=0
        ... )
        >>> emb.fit(X[:300], y[:300]).transform_nested(X[:3], 2).shape
        (3, 2)
        """
        check_is_fitted(self, "backbone_")
        n_out = self._n_features_out
        if (
            isinstance(n_dims, bool)
            or not isinstance(n_dims, numbers.Integral)
            or not 1 <= n_dims <= n_out
        ):
            raise ValueError(
                f"n_dims must be an integer from 1 to the embedding size ({n_out}); "
                f"got {n_dims!r}."
            )
        prefix = torch.from_numpy(self.transform(X)[:, : int(n_dims)])
        if self.normalize_embeddings:
            prefix = torch.nn.functional.normalize(prefix, p=2.0, dim=1)
        return prefix.numpy()

    def score(self, X, y):
        """MAP@R of the embedding of ``X``, leave-one-out (higher is better).

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
        from .metrics import map_at_r_score

        return float(map_at_r_score(self.transform(X), np.asarray(y)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
