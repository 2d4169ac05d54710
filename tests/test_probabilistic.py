"""Hedged instance embeddings: the loss against NumPy loops, the backbone and
the estimator's uncertainty API."""

import copy
import functools

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.special import expit
from sklearn.base import clone
from sklearn.datasets import load_digits
from torch.func import functional_call

from sklearn_dml import HedgedInstanceEmbedder
from sklearn_dml.backbones._gaussian import GaussianHead
from sklearn_dml.backbones._mlp import ResidualMLP
from sklearn_dml.losses import HedgedInstanceLoss

MU = np.array(
    [
        [0.9, 0.1, -0.3],
        [0.7, 0.4, 0.2],
        [-0.2, 0.8, 0.5],
        [0.1, 0.6, -0.7],
        [0.5, -0.5, 0.4],
    ]
)
LOG_VAR = np.array(
    [
        [-2.0, -1.5, -3.0],
        [-1.0, -2.5, -2.0],
        [-0.5, -1.0, -1.5],
        [-3.0, -2.0, -1.0],
        [-1.2, -0.8, -2.2],
    ]
)
LABELS = [0, 0, 1, 1, 0]
K = 3


def _noise(seed=0):
    return np.random.default_rng(seed).normal(size=(K,) + MU.shape)


def _t(x, requires_grad=False):
    return torch.tensor(x, dtype=torch.float64, requires_grad=requires_grad)


def _loss(**params):
    loss = HedgedInstanceLoss(n_samples=K, **params).double()
    return loss


# ---------------------------------------------------------------- references
def np_match_probability(mu, log_var, eps, i, j, a, b):
    """Average over the K x K sample combinations, one at a time."""
    sd = np.exp(0.5 * log_var)
    total = 0.0
    for s in range(eps.shape[0]):
        for t in range(eps.shape[0]):
            z_i = mu[i] + sd[i] * eps[s, i]
            z_j = mu[j] + sd[j] * eps[t, j]
            d = np.sqrt(np.sum((z_i - z_j) ** 2))
            total += 1.0 / (1.0 + np.exp(a * d - b))
    return total / eps.shape[0] ** 2


def np_kl(mu, log_var):
    """KL(N(mu, diag exp(log_var)) || N(0, I)) by numerical integration."""
    return sum(_np_kl_1d(float(m), float(lv)) for m, lv in zip(mu, log_var))


@functools.cache
def _np_kl_1d(m, log_var):
    # One coordinate; cached, as the tests integrate the same few (MU, LOG_VAR)
    # entries many times.
    sd = np.exp(0.5 * log_var)
    p, q = stats.norm(m, sd), stats.norm(0.0, 1.0)

    def f(x):
        return p.pdf(x) * (p.logpdf(x) - q.logpdf(x))

    value, _ = integrate.quad(f, m - 12 * sd, m + 12 * sd, limit=200)
    return value


def np_loss(mu, log_var, labels, eps, a, b, beta, pairs=None):
    n = mu.shape[0]
    if pairs is None:
        pos = [
            (i, j)
            for i in range(n)
            for j in range(n)
            if i != j and labels[i] == labels[j]
        ]
        neg = [(i, j) for i in range(n) for j in range(n) if labels[i] != labels[j]]
    else:
        pos, neg = pairs
    loss = 0.0
    if pos:
        loss += np.mean(
            [
                -np.log(np_match_probability(mu, log_var, eps, i, j, a, b))
                for i, j in pos
            ]
        )
    if neg:
        loss += np.mean(
            [
                -np.log(1 - np_match_probability(mu, log_var, eps, i, j, a, b))
                for i, j in neg
            ]
        )
    kl = np.mean([np_kl(mu[i], log_var[i]) for i in range(n)])
    return loss + beta * kl


# --------------------------------------------------------------------- loss
@pytest.mark.parametrize("a, b, beta", [(5.0, 2.5, 1e-4), (2.0, -0.5, 0.3)])
def test_loss_matches_numpy(a, b, beta):
    loss = _loss(init_scale=a, init_bias=b, beta=beta)
    eps = _noise()
    got = loss.loss_from_noise(_t(MU), _t(LOG_VAR), torch.tensor(LABELS), _t(eps))
    expected = np_loss(MU, LOG_VAR, LABELS, eps, a, b, beta)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_kl_term_matches_numerical_integration():
    # The loss with beta=1 minus the loss with beta=0 is the mean KL.
    eps = _noise()
    args = (_t(MU), _t(LOG_VAR), torch.tensor(LABELS), _t(eps))
    with_kl = _loss(beta=1.0).loss_from_noise(*args).item()
    without = _loss(beta=0.0).loss_from_noise(*args).item()
    expected = np.mean([np_kl(MU[i], LOG_VAR[i]) for i in range(len(MU))])
    assert with_kl - without == pytest.approx(expected, rel=1e-6)
    assert expected > 0


def test_forward_draws_standard_normal_noise_from_the_torch_generator():
    loss = _loss(init_scale=3.0, init_bias=1.0)
    emb = torch.cat([_t(MU), _t(LOG_VAR)], dim=1)
    torch.manual_seed(7)
    eps = torch.randn((K,) + MU.shape, dtype=torch.float64)
    torch.manual_seed(7)
    got = loss(emb, torch.tensor(LABELS))
    expected = np_loss(MU, LOG_VAR, LABELS, eps.numpy(), 3.0, 1.0, 1e-4)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # Same seed, same value; another seed, another value.
    torch.manual_seed(7)
    assert loss(emb, torch.tensor(LABELS)).item() == got.item()
    torch.manual_seed(8)
    assert loss(emb, torch.tensor(LABELS)).item() != got.item()


def test_loss_on_given_pairs_and_triplets():
    loss = _loss(init_scale=4.0, init_bias=2.0)
    eps = _noise(3)
    args = (_t(MU), _t(LOG_VAR), torch.tensor(LABELS), _t(eps))
    pairs = (
        torch.tensor([0, 2]),
        torch.tensor([1, 3]),
        torch.tensor([0]),
        torch.tensor([3]),
    )
    got = loss.loss_from_noise(*args, indices_tuple=pairs).item()
    expected = np_loss(
        MU, LOG_VAR, LABELS, eps, 4.0, 2.0, 1e-4, pairs=([(0, 1), (2, 3)], [(0, 3)])
    )
    assert got == pytest.approx(expected, rel=1e-6)
    # A triplet (a, p, n) is its two pairs (a, p) and (a, n).
    triplets = (torch.tensor([4]), torch.tensor([1]), torch.tensor([2]))
    got = loss.loss_from_noise(*args, indices_tuple=triplets).item()
    expected = np_loss(
        MU, LOG_VAR, LABELS, eps, 4.0, 2.0, 1e-4, pairs=([(4, 1)], [(4, 2)])
    )
    assert got == pytest.approx(expected, rel=1e-6)


def test_batch_without_positive_pairs_keeps_the_negative_term():
    loss = _loss()
    eps = _noise()
    labels = [0, 1, 2, 3, 4]
    got = loss.loss_from_noise(_t(MU), _t(LOG_VAR), torch.tensor(labels), _t(eps))
    expected = np_loss(MU, LOG_VAR, labels, eps, 5.0, 2.5, 1e-4)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_gradcheck_float64():
    loss = _loss(beta=0.1)
    labels = torch.tensor(LABELS)

    def f(embeddings, log_scale, bias):
        torch.manual_seed(0)  # the same noise at every call
        params = {"log_scale": log_scale, "bias": bias}
        return functional_call(loss, params, (embeddings, labels))

    inputs = (
        _t(np.concatenate([MU, LOG_VAR], axis=1), True),
        _t(np.log(3.0), True),
        _t(1.5, True),
    )
    assert torch.autograd.gradcheck(f, inputs)


def test_scale_and_bias_are_learnable_and_positive():
    loss = HedgedInstanceLoss(init_scale=2.0, init_bias=-1.0)
    names = {name for name, _ in loss.named_parameters()}
    assert names == {"log_scale", "bias"}
    assert loss.scale == pytest.approx(2.0)
    with torch.no_grad():
        loss.log_scale.fill_(-50.0)
    assert loss.scale > 0
    loss.configure(3, 4)  # resets to the initial values
    assert loss.scale == pytest.approx(2.0) and loss.bias.item() == -1.0
    assert clone(loss).get_params() == loss.get_params()


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"n_samples": 0}, ValueError, "'n_samples' parameter of HedgedInstanceLoss"),
        ({"n_samples": 2.5}, TypeError, "'n_samples' parameter .* must be an int"),
        ({"beta": -1.0}, ValueError, r"'beta' parameter .* range \[0, inf\)"),
        ({"init_scale": 0.0}, ValueError, r"'init_scale' parameter .* \(0, inf\)"),
        ({"init_scale": float("inf")}, ValueError, "'init_scale' parameter"),
        ({"init_bias": "x"}, TypeError, "'init_bias' parameter of HedgedInstanceLoss"),
        ({"init_bias": float("nan")}, ValueError, "'init_bias' parameter"),
    ],
)
def test_loss_bad_params(params, error, match):
    with pytest.raises(error, match=match):
        HedgedInstanceLoss(**params)
    loss = HedgedInstanceLoss(init_scale=2.0)
    with pytest.raises(error, match=match):
        loss.set_params(**params)
    assert loss.get_params() == HedgedInstanceLoss(init_scale=2.0).get_params()


def test_loss_needs_an_even_number_of_columns():
    with pytest.raises(ValueError, match="odd number of columns, 3"):
        HedgedInstanceLoss()(torch.zeros(4, 3), torch.tensor([0, 0, 1, 1]))


# ----------------------------------------------------------------- backbone
def test_gaussian_head_modes():
    torch.manual_seed(0)
    net = GaussianHead.from_sizes(6, 3, hidden_layer_sizes=(8,), init_log_variance=-2.0)
    x = torch.randn(4, 6)
    out = net(x)  # training mode
    mu, log_var = net.moments(x)
    assert out.shape == (4, 6)
    assert torch.equal(out, torch.cat([mu, log_var], dim=1))
    assert torch.allclose(mu.norm(dim=1), torch.ones(4))
    assert torch.equal(log_var, torch.full((4, 3), -2.0))
    net.eval()
    assert torch.equal(net(x), mu)


def test_gaussian_head_rejects_mismatched_networks():
    net = GaussianHead(torch.nn.Linear(5, 3), torch.nn.Linear(5, 2))
    with pytest.raises(
        ValueError, match=r"log-variance network returned shape \(2, 2\)"
    ):
        net.moments(torch.zeros(2, 5))


# ---------------------------------------------------------------- estimator
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:400] / 16).astype(np.float64), y[:400]


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    return HedgedInstanceEmbedder(
        n_components=8, hidden_layer_sizes=(32,), max_iter=3, random_state=0
    ).fit(X, y)


def test_transform_gives_the_means_without_sampling(fitted, digits):
    X, _ = digits
    Z = fitted.transform(X[:20])
    assert Z.dtype == np.float32 and Z.shape == (20, 8)
    np.testing.assert_array_equal(Z, fitted.transform(X[:20]))
    with torch.no_grad():
        mu, _ = fitted.backbone_.moments(torch.tensor(X[:20], dtype=torch.float32))
    np.testing.assert_allclose(Z, mu.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-5)


def test_transform_variance(fitted, digits):
    X, _ = digits
    V = fitted.transform_variance(X[:20])
    assert V.shape == (20, 8) and V.dtype == np.float32
    assert np.all(V > 0)
    with torch.no_grad():
        _, log_var = fitted.backbone_.moments(torch.tensor(X[:20], dtype=torch.float32))
    np.testing.assert_allclose(V, np.exp(log_var.numpy()), rtol=1e-5)
    # Variances differ between samples: the network learned per-sample spreads.
    assert np.ptp(V.mean(axis=1)) > 0
    # Inference leaves the fitted backbone in evaluation mode.
    assert not fitted.backbone_.training


def test_match_probability_and_uncertainty(fitted, digits):
    X, y = digits
    pairs = np.stack([X[:50], X[50:100]], axis=1)
    p = fitted.match_probability(pairs)
    assert p.shape == (50,) and np.all((p > 0) & (p < 1))
    np.testing.assert_array_equal(p, fitted.match_probability(pairs))
    assert not np.array_equal(p, fitted.match_probability(pairs, random_state=1))
    same = y[:50] == y[50:100]
    # Same-class pairs match more often than different-class pairs.
    assert p[same].mean() > p[~same].mean()
    eta = fitted.uncertainty(X[:30], n_samples=4)
    assert eta.shape == (30,) and np.all((eta > 0) & (eta < 1))
    np.testing.assert_allclose(
        eta, 1 - fitted.match_probability(np.stack([X[:30], X[:30]], 1), n_samples=4)
    )


def test_match_probability_against_numpy_monte_carlo(fitted, digits):
    X, _ = digits
    pairs = np.stack([X[:6], X[6:12]], axis=1)
    got = fitted.match_probability(pairs, n_samples=200)
    mu_a, mu_b = fitted.transform(X[:6]), fitted.transform(X[6:12])
    sd_a = np.sqrt(fitted.transform_variance(X[:6]))
    sd_b = np.sqrt(fitted.transform_variance(X[6:12]))
    a, b = fitted.loss_.scale, fitted.loss_.bias.item()
    rng = np.random.default_rng(5)
    expected = []
    for i in range(6):
        z_a = mu_a[i] + sd_a[i] * rng.normal(size=(300, 8))
        z_b = mu_b[i] + sd_b[i] * rng.normal(size=(300, 8))
        expected.append(np.mean(expit(-a * np.linalg.norm(z_a - z_b, axis=1) + b)))
    np.testing.assert_allclose(got, expected, atol=0.03)


def test_vanishing_variance_gives_the_point_match_probability(digits):
    X, y = digits
    emb = HedgedInstanceEmbedder(
        n_components=8,
        hidden_layer_sizes=(16,),
        init_log_variance=-40.0,
        n_samples=2,
        max_iter=1,
        random_state=0,
    ).fit(X, y)
    pairs = np.stack([X[:10], X[10:20]], axis=1)
    a, b = emb.loss_.scale, emb.loss_.bias.item()
    expected = expit(-a * emb.pair_distance(pairs) + b)
    np.testing.assert_allclose(emb.match_probability(pairs), expected, atol=1e-5)
    np.testing.assert_allclose(emb.uncertainty(X[:5]), 1 - expit(b), atol=1e-5)


def test_training_learns_scale_bias_and_variances(fitted):
    loss = HedgedInstanceLoss()
    assert fitted.loss_.scale != pytest.approx(loss.scale)
    assert fitted.loss_.bias.item() != pytest.approx(loss.bias.item())
    assert fitted.loss_curve_[-1] < fitted.loss_curve_[0]


def test_same_random_state_same_model(digits):
    X, y = digits
    params = dict(n_components=4, hidden_layer_sizes=(8,), max_iter=2, n_samples=2)
    one = HedgedInstanceEmbedder(random_state=3, **params).fit(X, y)
    two = HedgedInstanceEmbedder(random_state=3, **params).fit(X, y)
    three = HedgedInstanceEmbedder(random_state=4, **params).fit(X, y)
    np.testing.assert_array_equal(one.transform(X), two.transform(X))
    np.testing.assert_array_equal(one.transform_variance(X), two.transform_variance(X))
    assert one.loss_curve_ == two.loss_curve_
    assert not np.array_equal(one.transform(X), three.transform(X))


def test_user_backbone_is_the_mean_network(digits):
    X, y = digits
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(
        torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5)
    )
    before = copy.deepcopy(backbone.state_dict())
    emb = HedgedInstanceEmbedder(
        backbone=backbone, hidden_layer_sizes=(8,), max_iter=1, random_state=0
    )
    emb.fit(X, y)
    assert emb.transform(X[:3]).shape == (3, 5)
    assert emb.transform_variance(X[:3]).shape == (3, 5)
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, before[key])
    assert isinstance(emb.backbone_.mean, torch.nn.Sequential)


def test_default_mean_network_is_the_residual_mlp(fitted):
    assert isinstance(fitted.backbone_, GaussianHead)
    assert isinstance(fitted.backbone_.mean, ResidualMLP)
    assert fitted.backbone_.mean.initialized


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"n_samples": 0}, ValueError, "'n_samples' parameter"),
        ({"beta": -0.1}, ValueError, "'beta' parameter"),
        (
            {"init_log_variance": "low"},
            TypeError,
            "'init_log_variance' parameter",
        ),
        ({"init_log_variance": np.inf}, ValueError, "'init_log_variance' parameter"),
        ({"loss_learning_rate": 0.0}, ValueError, "'loss_learning_rate' parameter"),
        ({"nested_dims": (4,)}, ValueError, "does not support nested_dims=\\(4,\\)"),
        ({"mixup": "embedding"}, ValueError, "does not support mixup='embedding'"),
        (
            {"energy_confusion": 0.5},
            ValueError,
            "does not support energy_confusion=0.5",
        ),
        ({"procsim": True}, ValueError, "does not support procsim=True"),
        (
            {"cross_batch_memory": 16},
            ValueError,
            "does not support cross_batch_memory=16",
        ),
    ],
)
def test_bad_params(digits, params, error, match):
    X, y = digits
    with pytest.raises(error, match=match):
        HedgedInstanceEmbedder(max_iter=1, **params).fit(X, y)


def test_bad_inference_arguments(fitted, digits):
    X, _ = digits
    with pytest.raises(ValueError, match="'n_samples' parameter"):
        fitted.uncertainty(X[:3], n_samples=0)
    with pytest.raises(ValueError, match="pairs must be an array of shape"):
        fitted.match_probability(X[:3])
