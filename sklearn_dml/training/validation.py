"""The early-stopping hold-out: stratified samples, or whole classes."""

import numpy as np
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

__all__ = ["VALIDATION_SPLITS", "validation_split"]

#: The values of the estimators' ``validation_split`` parameter.
VALIDATION_SPLITS = ("stratified", "class_disjoint")


def validation_split(codes, fraction, kind, seed):
    """Indices ``(train, val)`` of the early-stopping hold-out.

    Parameters
    ----------
    codes : ndarray of shape (n_samples,)
        Integer class codes of the training samples.
    fraction : float
        Share of the samples (``"stratified"``) or of the classes
        (``"class_disjoint"``) held out.
    kind : {"stratified", "class_disjoint"}
        Hold out samples of every class, or whole classes.
    seed : int
        Seed of the split.

    Returns
    -------
    train, val : ndarray of int
        Positions in ``codes``.
    """
    if kind == "class_disjoint":
        return _class_disjoint_split(codes, fraction, seed)
    return _stratified_split(codes, fraction, seed)


def _class_disjoint_split(codes, fraction, seed):
    """Hold out ``fraction`` of the classes (at least 2, rounded)."""
    present = np.unique(codes)
    n_classes = present.shape[0]
    if n_classes < 4:
        raise ValueError(
            "validation_split='class_disjoint' holds out whole classes and needs "
            f"at least 4 classes (2 to validate on, 2 to train on); y has "
            f"{n_classes}. Use validation_split='stratified' or disable "
            "early_stopping."
        )
    n_val = int(np.floor(fraction * n_classes + 0.5))
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


def _stratified_split(codes, fraction, seed):
    """Stratified hold-out (a plain shuffle when a class is too small)."""
    counts = np.bincount(codes)
    stratify = counts.min() >= 2 and int(fraction * len(codes)) >= len(counts)
    splitter_cls = StratifiedShuffleSplit if stratify else ShuffleSplit
    splitter = splitter_cls(n_splits=1, test_size=fraction, random_state=seed)
    train, val = next(
        splitter.split(np.zeros((len(codes), 1)), codes if stratify else None)
    )
    if np.bincount(codes[val]).max(initial=0) < 2:
        raise ValueError(
            "early_stopping=True needs a validation set holding at least two samples "
            f"of some class, but validation_fraction={fraction} of "
            f"{len(codes)} samples gives {len(val)} samples with no repeated class. "
            "Increase validation_fraction, provide more data, or disable early_stopping."
        )
    return train, val
