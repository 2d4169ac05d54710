"""How the engine gets batches: from tensors in memory or from lazy inputs.

In memory, a batch is the rows of the training tensor at the sampler's
indices. A lazy input (:mod:`sklearn_dml.inputs`) is read through a
:class:`torch.utils.data.DataLoader` driven by the same index batches, so
the batches, their order and hence the trained model are the same as for
the array holding the same samples. On a CUDA device, batches of a lazy
input with ``pin_memory=True`` are copied to page-locked memory before the
(asynchronous) transfer.
"""

import warnings

import numpy as np
import torch

from ..inputs import chunks, is_lazy, loader_batches

__all__ = ["inference_batches", "to_device", "training_batches"]


def training_batches(X, sampler):
    """``(indices, samples)`` for each index batch of ``sampler``, on the CPU."""
    if is_lazy(X):
        yield from loader_batches(X, sampler)
        return
    for batch in sampler:
        idx = torch.from_numpy(np.asarray(batch))
        yield idx, X[idx]


def float32_rows(X, start, stop):
    """Rows ``start:stop`` of ``X`` as a float32 tensor, copied only if needed.

    A C-contiguous float32 NumPy array is viewed (torch.from_numpy), never
    written to; other arrays are converted one batch at a time, so memory
    stays that of a batch.
    """
    if isinstance(X, torch.Tensor):
        return X[start:stop]
    rows = np.ascontiguousarray(X[start:stop], dtype=np.float32)
    with warnings.catch_warnings():
        # Read-only arrays (memory maps) work: nothing writes into them.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(rows)


def inference_batches(X, batch_size):
    """Consecutive float32 batches of ``X`` (array, tensor or lazy input), on the CPU.

    Arrays are read batch by batch (see :func:`float32_rows`), lazy inputs
    through their loader in chunks of their own ``batch_size``.
    """
    if is_lazy(X):
        for _, samples in loader_batches(X, chunks(len(X), X.batch_size)):
            yield samples
        return
    for start in range(0, X.shape[0], batch_size):
        yield float32_rows(X, start, min(start + batch_size, X.shape[0]))


def to_device(tensor, device, pin=False):
    """Move ``tensor`` to ``device``; pinned first when ``pin`` and on CUDA."""
    if pin and device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def pins(X):
    """Whether the batches of ``X`` are pinned before a CUDA transfer."""
    return is_lazy(X) and X.pin_memory
