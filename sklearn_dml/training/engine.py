"""The training engine: the one place where models are trained and run.

Every estimator describes *what* to train (a backbone, a loss, an optional
miner, hyper-parameters) in a :class:`TrainingConfig`; this module decides
*how*: device placement, seeding, class-balanced batching, the optimisation
steps, early stopping and batched inference. Nothing else in the package calls
``backward()``, ``optimizer.step()``, ``train()`` or ``eval()``.

The loop is split into small steps, ``fit -> run_epoch -> train_step``, with
per-epoch records in ``history``.
"""

import contextlib
import copy
import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..augmentation import apply_augment
from ..inputs import is_lazy
from ..samplers import MPerClassSampler
from .data import inference_batches, pins, to_device, training_batches
from .distributed import DataParallel
from .objective import Batch, MetricLossTerm
from .param_groups import backbone_parameter_groups
from .precision import MixedPrecision

INFERENCE_BATCH_SIZE = 8192


def resolve_device(device):
    """Turn the ``device`` parameter into a :class:`torch.device`."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available in this "
            "PyTorch installation. Use device='cpu' or device='auto'."
        )
    return dev


def inference_device(device):
    """The device to embed on: as for training, but the CPU when CUDA is absent.

    A fitted model lives on the CPU, so a model trained with
    ``device="cuda"`` still embeds on a machine without a GPU.
    """
    if device in (None, "auto") or not str(device).startswith("cuda"):
        return resolve_device(device)
    return torch.device(device) if torch.cuda.is_available() else torch.device("cpu")


def seed_from(random_state):
    """Derive one integer seed from a scikit-learn ``random_state``."""
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(0, 2**31 - 1))


def as_float_tensor(X):
    """Copy a NumPy array into a float32 tensor (never a view of user memory)."""
    return torch.tensor(np.asarray(X), dtype=torch.float32)


@dataclass
class TrainingConfig:
    """What to train with; filled by an estimator from its parameters.

    The estimator's parameters of the same names carry the defaults and
    their documentation; ``objective`` lists the terms minimised on every
    batch (:mod:`sklearn_dml.training.objective`), by default the metric
    loss alone.
    """

    max_iter: int
    batch_size: int
    samples_per_class: int
    learning_rate_init: float
    weight_decay: float
    optimizer: str
    n_iter_no_change: int
    tol: float
    device: str
    verbose: int
    seed: int
    loss_learning_rate: float | None = None
    learning_rate_schedule: object = "constant"
    max_grad_norm: float | None = None
    mixed_precision: str | None = None
    #: A :class:`~sklearn_dml.training.callbacks.CallbackRunner` or None.
    callbacks: object = None
    #: Training-only batch augmentation (tensor -> tensor), or None.
    augment: object = None
    #: Parameter-name prefix -> learning rate of those backbone parameters.
    backbone_learning_rates: dict | None = None
    name: str = "model"
    objective: tuple = (MetricLossTerm(),)
    #: Set by :func:`fit` under a process group (:mod:`.distributed`).
    data_parallel: object = None


@dataclass
class TrainingState:
    """What training produces and what ``warm_start``/``partial_fit`` resume."""

    backbone: torch.nn.Module
    loss: torch.nn.Module
    miner: torch.nn.Module | None
    optimizer_state: dict | None = None
    n_iter: int = 0
    history: list = field(default_factory=list)
    best_validation_score: float | None = None
    #: Whether the last :func:`fit` call was stopped by ``KeyboardInterrupt``.
    interrupted: bool = False
    #: ``(torch CPU generator state, NumPy batch-sampling state)``: given,
    #: :func:`fit` continues these random streams instead of seeding anew (a
    #: resumed checkpoint); during training, the streams after the last epoch
    #: (kept up to date for callbacks).
    rng_state: tuple | None = None
    #: The float16 gradient scaler's state (``mixed_precision="float16"`` on
    #: CUDA), resumed like the optimizer's; ``None`` otherwise.
    grad_scaler_state: dict | None = None


def _make_optimizer(config, backbone, loss):
    groups = backbone_parameter_groups(backbone, config.backbone_learning_rates)
    loss_params = [p for p in loss.parameters() if p.requires_grad]
    if loss_params:
        group = {"params": loss_params}
        if config.loss_learning_rate is not None:
            group["lr"] = config.loss_learning_rate
        groups.append(group)
    kwargs = {"lr": config.learning_rate_init, "weight_decay": config.weight_decay}
    if config.optimizer == "adam":
        return _fused_if_supported(torch.optim.Adam, groups, **kwargs)
    if config.optimizer == "adamw":
        return _fused_if_supported(torch.optim.AdamW, groups, **kwargs)
    if config.optimizer == "sgd":
        return _fused_if_supported(torch.optim.SGD, groups, momentum=0.9, **kwargs)
    raise ValueError(f"Unknown optimizer {config.optimizer!r}.")


def _fused_if_supported(optimizer_class, groups, **kwargs):
    """``optimizer_class`` with its fused kernel where the parameters allow it.

    The fused update is one kernel per parameter instead of about a dozen
    element-wise operations, each dispatched from Python: on the small
    networks of tabular data it took a training step from 1.2 to 0.87 ms
    (same arithmetic, up to float rounding). Parameters on a device or of a
    dtype that has no fused kernel get the default implementation.
    """
    try:
        return optimizer_class(groups, fused=True, **kwargs)
    except RuntimeError:
        return optimizer_class(groups, **kwargs)


#: Share of the steps of ``learning_rate_schedule="warmup_cosine"`` spent warming up.
WARMUP_FRACTION = 0.1


def warmup_cosine_factor(step, n_steps, warmup_fraction=WARMUP_FRACTION):
    """Learning-rate multiplier after ``step`` of ``n_steps`` steps (0-based).

    Linear warm-up from ``1 / n_warmup`` to 1 over the first
    ``n_warmup = max(1, round(warmup_fraction * n_steps))`` steps, then a half
    cosine from 1 down to 0 at step ``n_steps``.
    """
    n_warmup = max(1, int(round(warmup_fraction * n_steps)))
    if step < n_warmup:
        return (step + 1) / n_warmup
    progress = (step - n_warmup + 1) / max(1, n_steps - n_warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _make_scheduler(config, optimizer, n_steps):
    """The learning-rate scheduler of one run, or None for a constant rate."""
    schedule = config.learning_rate_schedule
    if schedule == "constant":
        return None
    if schedule == "warmup_cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine_factor(step, n_steps)
        )
    scheduler = schedule(optimizer, n_steps)
    if not callable(getattr(scheduler, "step", None)):
        raise TypeError(
            f"learning_rate_schedule(optimizer, n_steps) of {config.name} must "
            "return a learning-rate scheduler (an object with a step() method, "
            f"e.g. torch.optim.lr_scheduler.CosineAnnealingLR); got {scheduler!r}."
        )
    return scheduler


def _resume_optimizer(optimizer, saved, config):
    """Load a saved optimizer state, keeping the current learning rates and decay.

    The moments and step counts carry over; ``learning_rate_init``,
    ``loss_learning_rate`` and ``weight_decay`` are those of ``config``, so
    a warm start or a later ``partial_fit`` call honours changed values.
    """
    current = [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups]
    if len(saved["param_groups"]) != len(current):
        raise ValueError(
            "The saved optimizer state has "
            f"{len(saved['param_groups'])} parameter groups, the model "
            f"{len(current)}: the learnable parameters changed. Refit with "
            "warm_start=False."
        )
    optimizer.load_state_dict(saved)
    for group, (lr, decay) in zip(optimizer.param_groups, current):
        group["lr"], group["weight_decay"] = lr, decay
        # A schedule restarts from the current rates, not the previous run's.
        group.pop("initial_lr", None)


def batch_objective(state, config, xb, yb, tb=None):
    """The training objective on one batch, and the value of each term.

    Embeds the batch once and adds the terms of ``config.objective`` (see
    :mod:`sklearn_dml.training.objective`) in their order; a term returning
    ``None`` is skipped. ``tb`` holds the batch's rows of the per-sample
    ``targets`` given to :func:`fit` (e.g. a teacher's embeddings), or
    ``None``.

    Returns
    -------
    total : torch.Tensor of shape ()
        The sum to minimise.
    values : dict
        Term name -> detached value of that term.
    """
    parallel = config.data_parallel
    embeddings = (
        state.backbone(xb) if parallel is None else parallel.embed(state.backbone, xb)
    )
    batch = Batch(x=xb, y=yb, embeddings=embeddings, targets=tb)
    total, values = None, {}
    for term in config.objective:
        value = term(state, batch)
        if value is None:
            continue
        values[term.name] = value.detach()
        total = value if total is None else total + value
    if total is None:
        raise ValueError(
            f"The training objective of {config.name} has no term that applies "
            "to the batch (no metric loss, penalty or other term)."
        )
    return total, values


def train_step(
    state, optimizer, xb, yb, config, tb=None, scheduler=None, precision=None
):
    """One optimisation step on one batch.

    Clips the gradient to ``config.max_grad_norm`` (if set), steps the
    optimizer, then the learning-rate ``scheduler`` (if any). With a
    ``precision`` (:class:`~sklearn_dml.training.precision.MixedPrecision`),
    the objective is computed under its autocast and, for float16, the
    gradient scaled (and unscaled before clipping).
    Returns the detached objective and the detached value of each term.
    """
    with contextlib.nullcontext() if precision is None else precision.autocast():
        loss, values = batch_objective(state, config, xb, yb, tb)
    scaler = None if precision is None else precision.scaler
    optimizer.zero_grad(set_to_none=True)
    (loss if scaler is None else precision.scale(loss)).backward()
    if config.data_parallel is not None:
        config.data_parallel.synchronize(optimizer)
    if config.max_grad_norm is not None:
        if scaler is not None:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(
            [p for group in optimizer.param_groups for p in group["params"]],
            config.max_grad_norm,
        )
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    if scheduler is not None:
        scheduler.step()
    return loss.detach(), values


def run_epoch(
    state,
    optimizer,
    X,
    y,
    sampler,
    device,
    config,
    targets=None,
    scheduler=None,
    precision=None,
):
    """One pass of class-balanced batches.

    ``X`` is a tensor or a lazy input (read through a DataLoader, see
    :mod:`sklearn_dml.training.data`). ``targets`` (a tensor with one row
    per sample, or ``None``) is sliced with each batch and handed to
    :func:`batch_objective`; ``scheduler`` (or ``None``) is stepped after
    every batch; ``precision`` is handed to :func:`train_step`.

    Returns
    -------
    loss : float
        Mean of the batches' objective.
    terms : dict
        Term name -> mean value over the batches where it applied.
    """
    state.backbone.train()
    state.loss.train()
    total, count = 0.0, 0
    sums, counts = {}, {}
    pin = pins(X)
    for idx, xb in training_batches(X, sampler):
        xb = to_device(xb, device, pin)
        yb = y[idx].to(device, non_blocking=True)
        tb = None if targets is None else targets[idx].to(device, non_blocking=True)
        if config.augment is not None:
            xb = apply_augment(config.augment, xb)
        loss, values = train_step(
            state, optimizer, xb, yb, config, tb, scheduler, precision
        )
        total += float(loss)
        count += 1
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + value
            counts[name] = counts.get(name, 0) + 1
    terms = {name: float(sums[name]) / counts[name] for name in sums}
    return total / max(count, 1), terms


def _device_of(module):
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device
    return torch.device("cpu")


def _same_device(a, b):
    return a.type == b.type and (
        a.index is None or b.index is None or a.index == b.index
    )


def embed(backbone, X, device=None, batch_size=INFERENCE_BATCH_SIZE, dtype=np.float32):
    """Embed ``X`` (NumPy array, tensor or lazy input) in evaluation mode; returns NumPy.

    The module is left as it is (device, parameters): when it lives on
    another device than ``device`` (or when it is in training mode), a copy
    embeds, so concurrent calls on one fitted model are safe and a model
    being trained stays on its device. Batches of ``batch_size`` rows run
    under :func:`torch.inference_mode` and are written into one output
    array of ``dtype`` (float32 or float16); a float32 C-contiguous input is
    read in place, any other converted batch by batch, so the memory beyond
    the input and the output is that of one batch.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    module = backbone
    if not _same_device(_device_of(backbone), device):
        module = copy.deepcopy(backbone).to(device)
    was_training = module.training
    if was_training:
        module.eval()
    n_rows = X.shape[0]
    out = None
    try:
        pin = pins(X)
        start = 0
        with torch.inference_mode():
            for xb in inference_batches(X, batch_size):
                Z = module(to_device(xb, device, pin)).float().cpu().numpy()
                if out is None:
                    out = np.empty((n_rows, *Z.shape[1:]), dtype=dtype)
                out[start : start + Z.shape[0]] = Z
                start += Z.shape[0]
    finally:
        if was_training:
            module.train()
    if out is None:
        return np.empty((0, 0), dtype=dtype)
    return out


def fit(
    state,
    config,
    X,
    y,
    *,
    n_epochs=None,
    validation=None,
    score_func=None,
    targets=None,
):
    """Train ``state`` in place on encoded data.

    Parameters
    ----------
    state : TrainingState
        Backbone, loss and miner to train (modified in place and returned).
    config : TrainingConfig
        Hyper-parameters.
    X : ndarray of shape (n_samples, n_features)
        Training features.
    y : ndarray of shape (n_samples,)
        Integer class codes.
    n_epochs : int, default=None
        Epochs to run (default ``config.max_iter``).
    validation : tuple (X_val, y_val) or None
        Data for early stopping, scored with ``score_func(embeddings, labels)``
        (higher is better) after each epoch.
    score_func : callable
        Validation score.
    targets : ndarray of shape (n_samples, ...) or None
        Extra per-sample training targets (e.g. the embeddings of a fitted
        teacher, computed once before training), sliced with every batch
        like ``X`` and ``y`` and passed to :func:`batch_objective`. Precomputed
        targets keep the loop generic: the engine needs no knowledge of
        where they come from, and a teacher is never run (nor changed)
        inside training.

    Returns
    -------
    state : TrainingState
    """
    device = resolve_device(config.device)
    parallel = DataParallel.current()
    if parallel is not None:
        device = parallel.device(device)
        # Progress lines from rank 0 only.
        verbose = config.verbose if parallel.rank == 0 else 0
        config = dataclasses.replace(config, data_parallel=parallel, verbose=verbose)
    n_epochs = config.max_iter if n_epochs is None else n_epochs
    # A forked RNG: seeding here leaves the caller's global torch state intact.
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        # Offset by the epochs already run, so warm starts and partial_fit calls
        # draw fresh batches while staying reproducible.
        seed = config.seed + state.n_iter
        torch.manual_seed(seed if parallel is None else parallel.seed(seed))
        rng = np.random.RandomState(seed % 2**32)
        if state.rng_state is not None:
            torch.set_rng_state(state.rng_state[0])
            rng.set_state(state.rng_state[1])
        Xt = X if is_lazy(X) else as_float_tensor(X)
        yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
        Tt = None if targets is None else as_float_tensor(targets)
        if Tt is not None and Tt.shape[0] != len(Xt):
            raise ValueError(
                f"targets has {Tt.shape[0]} rows but X has {len(Xt)}: give "
                "one row of targets per training sample."
            )
        if parallel is not None:
            if is_lazy(Xt):
                raise ValueError(
                    "A data-parallel fit takes X as an array; lazy inputs "
                    "(sklearn_dml.inputs) are not supported there yet."
                )
            parallel.start(state, seed, Xt, yt, Tt, validation)
        sampler = MPerClassSampler(
            y,
            batch_size=config.batch_size,
            samples_per_class=config.samples_per_class,
            random_state=rng,
        )
        trainable = [
            p
            for m in (state.backbone, state.loss)
            for p in m.parameters()
            if p.requires_grad
        ]
        if not trainable:
            raise ValueError(
                f"{config.name} has nothing to train: neither the backbone nor the "
                "loss has a parameter that requires a gradient. Give a backbone "
                "with trainable layers (e.g. torch.nn.Linear), or leave backbone=None."
            )
        state.interrupted = False
        state.backbone.to(device)
        state.loss.to(device)
        if state.miner is not None:
            state.miner.to(device)
        try:
            optimizer = _make_optimizer(config, state.backbone, state.loss)
            if state.optimizer_state is not None:
                _resume_optimizer(optimizer, state.optimizer_state, config)
            precision = MixedPrecision(config.mixed_precision, device, config.name)
            precision.load_state_dict(state.grad_scaler_state)
            _run_epochs(
                state,
                config,
                optimizer,
                (Xt, yt, Tt),
                sampler,
                device,
                n_epochs,
                validation,
                score_func,
                precision,
                rng,
            )
            state.optimizer_state = _to_cpu(optimizer.state_dict())
            state.grad_scaler_state = precision.state_dict()
        finally:
            state.backbone.to("cpu").eval()
            state.loss.to("cpu").eval()
            if state.miner is not None:
                state.miner.to("cpu")
    return state


def _run_epochs(
    state,
    config,
    optimizer,
    data,
    sampler,
    device,
    n_epochs,
    validation,
    score_func,
    precision=None,
    rng=None,
):
    """The epochs of one fit; on KeyboardInterrupt, stop and keep what was learnt.

    A Ctrl-C ends training where it is: the epoch in progress is not
    recorded, the best weights are restored as at a normal end (with early
    stopping), and ``state.interrupted`` is set for the estimator to warn.

    With callbacks, ``state.rng_state`` holds the random streams (torch's
    and the batch sampler's ``rng``) after each epoch, so that a checkpoint
    resumes them.
    """
    callbacks = config.callbacks
    Xt, yt, Tt = data
    progress = _Progress(config, n_epochs, len(sampler))
    scheduler = _make_scheduler(config, optimizer, n_epochs * len(sampler))
    best_score, best_weights, bad_epochs = -np.inf, None, 0
    try:
        if validation is not None:
            # The starting weights compete too: training that only degrades the
            # validation score (e.g. on held-out classes) gives them back.
            best_score = _agreed(
                config,
                score_func(embed(state.backbone, validation[0], device), validation[1]),
            )
            best_weights = _snapshot(state)
        if callbacks is not None:
            callbacks.train_begin(state, optimizer)
        for _ in range(n_epochs):
            tic = time.perf_counter()
            loss_value, terms = run_epoch(
                state,
                optimizer,
                Xt,
                yt,
                sampler,
                device,
                config,
                Tt,
                scheduler,
                precision,
            )
            state.n_iter += 1
            if config.data_parallel is not None:
                # The ranks' means: one history, one stopping decision on all.
                loss_value, *values = config.data_parallel.agree(
                    [loss_value, *terms.values()]
                )
                terms = dict(zip(terms, values))
            record = {
                "epoch": state.n_iter,
                "loss": loss_value,
                "terms": terms,
                "learning_rate": float(optimizer.param_groups[0]["lr"]),
            }
            if not np.isfinite(loss_value):
                raise FloatingPointError(
                    f"The training loss became {loss_value} at epoch {state.n_iter} "
                    f"(terms: {terms}). Lower learning_rate_init or standardise "
                    "the features."
                )
            stop = False
            if validation is not None:
                score = _agreed(
                    config,
                    score_func(
                        embed(state.backbone, validation[0], device), validation[1]
                    ),
                )
                record["validation_score"] = score
                if score > best_score + config.tol:
                    best_score, bad_epochs = score, 0
                    best_weights = _snapshot(state)
                else:
                    bad_epochs += 1
                    stop = bad_epochs >= config.n_iter_no_change
            record["time"] = time.perf_counter() - tic
            state.history.append(record)
            progress.epoch(record)
            if callbacks is not None:
                state.rng_state = (torch.get_rng_state(), rng.get_state())
                if precision is not None:
                    state.grad_scaler_state = precision.state_dict()
            asked = callbacks is not None and callbacks.epoch_end(
                state, optimizer, record
            )
            if stop:
                progress.close(
                    f"no improvement of the validation score for "
                    f"{config.n_iter_no_change} epochs: stopping, best weights restored."
                )
                break
            if asked:
                progress.close("a callback asked to stop.")
                break
    except KeyboardInterrupt:
        state.interrupted = True
        progress.close("interrupted: keeping the model trained so far.")
    else:
        progress.close()
    if best_weights is not None:
        state.backbone.load_state_dict(best_weights[0])
        state.loss.load_state_dict(best_weights[1])
        state.best_validation_score = float(best_score)
    if callbacks is not None and not state.interrupted:
        callbacks.train_end(state, optimizer)


def _agreed(config, score):
    """A validation score, the same on every rank of a data-parallel fit."""
    if config.data_parallel is None:
        return score
    return config.data_parallel.agree([score])[0]


def _snapshot(state):
    return (
        copy.deepcopy(
            {k: v.detach().cpu() for k, v in state.backbone.state_dict().items()}
        ),
        copy.deepcopy(
            {k: v.detach().cpu() for k, v in state.loss.state_dict().items()}
        ),
    )


def optimizer_state_on_cpu(optimizer):
    """A copy of ``optimizer.state_dict()`` with every tensor on the CPU."""
    return copy.deepcopy(_to_cpu(optimizer.state_dict()))


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


class _Progress:
    """Training progress for a person: ``verbose=1`` one live line, ``2`` a line an epoch.

    Each line shows the epoch and steps of this call, the mean objective and
    each of its terms, the validation score when there is one, the time
    spent and an estimate of the time left.
    """

    def __init__(self, config, n_epochs, steps_per_epoch):
        self.name, self.verbose = config.name, int(config.verbose)
        self.n_epochs, self.steps = n_epochs, steps_per_epoch
        self.done, self.start, self.open = 0, time.perf_counter(), False
        self.width = 0

    def _line(self, record):
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.done * (self.n_epochs - self.done)
        terms = ", ".join(f"{k} {v:.4f}" for k, v in record["terms"].items())
        parts = [
            f"[{self.name}] epoch {self.done}/{self.n_epochs}",
            f"steps {self.done * self.steps}",
            f"loss {record['loss']:.4f}" + (f" ({terms})" if terms else ""),
        ]
        if "validation_score" in record:
            parts.append(f"val MAP@R {record['validation_score']:.4f}")
        parts.append(f"{elapsed:.1f}s elapsed, ~{left:.1f}s left")
        return " | ".join(parts)

    def epoch(self, record):
        self.done += 1
        if self.verbose >= 2:
            print(self._line(record), flush=True)
        elif self.verbose == 1:
            line = self._line(record)
            # Pad over the end of a longer previous line (no terminal codes:
            # notebooks show the same).
            sys.stdout.write("\r" + line.ljust(self.width))
            sys.stdout.flush()
            self.width, self.open = len(line), True

    def close(self, message=None):
        if not self.verbose:
            return
        if self.open:
            sys.stdout.write("\n")
            self.open = False
        if message:
            print(f"[{self.name}] {message}", flush=True)
