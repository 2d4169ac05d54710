"""Class-disjoint retrieval tasks: train on some classes, retrieve among others.

Every task is a function ``task(seed) -> (X_seen, y_seen, X_unseen, y_unseen)``
(float64 arrays; the classes of ``y_unseen`` never occur in ``y_seen``). The
seed draws all the randomness of a task: subsamples, image pools, noise and,
where a task has many classes, which of them are seen. Inputs are returned
unscaled (the runner, ``transfer_suite.py``, standardises them with a
``StandardScaler`` fitted on seen samples).

``TASKS`` maps a task name to ``(function, kind, short description)``.

Everything is built offline: scikit-learn's ``load_digits``, the 5,000-image
MNIST subset of ``sklearn_dml.datasets.load_mnist_5k`` (500 images per digit)
and synthetic data. ``pretrained_features`` trains a small torch classifier
once per seed and caches its features under ``benchmarks/.cache/``.

Run ``python benchmarks/transfer_tasks.py [--seed 0]`` to print the shape and
class counts of every task.
"""

import argparse
import functools
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits

from sklearn_dml.datasets import load_mnist_5k

CACHE = Path(__file__).parent / ".cache"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mnist():
    X, y = load_mnist_5k(return_X_y=True)
    X = np.asarray(X, dtype=np.float64)
    X.setflags(write=False)
    y = np.asarray(y, dtype=np.int64)
    y.setflags(write=False)
    return X, y


def _downsample(images):
    """Mean-pool ``(n, 28, 28)`` images to ``(n, 14, 14)``."""
    n = images.shape[0]
    return images.reshape(n, 14, 2, 14, 2).mean(axis=(2, 4))


def _out(X_seen, y_seen, X_unseen, y_unseen):
    return (
        np.ascontiguousarray(X_seen, dtype=np.float64),
        np.asarray(y_seen, dtype=np.float64),
        np.ascontiguousarray(X_unseen, dtype=np.float64),
        np.asarray(y_unseen, dtype=np.float64),
    )


def _split_by_class(X, y, seen_classes):
    seen = np.isin(y, seen_classes)
    return _out(X[seen], y[seen], X[~seen], y[~seen])


def _choose_seen(rng, n_classes):
    """Half of ``range(n_classes)``, drawn by ``rng``."""
    return np.sort(rng.permutation(n_classes)[: n_classes // 2])


def _digit_pools(rng, y, sizes):
    """Split the indices of each digit into consecutive pools of ``sizes``.

    Returns a list (one per pool) of dicts ``digit -> indices``.
    """
    pools = [{} for _ in sizes]
    for d in range(10):
        idx = rng.permutation(np.flatnonzero(y == d))
        start = 0
        for pool, size in zip(pools, sizes, strict=True):
            pool[d] = idx[start : start + size]
            start += size
    return pools


# --------------------------------------------------------------------------
# 1-2. digit splits of load_digits and MNIST-5k
# --------------------------------------------------------------------------


def _digits(seed, seen):
    X, y = load_digits(return_X_y=True)
    return _split_by_class(X.astype(np.float64), y, seen)


def digits_0_4(seed=0):
    """load_digits (8x8), seen digits 0-4, unseen 5-9 (no randomness)."""
    return _digits(seed, [0, 1, 2, 3, 4])


def digits_5_9(seed=0):
    """load_digits (8x8), seen digits 5-9, unseen 0-4 (no randomness)."""
    return _digits(seed, [5, 6, 7, 8, 9])


MNIST_PER_CLASS = 300


def _mnist_split(seed, seen):
    X, y = _mnist()
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [
            rng.choice(np.flatnonzero(y == d), MNIST_PER_CLASS, replace=False)
            for d in range(10)
        ]
    )
    keep.sort()
    return _split_by_class(X[keep], y[keep], seen)


def mnist_0_4(seed=0):
    """MNIST-5k subsampled to 300 images per digit (by the seed); seen 0-4."""
    return _mnist_split(seed, [0, 1, 2, 3, 4])


def mnist_5_9(seed=0):
    """MNIST-5k subsampled to 300 images per digit (by the seed); seen 5-9."""
    return _mnist_split(seed, [5, 6, 7, 8, 9])


# --------------------------------------------------------------------------
# 3. compositional pairs of MNIST digits
# --------------------------------------------------------------------------

PAIRS_PER_CLASS = 30


def _pairs(rng, represent, pool_seen, pool_unseen, per_class=PAIRS_PER_CLASS):
    """Ordered digit pairs ``(a, b)`` (class ``10 a + b``), 50 of the 100 seen.

    ``represent(indices)`` gives the representation of MNIST images (one row
    each); a sample is the concatenation of its two halves. Seen classes draw
    both halves from ``pool_seen`` and unseen ones from ``pool_unseen`` (dicts
    ``digit -> image indices``), so unseen classes only use images that no
    seen sample contains.
    """
    seen_classes = _choose_seen(rng, 100)
    parts = {True: ([], []), False: ([], [])}
    for c in range(100):
        a, b = divmod(c, 10)
        is_seen = c in seen_classes
        pool = pool_seen if is_seen else pool_unseen
        left = rng.choice(pool[a], per_class, replace=per_class > len(pool[a]))
        right = rng.choice(pool[b], per_class, replace=per_class > len(pool[b]))
        parts[is_seen][0].append(np.concatenate([left[:, None], right[:, None]], 1))
        parts[is_seen][1].append(np.full(per_class, c))
    out = []
    for is_seen in (True, False):
        idx = np.concatenate(parts[is_seen][0])
        out += [represent(idx[:, 0], idx[:, 1]), np.concatenate(parts[is_seen][1])]
    return _out(*out)


def mnist_pairs(seed=0):
    """Two MNIST digits side by side (each 14x14), class = ordered pair."""
    X, y = _mnist()
    rng = np.random.default_rng(seed)
    pool_seen, pool_unseen = _digit_pools(rng, y, (250, 250))
    small = _downsample(X.reshape(-1, 28, 28))

    def represent(left, right):
        # a 14 x 28 image, flattened row by row
        return np.concatenate([small[left], small[right]], axis=2).reshape(-1, 392)

    return _pairs(rng, represent, pool_seen, pool_unseen)


# --------------------------------------------------------------------------
# 4. MNIST digits under rotations
# --------------------------------------------------------------------------

N_ANGLES = 10
ROTATIONS_PER_CLASS = 30


def mnist_rotations(seed=0):
    """Class = (digit, rotation by one of 10 angles 0, 36, ..., 324 degrees).

    The 28x28 image is rotated (+- 5 degrees of jitter) and downsampled to
    14x14. 50 of the 100 classes are seen; seen and unseen classes draw their
    images from disjoint halves of each digit's images.
    """
    X, y = _mnist()
    rng = np.random.default_rng(seed)
    pools = _digit_pools(rng, y, (250, 250))
    seen_classes = _choose_seen(rng, 10 * N_ANGLES)
    images = X.reshape(-1, 28, 28)
    out = {True: ([], []), False: ([], [])}
    for c in range(10 * N_ANGLES):
        digit, k = divmod(c, N_ANGLES)
        is_seen = c in seen_classes
        idx = rng.choice(pools[0 if is_seen else 1][digit], ROTATIONS_PER_CLASS, False)
        angles = 360.0 * k / N_ANGLES + rng.uniform(-5, 5, ROTATIONS_PER_CLASS)
        rotated = np.stack(
            [
                ndimage.rotate(images[i], a, reshape=False, order=1, mode="constant")
                for i, a in zip(idx, angles, strict=True)
            ]
        )
        out[is_seen][0].append(_downsample(np.clip(rotated, 0, 255)).reshape(-1, 196))
        out[is_seen][1].append(np.full(ROTATIONS_PER_CLASS, c))
    return _out(
        np.concatenate(out[True][0]),
        np.concatenate(out[True][1]),
        np.concatenate(out[False][0]),
        np.concatenate(out[False][1]),
    )


# --------------------------------------------------------------------------
# 5-6. synthetic latent classes seen through a poor input geometry
# --------------------------------------------------------------------------

LATENT_CLASSES = 100
LATENT_PER_CLASS = 30
LATENT_DIM = 8


def _latent_classes(rng, spread):
    """Gaussian clusters in the latent space: ``(Z, y)``, 100 classes."""
    centres = rng.standard_normal((LATENT_CLASSES, LATENT_DIM))
    y = np.repeat(np.arange(LATENT_CLASSES), LATENT_PER_CLASS)
    Z = centres[y] + spread * rng.standard_normal((len(y), LATENT_DIM))
    return Z, y


def _finish_latent(rng, X, y):
    order = rng.permutation(X.shape[1])  # informative columns not first
    return _split_by_class(X[:, order], y, _choose_seen(rng, LATENT_CLASSES))


def latent_nonlinear(seed=0, *, spread=0.3, gain=1.5, nuisance_rank=4):
    """8-d latent Gaussian classes through a random 2-layer tanh network to 64
    dims; + 32 Gaussian distractor dims (driven by ``nuisance_rank`` shared
    factors plus independent noise) and 32 Student-t (df=2) distractor dims."""
    rng = np.random.default_rng(seed)
    Z, y = _latent_classes(rng, spread=spread)
    n = len(y)
    W1 = rng.standard_normal((LATENT_DIM, 64)) * gain / np.sqrt(LATENT_DIM)
    W2 = rng.standard_normal((64, 64)) * gain / np.sqrt(64)
    H = np.tanh(Z @ W1 + 0.5 * rng.standard_normal(64))
    informative = np.tanh(H @ W2 + 0.5 * rng.standard_normal(64))
    informative += 0.1 * rng.standard_normal(informative.shape)
    # random scales per feature (standardisation removes them, as in practice)
    informative *= rng.uniform(0.2, 1.0, 64)
    factors = rng.standard_normal((n, nuisance_rank))
    gaussian = factors @ rng.standard_normal((nuisance_rank, 32))
    gaussian += 0.3 * rng.standard_normal((n, 32))
    heavy = rng.standard_t(2, (n, 32))
    return _finish_latent(rng, np.hstack([informative, gaussian, heavy]), y)


def latent_distractors(seed=0, *, nuisance_scale=3.0, noise_scale=1.0):
    """8-d latent Gaussian classes, linearly mixed into 20 informative dims;
    200 distractor dims driven by 16 correlated nuisance factors of larger
    variance (so that they dominate distances and principal axes)."""
    rng = np.random.default_rng(seed)
    Z, y = _latent_classes(rng, spread=0.3)
    A = rng.standard_normal((LATENT_DIM, 20)) / np.sqrt(LATENT_DIM)
    informative = Z @ A + 0.1 * rng.standard_normal((len(y), 20))
    nuisance = nuisance_scale * rng.standard_normal((len(y), 16))
    B = rng.standard_normal((16, 200)) / np.sqrt(16)
    distractors = nuisance @ B + noise_scale * rng.standard_normal((len(y), 200))
    return _finish_latent(rng, np.hstack([informative, distractors]), y)


# --------------------------------------------------------------------------
# 7. 1-D signals
# --------------------------------------------------------------------------

SIGNAL_LENGTH = 64
SIGNAL_PER_CLASS = 40
SHAPES = ("sine", "square", "sawtooth", "triangle", "chirp", "pulses")
# frequency bands in cycles per window
BANDS = ((1.5, 2.0), (2.6, 3.3), (4.0, 5.0), (6.2, 7.6), (9.2, 11.2))
ENVELOPES = ("constant", "damped")


def _wave(shape, cycles):
    """Unit-amplitude waveform of phase ``cycles`` (in cycles)."""
    frac = np.mod(cycles, 1.0)
    if shape in ("sine", "chirp"):
        return np.sin(2 * np.pi * cycles)
    if shape == "square":
        return np.where(frac < 0.5, 1.0, -1.0)
    if shape == "sawtooth":
        return 2 * frac - 1
    if shape == "triangle":
        return 1 - 4 * np.abs(frac - 0.5)
    if shape == "pulses":  # narrow Gaussian pulses, zero mean
        bump = np.exp(-0.5 * ((frac - 0.5) / 0.06) ** 2)
        return 2.5 * (bump - 0.15)
    raise ValueError(shape)


def signals(seed=0, *, length=SIGNAL_LENGTH, noise=0.15, per_class=SIGNAL_PER_CLASS):
    """Class = (waveform shape, frequency band, envelope): 6 x 5 x 2 = 60.

    Random frequency within the band, phase, amplitude (0.6-1.4), time shift
    of the envelope, DC offset and additive Gaussian noise (std 0.15).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(length) / length
    classes = [(s, b, e) for s in SHAPES for b in BANDS for e in ENVELOPES]
    X, y = [], []
    for c, (shape, (lo, hi), envelope) in enumerate(classes):
        n = per_class
        f = rng.uniform(lo, hi, (n, 1))
        phase = rng.uniform(0, 1, (n, 1))
        shift = rng.uniform(-0.15, 0.15, (n, 1))
        ts = t[None, :] - shift
        if shape == "chirp":  # frequency rising from f to 2 f over the window
            cycles = f * (ts + ts**2 / 2) + phase
        else:
            cycles = f * ts + phase
        wave = _wave(shape, cycles)
        if envelope == "damped":
            wave = wave * np.exp(-4.0 * np.clip(ts, 0, None))
        amplitude = rng.uniform(0.6, 1.4, (n, 1))
        offset = rng.normal(0, 0.2, (n, 1))
        X.append(amplitude * wave + offset + noise * rng.standard_normal(wave.shape))
        y.append(np.full(n, c))
    X, y = np.concatenate(X), np.concatenate(y)
    return _split_by_class(X, y, _choose_seen(rng, len(classes)))


# --------------------------------------------------------------------------
# 8. tabular data with irrelevant features
# --------------------------------------------------------------------------

TABULAR_CLASSES = 60
TABULAR_PER_CLASS = 40


def tabular_irrelevant(seed=0, *, class_sep=2.0):
    """make_classification-like: 60 classes on distinct vertices of a 6-d
    hypercube (side ``2 class_sep``), each with its own random covariance; 6 informative, 6
    redundant (linear combinations) and 88 irrelevant features of mixed types
    (Gaussian, uniform, log-normal, counts, binary), columns shuffled."""
    rng = np.random.default_rng(seed)
    n_inf = 6
    vertices = rng.permutation(2**n_inf)[:TABULAR_CLASSES]
    signs = ((vertices[:, None] >> np.arange(n_inf)) & 1) * 2.0 - 1.0
    centres = class_sep * signs + 0.2 * rng.standard_normal(signs.shape)
    y = np.repeat(np.arange(TABULAR_CLASSES), TABULAR_PER_CLASS)
    n = len(y)
    covs = rng.uniform(-0.5, 0.5, (TABULAR_CLASSES, n_inf, n_inf))
    covs += 0.4 * np.eye(n_inf)
    informative = centres[y] + np.einsum(
        "nij,nj->ni", covs[y], rng.standard_normal((n, n_inf))
    )
    redundant = informative @ rng.uniform(-1, 1, (n_inf, 6))
    irrelevant = np.hstack(
        [
            rng.standard_normal((n, 40)) * rng.uniform(0.5, 5, 40),
            rng.uniform(-1, 1, (n, 16)),
            rng.lognormal(0, 1, (n, 12)),
            rng.poisson(rng.uniform(0.5, 6, 12), (n, 12)),
            rng.random((n, 8)) < rng.uniform(0.1, 0.5, 8),
        ]
    )
    X = np.hstack([informative, redundant, irrelevant]).astype(np.float64)
    X = X[:, rng.permutation(X.shape[1])]
    return _split_by_class(X, y, _choose_seen(rng, TABULAR_CLASSES))


# --------------------------------------------------------------------------
# 9. pairs of already good embeddings
# --------------------------------------------------------------------------

PRETRAINED_DIM = 32
PRETRAINED_VERSION = 1  # bump when the recipe below changes: invalidates the cache


def _pretrained_features(seed, train_idx):
    """Penultimate-layer (32-d, ReLU) features of every MNIST-5k image from an
    MLP 784-256-32-10 trained to classify the digits of ``train_idx``; cached
    under ``benchmarks/.cache/`` keyed by seed."""
    path = CACHE / f"pretrained_mnist_v{PRETRAINED_VERSION}_seed{seed}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["features"]
    import torch
    from torch import nn

    X, y = _mnist()
    torch.manual_seed(seed)
    body = nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, PRETRAINED_DIM), nn.ReLU()
    )
    net = nn.Sequential(body, nn.Linear(PRETRAINED_DIM, 10))
    Xt = torch.tensor(X / 255.0, dtype=torch.float32)
    yt = torch.as_tensor(np.array(y))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    tr = torch.as_tensor(train_idx)
    net.train()
    for _ in range(30):
        for batch in tr[torch.randperm(len(tr), generator=gen)].split(64):
            loss = nn.functional.cross_entropy(net(Xt[batch]), yt[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        features = body(Xt).numpy().astype(np.float64)
    CACHE.mkdir(exist_ok=True)
    ignore = CACHE / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    tmp = path.with_suffix(f".{np.random.default_rng().integers(1 << 30)}.tmp.npz")
    np.savez(tmp, features=features)
    tmp.replace(path)  # atomic: parallel workers may race
    return features


def pretrained_features(seed=0):
    """The ``mnist_pairs`` composite on 32-d features of a digit classifier.

    Per digit, 200 images train the classifier (all 10 digits), 150 feed the
    seen pair classes and 150 the unseen ones, so that no half-image of a
    task sample was used to train the feature extractor. Each half is the
    L2-normalised 32-d feature vector of its image.
    """
    _, y = _mnist()
    rng = np.random.default_rng(seed)
    train, pool_seen, pool_unseen = _digit_pools(rng, y, (200, 150, 150))
    features = _pretrained_features(seed, np.sort(np.concatenate(list(train.values()))))
    # L2-normalised, as embeddings usually are (cosine geometry)
    features = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)

    def represent(left, right):
        return np.hstack([features[left], features[right]])

    return _pairs(rng, represent, pool_seen, pool_unseen)


# --------------------------------------------------------------------------
# 10. few classes: the same kinds of data with 10 or 20 classes
# --------------------------------------------------------------------------


def few_classes(task, n_classes):
    """``task`` restricted to ``n_classes`` of its classes, half of them seen.

    The classes are drawn by the seed among all the classes of the task (seen
    and unseen alike), as are the seen ones among them, so that a seed gives
    one small class-disjoint task of the same kind of data.
    """

    def restricted(seed=0):
        X_seen, y_seen, X_unseen, y_unseen = task(seed)
        X = np.vstack([X_seen, X_unseen])
        y = np.concatenate([y_seen, y_unseen])
        rng = np.random.default_rng([seed, n_classes])
        kept = rng.permutation(np.unique(y))[:n_classes]
        rows = np.isin(y, kept)
        return _split_by_class(X[rows], y[rows], kept[: n_classes // 2])

    restricted.__name__ = f"{task.__name__}_{n_classes}cls"
    restricted.__doc__ = (
        f"{task.__name__} restricted to {n_classes} classes, half seen."
    )
    return restricted


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------

TASKS = {
    "digits_0-4": (
        digits_0_4,
        "images, digit split",
        "load_digits 8x8; seen digits 0-4, unseen 5-9",
    ),
    "digits_5-9": (
        digits_5_9,
        "images, digit split",
        "load_digits 8x8; seen digits 5-9, unseen 0-4",
    ),
    "mnist_0-4": (
        mnist_0_4,
        "images, digit split",
        "MNIST-5k 28x28, 300 per digit; seen digits 0-4, unseen 5-9",
    ),
    "mnist_5-9": (
        mnist_5_9,
        "images, digit split",
        "MNIST-5k 28x28, 300 per digit; seen digits 5-9, unseen 0-4",
    ),
    "mnist_pairs": (
        mnist_pairs,
        "images, compositional",
        "two MNIST digits side by side (14x14 each), class = ordered pair; "
        "disjoint image pools for seen / unseen",
    ),
    "mnist_rotations": (
        mnist_rotations,
        "images, transformation",
        "MNIST 14x14, class = (digit, one of 10 rotation angles)",
    ),
    "latent_nonlinear": (
        latent_nonlinear,
        "synthetic, nonlinear mixing",
        "8-d latent clusters through a random 2-layer tanh net to 64 dims, "
        "+ 32 Gaussian noise dims (4 shared nuisance factors) + 32 Student-t(2)",
    ),
    "latent_distractors": (
        latent_distractors,
        "synthetic, linear + distractors",
        "8-d latent clusters mixed into 20 dims, + 200 dims of correlated "
        "high-variance nuisance",
    ),
    "signals": (
        signals,
        "1-D signals",
        "length 64; class = (6 shapes x 5 frequency bands x 2 envelopes); random "
        "phase, amplitude, shift, offset, noise",
    ),
    "tabular_irrelevant": (
        tabular_irrelevant,
        "tabular, irrelevant features",
        "6 informative + 6 redundant + 88 irrelevant mixed-type features",
    ),
    "pretrained_features": (
        pretrained_features,
        "pretrained embeddings, compositional",
        "mnist_pairs on 2 x 32-d L2-normalised penultimate features of an MLP "
        "digit classifier trained on other MNIST images",
    ),
}


FEW_CLASS_BASES = (
    "signals",
    "latent_distractors",
    "tabular_irrelevant",
    "pretrained_features",
)
for _base in FEW_CLASS_BASES:
    for _n in (10, 20):
        _function, _kind, _ = TASKS[_base]
        TASKS[f"{_base}_{_n}cls"] = (
            few_classes(_function, _n),
            f"{_kind}, few classes",
            f"{_base} restricted to {_n} of its classes drawn by the seed, "
            f"{_n // 2} seen",
        )


def describe(seed=0):
    """Shape and class counts of every task (printed)."""
    for name, (func, kind, _) in TASKS.items():
        tic = time.perf_counter()
        X_s, y_s, X_u, y_u = func(seed)
        assert not set(np.unique(y_s)) & set(np.unique(y_u)), name
        cs, cu = np.unique(y_s, return_counts=True), np.unique(y_u, return_counts=True)
        print(
            f"{name:20s} {kind:36s} seen {X_s.shape} {len(cs[0])} classes "
            f"({cs[1].min()}-{cs[1].max()} per class); unseen {X_u.shape} "
            f"{len(cu[0])} classes ({cu[1].min()}-{cu[1].max()}); "
            f"{time.perf_counter() - tic:.1f} s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    describe(parser.parse_args().seed)
