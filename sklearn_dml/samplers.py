"""Class-balanced batch sampling ("m samples per class")."""

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["MPerClassSampler"]


class MPerClassSampler:
    """Yield batches of indices holding several samples of each of a few classes.

    Metric losses need positives (same class) and negatives (other classes)
    inside every batch. Each batch picks ``batch_size // m`` classes (all of
    them when there are fewer) and draws ``m`` samples of each, where ``m`` is
    ``samples_per_class`` or, when there are few classes, ``batch_size //
    n_classes`` so that the batch stays full. Classes are visited in shuffled
    rounds, and samples within a class in shuffled order without repetition
    until the class is used up, so an epoch sees every class about equally
    often. A class smaller than ``m`` contributes all its samples, once.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Class label of each sample (any hashable values).

    batch_size : int
        Target number of indices per batch.

    samples_per_class : int, default=4
        Minimum number of samples of a class per batch.

    n_batches : int, default=None
        Batches per iteration (epoch); default ``ceil(n_samples / batch_size)``.

    random_state : int, RandomState instance or None, default=None
        Seed of the shuffling.

    Examples
    --------
    >>> from sklearn_dml.samplers import MPerClassSampler
    >>> labels = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    >>> sampler = MPerClassSampler(labels, batch_size=4, samples_per_class=2,
    ...                            random_state=0)
    >>> len(sampler)
    3
    >>> [sorted({labels[i] for i in batch}).__len__() for batch in sampler]
    [2, 2, 2]
    """

    def __init__(
        self, labels, batch_size, samples_per_class=4, n_batches=None, random_state=None
    ):
        _, codes = np.unique(np.asarray(labels), return_inverse=True)
        self._codes = codes.ravel()
        self.batch_size = int(batch_size)
        self.samples_per_class = int(samples_per_class)
        n = self._codes.shape[0]
        self.n_batches = (
            max(1, -(-n // self.batch_size)) if n_batches is None else int(n_batches)
        )
        self._rng = check_random_state(random_state)
        self._sizes = np.bincount(self._codes)
        self._starts = np.concatenate([[0], np.cumsum(self._sizes)[:-1]])
        n_classes = self._sizes.shape[0]
        per_class = max(self.samples_per_class, self.batch_size // n_classes)
        self._per_class = max(1, min(per_class, self.batch_size))
        self._classes_per_batch = max(
            1, min(n_classes, self.batch_size // self._per_class)
        )

    def __len__(self):
        return self.n_batches

    def __iter__(self):
        rng = self._rng
        n_classes = self._sizes.shape[0]
        # Samples grouped by class, shuffled within each class.
        order = np.lexsort((rng.random_sample(self._codes.shape[0]), self._codes))
        cursor = np.zeros(n_classes, dtype=np.int64)
        class_queue = rng.permutation(n_classes)
        for _ in range(self.n_batches):
            if class_queue.shape[0] < self._classes_per_batch:
                class_queue = np.concatenate([class_queue, rng.permutation(n_classes)])
            chosen = class_queue[: self._classes_per_batch]
            class_queue = class_queue[self._classes_per_batch :]
            chosen = np.unique(chosen)  # a class twice in one round-join is drawn once
            sizes = self._sizes[chosen]
            offsets = np.arange(self._per_class)
            keep = offsets[None, :] < sizes[:, None]
            pos = (cursor[chosen][:, None] + offsets[None, :]) % sizes[:, None]
            batch = order[(self._starts[chosen][:, None] + pos)[keep]]
            cursor[chosen] += self._per_class
            yield batch
