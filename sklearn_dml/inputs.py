"""Lazily loaded inputs: samples read one by one, for data larger than memory.

``fit(X, y)`` and ``transform(X)`` of the deep embedders take, besides
arrays, a :class:`LazyInput`: :class:`FileDataset` (a sequence of file
paths and a function loading one file) or :class:`DatasetInput` (any
map-style :class:`torch.utils.data.Dataset`). Nothing is read until it is
needed: training reads each class-balanced batch through a
:class:`torch.utils.data.DataLoader` (``num_workers`` processes,
``pin_memory`` on CUDA), ``transform`` embeds in chunks of ``batch_size``
samples, so memory holds a batch at a time and the embeddings.

A lazy input behaves as far as scikit-learn needs like an array of
``len(X)`` samples: ``X.shape`` is ``(n_samples, *sample_shape)``,
``X[i]`` is one sample (a float32 tensor), and ``X[indices]`` (an integer
array, a boolean mask or a slice) is a lazy input of those samples, so
``cross_val_score``, ``GridSearchCV``, ``ClassDisjointKFold`` and
``train_test_split`` split it without reading it.
"""

import copy
from numbers import Integral

import numpy as np
import torch

__all__ = ["DatasetInput", "FileDataset", "LazyInput"]

#: The default backbone's PCA start reads at most this many samples of a
#: lazy input (all of them when there are fewer, in their order).
PCA_MAX_SAMPLES = 4096


class LazyInput(torch.utils.data.Dataset):
    """Base class of the inputs whose samples are read on demand.

    A subclass implements ``_load(j)``, returning sample ``j`` of the
    underlying collection as an array or tensor, and ``_n_total()``; the
    base class keeps the selected positions (indexing selects without
    reading), converts samples to float32 tensors and checks their shapes.

    Parameters
    ----------
    batch_size : int, default=1024
        Samples embedded at a time by ``transform`` (it bounds the memory of
        inference; training uses the estimator's ``batch_size``).
    num_workers : int, default=0
        Processes reading samples in parallel
        (:class:`torch.utils.data.DataLoader`); 0 reads in the main process.
    pin_memory : bool, default=True
        Copy each batch to page-locked memory before moving it to a CUDA
        device (faster, asynchronous transfers). Ignored on the CPU.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.inputs import DatasetInput, LazyInput
    >>> X = DatasetInput(np.zeros((5, 3)))
    >>> isinstance(X, LazyInput), X.shape, X[[0, 2]].shape
    (True, (5, 3), (2, 3))
    """

    def __init__(self, *, batch_size=1024, num_workers=0, pin_memory=True):
        if not (isinstance(batch_size, Integral) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        if not (isinstance(num_workers, Integral) and num_workers >= 0):
            raise ValueError(
                f"num_workers must be a non-negative int, got {num_workers!r}."
            )
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self._positions = None  # None: every sample, in order
        self._sample_shape = None

    # ------------------------------------------------------------ subclass
    def _load(self, j):
        raise NotImplementedError

    def _n_total(self):
        raise NotImplementedError

    # --------------------------------------------------------------- sizes
    def __len__(self):
        if self._positions is None:
            return int(self._n_total())
        return int(self._positions.shape[0])

    @property
    def sample_shape(self):
        """Shape of one sample (read from the first sample, once)."""
        if self._sample_shape is None:
            if len(self) == 0:
                raise ValueError(f"{type(self).__name__} holds no sample.")
            self._sample_shape = tuple(self._sample(0).shape)
        return self._sample_shape

    @property
    def shape(self):
        """``(n_samples, *sample_shape)``, as for an array."""
        return (len(self), *self.sample_shape)

    @property
    def ndim(self):
        """Number of dimensions of :attr:`shape`."""
        return 1 + len(self.sample_shape)

    # ------------------------------------------------------------ indexing
    def _position(self, i):
        return int(i) if self._positions is None else int(self._positions[i])

    def _sample(self, i):
        j = self._position(i)
        value = self._load(j)
        if isinstance(value, tuple):
            value = value[0]
        try:
            sample = torch.as_tensor(np.asarray(value), dtype=torch.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"Sample {j} of {type(self).__name__} is not numeric: {exc}"
            ) from None
        if self._sample_shape is not None and tuple(sample.shape) != self._sample_shape:
            raise ValueError(
                f"Sample {j} of {type(self).__name__} has shape "
                f"{tuple(sample.shape)}, the first one {self._sample_shape}: every "
                "sample must have the same shape."
            )
        return sample

    def __getitem__(self, key):
        """``X[i]``: sample ``i`` (float32 tensor); ``X[indices]``: a lazy subset."""
        if isinstance(key, tuple):  # scikit-learn indexes arrays as X[key, ...]
            if len(key) == 2 and key[1] is Ellipsis:
                key = key[0]
            else:
                raise IndexError(
                    f"{type(self).__name__} is indexed along samples only."
                )
        if isinstance(key, (Integral, np.integer)):
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"index {key} out of range for {n} samples")
            return self._sample(int(key) % n)
        base = np.arange(len(self)) if self._positions is None else self._positions
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        selected = base[key] if isinstance(key, slice) else base[np.asarray(key)]
        out = copy.copy(self)
        out._positions = np.asarray(selected, dtype=np.int64).reshape(-1)
        return out

    def __getitems__(self, indices):
        # The DataLoader's batched fetch: (position, sample) pairs.
        return [(int(i), self._sample(int(i))) for i in indices]

    def __repr__(self):
        return f"{type(self).__name__}(n_samples={len(self)})"


class FileDataset(LazyInput):
    """Samples stored one per file, read by ``loader(path)`` when needed.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        One file per sample.
    loader : callable, default=numpy.load
        ``loader(path)`` returns the sample as an array (any numeric dtype,
        converted to float32; scale it here, e.g. ``lambda p:
        np.load(p) / 255``). Every sample must have the same shape.
        With ``num_workers > 0`` the loader must be picklable when the
        workers are spawned (macOS, Windows): a module-level function.
    batch_size, num_workers, pin_memory
        See :class:`LazyInput`.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_dml.inputs import FileDataset
    >>> folder = tempfile.mkdtemp()
    >>> paths = []
    >>> for i in range(4):
    ...     paths.append(os.path.join(folder, f"{i}.npy"))
    ...     np.save(paths[-1], np.full((2, 2), i, dtype=np.uint8))
    >>> X = FileDataset(paths)
    >>> X.shape
    (4, 2, 2)
    >>> X[np.array([3, 1])][0][0].tolist()
    [3.0, 3.0]
    """

    def __init__(
        self, paths, loader=np.load, *, batch_size=1024, num_workers=0, pin_memory=True
    ):
        super().__init__(
            batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory
        )
        if isinstance(paths, (str, bytes)):
            raise TypeError("paths must be a sequence of paths, not one string.")
        if not callable(loader):
            raise TypeError(f"loader must be callable, got {loader!r}.")
        self.paths = np.array([str(p) for p in paths], dtype=object)
        self.loader = loader

    def _n_total(self):
        return self.paths.shape[0]

    def _load(self, j):
        return self.loader(self.paths[j])


class DatasetInput(LazyInput):
    """A map-style :class:`torch.utils.data.Dataset` as the ``X`` of an embedder.

    ``dataset[i]`` must return sample ``i`` as a tensor or array, or a tuple
    whose first item is the sample (the ``(x, label)`` of most datasets:
    the labels given to ``fit`` as ``y`` are those used; the tuple's other
    items are ignored). ``len(dataset)`` gives the number of samples.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset or sequence
        Anything with ``__len__`` and ``__getitem__`` over integers.
    batch_size, num_workers, pin_memory
        See :class:`LazyInput`.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.inputs import DatasetInput
    >>> data = torch.utils.data.TensorDataset(torch.ones(6, 3), torch.zeros(6))
    >>> X = DatasetInput(data)
    >>> X.shape, X[1].tolist()
    ((6, 3), [1.0, 1.0, 1.0])
    """

    def __init__(self, dataset, *, batch_size=1024, num_workers=0, pin_memory=True):
        super().__init__(
            batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory
        )
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(
                "dataset must have __len__ and __getitem__ (a map-style "
                f"torch Dataset); got {type(dataset).__name__}."
            )
        self.dataset = dataset

    def _n_total(self):
        return len(self.dataset)

    def _load(self, j):
        return self.dataset[j]


def is_lazy(X):
    """Whether ``X`` is a :class:`LazyInput`."""
    return isinstance(X, LazyInput)


def _collate(items):
    positions = torch.tensor([p for p, _ in items], dtype=torch.long)
    return positions, torch.stack([s for _, s in items])


def loader_batches(X, index_batches):
    """``(positions, samples)`` for each batch of positions, read by a DataLoader.

    ``index_batches`` is an iterable of index arrays (a batch sampler, read
    in the main process, so the batches and their order are those it
    gives); ``X.num_workers`` processes read the samples. Positions come
    back with each batch (a tensor) so that the caller slices labels and
    targets alike.
    """
    loader = torch.utils.data.DataLoader(
        X,
        batch_sampler=index_batches,
        num_workers=X.num_workers,
        collate_fn=_collate,
    )
    return iter(loader)


def chunks(n, size):
    """Consecutive index arrays of at most ``size`` covering ``range(n)``."""
    return [np.arange(s, min(s + size, n)) for s in range(0, n, size)]


def init_sample(X, max_samples=PCA_MAX_SAMPLES, seed=0):
    """At most ``max_samples`` samples of ``X`` as one float32 tensor.

    An array is returned unchanged. Of a lazy input, all samples when there
    are at most ``max_samples`` (in their order), otherwise ``max_samples``
    drawn without replacement with ``seed``; flattened to 2-D rows. This is
    what the default backbone's PCA start sees.
    """
    if not is_lazy(X):
        return X
    n = len(X)
    if n <= max_samples:
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.RandomState(seed).choice(n, max_samples, replace=False))
    parts = [samples for _, samples in loader_batches(X, chunks_of(idx, X.batch_size))]
    return torch.cat(parts).reshape(len(idx), -1)


def chunks_of(idx, size):
    """``idx`` cut into consecutive arrays of at most ``size``."""
    return [idx[s : s + size] for s in range(0, idx.shape[0], size)]


def check_lazy_training_data(estimator, X, y, reset):
    """Validate a lazy ``X`` with its labels; set or check ``n_features_in_``.

    ``n_features_in_`` is the size of one sample (the product of its shape);
    ``y`` must have one label per sample. Returns ``(X, y)`` with ``y`` a
    1-D array.
    """
    from sklearn.utils.validation import column_or_1d

    y = column_or_1d(np.asarray(y), warn=True)
    if y.shape[0] != len(X):
        raise ValueError(
            f"X holds {len(X)} samples but y has {y.shape[0]} labels: give one "
            "label per sample."
        )
    if len(X) < 2:
        raise ValueError(f"X holds {len(X)} sample(s); at least 2 are needed.")
    check_lazy_features(estimator, X, reset)
    return X, y


def check_lazy_features(estimator, X, reset):
    """Set (``reset``) or check ``n_features_in_`` and ``input_shape_`` against a lazy ``X``."""
    n_features = int(np.prod(X.sample_shape))
    shape = tuple(int(s) for s in X.sample_shape)
    if reset:
        estimator.n_features_in_ = n_features
        estimator.input_shape_ = shape
        estimator.__dict__.pop("feature_names_in_", None)
        return
    check_shape = getattr(estimator, "_check_sample_shape", None)
    if check_shape is not None:
        check_shape(shape)
    fitted = getattr(estimator, "n_features_in_", None)
    if fitted is not None and fitted != n_features:
        raise ValueError(
            f"X has samples of shape {X.sample_shape} ({n_features} features), "
            f"but {type(estimator).__name__} was fitted on {fitted} features."
        )
