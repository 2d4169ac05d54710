"""The parameters every embedder shares, declared once.

Each shared parameter is a :class:`SharedParameter`: its default, its type
as documented, its constraints (``_param_validation``) and its text. The
numpydoc blocks ``{backbone_params}`` and ``{engine_params}`` (and the
``{fitted_attributes}`` block they share) of the
embedders' docstrings are rendered from these tables, so the documented
default is the real one; :func:`generate_init` writes an embedder's
``__init__`` from its own parameters and these.
"""

import math
import textwrap
from numbers import Integral, Real
from typing import NamedTuple

import torch

from ._docstrings import register_doc
from ._param_validation import Interval, StrOptions, TupleOf
from .losses import ProcSimWeighting
from .mixup import MIXUP_PLACES, Metrix
from .training.validation import VALIDATION_SPLITS

__all__ = ["SHARED_PARAMETERS", "TRAINING_OPTIONS", "generate_init"]

#: The optimizers of the ``optimizer`` parameter.
OPTIMIZERS = ("adam", "adamw", "sgd")


class DeviceConstraint:
    """``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"`` (lower case)."""

    def is_satisfied_by(self, value):
        if not isinstance(value, str):
            return False
        if value in ("auto", "cpu", "cuda"):
            return True
        kind, _, index = value.partition(":")
        return kind == "cuda" and index.isdigit()

    def __str__(self):
        return "one of 'auto', 'cpu', 'cuda', 'cuda:<index>'"


class LearningRatesConstraint:
    """A dict mapping parameter-name prefixes (str) to learning rates >= 0."""

    def is_satisfied_by(self, value):
        return isinstance(value, dict) and all(
            isinstance(k, str)
            and isinstance(v, Real)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and v >= 0
            for k, v in value.items()
        )

    def __str__(self):
        return "a dict mapping parameter-name prefixes (str) to learning rates >= 0"


#: The kinds of input of the ``input_type`` parameter.
INPUT_TYPES = ("auto", "tabular", "sequence", "image")


class SharedParameter(NamedTuple):
    """A shared parameter: default, type as documented, constraints, text."""

    default: object
    type_text: str
    constraints: list
    doc: str


def _doc_default(value):
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _render_doc(params):
    """A numpydoc Parameters block for the shared parameters ``params``."""
    entries = []
    for name, p in params.items():
        head = f"{name} : {p.type_text}, default={_doc_default(p.default)}"
        entries.append(
            head + "\n" + textwrap.indent(textwrap.dedent(p.doc).strip("\n"), "    ")
        )
    return "\n\n".join(entries)


# The parameters of the backbone and of the training options, in signature order.
_BACKBONE_PARAMETERS = {
    "n_components": SharedParameter(
        64,
        "int",
        [Interval(Integral, 1, None, closed="left")],
        """
            Dimension of the embedding produced by the default backbone. Ignored
            when ``backbone`` is given (its output size is the embedding size).
            """,
    ),
    "hidden_layer_sizes": SharedParameter(
        (256,),
        "tuple of int",
        [TupleOf(Interval(Integral, 1, None, closed="left"))],
        """
            Widths of the hidden layers of the residual branch of the default
            backbone (:class:`~sklearn_dml.backbones.ResidualMLP`, also inside
            the image default :class:`~sklearn_dml.backbones.PatchPCANet`). An
            empty tuple gives a linear embedding (of the patch features, for
            images).
            """,
    ),
    "backbone": SharedParameter(
        None,
        "torch.nn.Module",
        [None, torch.nn.Module],
        """
            A module mapping float32 batches shaped like ``X`` (``(batch,
            n_features)``, or ``(batch, *input_shape_)`` for images and
            sequences) to ``(batch, n_out)`` embeddings. ``fit`` trains a deep copy of it; the
            object passed in is never modified. ``None`` builds a
            :class:`~sklearn_dml.backbones.ResidualMLP` from ``hidden_layer_sizes``
            and ``n_components`` whose linear path starts at the PCA projection of
            the training data, and whose anchoring penalty keeps the embedding's
            pairwise similarities close to that start (the default that protects
            classes not seen in training; see :ref:`unseen_classes`). The
            embedders trained with a softmax over class weights or prototypes
            (normalized softmax, ProxyNCA, SoftTriple, ArcFace, CosFace,
            sub-center ArcFace, equiangular basis, Proto-Triplet, ICNN) build
            it without the anchor, which costs them much closed-set quality for
            little unseen-class gain (see :ref:`unseen_classes`). A module
            with an ``initialize(X)`` method gets it called on the training data
            before training; one with a ``training_penalty(x, embeddings, y)``
            method has that term added to the loss of each batch.
            """,
    ),
    "input_type": SharedParameter(
        "auto",
        '{"auto", "tabular", "sequence", "image"}',
        [StrOptions(set(INPUT_TYPES))],
        """
            What the samples of ``X`` are, which chooses the default backbone.
            ``"auto"`` reads it from the dimensions of ``X``: 2-D ``(n,
            n_features)`` is tabular (a
            :class:`~sklearn_dml.backbones.ResidualMLP`), 3-D ``(n, T, d)`` a
            sequence (a :class:`~sklearn_dml.backbones.SequenceConvNet`),
            4-D ``(n, C, H, W)`` images (a
            :class:`~sklearn_dml.backbones.PatchPCANet`). ``"image"`` reads
            a 3-D ``X`` as single-channel images ``(n, H, W)``. Any other
            combination of kind and dimensions raises ``ValueError`` in
            ``fit``. With a user ``backbone`` it only checks the dimensions.
            See :ref:`deep_inputs`.
            """,
    ),
    "backbone_learning_rates": SharedParameter(
        None,
        "dict or None",
        [None, LearningRatesConstraint()],
        """
            Learning rates of parts of the backbone, as a dict mapping prefixes
            of its parameter names (``backbone.named_parameters()``; the
            default convolutional backbones have a ``"body"`` and a
            ``"head"``) to rates: each parameter takes the rate of the longest
            prefix naming it (``""`` names all), the others
            ``learning_rate_init``. ``0`` freezes those parameters (they keep
            their values). E.g. ``{"": 0.0, "fc": 1e-3}`` trains only the
            ``fc`` layer of a pretrained network, ``{"body": 1e-5}`` fine-tunes
            its body slowly. A prefix naming no parameter raises ``ValueError``.
            ``None`` trains the whole backbone at ``learning_rate_init``.
            """,
    ),
    "augment": SharedParameter(
        None,
        "callable or None",
        [None, "callable"],
        """
            Augmentation of the training batches: a callable mapping a batch
            tensor (on the training device, shaped like ``X``'s rows) to a
            tensor with as many rows, e.g. the classes of
            :mod:`sklearn_dml.augmentation` or torchvision v2 transforms. It
            runs on every training batch only, never in ``transform``,
            ``score`` or the early-stopping validation, and draws from the
            torch generator seeded by ``random_state``. ``None`` trains on
            the data as given.
            """,
    ),
    "anchor_weight": SharedParameter(
        "auto",
        'float, "auto" or None',
        [None, StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        """
            Weight of the default backbone's anchoring penalty, which keeps the
            pairwise similarities of the embedding close to those of its PCA
            start (:class:`~sklearn_dml.backbones.ResidualMLP`). ``"auto"``
            chooses on the training data between the method's own weight and
            a free network (no anchoring, trained from a random start instead
            of the PCA start: ``backbone_init_`` is then ``"random"``), by
            class-disjoint validation: each candidate is
            trained on some of the classes and scored (MAP@R) on the others,
            and the one with the better mean (the method's weight on a tie)
            is refitted on all the data. With ten classes or more the groups
            are the two halves of the classes, both ways round (a default fit
            then costs three to four fits); with five to nine, three
            overlapping groups of about 40 % of the classes, each candidate
            trained on the rest (three to five fits), and the free network
            must win on every group (it is fitted group by group, and the
            first group that prefers the method's weight ends the choice). A
            candidate is trained on at most about
            5,000 samples of its training classes and scored on at most about
            2,500 held-out samples (class-stratified subsamples, the same for
            both candidates), so that the choice costs at most about four fits
            on 5,000 samples on large data. The method's weight is also
            scored blended with its PCA start (shares 0.1 to 0.5 of the
            start, no extra training); the best blend that loses at most 0.01
            MAP@R on a fifth of the training classes' samples, which both
            candidates leave out of their training (only those blends are
            scored on the held-out classes), stands for it when it
            gains 0.005 or more on the held-out classes, and is then applied
            to the final network (``start_share_``). With fewer
            than five classes, and in ``partial_fit``, it keeps the method's
            weight without a choice (see :ref:`unseen_classes` for what to do
            with few classes). ``None`` always uses the method's weight: 10 for
            most pair- and tuple-based losses and Proxy-Anchor, 3 for N-pairs
            and mean-field contrastive, 0 for the embedders trained with a
            softmax over class weights or prototypes, for distillation and
            with ``nested_dims``; a number
            sets it. ``anchor_weight_`` holds the weight used. Ignored with a
            user ``backbone``. For images (the default
            :class:`~sklearn_dml.backbones.PatchPCANet`, a ``ResidualMLP``
            on patch features) ``"auto"`` keeps the method's weight without a
            choice on data; for sequences (the convolutional default)
            ``None`` and ``"auto"`` mean 0; a number sets the weight of
            either anchor (see :ref:`deep_inputs`).
            """,
    ),
    "normalize_embeddings": SharedParameter(
        True,
        "bool",
        ["boolean"],
        """
            L2-normalise the embeddings (unit hypersphere), also on top of a
            user ``backbone``.
            """,
    ),
    "nested_dims": SharedParameter(
        None,
        "tuple of int or None",
        [None, TupleOf(Interval(Integral, 1, None, closed="left"), min_length=1)],
        """
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
            """,
    ),
    "mixup": SharedParameter(
        None,
        'None, {"embedding", "input", "feature"} or Metrix',
        [None, StrOptions(set(MIXUP_PLACES)), Metrix],
        """
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
            """,
    ),
    "energy_confusion": SharedParameter(
        0.0,
        "float",
        [Interval(Real, 0, None, closed="left")],
        """
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
            """,
    ),
    "procsim": SharedParameter(
        None,
        "None, True or ProcSimWeighting",
        [None, "boolean", ProcSimWeighting],
        """
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
    ),
    "cross_batch_memory": SharedParameter(
        None,
        "int, (int, int) or None",
        [
            None,
            Interval(Integral, 1, None, closed="left"),
            TupleOf(Interval(Integral, 0, None, closed="left"), min_length=2),
        ],
        """
            Cross-batch memory (XBM, Wang et al., CVPR 2020): a queue of the
            embeddings and labels of the last ``memory_size`` training samples
            (detached) serves every batch as extra positives and negatives of
            the pair or triplet loss (and of its miner), which helps most with
            many classes and small batches. An int is the ``memory_size``; a
            pair ``(memory_size, warmup_steps)`` also waits ``warmup_steps``
            batches before using the memory (it fills meanwhile). Wraps the
            loss in :class:`~sklearn_dml.losses.CrossBatchMemoryLoss`; for the
            losses on pairs or triplets only (a loss with learned proxies or
            class weights raises ``ValueError``). ``None`` disables it. What
            helped in the benchmark (contrastive, or multi-similarity at
            ``alpha=2, beta=50, base=0.5, epsilon=0.1``): a memory of two
            rounds of the class-balanced sampler or more (``2 * n_classes *
            samples_per_class``) and a warm-up of about one epoch; see
            :ref:`training_controls`.
            """,
    ),
}

# The parameters of the training engine, in signature order.
_ENGINE_PARAMETERS = {
    "max_iter": SharedParameter(
        50,
        "int",
        [Interval(Integral, 1, None, closed="left")],
        """
            Maximum number of epochs. One epoch draws about ``n_samples`` samples
            in class-balanced batches.
            """,
    ),
    "batch_size": SharedParameter(
        128,
        "int",
        [Interval(Integral, 2, None, closed="left")],
        """
            Number of samples per training batch.
            """,
    ),
    "samples_per_class": SharedParameter(
        4,
        "int",
        [Interval(Integral, 1, None, closed="left")],
        """
            Minimum number of samples of each class drawn into a batch (the "m" of
            m-per-class sampling). With few classes, each class gets
            ``batch_size // n_classes`` samples instead, so batches stay full.
            """,
    ),
    "learning_rate_init": SharedParameter(
        1e-3,
        "float",
        [Interval(Real, 0, None, closed="neither")],
        """
            Learning rate of the optimizer for the backbone.
            """,
    ),
    "weight_decay": SharedParameter(
        0.0,
        "float",
        [Interval(Real, 0, None, closed="left")],
        """
            L2 penalty (``AdamW``-style decoupled for ``optimizer="adamw"``).
            """,
    ),
    "optimizer": SharedParameter(
        "adam",
        '{"adam", "adamw", "sgd"}',
        [StrOptions(set(OPTIMIZERS))],
        """
            Optimizer for the backbone and any learnable loss parameters.
            """,
    ),
    "learning_rate_schedule": SharedParameter(
        "constant",
        '{"constant", "warmup_cosine"} or callable',
        [StrOptions({"constant", "warmup_cosine"}), "callable"],
        """
            How the learning rates change during one call to ``fit`` or
            ``partial_fit``, step by step (one step per batch). ``"constant"``
            keeps them; ``"warmup_cosine"`` raises them linearly from 0 over
            the first 10 % of the steps (Goyal et al., 2017) and then lowers
            them along a half cosine to 0 at the last step (Loshchilov and
            Hutter, 2017). A callable ``schedule(optimizer, n_steps)``
            returns any torch learning-rate scheduler for the run's
            ``n_steps`` steps (e.g. ``lambda opt, n:
            torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2,
            total_steps=n)``); its ``step()`` is called after every batch.
            Early stopping may end the run before the schedule does. The
            learning rate at the end of each epoch is in ``history_``.
            """,
    ),
    "max_grad_norm": SharedParameter(
        None,
        "float or None",
        [None, Interval(Real, 0, None, closed="neither")],
        """
            Clip the gradient of all trained parameters (backbone and loss)
            to this total L2 norm before each step
            (:func:`torch.nn.utils.clip_grad_norm_`); ``None`` does not clip.
            With Adam, whose steps are normalised, clipping matters mostly
            against rare huge gradients; with SGD it bounds every step.
            """,
    ),
    "mixed_precision": SharedParameter(
        None,
        '{"float16", "bfloat16"} or None',
        [None, StrOptions({"float16", "bfloat16"})],
        """
            Train on CUDA in mixed precision: the forward pass and the loss
            run under ``torch.autocast`` in this type (the weights and the
            optimizer stay float32); ``"float16"`` also scales the loss
            (``torch.amp.GradScaler``) so that small gradients do not
            underflow, ``"bfloat16"`` needs no scaling (Ampere GPUs and
            later). On the CPU it has no effect: training runs in float32,
            with a ``UserWarning``. Inference (``transform``) runs in float32.
            """,
    ),
    "callbacks": SharedParameter(
        None,
        "list of objects or None",
        [None, list],
        """
            Objects called during ``fit`` and ``partial_fit`` (in the spirit
            of skorch's callbacks): each may define
            ``on_train_begin(model)``, ``on_epoch_end(model, record)`` and
            ``on_train_end(model)``, where ``model`` is a view of the
            estimator as trained so far (``transform``, ``score`` and
            :func:`~sklearn_dml.persistence.save` work on it) and ``record``
            the epoch's entry of ``history_``. ``on_epoch_end`` returning
            ``True`` stops training. :class:`~sklearn_dml.callbacks.Checkpoint`
            saves the model every few epochs. Callbacks are not saved by
            :func:`~sklearn_dml.persistence.save`.
            """,
    ),
    "early_stopping": SharedParameter(
        False,
        "bool",
        ["boolean"],
        """
            Hold out part of the training data (see ``validation_split``) and
            stop when its leave-one-out MAP@R has not improved by ``tol`` for
            ``n_iter_no_change`` epochs; the best weights are restored, those
            before the first epoch included (training that only lowers the
            validation score gives the starting model back).
            """,
    ),
    "validation_fraction": SharedParameter(
        0.1,
        "float",
        [Interval(Real, 0, 1, closed="neither")],
        """
            Share of the training samples (``validation_split="stratified"``) or
            of the classes (``"class_disjoint"``) held out when
            ``early_stopping=True``.
            """,
    ),
    "validation_split": SharedParameter(
        "stratified",
        '{"stratified", "class_disjoint"}',
        [StrOptions(set(VALIDATION_SPLITS))],
        """
            How the early-stopping hold-out is drawn. ``"stratified"`` holds out
            samples of every class (closed-set retrieval). ``"class_disjoint"``
            holds out ``validation_fraction`` of the classes (rounded, at least 2,
            leaving at least 2 to train on; needs 4 classes or more) and trains
            on the others only, so early stopping tracks retrieval of unseen
            classes, the open-set goal of most metric learning.
            """,
    ),
    "n_iter_no_change": SharedParameter(
        10,
        "int",
        [Interval(Integral, 1, None, closed="left")],
        """
            Epochs without improvement tolerated before stopping early.
            """,
    ),
    "tol": SharedParameter(
        1e-4,
        "float",
        [Interval(Real, 0, None, closed="left")],
        """
            Minimum improvement of the validation MAP@R that counts.
            """,
    ),
    "warm_start": SharedParameter(
        False,
        "bool",
        ["boolean"],
        """
            Resume training from the model of a previous ``fit`` (its weights,
            learned loss parameters and optimizer state) instead of starting
            afresh. Changed learning rates, weight decay and loss
            hyper-parameters are honoured; a changed architecture
            (``n_components``, ``hidden_layer_sizes``, ``normalize_embeddings``,
            ``backbone``) or ``optimizer`` raises a ``ValueError``, as do labels
            of another type than ``classes_``. Training runs on a copy: a fit
            that fails leaves the previous model as it was.
            """,
    ),
    "device": SharedParameter(
        "auto",
        '{"auto", "cpu", "cuda"} or str',
        [DeviceConstraint(), torch.device],
        """
            Torch device for training and inference: ``"auto"`` (CUDA when
            available), ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"``, checked
            before anything changes. The fitted model is kept on the CPU, so a
            fitted estimator pickles, loads and embeds anywhere: on a machine
            without CUDA a model fitted with ``"cuda"`` embeds on the CPU.
            """,
    ),
    "output_dtype": SharedParameter(
        "float32",
        '{"float32", "float16"}',
        [StrOptions({"float32", "float16"})],
        """
            Dtype of the arrays returned by ``transform``. The network always
            computes in float32; ``"float16"`` rounds each batch's output as
            it is written, halving the memory of the embeddings (values
            beyond +-65504 then overflow, and ``transform`` says so).
            NumPy has no bfloat16: for it, convert a float32 result with
            ``torch.from_numpy(X_new).bfloat16()``.
            """,
    ),
    "verbose": SharedParameter(
        0,
        "int",
        ["boolean", Interval(Integral, 0, None, closed="left")],
        """
            Progress of training: ``0`` silent, ``1`` one live line per fit
            (updated each epoch), ``2`` a line per epoch. A line shows the epoch
            and steps, the mean objective and each of its terms (the metric
            loss, the anchoring penalty, ...), the validation MAP@R with early
            stopping, the time spent and an estimate of the time left.
            ``history_`` records the same per epoch.
            """,
    ),
    "random_state": SharedParameter(
        None,
        "int, RandomState instance or None",
        ["random_state"],
        """
            Seeds weight initialisation, batch sampling and dropout through a
            forked torch generator; the global torch random state is left as it
            was. Same value, same data and the same number of torch threads
            (``torch.get_num_threads()``): identical embeddings on the CPU. Another
            thread count sums in another order, which changes the last bits and,
            through training, the embeddings.
            """,
    ),
}

#: Every shared parameter, in signature order (after an embedder's own).
SHARED_PARAMETERS = {**_BACKBONE_PARAMETERS, **_ENGINE_PARAMETERS}

#: The training options that change the objective, off by default.
TRAINING_OPTIONS = (
    "nested_dims",
    "mixup",
    "energy_confusion",
    "procsim",
    "cross_batch_memory",
)

register_doc("backbone_params", _render_doc(_BACKBONE_PARAMETERS))
register_doc("engine_params", _render_doc(_ENGINE_PARAMETERS))
register_doc(
    "fitted_attributes",
    """
    backbone_ : torch.nn.Module
        The trained embedding network (on the CPU, in evaluation mode).

    anchor_weight_ : float or None
        The anchoring weight of the default backbone (``None`` with a user
        ``backbone``); with ``anchor_weight="auto"``, the one chosen.

    anchor_selection_ : dict or None
        With ``anchor_weight="auto"``: each candidate weight mapped to its mean
        MAP@R on held-out training classes (weight 0 is the free network from
        a random start), each scored as trained (unblended); ``None`` when
        nothing was chosen. With five to nine classes the free network's
        mean is over the groups it was fitted on: the first group that
        prefers the anchored candidate ends its validation.

    start_share_ : float
        The share of the starting map (the PCA projection) blended into the
        trained network by ``anchor_weight="auto"``: the network's output
        before normalisation is ``1 - start_share_`` times the trained one
        plus ``start_share_`` times the start's (see
        :meth:`~sklearn_dml.backbones.ResidualMLP.blend_with_start`). 0 when
        no blend was chosen, always 0 for the other settings.

    start_share_scores_ : dict or None
        With ``anchor_weight="auto"``: each share tried mapped to the mean
        held-out MAP@R of the anchored candidate blended at that share (NaN
        for the shares that lose too much on the training classes, which
        are not scored on held-out classes); ``None`` when nothing was
        chosen.

    backbone_init_ : str or None
        The start of the default tabular backbone
        (:class:`~sklearn_dml.backbones.ResidualMLP`'s ``init``): ``"pca"``,
        or ``"random"`` when ``anchor_weight="auto"`` chose the free network;
        ``None`` with a user ``backbone`` or another input type.

    loss_ : torch.nn.Module
        The loss component used for training, with any learned parameters.

    miner_ : torch.nn.Module or None
        The miner used for training.

    classes_ : ndarray of shape (n_classes,)
        The class labels seen during ``fit``.

    n_features_in_ : int
        Number of features seen during ``fit``; for image arrays and
        sequences, the number of values of one sample (the product of
        ``input_shape_``).

    input_shape_ : tuple of int
        The shape of one sample seen during ``fit``: ``(n_features,)`` for
        2-D ``X``, ``(C, H, W)``, ``(H, W)`` or ``(T, d)`` for image arrays
        and sequences. ``transform`` takes samples of this shape only.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit``, when ``X`` has string column
        names.

    n_iter_ : int
        Number of epochs run on the current model (cumulative over
        ``warm_start`` and ``partial_fit`` calls).

    loss_curve_ : list of float
        Mean training objective of each epoch (the sum of its terms).

    validation_scores_ : list of float or None
        Validation MAP@R of each epoch when ``early_stopping=True``.

    best_validation_score_ : float or None
        Best validation MAP@R when ``early_stopping=True``.

    history_ : list of dict
        One record per epoch: ``epoch``, ``loss`` (the objective), ``terms``
        (the mean of each term of the objective: ``"metric"``, the
        backbone's ``"anchor"`` penalty, ``"mixup"``, ...), ``learning_rate``
        (of the backbone, at the end of the epoch), ``time``, and
        ``validation_score`` when early stopping; ``pandas.DataFrame(
        est.history_)`` turns it into a table for plotting.

    threshold_ : float
        Distance below which a pair is predicted "same class"; set by
        :meth:`calibrate_threshold` (absent until then, removed by further
        training).
    """,
)


def generate_init(cls, method_parameters):
    """An ``__init__`` storing every parameter, with an explicit signature.

    The embedder's own parameters come first (positional or keyword), then
    the shared ones (keyword only). Generated as source, like a dataclass's,
    so the signature is real: ``inspect.signature``, ``help()`` and the
    interpreter's argument checks all see the same parameters.
    """
    defaults = {
        **method_parameters,
        **{n: p.default for n, p in SHARED_PARAMETERS.items()},
    }
    own = [f"{name}=_defaults[{name!r}]" for name in method_parameters]
    shared = [f"{name}=_defaults[{name!r}]" for name in SHARED_PARAMETERS]
    signature = ", ".join(["self", *own, "*", *shared])
    body = "".join(f"    self.{name} = {name}\n" for name in defaults)
    namespace = {"_defaults": defaults}
    exec(f"def __init__({signature}):\n{body}", namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = f"Store the parameters of {cls.__name__} (see the class)."
    return init
