"""Hand-built batches, brute-force NumPy references and checks shared by the loss tests."""

# The references loop over samples, pairs and classes in plain NumPy (angles
# with ``arccos``/``cos``, softmax with explicit sums), an independent route
# from the vectorised torch code under test.

import numpy as np
import torch
from scipy.special import logsumexp

# ------------------------------------------------------------------ batches
# A hand-built batch: three classes, the last one a single sample.
X = np.array(
    [
        [1.0, 0.2, -0.1],
        [0.8, 0.5, 0.3],
        [0.9, -0.4, 0.2],
        [-0.2, 1.0, 0.4],
        [0.1, 0.7, -0.6],
        [-0.5, 0.3, 1.0],
        [0.4, 0.4, 0.4],
    ]
)
# The same batch with its last row moved off the diagonal.
X_TILTED = np.vstack([X[:6], [[0.4, 0.5, 0.3]]])
Y = [0, 0, 0, 1, 1, 2, 1]
Y_SINGLETON = [0, 0, 1, 1, 2, 2, 3]  # class 3 has one sample
Y_FULL = [0, 0, 0, 1, 1, 2, 2]  # every class has at least two samples

# Proxies for the batch: class 3 of the 4 proxies has no sample in Y.
N_CLASSES = 4
_RNG = np.random.default_rng(7)
PROXIES = _RNG.normal(size=(N_CLASSES, 3))
PROXY_CENTERS = _RNG.normal(size=(N_CLASSES, 3, 3))  # three centres per class

# A mined triplet tuple on the batch.
TRIPLETS = (
    torch.tensor([0, 0, 3, 1]),
    torch.tensor([1, 2, 4, 0]),
    torch.tensor([3, 5, 0, 6]),
)


def t64(x, requires_grad=False):
    """``x`` as a float64 tensor."""
    return torch.tensor(x, dtype=torch.float64, requires_grad=requires_grad)


def l64(labels):
    """``labels`` as an int64 tensor."""
    return torch.tensor(labels, dtype=torch.long)


def configured(loss, num_classes=3, embedding_size=3):
    """``loss`` configured for the sizes, in float64."""
    loss.configure(num_classes, embedding_size)
    return loss.double()


def with_proxies(loss, proxies):
    """``loss`` configured for ``proxies``, whose values it then takes (float64)."""
    proxies = np.asarray(proxies)
    loss = configured(loss, proxies.shape[0], proxies.shape[-1])
    with torch.no_grad():
        loss.proxies.copy_(torch.from_numpy(proxies))
    return loss


# --------------------------------------------------------- pair references
def unit(x):
    """``x`` scaled to unit length along its last axis (a vector or rows)."""
    return x / np.sqrt((x**2).sum(axis=-1, keepdims=True))


def cosine(u, v):
    return float(np.dot(u, v) / np.sqrt(np.dot(u, u) * np.dot(v, v)))


def np_matrix(x, kind):
    """Pairwise comparison with explicit loops, on unit rows but for "dot".

    "lp": Euclidean, "sq": squared Euclidean, "cos": cosine, "snr": SNR
    distance, "dot": the dot product of the raw rows.
    """
    n = len(x)
    out = np.zeros((n, n))
    u = unit(x)
    for i in range(n):
        for j in range(n):
            if kind == "lp":
                out[i, j] = np.sqrt(np.sum((u[i] - u[j]) ** 2))
            elif kind == "sq":
                out[i, j] = np.sum((u[i] - u[j]) ** 2)
            elif kind == "cos":
                out[i, j] = u[i] @ u[j]
            elif kind == "dot":
                out[i, j] = x[i] @ x[j]
            elif kind == "snr":
                out[i, j] = np.var(u[i] - u[j], ddof=1) / np.var(u[i], ddof=1)
    return out


def partners(labels):
    """For each sample, the indices of its positives and of its negatives."""
    n = len(labels)
    pos = [[j for j in range(n) if j != i and labels[j] == labels[i]] for i in range(n)]
    neg = [[j for j in range(n) if labels[j] != labels[i]] for i in range(n)]
    return pos, neg


def mean_nonzero(values):
    values = [v for v in values if v > 0]
    return sum(values) / len(values) if values else 0.0


def np_circle(x, labels, m, gamma, frozen_x=None):
    s = np_matrix(x, "cos")
    f = np_matrix(x if frozen_x is None else frozen_x, "cos")
    pos, neg = partners(labels)
    terms = []
    for i in range(len(x)):
        if not pos[i] or not neg[i]:
            continue
        total = 0.0
        for p in pos[i]:
            for n in neg[i]:
                ap = max(0.0, 1 + m - f[i, p])
                an = max(0.0, f[i, n] + m)
                total += np.exp(
                    gamma * an * (s[i, n] - m) - gamma * ap * (s[i, p] - 1 + m)
                )
        terms.append(np.log1p(total))
    return mean_nonzero(terms)


def np_margin(x, labels, margin, beta, nu=0.0, mode=None, triplets=None):
    """mode: None (fixed beta), "global" or "class" (beta indexed by class)."""
    d = np_matrix(x, "lp")
    pos, neg = partners(labels)
    if triplets is None:
        triplets = [(a, p, n) for a in range(len(x)) for p in pos[a] for n in neg[a]]
    total, count, reg = 0.0, 0, 0.0
    for a, p, n in triplets:
        b = beta[labels[a]] if mode == "class" else (beta if mode is None else beta[0])
        hp = max(0.0, d[a, p] - b + margin)
        hn = max(0.0, b - d[a, n] + margin)
        total += hp + hn
        count += int(hp > 0) + int(hn > 0)
        reg += b
    value = total / count if count else 0.0
    if mode == "class" and count:
        value += nu * reg / count
    if mode == "global":
        value += nu * beta[0]
    return value


def np_angular(x, labels, alpha_deg):
    u = unit(x)
    t2 = np.tan(np.radians(alpha_deg)) ** 2
    pos, neg = partners(labels)
    terms = []
    for a in range(len(x)):
        for p in pos[a]:
            total = 0.0
            for n in neg[a]:
                total += np.exp(
                    4 * t2 * (u[a] + u[p]) @ u[n] - 2 * (1 + t2) * u[a] @ u[p]
                )
            terms.append(np.log1p(total))
    return np.mean(terms)


# ------------------------------------------------- proxy and softmax references
def np_weights(indices_tuple, n):
    """Per-sample weights of a tuple: count of appearances over the largest count."""
    if indices_tuple is None:
        return np.ones(n)
    counts = np.zeros(n)
    for t in indices_tuple:
        for i in t.tolist():
            counts[i] += 1
    return counts / counts.max()


def np_cross_entropy(logits, target):
    return logsumexp(logits) - logits[target]


def np_mean(terms, w):
    return sum(wi * ti for wi, ti in zip(w, terms)) / len(terms)


def np_margin_softmax(x, proxies, labels, kind, margin, scale, w=None):
    """kind: "lsoftmax", "sphereface", "cosface", "arcface" or "subcenter"."""
    terms = []
    for i in range(len(x)):
        logits = []
        for c, p in enumerate(proxies):
            if kind == "subcenter":
                cos = max(np.dot(unit(x[i]), unit(q)) for q in p)
            else:
                cos = np.dot(unit(x[i]), unit(p))
            if c == labels[i]:
                theta = np.arccos(np.clip(cos, -1, 1))
                if kind in ("lsoftmax", "sphereface"):
                    k = np.floor(theta * margin / np.pi)
                    cos = (-1) ** k * np.cos(margin * theta) - 2 * k
                elif kind == "cosface":
                    cos = cos - margin
                else:
                    m = np.radians(margin)
                    if theta <= np.pi - m:
                        cos = np.cos(theta + m)
                    else:
                        cos = cos - m * np.sin(m)
            if kind == "lsoftmax":
                cos *= np.linalg.norm(x[i]) * np.linalg.norm(p)
            elif kind == "sphereface":
                cos *= np.linalg.norm(x[i])
            logits.append(scale * cos)
        terms.append(np_cross_entropy(np.array(logits), labels[i]))
    return np_mean(terms, np.ones(len(x)) if w is None else w)


# ------------------------------------------------------------------ checks
def assert_zero_value_with_zero_grad(value, tensors):
    """``value`` is a scalar 0 whose gradient to each of ``tensors`` is 0 or absent."""
    assert value.ndim == 0 and value.item() == 0.0
    value.backward()
    for t in tensors:
        assert t.grad is None or (
            torch.isfinite(t.grad).all() and torch.count_nonzero(t.grad) == 0
        )


def assert_zero_with_zero_grad(loss, x, labels, indices_tuple=None):
    """``loss`` on the batch is an attached 0: zero gradient to ``x`` and parameters."""
    x = x.clone().requires_grad_(True)
    value = loss(x, labels, indices_tuple)
    assert value.requires_grad
    assert_zero_value_with_zero_grad(value, [x, *loss.parameters()])
    assert x.grad is not None


# --------------------------------------------------- pytorch-metric-learning
def import_pml():
    """pytorch-metric-learning with its distances and losses (the ``test`` extra)."""
    import pytorch_metric_learning.distances
    import pytorch_metric_learning.losses

    return pytorch_metric_learning


def balanced_batch(seed, n=24, d=6, n_classes=4, singleton=True):
    """A random batch with classes of equal size, plus a class of size one."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    labels = torch.arange(n) % n_classes
    labels = labels[torch.randperm(n, generator=gen)]
    if singleton:
        labels[-1] = n_classes  # a class of size one
    return x, labels


def random_labels_batch(seed, n=24, d=6, n_classes=5):
    """A random batch with random labels; the last class has one sample."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, n_classes - 1, (n,), generator=gen)
    labels[-1] = n_classes - 1  # a class of size one
    return x, labels


def value_and_grads(loss, x, labels, indices_tuple=None, params=()):
    """The loss value, its gradient to ``x`` and to each of ``params`` (NumPy)."""
    x = x.clone().requires_grad_(True)
    value = loss(x, labels, indices_tuple)
    value.backward()
    return value.item(), x.grad.numpy(), [p.grad.numpy().copy() for p in params]


def assert_same(ours, theirs, x, labels, indices_tuple=None, project=False):
    """Equal positive values and equal gradients to the embeddings."""
    v1, g1, _ = value_and_grads(ours, x, labels, indices_tuple)
    v2, g2, _ = value_and_grads(theirs, x, labels, indices_tuple)
    assert v1 > 0
    np.testing.assert_allclose(v1, v2, rtol=1e-9, atol=1e-12)
    if project:  # remove the radial part: ours differentiates through normalize
        u = x.numpy() / np.linalg.norm(x.numpy(), axis=1, keepdims=True)
        g2 = g2 - (g2 * u).sum(1, keepdims=True) * u
    np.testing.assert_allclose(g1, g2, rtol=1e-7, atol=1e-10)
