"""Data-parallel training on ``torch.distributed``: one ``fit`` on several processes.

When a process group of more than one process is initialised (under
``torchrun``, or by :func:`launch`), every ``fit`` of a deep embedder runs
data-parallel, with nothing to change in the estimator:

- **Batches.** Every process holds the same training data and the same
  seed, so :class:`~sklearn_dml.samplers.MPerClassSampler` draws the same
  global class-balanced batch on every rank without any communication; rank
  ``r`` embeds only its contiguous slice of it (``np.array_split`` of the
  batch into ``world_size`` parts). ``batch_size`` is the global batch.
- **Gathering.** The slices' embeddings are all-gathered (:func:`gather_rows`),
  so that every loss, miner and other term of the objective sees the
  embeddings of the whole batch, in the order a single process would have;
  the labels, inputs and targets of the global batch are known on every rank
  from the shared indices and are not sent.
- **Gradients.** The gather is differentiable: its backward sums the
  gradient of the gathered embeddings over the ranks and hands each rank the
  rows of its own slice. After ``backward()`` the gradients of every trained
  parameter (backbone and loss: proxies, temperatures, ...) are averaged over
  the ranks (:func:`average_gradients`, one ``all_reduce``). Rank ``s``
  minimises its own objective ``L_s`` (all equal when the objective draws no
  random numbers), so every rank applies the gradient of
  ``mean_s L_s``: exactly the gradient a single process would compute on the
  whole batch. Parameters start equal (broadcast from rank 0) and receive
  equal gradients, so they stay equal.

The engine (:mod:`sklearn_dml.training.engine`) calls the hooks of
:class:`DataParallel`; this module holds the machinery. Nothing here imports
a loss, a backbone or an estimator.
"""

import contextlib
import os
import pickle
import socket
import time
import traceback

import numpy as np
import torch

__all__ = [
    "average_gradients",
    "gather_rows",
    "is_data_parallel",
    "is_main_process",
    "launch",
    "no_data_parallel",
]

_DISABLED = 0


def _dist():
    import torch.distributed as dist

    return dist


def _group_size():
    """World size of the default process group, 1 without one."""
    if not torch.distributed.is_available():
        return 1
    dist = _dist()
    if not dist.is_initialized():
        return 1
    return dist.get_world_size()


def is_data_parallel():
    """Whether a ``fit`` started now would run data-parallel.

    True when ``torch.distributed`` has an initialised default process group
    of more than one process and no :func:`no_data_parallel` block is
    active.

    Examples
    --------
    >>> from sklearn_dml.training.distributed import is_data_parallel
    >>> is_data_parallel()  # no process group in this process
    False
    """
    return _DISABLED == 0 and _group_size() > 1


@contextlib.contextmanager
def no_data_parallel():
    """Fit on this process alone inside the block, even in a process group.

    For code that runs under ``torchrun`` but fits different models on
    different ranks (one grid point per rank, say): without this block such
    fits would try to train together and wait for each other.

    Examples
    --------
    >>> from sklearn_dml.training.distributed import (
    ...     is_data_parallel, no_data_parallel)
    >>> with no_data_parallel():
    ...     is_data_parallel()
    False
    """
    global _DISABLED
    _DISABLED += 1
    try:
        yield
    finally:
        _DISABLED -= 1


def is_main_process():
    """Whether this process is rank 0 (or not part of a process group).

    Only the main process writes files: :func:`sklearn_dml.persistence.save`
    does nothing on the other ranks of a data-parallel run. Guard your own
    writes (``joblib.dump``, plots, logs) with it.

    Examples
    --------
    >>> from sklearn_dml.training.distributed import is_main_process
    >>> is_main_process()
    True
    """
    if _group_size() <= 1:
        return True
    return _dist().get_rank() == 0


def slice_bounds(n_rows, world_size):
    """``world_size + 1`` row offsets: rank ``r`` holds ``[b[r], b[r + 1])``.

    The split of ``np.array_split``: the first ``n_rows % world_size`` ranks
    hold one row more.
    """
    base, extra = divmod(int(n_rows), int(world_size))
    sizes = [base + (1 if r < extra else 0) for r in range(world_size)]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()


class _GatherRows(torch.autograd.Function):
    """All-gather rows of unequal counts; backward: sum over ranks, own rows."""

    @staticmethod
    def forward(ctx, local, sizes, rank, group):
        dist = _dist()
        ctx.sizes, ctx.rank, ctx.group = sizes, rank, group
        width = max(sizes)
        padded = local.new_zeros((width, *local.shape[1:]))
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded, group=group)
        return torch.cat([part[:n] for part, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad):
        dist = _dist()
        # Each rank back-propagates its own objective through the gathered
        # rows; the gradient of the mean objective reaching this rank's rows
        # is the sum over ranks (divided by the world size when the
        # parameters' gradients are averaged in average_gradients).
        total = grad.contiguous().clone()
        dist.all_reduce(total, group=ctx.group)
        start = sum(ctx.sizes[: ctx.rank])
        return total[start : start + ctx.sizes[ctx.rank]], None, None, None


def gather_rows(local, sizes=None, group=None):
    """Concatenate the rows of every rank, differentiably.

    Parameters
    ----------
    local : torch.Tensor of shape (n_local, ...)
        This rank's rows (e.g. the embeddings of its slice of the batch).
    sizes : list of int, default=None
        Row count of every rank, in rank order; gathered first when
        ``None`` (one extra collective). The data-parallel engine knows
        them and passes them.
    group : ProcessGroup, default=None
        The process group (the default one when ``None``).

    Returns
    -------
    rows : torch.Tensor of shape (sum(sizes), ...)
        The rows of rank 0, then rank 1, ... The backward pass gives
        ``local`` the gradient of its own rows summed over the ranks: with
        gradients then averaged over the ranks (:func:`average_gradients`),
        the parameters get the gradient of the ranks' mean objective. Without
        a process group, ``local`` itself.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.training.distributed import gather_rows
    >>> x = torch.ones(3, 2, requires_grad=True)
    >>> gather_rows(x).shape  # a single process: its own rows
    torch.Size([3, 2])
    """
    if _group_size() <= 1:
        return local
    dist = _dist()
    world = dist.get_world_size(group)
    if sizes is None:
        counts = torch.tensor([local.shape[0]], device=local.device)
        everyone = [torch.zeros_like(counts) for _ in range(world)]
        dist.all_gather(everyone, counts, group=group)
        sizes = [int(c) for c in everyone]
    sizes = [int(n) for n in sizes]
    rank = dist.get_rank(group)
    if len(sizes) != world or sizes[rank] != local.shape[0]:
        raise ValueError(
            f"gather_rows: sizes={sizes} does not match {world} ranks with "
            f"{local.shape[0]} rows on rank {rank}."
        )
    return _GatherRows.apply(local, sizes, rank, group)


def average_gradients(parameters, group=None):
    """Average the gradients of ``parameters`` over the ranks, in place.

    One ``all_reduce`` of all gradients flattened together (per dtype and
    device). A parameter without a gradient on some ranks counts as a zero
    gradient there; one without a gradient on every rank keeps ``None``
    (so optimizers still skip it).

    Parameters
    ----------
    parameters : iterable of torch.Tensor
        The trained parameters, in the same order on every rank.
    group : ProcessGroup, default=None
        The process group (the default one when ``None``).

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.training.distributed import average_gradients
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> (3 * w).sum().backward()
    >>> average_gradients([w])  # a single process: unchanged
    >>> w.grad
    tensor([3., 3.])
    """
    params = [p for p in parameters]
    if _group_size() <= 1 or not params:
        return
    dist = _dist()
    world = dist.get_world_size(group)
    buckets = {}
    for p in params:
        if p.grad is not None and p.grad.is_sparse:
            raise ValueError(
                "Data-parallel training averages dense gradients; a parameter has "
                "a sparse gradient (e.g. torch.nn.Embedding(sparse=True))."
            )
        buckets.setdefault((p.dtype, p.device), []).append(p)
    for (dtype, device), group_params in buckets.items():
        has = torch.tensor(
            [p.grad is not None for p in group_params], dtype=dtype, device=device
        )
        flat = torch.cat(
            [
                (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                for p in group_params
            ]
            + [has]
        )
        dist.all_reduce(flat, group=group)
        flat /= world
        offset = 0
        for p in group_params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n
        for p, present in zip(group_params, flat[offset:].tolist()):
            if present == 0:
                p.grad = None


class DataParallel:
    """The engine's hooks for one data-parallel ``fit`` (see the module notes).

    Built by :meth:`current` when :func:`is_data_parallel`; the engine calls
    :meth:`device`, :meth:`start`, :meth:`embed`, :meth:`synchronize` and
    :meth:`agree`.
    """

    def __init__(self):
        dist = _dist()
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.backend = str(dist.get_backend()).lower()
        self._comm_device = torch.device("cpu")

    @classmethod
    def current(cls):
        """A :class:`DataParallel` when a fit should run data-parallel, else None."""
        return cls() if is_data_parallel() else None

    def device(self, device):
        """The training device of this rank: ``cuda`` means this rank's GPU."""
        if device.type == "cuda" and device.index is None:
            local = os.environ.get("LOCAL_RANK")
            if local is None:
                index = torch.cuda.current_device()
            else:  # more ranks than GPUs (gloo only): they share them in turn
                index = int(local) % max(1, torch.cuda.device_count())
            device = torch.device("cuda", index)
        if self.backend == "nccl":
            self._comm_device = device
        return device

    def _fingerprint(self, seed, X, y, targets, validation):
        if validation is None:
            held_out = [-1.0, -1.0]
        else:
            held_out = [
                float(np.sum(validation[0], dtype=np.float64)),
                float(np.sum(validation[1], dtype=np.float64)),
            ]
        # Sums accumulated in float64 without a float64 copy of the data.
        row_sums = X.reshape(X.shape[0], -1).sum(1, dtype=torch.float64)
        rows = torch.arange(X.shape[0], dtype=torch.float64)
        yd = y.double()
        return torch.tensor(
            [
                float(seed),
                X.shape[0],
                X.shape[1] if X.dim() > 1 else 1,
                float(yd.sum()),
                float((yd * rows).sum()),
                float(row_sums.sum()),
                float((row_sums * rows).sum()),
                -1.0 if targets is None else float(targets.sum(dtype=torch.float64)),
                *held_out,
            ],
            dtype=torch.float64,
        )

    def start(self, state, seed, X, y, targets, validation=None):
        """Check that every rank has the same data and seed; copy rank 0's model.

        All ranks see the gathered fingerprints and raise the same error
        together (none is left waiting in a collective).
        """
        dist = _dist()
        mine = self._fingerprint(seed, X, y, targets, validation).to(self._comm_device)
        everyone = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(everyone, mine)
        everyone = [t.cpu() for t in everyone]
        ref = everyone[0]
        for rank, fp in enumerate(everyone[1:], start=1):
            if fp[0] != ref[0]:
                raise ValueError(
                    f"Data-parallel fit: rank {rank} has another seed than rank 0. "
                    "Give the estimator an integer random_state (random_state="
                    "None draws a different seed in every process)."
                )
            if not torch.allclose(fp[1:], ref[1:], rtol=1e-6, atol=1e-6):
                raise ValueError(
                    f"Data-parallel fit: rank {rank} holds other training data "
                    "(X, y, targets or the early-stopping hold-out) than rank 0. "
                    "Every process must call fit on the same full data, in the "
                    "same order: each rank draws the global batches itself and "
                    "embeds its slice."
                )
        self.broadcast_modules(state.backbone, state.loss)

    def broadcast_modules(self, *modules):
        """Copy rank 0's parameters and buffers into the other ranks' modules."""
        dist = _dist()
        with torch.no_grad():
            for module in modules:
                for tensor in [*module.parameters(), *module.buffers()]:
                    buf = tensor.detach().to(self._comm_device)
                    dist.broadcast(buf, src=0)  # in place when on that device
                    if buf.data_ptr() != tensor.data_ptr():
                        tensor.copy_(buf.to(tensor.device))

    def seed(self, seed):
        """This rank's torch seed: rank 0 keeps ``seed`` (a single process's)."""
        return (int(seed) + 1_000_003 * self.rank) % (2**63)

    def embed(self, backbone, xb):
        """Embed this rank's slice of the global batch ``xb``; gather all slices."""
        bounds = slice_bounds(xb.shape[0], self.world_size)
        local = backbone(xb[bounds[self.rank] : bounds[self.rank + 1]])
        sizes = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
        return _GatherRows.apply(local, sizes, self.rank, None)

    def synchronize(self, optimizer):
        """Average the gradients of every parameter the optimizer updates."""
        average_gradients(
            [p for group in optimizer.param_groups for p in group["params"]]
        )

    def agree(self, values):
        """The mean over the ranks of a list of floats (one ``all_reduce``)."""
        dist = _dist()
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return (t / self.world_size).cpu().tolist()

    def from_main(self, obj):
        """Rank 0's value of a picklable object, on every rank."""
        dist = _dist()
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


# ----------------------------------------------------------------- launching
def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, backend, threads, fn, args, queue):
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        os.environ.update(
            {
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(world_size),
            }
        )
        dist = _dist()
        dist.init_process_group(backend, rank=rank, world_size=world_size)
        try:
            result = fn(*args)
        finally:
            dist.destroy_process_group()
        queue.put((rank, True, pickle.dumps(result)))
    except BaseException:
        queue.put((rank, False, traceback.format_exc()))


def launch(
    fn,
    n_processes,
    *args,
    backend="gloo",
    timeout=600.0,
    threads_per_process=None,
    start_method="spawn",
):
    """Run ``fn(*args)`` on ``n_processes`` local processes in one process group.

    Each process sets up the environment of ``torchrun`` (``RANK``,
    ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT`` on a free
    local port), initialises the default process group, calls ``fn`` and
    destroys the group. A ``fit`` called inside ``fn`` runs data-parallel.
    For several machines, use ``torchrun`` (see the user guide's page on
    distributed training).

    Parameters
    ----------
    fn : callable
        Picklable (a function defined at the top level of an importable
        module), run as ``fn(*args)`` in every process; its return value
        must be picklable.
    n_processes : int
        Number of processes (ranks).
    *args
        Arguments of ``fn`` (picklable).
    backend : {"gloo", "nccl"}, default="gloo"
        ``"gloo"`` for CPUs, ``"nccl"`` for one GPU per process.
    timeout : float, default=600.0
        Seconds to wait for all processes; then they are terminated and
        ``TimeoutError`` is raised (a run never hangs forever).
    threads_per_process : int, default=None
        ``torch.set_num_threads`` in each process; by default the CPU count
        divided by ``n_processes`` (at least 1), so that the processes do
        not oversubscribe the cores.
    start_method : {"spawn", "forkserver", "fork"}, default="spawn"
        How processes start. ``"fork"`` starts fastest (no re-import of
        torch) but is unsafe with CUDA or threads started by the caller.

    Returns
    -------
    results : list
        ``fn``'s return value on each rank, in rank order.

    Raises
    ------
    RuntimeError
        When ``fn`` raised on some rank (with that rank's traceback).

    Examples
    --------
    >>> from sklearn_dml.training.distributed import is_main_process, launch
    >>> launch(is_main_process, 2, start_method="fork")  # Linux: a fast start
    [True, False]
    """
    import multiprocessing as mp

    n_processes = int(n_processes)
    if n_processes < 1:
        raise ValueError(f"n_processes must be at least 1; got {n_processes}.")
    if threads_per_process is None:
        threads_per_process = max(1, (os.cpu_count() or 1) // n_processes)
    context = mp.get_context(start_method)
    queue = context.Queue()
    port = _free_port()
    procs = [
        context.Process(
            target=_worker,
            args=(
                rank,
                n_processes,
                port,
                backend,
                threads_per_process,
                fn,
                args,
                queue,
            ),
            daemon=True,
        )
        for rank in range(n_processes)
    ]
    for p in procs:
        p.start()
    results, failures = {}, {}
    deadline = time.monotonic() + timeout
    try:
        while len(results) + len(failures) < n_processes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"launch: {n_processes - len(results) - len(failures)} of "
                    f"{n_processes} processes did not finish within {timeout} s."
                )
            try:
                rank, ok, payload = queue.get(timeout=min(left, 1.0))
            except Exception:  # queue.Empty: check for processes that died
                dead = [
                    r
                    for r, p in enumerate(procs)
                    if not p.is_alive()
                    and p.exitcode not in (0, None)
                    and r not in results
                    and r not in failures
                ]
                if dead:
                    raise RuntimeError(
                        f"launch: rank {dead[0]} died with exit code "
                        f"{procs[dead[0]].exitcode} before reporting."
                    ) from None
                continue
            if ok:
                results[rank] = pickle.loads(payload)
            else:
                failures[rank] = payload
                # The other ranks may wait for the failed one in a collective.
                break
    finally:
        for p in procs:
            p.join(timeout=0 if failures or len(results) < n_processes else 5)
            if p.is_alive():
                p.terminate()
                p.join(5)
    if failures:
        rank = min(failures)
        raise RuntimeError(f"launch: rank {rank} raised:\n{failures[rank]}")
    return [results[r] for r in range(n_processes)]
