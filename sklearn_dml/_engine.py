"""The training engine: the one place where models are trained and run.

Every estimator describes *what* to train (a backbone, a loss, an optional
miner, hyper-parameters) in a :class:`TrainingConfig`; this module decides
*how*: device placement, seeding, class-balanced batching, the optimisation
steps, early stopping and batched inference. Nothing else in the package calls
``backward()``, ``optimizer.step()``, ``train()`` or ``eval()``.

The loop is split into small steps, ``fit -> run_epoch -> train_step``, with
per-epoch records in ``history``.
"""

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .backbones import L2Normalize
from .samplers import MPerClassSampler

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


def seed_from(random_state):
    """Derive one integer seed from a scikit-learn ``random_state``."""
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(0, 2**31 - 1))


def as_float_tensor(X):
    """Copy a NumPy array into a float32 tensor (never a view of user memory)."""
    return torch.tensor(np.asarray(X), dtype=torch.float32)


@dataclass
class TrainingConfig:
    """What to train with; filled by an estimator from its parameters."""

    max_iter: int = 50
    batch_size: int = 128
    samples_per_class: int = 4
    learning_rate_init: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    early_stopping: bool = False
    n_iter_no_change: int = 10
    tol: float = 1e-4
    device: str = "auto"
    verbose: int = 0
    seed: int = 0
    loss_learning_rate: float | None = None
    name: str = "model"
    extra: dict = field(default_factory=dict)


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


def _make_optimizer(config, backbone, loss):
    groups = [{"params": [p for p in backbone.parameters() if p.requires_grad]}]
    loss_params = [p for p in loss.parameters() if p.requires_grad]
    if loss_params:
        group = {"params": loss_params}
        if config.loss_learning_rate is not None:
            group["lr"] = config.loss_learning_rate
        groups.append(group)
    kwargs = {"lr": config.learning_rate_init, "weight_decay": config.weight_decay}
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, **kwargs)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, **kwargs)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, **kwargs)
    raise ValueError(f"Unknown optimizer {config.optimizer!r}.")


def batch_loss(state, config, xb, yb, tb=None):
    """The training objective on one batch (a scalar tensor to minimise).

    The single place where the training options (``config.extra``: nested
    dimensions, mixup, sample weighting, regularisers, a teacher) change what
    is minimised; the plain objective is the loss of the batch's embeddings
    on the miner's tuples.

    ``tb`` holds the batch's rows of the per-sample ``targets`` given to
    :func:`fit` (e.g. a teacher's embeddings), or ``None``. Two keys of
    ``config.extra`` use it (knowledge distillation):

    * ``"metric_weight"`` (default 1): weight of the metric loss; ``0``
      skips it (and its miner);
    * ``"relational"``: a module called as ``relational(embeddings, tb)``
      whose value is added (e.g. :class:`~sklearn_dml.losses.RKDLoss`).
    """
    extra = config.extra if config is not None else {}
    embeddings = state.backbone(xb)
    metric_weight = extra.get("metric_weight", 1.0)
    loss = None
    if metric_weight != 0:
        indices = state.miner(embeddings, yb) if state.miner is not None else None
        loss = state.loss(embeddings, yb, indices)
        if metric_weight != 1:
            loss = metric_weight * loss
    relational = extra.get("relational")
    if relational is not None:
        term = relational(embeddings, tb)
        loss = term if loss is None else loss + term
    mixup = extra.get("mixup")
    if mixup is not None:
        # Metrix: the soft-label loss of mixed samples against the clean batch.
        mixed = mixup.mixed_loss(state.backbone, state.loss, xb, yb, embeddings)
        loss = loss + mixup.metrix.weight * mixed
    penalty = backbone_penalty(state.backbone, xb, embeddings, yb)
    if penalty is not None:
        loss = penalty if loss is None else loss + penalty
    ec_weight = extra.get("energy_confusion", 0.0)
    if ec_weight:
        loss = loss + ec_weight * _energy_confusion(state.backbone, embeddings, yb)
    return loss


def backbone_penalty(backbone, xb, embeddings, yb):
    """The backbone's own regularisation term for a batch, or ``None``.

    A backbone (or the first module of a ``Sequential`` whose other modules
    are L2 normalisations, which the estimator appends) may define
    ``training_penalty(x, embeddings, y)``: a term added to the loss, such as
    the anchoring of :class:`~sklearn_dml.backbones.ResidualMLP`.
    """
    net = backbone
    if isinstance(net, torch.nn.Sequential) and len(net):
        if not all(isinstance(m, L2Normalize) for m in net[1:]):
            return None
        net = net[0]
    penalty = getattr(net, "training_penalty", None)
    return penalty(xb, embeddings, yb) if callable(penalty) else None


def metric_layer_parameters(backbone, n_out):
    """Parameters of the backbone's output layers: its ``torch.nn.Linear``
    modules with ``n_out`` output features (the "metric" of ECAML)."""
    return [
        p
        for module in backbone.modules()
        if isinstance(module, torch.nn.Linear) and module.out_features == n_out
        for p in module.parameters()
        if p.requires_grad
    ]


def _energy_confusion(backbone, embeddings, labels):
    """The ECAML energy-confusion term, its gradient routed to the metric layer.

    Its value is that of
    :class:`~sklearn_dml.losses.EnergyConfusionRegularizer`; its gradient
    reaches only the output ``Linear`` layers of the backbone (the embedding
    layer :math:`W` of the paper) and stops at the features entering them,
    as in the authors' implementation: the metric loss trains the whole
    network to separate the classes, the confusion term trains :math:`W`
    alone to mix them. Done with a surrogate ``s - s.detach()`` (value 0)
    whose gradient is the term's gradient with respect to those parameters.
    """
    from .losses import EnergyConfusionRegularizer

    term = EnergyConfusionRegularizer()(embeddings, labels)
    params = metric_layer_parameters(backbone, embeddings.shape[1])
    if not term.requires_grad or not params:
        return term.detach()
    grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
    surrogate = sum(
        (p * g.detach()).sum() for p, g in zip(params, grads) if g is not None
    )
    if not isinstance(surrogate, torch.Tensor):
        return term.detach()
    return term.detach() + (surrogate - surrogate.detach())


def train_step(state, optimizer, xb, yb, config=None, tb=None):
    """One optimisation step on one batch; returns the loss value."""
    loss = batch_loss(state, config, xb, yb, tb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def run_epoch(state, optimizer, X, y, sampler, device, config=None, targets=None):
    """One pass of class-balanced batches; returns the mean batch loss.

    ``targets`` (a tensor with one row per sample, or ``None``) is sliced
    with each batch and handed to :func:`batch_loss`.
    """
    state.backbone.train()
    state.loss.train()
    total, count = 0.0, 0
    for batch in sampler:
        idx = torch.from_numpy(batch)
        xb = X[idx].to(device, non_blocking=True)
        yb = y[idx].to(device, non_blocking=True)
        tb = None if targets is None else targets[idx].to(device, non_blocking=True)
        total += train_step(state, optimizer, xb, yb, config, tb)
        count += 1
    return total / max(count, 1)


@torch.no_grad()
def embed(backbone, X, device=None, batch_size=INFERENCE_BATCH_SIZE):
    """Embed ``X`` (NumPy array or tensor) in evaluation mode; returns float32 NumPy."""
    device = torch.device("cpu") if device is None else device
    X = X if isinstance(X, torch.Tensor) else as_float_tensor(X)
    was_training = backbone.training
    backbone.eval()
    moved = device.type != "cpu"
    if moved:
        backbone.to(device)
    try:
        out = [
            backbone(X[start : start + batch_size].to(device)).float().cpu()
            for start in range(0, X.shape[0], batch_size)
        ]
    finally:
        if moved:
            backbone.to("cpu")
        backbone.train(was_training)
    if not out:
        return np.empty((0, 0), dtype=np.float32)
    return torch.cat(out).numpy()


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
        like ``X`` and ``y`` and passed to :func:`batch_loss`. Precomputed
        targets keep the loop generic: the engine needs no knowledge of
        where they come from, and a teacher is never run (nor changed)
        inside training.

    Returns
    -------
    state : TrainingState
    """
    device = resolve_device(config.device)
    n_epochs = config.max_iter if n_epochs is None else n_epochs
    # A forked RNG: seeding here leaves the caller's global torch state intact.
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        # Offset by the epochs already run, so warm starts and partial_fit calls
        # draw fresh batches while staying reproducible.
        seed = config.seed + state.n_iter
        torch.manual_seed(seed)
        Xt, yt = as_float_tensor(X), torch.as_tensor(np.asarray(y), dtype=torch.long)
        Tt = None if targets is None else as_float_tensor(targets)
        if Tt is not None and Tt.shape[0] != Xt.shape[0]:
            raise ValueError(
                f"targets has {Tt.shape[0]} rows but X has {Xt.shape[0]}: give "
                "one row of targets per training sample."
            )
        sampler = MPerClassSampler(
            y,
            batch_size=config.batch_size,
            samples_per_class=config.samples_per_class,
            random_state=np.random.RandomState(seed % 2**32),
        )
        state.backbone.to(device)
        state.loss.to(device)
        if state.miner is not None:
            state.miner.to(device)
        optimizer = _make_optimizer(config, state.backbone, state.loss)
        if state.optimizer_state is not None:
            optimizer.load_state_dict(state.optimizer_state)
        best_score, best_weights, bad_epochs = -np.inf, None, 0
        if validation is not None:
            # The starting weights compete too: training that only degrades the
            # validation score (e.g. on held-out classes) gives them back.
            best_score = score_func(
                embed(state.backbone, validation[0], device), validation[1]
            )
            best_weights = _snapshot(state)
        try:
            for _ in range(n_epochs):
                tic = time.perf_counter()
                loss_value = run_epoch(
                    state, optimizer, Xt, yt, sampler, device, config, Tt
                )
                state.n_iter += 1
                record = {"epoch": state.n_iter, "loss": loss_value}
                if not np.isfinite(loss_value):
                    raise FloatingPointError(
                        f"The training loss became {loss_value} at epoch {state.n_iter}. "
                        "Lower learning_rate_init or standardise the features."
                    )
                stop = False
                if validation is not None:
                    score = score_func(
                        embed(state.backbone, validation[0], device), validation[1]
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
                if config.verbose:
                    _print_record(config, record, n_epochs)
                if stop:
                    if config.verbose:
                        print(
                            f"[{config.name}] no improvement of the validation score for "
                            f"{config.n_iter_no_change} epochs: stopping, best weights restored."
                        )
                    break
            if best_weights is not None:
                state.backbone.load_state_dict(best_weights[0])
                state.loss.load_state_dict(best_weights[1])
                state.best_validation_score = float(best_score)
            state.optimizer_state = _to_cpu(optimizer.state_dict())
        finally:
            state.backbone.to("cpu").eval()
            state.loss.to("cpu").eval()
            if state.miner is not None:
                state.miner.to("cpu")
    return state


def _snapshot(state):
    return (
        copy.deepcopy(
            {k: v.detach().cpu() for k, v in state.backbone.state_dict().items()}
        ),
        copy.deepcopy(
            {k: v.detach().cpu() for k, v in state.loss.state_dict().items()}
        ),
    )


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def _print_record(config, record, n_epochs):
    parts = [
        f"[{config.name}] epoch {record['epoch']:>3} ({n_epochs} this call)",
        f"loss {record['loss']:.4f}",
    ]
    if "validation_score" in record:
        parts.append(f"val MAP@R {record['validation_score']:.4f}")
    parts.append(f"{record['time']:.2f}s")
    print(" | ".join(parts), flush=True)
