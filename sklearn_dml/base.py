"""The estimator base class: shared parameters, fit, transform and score.

Every deep metric learner derives from :class:`BaseDeepMetricLearner`. The
parameters they all share (the backbone, the training options, the
engine's settings) are declared once, in ``_shared_parameters.py``, with
their default, documentation and constraints. A concrete embedder declares only
its own parameters (``_method_parameters``, name -> default, and their
``_parameter_constraints``); the base class generates its ``__init__`` with
the full, explicit signature that ``help()``, ``get_params``, ``clone`` and
``GridSearchCV`` see.
"""

import contextlib
import copy
import functools
import math
import warnings
from numbers import Integral

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    clone,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    check_X_y,
    validate_data,
)

from ._param_validation import (
    Interval,
    validate_params,
)
from ._shared_parameters import SHARED_PARAMETERS, TRAINING_OPTIONS, generate_init
from ._verification import PairVerificationMixin, RetrievalScoreMixin
from .backbones import L2Normalize, PatchPCANet, ResidualMLP, SequenceConvNet
from .inputs import (
    check_lazy_features,
    check_lazy_training_data,
    init_sample,
    is_lazy,
)
from .losses import (
    CrossBatchMemoryLoss,
    EnergyConfusionRegularizer,
    ProcSimLoss,
    ProcSimWeighting,
)
from .losses._base import soft_label_losses
from .losses._wrappers import MatryoshkaLoss, check_nested_dims, check_procsim_base_loss
from .metrics import map_at_r_score
from .mixup import MixupPlan, resolve_mixup
from .training import engine
from .training.callbacks import CallbackRunner
from .training.distributed import DataParallel
from .training.objective import (
    EnergyConfusionTerm,
    MetricLossTerm,
    MixupTerm,
    PenaltyTerm,
    metric_layer_parameters,
)
from .training.param_groups import freeze_zero_rate_parameters
from .training.validation import validation_split

__all__ = ["BaseDeepMetricLearner"]

#: ``anchor_weight="auto"`` chooses only with at least this many classes;
#: with fewer it keeps the method's weight.
AUTO_ANCHOR_MIN_CLASSES = 5

#: With at least this many classes, ``anchor_weight="auto"`` validates on the
#: two halves of the classes (each candidate trained on one half, scored on
#: the other); with fewer, on ``AUTO_FEW_CLASS_SPLITS`` overlapping groups of
#: about 40 % of the classes, each candidate trained on the rest.
AUTO_HALVES_MIN_CLASSES = 10
AUTO_FEW_CLASS_SPLITS = 3

#: ``anchor_weight="auto"`` scores each candidate on at most about this many
#: held-out samples: a class-stratified subsample (:func:`_class_subsample`),
#: the same for both candidates of a group and every blend. Leave-one-out
#: MAP@R grows with the square of the held-out samples; at 25,000 it cost
#: more than the candidates' training epochs, and the anchored candidate is
#: scored at every share of ``AUTO_START_SHARES``.
AUTO_SCORE_MAX_SAMPLES = 2500

#: ``anchor_weight="auto"`` trains each candidate on at most about this many
#: samples of its training classes: a class-stratified subsample (the same
#: for both candidates of a group). It bounds the cost of the choice on large
#: data to about four fits on this many samples: on 50,000 rows the
#: candidates trained on 25,000 rows each, twice the time of the real fit.
AUTO_TRAIN_MAX_SAMPLES = 5000

#: The share of ``max_iter`` that each candidate of ``anchor_weight="auto"``
#: trains for (rounded up). Half the epochs would bring the five-class
#: choice under 3x the cost of one fit, but chose worse on the transfer
#: suite (``benchmarks/results/auto_cost.md``).
AUTO_CANDIDATE_EPOCH_SHARE = 1.0

#: The shares of the starting map that ``anchor_weight="auto"`` tries
#: blending into its anchored candidate (see
#: :meth:`~sklearn_dml.backbones.ResidualMLP.blend_with_start`), scored like
#: the candidates themselves, without extra training. Where the inputs are
#: already good embeddings, training on the seen classes moves even the
#: anchored network away from what transfers, and a share of the start
#: given back recovers most of it (see
#: ``benchmarks/results/transfer_defaults.md``); shares above 0.5 added
#: nothing there.
AUTO_START_SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)

#: A blend replaces the anchored candidate only when its mean held-out
#: MAP@R is higher by at least this much.
AUTO_BLEND_MIN_GAIN = 0.005

#: ... and when it costs the candidate at most this much MAP@R on held-out
#: samples of the classes it was trained on (mean over the groups):
#: held-out classes measure transfer only, and on digits or MNIST a blend
#: that gains 0.01 on them gives up 0.1 or more on the training classes.
AUTO_BLEND_MAX_CLOSED_LOSS = 0.01

#: The share of each training class's samples that both candidates of
#: ``anchor_weight="auto"`` leave out of their training, to score the blends
#: on the training classes (``AUTO_BLEND_MAX_CLOSED_LOSS``). Scored on the
#: candidate's own training samples instead, a blend showed no loss (their
#: MAP@R stays near 1 while that of unseen samples of the same classes
#: falls: closed-set digits lost 0.03-0.05).
AUTO_CLOSED_FRACTION = 0.2

#: At most about this many of those samples are scored (a class-stratified
#: subsample).
AUTO_CLOSED_SCORE_MAX_SAMPLES = 1000

#: The start of ``anchor_weight="auto"``'s unanchored candidate (the
#: ``init`` of the default :class:`ResidualMLP`). Without an anchor the PCA
#: start is only an initialisation, and on the transfer suite's tasks whose
#: input geometry is poor (distractor dimensions, irrelevant features,
#: signals) a network trained from a random start transferred better from
#: it: its principal axes are the distractors' (see
#: ``benchmarks/results/transfer_defaults.md``).
FREE_START = "random"

#: Anchoring weight of the default sequence backbone (:class:`SequenceConvNet`)
#: when ``anchor_weight`` is ``None`` or ``"auto"``: on the class-disjoint
#: benchmarks of ``benchmarks/deep_inputs.py`` the anchor to the random
#: convolutional start did not help unseen classes (see
#: ``benchmarks/results/deep_inputs.md``). The image default
#: (:class:`PatchPCANet`) has a PCA start and takes the method's weight.
CONV_ANCHOR_WEIGHT = 0.0

#: The input dimensions each ``input_type`` accepts.
_INPUT_NDIMS = {"tabular": (2,), "sequence": (3,), "image": (3, 4)}
_AUTO_INPUT_TYPES = {2: "tabular", 3: "sequence", 4: "image"}

#: ``_check_inputs`` without labels (``transform``); ``y=None`` is an error.
_NO_Y = object()


class BaseDeepMetricLearner(
    RetrievalScoreMixin,
    PairVerificationMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Base class of the deep metric learning estimators.

    A subclass declares its own parameters in ``_method_parameters`` (name
    -> default, in signature order) and their constraints in
    ``_parameter_constraints`` (only its own: the shared ones are merged
    in), and implements one hook, :meth:`_build_loss`, returning the loss
    component and the miner (or ``None``) to train with. The ``__init__``
    is generated from both tables. Validation, the backbone, the training
    objective, training (through the engine), ``transform``, ``score`` and
    ``partial_fit`` live here, and the pair verification API
    (``pair_distance``, ``get_metric``, ``calibrate_threshold``, ...) comes
    from :class:`~sklearn_dml._verification.PairVerificationMixin`.

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

    _parameter_constraints = {n: p.constraints for n, p in SHARED_PARAMETERS.items()}
    _method_parameters = {}

    # Whether the method takes 2-D input only (its network reads feature
    # vectors); the others also take image arrays and sequences.
    _tabular_only = False

    # Weight of the default backbone's anchoring to its PCA start (see
    # ResidualMLP); a method whose target is another geometry (distillation
    # from a teacher, class weights) sets 0.
    _default_anchor_weight = 10.0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("_method_parameters")
        if own is None:
            own = cls._method_parameters
        clash = set(own) & set(SHARED_PARAMETERS)
        if clash:
            raise TypeError(
                f"{cls.__name__} redeclares shared parameters {sorted(clash)}."
            )
        parents = [b for b in cls.__mro__[1:] if "_parameter_constraints" in b.__dict__]
        merged = {}
        for base in reversed(parents):
            merged.update(base.__dict__["_parameter_constraints"])
        merged.update(cls.__dict__.get("_parameter_constraints", {}))
        cls._parameter_constraints = merged
        missing = [name for name in own if name not in merged]
        if missing:
            raise TypeError(f"{cls.__name__} declares no constraints for {missing}.")
        if "__init__" not in cls.__dict__:
            cls.__init__ = generate_init(cls, own)

    # ------------------------------------------------------------------ hooks
    def _build_loss(self, n_classes, n_components):
        """Return ``(loss, miner)`` fresh components for a new fit."""
        raise NotImplementedError

    def _check_method_params(self):
        """Checks relating several parameters, after the constraints (raise ValueError)."""

    def _loss_learning_rate(self):
        """Learning rate for learnable loss parameters (None: same as backbone)."""
        return None

    def _metric_weight(self):
        """Weight of the metric loss in the objective (0 leaves it out)."""
        return 1.0

    def _extra_terms(self, state):
        """Objective terms of the method, added after the metric loss."""
        return []

    def _training_targets(self, X, y, config, first):
        """Per-sample targets handed to the engine with ``X`` (default: none).

        ``X`` and ``y`` are the validated training data, ``first`` says
        whether the model is new (not warm-started nor a later
        ``partial_fit`` call). Knowledge distillation returns the teacher's
        embeddings of ``X`` here; they are sliced with every batch.
        """
        return None

    # ------------------------------------------------------------- validation
    def _validate_params(self):
        """Check every parameter against its constraints, then the cross-checks."""
        validate_params(
            self._parameter_constraints,
            self.get_params(deep=False),
            type(self).__name__,
        )
        if self.nested_dims is not None:
            check_nested_dims(
                self.nested_dims, self.n_components if self.backbone is None else None
            )
        memory = self.cross_batch_memory
        if isinstance(memory, (tuple, list)) and (len(memory) != 2 or memory[0] < 1):
            raise ValueError(
                "cross_batch_memory must be an int memory_size >= 1 or a pair "
                f"(memory_size >= 1, warmup_steps >= 0); got {memory!r}."
            )
        self._check_training_options()
        self._check_method_params()

    def _check_training_options(self):
        """Options a method cannot honour (default: every option is supported)."""

    def _training_options_in_use(self):
        """Names of the training options set to something other than off."""
        return [
            name
            for name in TRAINING_OPTIONS
            if getattr(self, name) is not SHARED_PARAMETERS[name].default
            and getattr(self, name) != SHARED_PARAMETERS[name].default
        ]

    def _procsim_weighting(self):
        """``procsim`` as a fresh unconfigured ProcSimWeighting, or None."""
        value = self.procsim
        if value is None or value is False:
            return None
        if value is True:
            return ProcSimWeighting()
        return clone(value)

    def _validate_training_data(self, X, y, reset):
        if is_lazy(X):
            X, y = check_lazy_training_data(self, X, y, reset)
            sample_ndim = len(X.sample_shape)
        else:
            X, y = self._check_inputs(X, y, reset=reset, ensure_min_samples=2)
            check_float32_range(X)
            sample_ndim = X.ndim - 1
        if self._tabular_only and sample_ndim != 1:
            raise ValueError(
                f"{type(self).__name__} takes 2-D X (n_samples, n_features); got "
                f"samples of shape {_sample_shape(X)}. Flatten the samples "
                "(X.reshape(len(X), -1)) or use another embedder for images and "
                "sequences."
            )
        self._input_kind(sample_ndim + 1)
        new_is_str = _are_strings(y)
        check_classification_targets(y)
        if not reset and hasattr(self, "classes_"):
            fitted_is_str = _are_strings(self.classes_)
            if fitted_is_str != new_is_str:
                raise ValueError(
                    f"y holds {'string' if new_is_str else 'non-string'} labels but "
                    f"the model was trained on {'string' if fitted_is_str else 'non-string'} "
                    f"labels ({self.classes_[:3].tolist()}...); use labels of the type "
                    "of classes_."
                )
        return X, y

    def _check_inputs(self, X, y=_NO_Y, *, reset, ensure_min_samples=1):
        """Validate ``X`` (and ``y``): 2-D through ``validate_data``, N-D here.

        2-D input goes through scikit-learn's ``validate_data`` as always
        (feature names, ``n_features_in_``). Input with more dimensions
        (images, sequences) is checked with ``check_array(allow_nd=True)``;
        ``n_features_in_`` is then the number of values of one sample (the
        product of its shape). ``input_shape_`` holds the shape of one sample
        either way; ``reset=False`` refuses a sample of another shape.
        """
        shape = _sample_shape(X)
        if not reset:
            self._check_sample_shape(shape)
        kwargs = {
            "dtype": [np.float32, np.float64],
            "ensure_min_samples": ensure_min_samples,
        }
        no_y = y is _NO_Y
        if shape is None or len(shape) < 2:
            if no_y:
                X = validate_data(self, X, reset=reset, **kwargs)
            else:
                X, y = validate_data(self, X, y, reset=reset, **kwargs)
            if reset:
                self.input_shape_ = (int(X.shape[1]),)
            return X if no_y else (X, y)
        if no_y:
            X = check_array(X, allow_nd=True, **kwargs)
        elif y is None:
            raise ValueError(
                f"This {type(self).__name__} estimator requires y to be passed, "
                "but the target y is None."
            )
        else:
            X, y = check_X_y(X, y, allow_nd=True, **kwargs)
        if reset:
            self.input_shape_ = tuple(int(s) for s in X.shape[1:])
            self.n_features_in_ = int(np.prod(self.input_shape_))
            self.__dict__.pop("feature_names_in_", None)
        return X if no_y else (X, y)

    def _check_sample_shape(self, shape):
        """Refuse samples of another shape than the fitted ``input_shape_``."""
        fitted = getattr(self, "input_shape_", None)
        if fitted is None or shape is None or tuple(shape) == tuple(fitted):
            return
        if len(shape) < 2 and len(fitted) < 2:
            return  # validate_data reports a feature-count mismatch itself
        raise ValueError(
            f"X holds samples of shape {tuple(shape)}, but {type(self).__name__} "
            f"was fitted on samples of shape {tuple(fitted)} (input_shape_); give "
            f"X the shape (n_samples, {', '.join(map(str, fitted))})."
        )

    def _input_kind(self, ndim):
        """``"tabular"``, ``"sequence"``, ``"image"`` or ``None`` (a user backbone).

        From ``input_type`` and the number of dimensions of ``X``; raises
        ValueError when they disagree.
        """
        kind = self.input_type
        if kind == "auto":
            if ndim in _AUTO_INPUT_TYPES:
                return _AUTO_INPUT_TYPES[ndim]
            if self.backbone is not None:
                return None
            raise ValueError(
                f"{type(self).__name__} got X with {ndim} dimensions; the default "
                "backbones take 2-D (n, n_features), 3-D sequences (n, T, d) or "
                "4-D images (n, C, H, W). Reshape X or give a backbone."
            )
        if ndim not in _INPUT_NDIMS[kind]:
            expected = " or ".join(f"{d}-D" for d in _INPUT_NDIMS[kind])
            raise ValueError(
                f"input_type={kind!r} needs {expected} X; got X with {ndim} dimensions."
            )
        return kind

    def _backbone_rates(self, backbone):
        """``backbone_learning_rates`` with the parameter names of ``backbone``.

        A user backbone trained with ``normalize_embeddings`` is the first
        module of a ``Sequential`` that appends the normalisation, so its
        parameter names gain a ``"0."`` prefix there.
        """
        rates = self.backbone_learning_rates
        if not rates or self._rates_module(backbone) is backbone:
            return rates
        return {("0." + k if k else "0"): v for k, v in rates.items()}

    def _rates_module(self, backbone):
        """The module whose parameter names ``backbone_learning_rates`` uses."""
        if (
            self.backbone is not None
            and self.normalize_embeddings
            and isinstance(backbone, torch.nn.Sequential)
            and len(backbone) == 2
            and isinstance(backbone[1], L2Normalize)
        ):
            return backbone[0]  # the user's module, before the L2Normalize
        return backbone

    def _sample_shape(self):
        """The fitted shape of one sample (``(n_features_in_,)`` for 2-D input)."""
        shape = getattr(self, "input_shape_", None)
        return tuple(shape) if shape is not None else (int(self.n_features_in_),)

    # ------------------------------------------------------------- building
    def _method_anchor_weight(self):
        """The method's own anchoring weight (``anchor_weight=None``).

        Off with ``nested_dims``: Matryoshka training reorders what the
        leading coordinates carry, which an anchor on the starting geometry
        of the whole embedding fights (the full embedding then loses most of
        its quality).
        """
        if self.nested_dims is not None:
            return 0.0
        return self._default_anchor_weight

    def _anchor_weight(self):
        """The anchoring weight the parameter gives without a choice on data.

        ``"auto"`` gives the method's weight here; the choice itself is made
        by :meth:`_select_anchor_weight` when a new model is fitted.
        """
        if self.anchor_weight is None or self.anchor_weight == "auto":
            return self._method_anchor_weight()
        return float(self.anchor_weight)

    def _select_anchor_weight(self, X, y, seed):
        """``anchor_weight="auto"``: a free network or the method's weight.

        The two candidates are the method's weight on the PCA start and a
        free network: no anchoring, from a random start
        (``ResidualMLP(init="random")``, see ``FREE_START``).
        Class-disjoint validation on the training data: each candidate is
        trained on some of the classes and scored by leave-one-out MAP@R on
        the samples of the others, over the groups of
        :func:`_anchor_validation_groups`. The anchored candidate is also
        scored blended with its start at each share of
        ``AUTO_START_SHARES``, on the held-out classes and on samples of its
        training classes that both candidates leave out of training
        (:func:`_closed_split`); the blend with the best held-out mean among
        those that lose at most ``AUTO_BLEND_MAX_CLOSED_LOSS`` on the
        left-out samples (the others are not scored on held-out classes)
        stands for the anchored candidate when it beats
        the unblended network by ``AUTO_BLEND_MIN_GAIN`` or more. With two
        groups (ten classes or more) the candidate with the better mean
        score wins (the method's weight on a tie); with the three groups of
        five to nine classes, the free network must win on every group: it
        is fitted group by group, and the first group that prefers the
        anchored candidate decides (the others' free networks are not
        fitted). With fewer than ``AUTO_ANCHOR_MIN_CLASSES`` classes the
        method's weight is kept without a choice.

        Returns ``(weight, share, scores, share_scores)``: the chosen weight
        (0 is the free network), the share of the start to blend into the
        final network, each candidate's mean held-out score unblended (over
        the groups it was fitted on), and
        the anchored candidate's mean held-out score at each share; both
        ``None`` when no choice was made.
        """
        default = self._method_anchor_weight()
        classes = np.unique(y)
        if (
            default == 0
            or self.backbone is not None
            or X.ndim > 2
            or classes.shape[0] < AUTO_ANCHOR_MIN_CLASSES
        ):
            return default, 0.0, None, None
        groups = _anchor_validation_groups(classes, seed)
        held_out = [np.isin(y, held) for held in groups]
        scored = [
            _class_subsample(y, held, AUTO_SCORE_MAX_SAMPLES, seed) for held in held_out
        ]
        trained_on, closed_on = zip(
            *(
                _closed_split(
                    y, _class_subsample(y, ~held, AUTO_TRAIN_MAX_SAMPLES, seed), seed
                )
                for held in held_out
            )
        )
        parallel = DataParallel.current()

        def candidate_fit(weight, train):
            candidate = clone(self).set_params(
                anchor_weight=weight,
                max_iter=math.ceil(self.max_iter * AUTO_CANDIDATE_EPOCH_SHARE),
                early_stopping=False,
                verbose=0,
                warm_start=False,
                callbacks=None,
            )
            if weight == 0:
                candidate._candidate_start = FREE_START
            return candidate.fit(X[train], y[train])

        def agreed(values):
            # The same scores on every rank of a data-parallel fit: one choice.
            return values if parallel is None else parallel.agree(values)

        # The anchored candidate of each group, blended with its start at
        # every share (share 0: the candidate itself), scored unblended on the
        # held-out classes and at every share on the left-out samples of its
        # training classes (NaN: no class large enough to leave samples out).
        anchored_fits, held, closed = [], [], []
        for train, rows, seen in zip(trained_on, scored, closed_on):
            candidate = candidate_fit(default, train)
            blends = [
                candidate._blended(s) if s else candidate for s in AUTO_START_SHARES
            ]
            anchored_fits.append((blends, rows))
            held.append(candidate.score(X[rows], y[rows]))
            closed.append(
                [b.score(X[seen], y[seen]) if seen.size else np.nan for b in blends]
            )
        closed = np.mean(agreed(closed), axis=0)
        # The blends that lose too much on the training classes cannot be
        # chosen: only the others are scored on the held-out classes (a NaN
        # closed score allows no blend).
        allowed = [
            s
            for s, c in zip(AUTO_START_SHARES, closed)
            if s == 0.0 or closed[0] - c <= AUTO_BLEND_MAX_CLOSED_LOSS
        ]
        per_share = np.array(
            agreed(
                [
                    [
                        h
                        if s == 0.0
                        else blend.score(X[rows], y[rows])
                        if s in allowed
                        else np.nan
                        for s, blend in zip(AUTO_START_SHARES, blends)
                    ]
                    for (blends, rows), h in zip(anchored_fits, held)
                ]
            )
        )  # (groups, shares)
        share_scores = dict(zip(AUTO_START_SHARES, per_share.mean(axis=0).tolist()))
        share = max(
            allowed,
            key=lambda s: (share_scores[s], -s),  # the smallest share on a tie
        )
        if share_scores[share] - share_scores[0.0] < AUTO_BLEND_MIN_GAIN:
            share = 0.0
        anchored = per_share[:, AUTO_START_SHARES.index(share)]
        # The free network, group by group. With few classes (three groups)
        # it must win on every group: the first group that prefers the
        # anchored candidate decides, and the remaining groups are not fitted.
        free = []
        for train, rows, anchored_score in zip(trained_on, scored, anchored):
            candidate = candidate_fit(0.0, train)
            free.append(agreed([candidate.score(X[rows], y[rows])])[0])
            if len(groups) > 2 and not free[-1] > anchored_score:
                break
        scores = {0.0: float(np.mean(free)), default: share_scores[0.0]}
        if len(groups) > 2:
            # Few classes: each group's score is noisy, so the start is given
            # up only when no held-out group prefers it.
            learn_away = len(free) == len(groups) and bool(
                np.all(np.asarray(free) > anchored)
            )
        else:
            learn_away = bool(np.mean(free) > anchored.mean())
        if learn_away:
            return 0.0, 0.0, scores, share_scores
        return default, share, scores, share_scores

    def _blended(self, share):
        """A shallow copy whose network is blended with its start at ``share``.

        The copy shares everything but ``backbone_`` with this estimator,
        which is left unchanged; used to score blends without refitting.
        """
        other = copy.copy(self)
        other.backbone_ = _blend_backbone(copy.deepcopy(self.backbone_), share)
        return other

    def _build_backbone(self, n_features, X=None):
        """A fresh backbone; data-dependent initialisation (PCA) from ``X``.

        ``n_features`` is the number of features, or the shape of one sample
        (a tuple); with ``backbone=None`` its length chooses the default
        network (see ``input_type``). Of a lazy ``X`` the PCA start reads a
        bounded subsample (:func:`sklearn_dml.inputs.init_sample`).
        """
        shape = _as_shape(n_features)
        kind = self._input_kind(len(shape) + 1) if self.backbone is None else None
        if kind == "image":
            net = PatchPCANet(
                shape[0] if len(shape) == 3 else 1,
                self.n_components,
                hidden_layer_sizes=tuple(self.hidden_layer_sizes),
                normalize_embeddings=self.normalize_embeddings,
                anchor_weight=self.anchor_weight_ or 0.0,
            )
        elif kind == "sequence":
            net = SequenceConvNet(
                shape[1],
                self.n_components,
                normalize_embeddings=self.normalize_embeddings,
                anchor_weight=self.anchor_weight_ or 0.0,
            )
        elif self.backbone is None:
            net = ResidualMLP(
                shape[0],
                self.n_components,
                tuple(self.hidden_layer_sizes),
                init=getattr(self, "backbone_init_", None) or "pca",
                normalize_embeddings=self.normalize_embeddings,
                anchor_weight=self.anchor_weight_,
            )
        else:
            net = copy.deepcopy(self.backbone)
        initialize = getattr(net, "initialize", None)
        if X is not None and callable(initialize):
            sample = init_sample(X)
            if kind == "image":  # a lazy input's sample comes as flattened rows
                sample = sample.reshape(len(sample), *shape)
            initialize(sample)
        if self.backbone is not None and self.normalize_embeddings:
            net = torch.nn.Sequential(net, L2Normalize())
        return net

    def _probe_backbone(self, backbone, n_features):
        """Run two dummy samples through the backbone to report shape errors early.

        ``n_features`` is the number of features or the shape of one sample.
        """
        shape = _as_shape(n_features)
        was_training = backbone.training
        backbone.eval()
        try:
            with torch.no_grad():
                out = backbone(torch.zeros(2, *shape))
        except Exception as exc:  # the user's module: report any failure clearly
            batch = ", ".join(map(str, (2, *shape)))
            what = (
                f"Make its first layer accept {shape[0]} input features."
                if len(shape) == 1
                else "Make it accept batches shaped like X."
            )
            raise ValueError(
                f"The backbone could not embed a batch of shape ({batch}) "
                f"(samples shaped like X's): {type(exc).__name__}: {exc}. {what}"
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
        return engine.TrainingConfig(
            max_iter=self.max_iter,
            batch_size=self.batch_size,
            samples_per_class=self.samples_per_class,
            learning_rate_init=self.learning_rate_init,
            weight_decay=self.weight_decay,
            optimizer=self.optimizer,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            device=self.device,
            verbose=self.verbose,
            seed=engine.seed_from(self.random_state),
            loss_learning_rate=self._loss_learning_rate(),
            learning_rate_schedule=self.learning_rate_schedule,
            max_grad_norm=self.max_grad_norm,
            mixed_precision=self.mixed_precision,
            callbacks=(
                None
                if not self.callbacks
                else CallbackRunner(self.callbacks, self._training_view)
            ),
            augment=self.augment,
            name=type(self).__name__,
        )

    def _training_view(self, state, optimizer):
        """The estimator as trained so far, for callbacks (a shallow copy).

        Its fitted attributes describe ``state`` (the modules being
        trained, shared) and, with an ``optimizer``, its current state;
        ``callbacks`` is ``None`` on the view.
        """
        view = copy.copy(self)
        view.callbacks = None
        if optimizer is not None:
            state = copy.copy(state)
            state.optimizer_state = engine.optimizer_state_on_cpu(optimizer)
        view._store_state(state)
        # A checkpoint of the view resumes the random streams where they are.
        view._rng_state = state.rng_state
        return view

    def _new_state(self, n_features, config, X=None, y=None):
        """A new model; with ``y`` (``fit``), ``anchor_weight="auto"`` chooses."""
        start = getattr(self, "_candidate_start", "pca")
        self.start_share_, self.start_share_scores_ = 0.0, None
        if self.anchor_weight == "auto" and y is not None:
            (
                weight,
                self.start_share_,
                self.anchor_selection_,
                self.start_share_scores_,
            ) = self._select_anchor_weight(X, y, config.seed)
            if self.anchor_selection_ is not None and weight == 0:
                start = FREE_START
        else:
            weight, self.anchor_selection_ = self._anchor_weight(), None
        kind = None
        if self.backbone is None:  # the default network for this input
            kind = self._input_kind(len(_as_shape(n_features)) + 1)
        if kind == "sequence" and self.anchor_weight in (None, "auto"):
            weight = CONV_ANCHOR_WEIGHT
        self.anchor_weight_ = weight if self.backbone is None else None
        self.backbone_init_ = start if kind == "tabular" else None
        # Initialise under the fit's seed so the weights are reproducible.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            backbone = self._build_backbone(n_features, X)
            freeze_zero_rate_parameters(
                self._rates_module(backbone),
                self.backbone_learning_rates,
                type(self).__name__,
            )
            n_out = self._probe_backbone(backbone, n_features)
            loss, miner = self._build_loss(len(self.classes_), n_out)
            loss = self._compose_loss(loss, backbone, n_out)
            if isinstance(loss, CrossBatchMemoryLoss):
                _warn_if_memory_misses_positives(self, loss.memory_size)
            # Learnable loss parameters (proxies, centres, boundaries) must exist
            # before the engine builds the optimizer and moves the modules.
            if hasattr(loss, "configure"):
                loss.configure(len(self.classes_), n_out)
        return engine.TrainingState(backbone=backbone, loss=loss, miner=miner), n_out

    def _compose_loss(self, loss, backbone, n_out):
        """The metric loss with the options that reshape it.

        ``procsim`` weights it per sample (:class:`ProcSimLoss`), then
        ``nested_dims`` sums it over embedding prefixes
        (:class:`MatryoshkaLoss`); ``energy_confusion`` is checked against
        the backbone here, before any training.
        """
        if self.energy_confusion and not metric_layer_parameters(backbone, n_out):
            raise ValueError(
                "energy_confusion > 0 trains the backbone's output layer (a "
                f"torch.nn.Linear with {n_out} output features, the metric of "
                "ECAML), but the backbone has none. Give the backbone a final "
                "Linear layer or set energy_confusion=0."
            )
        weighting = self._procsim_weighting()
        if weighting is not None:
            check_procsim_base_loss(loss)
            loss = ProcSimLoss(loss, weighting)
        if self.nested_dims is not None:
            try:
                dims = check_nested_dims(self.nested_dims, n_out)
            except ValueError as exc:
                raise ValueError(
                    f"{exc} (the backbone returns embeddings of size {n_out})"
                ) from None
            loss = MatryoshkaLoss(loss, dims, normalize=bool(self.normalize_embeddings))
        memory = self.cross_batch_memory
        if memory is None:
            return loss
        size, warmup = (memory, 0) if isinstance(memory, Integral) else memory
        return CrossBatchMemoryLoss(loss, memory_size=size, warmup_steps=warmup)

    def _objective(self, state):
        """The terms minimised on every batch, in the order they are added.

        The metric loss (unless the method weights it 0), the method's own
        terms (a teacher's relations), mixup, the backbone's penalty (the
        anchoring of the default backbone) and energy confusion. Raises
        ``ValueError`` for an option the components cannot honour, before
        any training step.
        """
        terms = []
        weight = self._metric_weight()
        if weight != 0:
            terms.append(MetricLossTerm(weight))
        terms.extend(self._extra_terms(state))
        mixup = self._mixup_plan(state)
        if mixup is not None:
            terms.append(MixupTerm(mixup))
        penalty = _training_penalty(state.backbone)
        if penalty is not None:
            terms.append(PenaltyTerm(penalty, name="anchor"))
        if self.energy_confusion:
            terms.append(
                EnergyConfusionTerm(
                    float(self.energy_confusion), EnergyConfusionRegularizer()
                )
            )
        return tuple(terms)

    def _mixup_plan(self, state):
        """``mixup`` as a MixupPlan for the built components, or None."""
        metrix = resolve_mixup(self.mixup)
        if metrix is None:
            return None
        if not getattr(state.loss, "supports_soft_labels", False):
            raise ValueError(
                "mixup is supported by the estimators whose loss handles soft "
                f"labels ({', '.join(soft_label_losses())}); "
                f"{type(self).__name__} trains {type(state.loss).__name__}. Set "
                "mixup=None or use one of those losses."
            )
        mlp = state.backbone
        if isinstance(mlp, PatchPCANet):
            mlp = mlp.mlp  # mixes the first hidden layer of its residual MLP
        if metrix.on == "feature" and not (
            isinstance(mlp, ResidualMLP) and mlp.branch is not None
        ):
            raise ValueError(
                "mixup on='feature' mixes the first hidden layer of the default "
                "backbone (ResidualMLP with hidden_layer_sizes not empty); this "
                "estimator has a user backbone or no hidden layer. Use "
                "mixup='input' or mixup='embedding'."
            )
        return MixupPlan(
            metrix=metrix,
            n_classes=len(self.classes_),
            normalize=bool(self.normalize_embeddings),
        )

    def _state_from_fitted(self):
        nested = self.nested_dims
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
        self._check_resumable()
        backbone = copy.deepcopy(self.backbone_)
        freeze_zero_rate_parameters(
            self._rates_module(backbone),
            self.backbone_learning_rates,
            type(self).__name__,
        )
        pca_started = self._input_kind(len(self._sample_shape()) + 1) != "sequence"
        if self.backbone is None and self.anchor_weight != "auto" and pca_started:
            # A changed anchoring weight is honoured, like a loss parameter.
            self.anchor_weight_ = self._anchor_weight()
            for module in backbone.modules():
                if isinstance(module, ResidualMLP):
                    module.anchor_weight = self.anchor_weight_
        loss, miner = self._resumed_loss(backbone)
        return engine.TrainingState(
            backbone=backbone,
            loss=loss,
            miner=miner,
            optimizer_state=copy.deepcopy(self._optimizer_state),
            n_iter=self.n_iter_,
            history=copy.deepcopy(self.history_),
            best_validation_score=self.best_validation_score_,
            rng_state=getattr(self, "_rng_state", None),
            grad_scaler_state=copy.deepcopy(getattr(self, "_grad_scaler_state", None)),
        )

    # Parameters a model cannot change once trained (warm_start, partial_fit);
    # an embedder whose backbone depends on more extends the tuple.
    _architecture_params = (
        "input_type",
        "n_components",
        "hidden_layer_sizes",
        "normalize_embeddings",
    )

    def _architecture(self):
        """The parameters that fix the trained network, as they are now."""
        return {name: getattr(self, name) for name in self._architecture_params}

    def _check_resumable(self):
        """Raise ValueError where resuming training is not well defined.

        The architecture of the network, the user backbone and the kind of
        optimizer must be those of the trained model; learning rates, weight
        decay and loss hyper-parameters may change and are honoured.
        """
        trained = self._trained_with
        changed = [
            name
            for name, value in self._architecture().items()
            if value != trained["architecture"][name]
        ]
        if self.backbone is not trained["backbone"]:
            changed.append("backbone")
        if changed:
            raise ValueError(
                f"{', '.join(changed)} changed since the model was trained; the "
                "network cannot resume training with another architecture. Refit "
                "with warm_start=False (or restore the previous values)."
            )
        if self.optimizer != trained["optimizer"]:
            raise ValueError(
                f"optimizer={self.optimizer!r} differs from the "
                f"{trained['optimizer']!r} the model was trained with; its state "
                "cannot be carried over. Refit with warm_start=False."
            )

    def _resumed_loss(self, backbone):
        """The loss and miner of the current parameters, with the learned state.

        Built afresh, so that changed loss hyper-parameters (margins, scales)
        take effect, then loaded with the trained loss's parameters and
        buffers (proxies, centres); a change that alters their shapes is an
        error.
        """
        n_out, n_classes = self._n_features_out, len(self.classes_)
        with torch.random.fork_rng(devices=[]):
            loss, miner = self._build_loss(n_classes, n_out)
            loss = self._compose_loss(loss, backbone, n_out)
            if hasattr(loss, "configure"):
                loss.configure(n_classes, n_out)
        try:
            loss.load_state_dict(self.loss_.state_dict())
        except RuntimeError as exc:
            raise ValueError(
                "The loss built from the current parameters cannot take the "
                f"trained loss's learned parameters ({str(exc).splitlines()[0]}); "
                "a parameter that shapes them changed. Refit with warm_start=False."
            ) from None
        return loss, miner

    def _store_state(self, state):
        self._trained_with = {
            "architecture": self._architecture(),
            "backbone": self.backbone,
            "optimizer": self.optimizer,
        }
        self.backbone_ = state.backbone
        self.loss_ = state.loss
        self.miner_ = state.miner
        self._optimizer_state = state.optimizer_state
        self._grad_scaler_state = state.grad_scaler_state
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
        self._rng_state = None
        # A calibrated threshold belongs to the previous embedding.
        self.__dict__.pop("threshold_", None)

    # ---------------------------------------------------------------- fitting
    def _run_engine(self, X, codes, state, config, n_epochs, targets=None):
        validation = None
        if self.early_stopping:
            train, val = validation_split(
                codes, self.validation_fraction, self.validation_split, config.seed
            )
            validation = (X[val], codes[val])
            X, codes = X[train], codes[train]
            targets = None if targets is None else targets[train]
        return engine.fit(
            state,
            config,
            X,
            codes,
            n_epochs=n_epochs,
            validation=validation,
            score_func=map_at_r_score,
            targets=targets,
        )

    def _train(self, X, y, codes, state, config, n_epochs, first, validate):
        """Build the objective, compute targets, run the engine, store the result."""
        config.objective = self._objective(state)
        config.backbone_learning_rates = self._backbone_rates(state.backbone)
        targets = self._training_targets(X, y, config, first=first)
        if validate:
            state = self._run_engine(X, codes, state, config, n_epochs, targets)
        else:
            state = engine.fit(
                state, config, X, codes, n_epochs=n_epochs, targets=targets
            )
        self._store_state(state)
        if state.interrupted:
            warnings.warn(
                f"{type(self).__name__} training was interrupted (KeyboardInterrupt) "
                f"after {state.n_iter} epochs in all; the model trained so far is "
                "kept and every fitted attribute describes it.",
                UserWarning,
                stacklevel=3,
            )
        return self

    def fit(self, X, y):
        """Train the embedding on labelled samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Training features (dense; convert sparse input with ``.toarray()``),
            or image arrays ``(n_samples, C, H, W)`` and sequences
            ``(n_samples, T, d)`` (see ``input_type``).
        y : array-like of shape (n_samples,)
            Class labels (integers or strings), at least two classes.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with self._transaction():
            return self._fit(X, y)

    @contextlib.contextmanager
    def _transaction(self):
        """Undo every change to the estimator if the block raises.

        ``fit`` and ``partial_fit`` train copies, so a failed or cancelled
        call (an error, a KeyboardInterrupt before training starts) leaves a
        fitted estimator exactly as it was. A KeyboardInterrupt *during*
        training is not an error: the engine stops, and the model trained so
        far is stored as a whole.
        """
        before = dict(self.__dict__)
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit(self, X, y):
        self._validate_params()
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
            state, self._n_features_out = self._new_state(_sample_size(X), config, X, y)
        self._train(
            X, y, codes, state, config, config.max_iter, first=not warm, validate=True
        )
        if not warm and self.start_share_:
            _blend_backbone(self.backbone_, self.start_share_)
        return self

    def partial_fit(self, X, y, classes=None):
        """Run one epoch on ``(X, y)``, initialising the model on the first call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Training features, or images and sequences as in :meth:`fit`.
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
        with self._transaction():
            return self._partial_fit(X, y, classes)

    def _partial_fit(self, X, y, classes):
        first = not hasattr(self, "backbone_")
        self._validate_params()
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
            state, self._n_features_out = self._new_state(_sample_size(X), config, X)
        else:
            state = self._state_from_fitted()
        return self._train(X, y, codes, state, config, 1, first=first, validate=False)

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
        """Embeddings of an already validated 2-D array (see :func:`embed_checked`)."""
        return embed_checked(self, X)

    def _frozen_embed(self):
        """A picklable function embedding a 2-D array with a copy of the model (CPU)."""
        check_is_fitted(self, "backbone_")
        return functools.partial(engine.embed, copy.deepcopy(self.backbone_))

    def transform(self, X):
        """Embed samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Samples to embed, each of the shape seen in ``fit``
            (``input_shape_``).

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The embeddings, of dtype ``output_dtype`` (float32 by default).
            The input is read in place when it is a C-contiguous float32
            array (never modified), otherwise converted batch by batch.
        """
        check_is_fitted(self, "backbone_")
        if is_lazy(X):
            check_lazy_features(self, X, reset=False)
        else:
            X = self._check_inputs(X, reset=False)
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
        validate_params(
            {"n_dims": [Interval(Integral, 1, n_out, closed="both")]},
            {"n_dims": n_dims},
            f"{type(self).__name__}.transform_nested (the embedding size is {n_out})",
        )
        prefix = torch.from_numpy(self.transform(X)[:, : int(n_dims)])
        if self.normalize_embeddings:
            prefix = torch.nn.functional.normalize(prefix, p=2.0, dim=1)
        return prefix.numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = (
            ["float32"] if self.output_dtype == "float32" else []
        )
        return tags


def _sample_shape(X):
    """The shape of one sample of ``X`` (array or lazy input), or None when it has none."""
    if is_lazy(X):
        return tuple(int(s) for s in X.sample_shape)
    try:
        shape = np.shape(X)
    except Exception:  # ragged or odd input: validation reports it
        return None
    return tuple(int(s) for s in shape[1:]) if len(shape) >= 2 else None


def _as_shape(n_features):
    """A sample shape from a feature count or a shape."""
    if isinstance(n_features, (tuple, list, torch.Size)):
        return tuple(int(s) for s in n_features)
    return (int(n_features),)


def _are_strings(labels):
    """Whether the labels are strings; ValueError when strings and others mix.

    Decided from the dtype, except for object arrays, whose items are read.
    """
    if labels.dtype.kind in "US":
        return True
    if labels.dtype.kind != "O":
        return False
    kinds = {type(label) for label in labels.tolist()}
    is_str = {issubclass(k, str) for k in kinds}
    if len(is_str) > 1:
        raise ValueError(
            "y mixes string labels with labels of other types "
            f"({sorted(k.__name__ for k in kinds)}); give every label the same "
            "type, e.g. y.astype(str)."
        )
    return is_str == {True}


def embed_checked(estimator, X):
    """Embeddings of a validated 2-D array by a fitted estimator's ``backbone_``.

    Raises ValueError, never returns NaN: inputs beyond the float32 range
    are refused, and non-finite embeddings (an overflow inside the network)
    are reported with the rows concerned. The estimator's ``device`` is
    checked against its constraint first, since it may have been set after
    ``fit``.
    """
    check_is_fitted(estimator, "backbone_")
    if not is_lazy(X):
        check_float32_range(X)
    validate_params(
        {"device": estimator._parameter_constraints["device"]},
        {"device": estimator.device},
        type(estimator).__name__,
    )
    output_dtype = getattr(estimator, "output_dtype", "float32")
    Z = engine.embed(
        estimator.backbone_,
        X,
        engine.inference_device(estimator.device),
        dtype=np.dtype(output_dtype),
    )
    # A finite float64 sum proves every entry finite in one pass, without a
    # mask the size of Z; the rows are found only when it is not.
    if Z.size and np.isfinite(Z.sum(dtype=np.float64)):
        return Z
    bad = ~np.isfinite(Z).all(axis=1)
    if bad.any():
        where = "float32 arithmetic inside the network"
        if output_dtype != "float32":
            where += f" or the {output_dtype} range of output_dtype"
        raise ValueError(
            f"The embeddings of {int(bad.sum())} of {len(Z)} rows are not finite "
            f"(first rows: {np.flatnonzero(bad)[:5].tolist()}): their values "
            f"overflow {where}. Scale the features "
            "(e.g. StandardScaler) as for training."
        )
    return Z


def _sample_size(X):
    """What ``_build_backbone`` takes: the feature count (flat samples) or the sample shape."""
    shape = _sample_shape(X)
    return shape[0] if len(shape) == 1 else shape


def _warn_if_memory_misses_positives(estimator, memory_size):
    """Warn when a cross-batch memory is shorter than one round of the sampler.

    The class-balanced sampler visits every class once per round
    (``n_classes x samples_per_class`` samples); a shorter memory almost
    never holds samples of the classes of the current batch, so it adds
    negatives only. The memory that helped in
    ``benchmarks/results/compare_cross_batch_memory.md`` holds more than
    two rounds.
    """
    n_round = len(estimator.classes_) * int(estimator.samples_per_class)
    if memory_size < n_round:
        warnings.warn(
            f"cross_batch_memory holds {memory_size} embeddings, fewer than one "
            f"round of the class-balanced batches ({len(estimator.classes_)} "
            f"classes x {estimator.samples_per_class} samples = {n_round}): the "
            "memory will rarely hold samples of a batch's own classes, only "
            "negatives. Use a memory of two rounds or more (the setting that "
            "helped in the benchmarks), or none.",
            UserWarning,
            stacklevel=4,
        )


def check_float32_range(X):
    """Raise ValueError when ``X`` holds values float32 cannot represent."""
    if X.dtype == np.float64 and X.size:
        # max and -min: two passes, no temporary the size of X.
        top = max(float(X.max()), -float(X.min()))
        limit = float(np.finfo(np.float32).max)
        if top > limit:
            raise ValueError(
                f"X holds values up to {top:.3g}, beyond the float32 range "
                f"(+-{limit:.3g}) that the networks compute in; "
                "scale the features (e.g. StandardScaler)."
            )


def _training_penalty(backbone):
    """The backbone's ``training_penalty(x, embeddings, y)``, or None.

    Looked up on the backbone, or on the first module of the ``Sequential``
    that appends L2 normalisation to a user backbone.
    """
    net = backbone
    if isinstance(net, torch.nn.Sequential) and len(net):
        if not all(isinstance(m, L2Normalize) for m in net[1:]):
            return None
        net = net[0]
    penalty = getattr(net, "training_penalty", None)
    return penalty if callable(penalty) else None


def _blend_backbone(backbone, share):
    """Blend every :class:`ResidualMLP` of ``backbone`` with its start, in place."""
    for module in backbone.modules():
        if isinstance(module, ResidualMLP):
            module.blend_with_start(share)
    return backbone


def _closed_split(y, rows, seed):
    """``rows`` split into those a candidate of ``anchor_weight="auto"`` trains
    on and those of the same classes it is scored on (closed set).

    About ``AUTO_CLOSED_FRACTION`` of each class's rows are left out, keeping
    at least two of the class to train on (none left out of a class with
    fewer than four rows), then at most about
    ``AUTO_CLOSED_SCORE_MAX_SAMPLES`` of those, class-stratified.
    """
    rng = np.random.RandomState((seed + 2) % 2**32)
    train, closed = [], []
    for label in np.unique(y[rows]):
        members = rng.permutation(rows[y[rows] == label])
        n_out = 0
        if members.shape[0] >= 4:
            n_out = min(
                members.shape[0] - 2,
                max(2, int(round(AUTO_CLOSED_FRACTION * members.shape[0]))),
            )
        closed.append(members[:n_out])
        train.append(members[n_out:])
    train, closed = np.sort(np.concatenate(train)), np.sort(np.concatenate(closed))
    left_out = np.zeros(y.shape[0], dtype=bool)
    left_out[closed] = True
    return train, _class_subsample(y, left_out, AUTO_CLOSED_SCORE_MAX_SAMPLES, seed)


def _class_subsample(y, mask, max_samples, seed):
    """Indices of the samples of ``mask`` that a candidate of
    ``anchor_weight="auto"`` is scored on (the held-out ones) or trained on
    (the others).

    All of them when they are at most ``max_samples``; otherwise a
    class-stratified random subsample of about ``max_samples``: each class
    keeps its share, and at least two samples (so that each keeps a
    neighbour of its own class to retrieve, or a positive to train on).
    """
    rows = np.flatnonzero(mask)
    if rows.shape[0] <= max_samples:
        return rows
    rng = np.random.RandomState((seed + 1) % 2**32)
    fraction = max_samples / rows.shape[0]
    kept = []
    for label in np.unique(y[rows]):
        members = rows[y[rows] == label]
        n_keep = min(members.shape[0], max(2, int(round(fraction * members.shape[0]))))
        kept.append(rng.choice(members, n_keep, replace=False))
    return np.sort(np.concatenate(kept))


def _anchor_validation_groups(classes, seed):
    """The groups of classes that ``anchor_weight="auto"`` holds out in turn.

    With ``AUTO_HALVES_MIN_CLASSES`` classes or more: the two halves of a
    permutation of ``classes`` drawn with ``seed``. With fewer, a half holds
    too few classes to score transfer and too few to train on: instead,
    ``AUTO_FEW_CLASS_SPLITS`` windows of about 40 % of the permuted classes
    (at least two), starting at evenly spaced positions and wrapping around.
    With five classes: three pairs, each candidate trained on the other three.
    """
    order = np.random.RandomState(seed % 2**32).permutation(classes)
    n = order.shape[0]
    if n >= AUTO_HALVES_MIN_CLASSES:
        return [order[: n // 2], order[n // 2 :]]
    size = max(2, int(round(0.4 * n)))
    starts = [
        int(round(i * n / AUTO_FEW_CLASS_SPLITS)) for i in range(AUTO_FEW_CLASS_SPLITS)
    ]
    return [order[np.arange(start, start + size) % n] for start in starts]
