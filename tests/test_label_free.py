"""Label-free learning: the Barlow Twins loss and TLDREmbedder."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import make_pipeline

from sklearn_dml import TLDREmbedder
from sklearn_dml.embedders import _label_free
from sklearn_dml.losses import BarlowTwinsLoss

# ------------------------------------------------------------ Barlow Twins


def numpy_barlow_twins(a, b, redundancy_weight, epsilon=1e-5):
    def standardize(z):
        return (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + epsilon)

    a, b = standardize(a), standardize(b)
    n, d = a.shape
    total = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[r, i] * b[r, j] for r in range(n)) / n
            total += (1 - c) ** 2 if i == j else redundancy_weight * c**2
    return total


@pytest.mark.parametrize("redundancy_weight", [0.0051, 0.0, 1.0])
def test_barlow_twins_matches_numpy(redundancy_weight):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(9, 4))
    b = a + rng.normal(scale=0.5, size=(9, 4))
    loss = BarlowTwinsLoss(redundancy_weight=redundancy_weight)
    value = loss(torch.tensor(a), torch.tensor(b)).item()
    assert value == pytest.approx(numpy_barlow_twins(a, b, redundancy_weight))


def test_barlow_twins_gradients_and_invariances():
    rng = np.random.default_rng(1)
    a = torch.tensor(rng.normal(size=(8, 3)), requires_grad=True)
    b = torch.tensor(rng.normal(size=(8, 3)), requires_grad=True)
    loss = BarlowTwinsLoss(redundancy_weight=0.3)
    assert torch.autograd.gradcheck(loss, (a, b))
    # Standardisation: a per-dimension affine change of a view changes nothing.
    exact = BarlowTwinsLoss(redundancy_weight=0.3, epsilon=0.0)
    shifted = a * torch.tensor([2.0, 0.5, 3.0]) + 7.0
    assert exact(shifted, b).item() == pytest.approx(exact(a, b).item(), rel=1e-9)
    # Identical views with correlated dimensions: only the redundancy term.
    x = torch.tensor(rng.normal(size=(50, 1)))
    twin = torch.cat([x, x], dim=1)
    assert BarlowTwinsLoss(redundancy_weight=0.0)(twin, twin).item() < 1e-4
    assert BarlowTwinsLoss(redundancy_weight=1.0)(twin, twin).item() > 1.9


def test_barlow_twins_errors():
    loss = BarlowTwinsLoss()
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="at least 2 rows"):
        loss(torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="'redundancy_weight' parameter"):
        BarlowTwinsLoss(redundancy_weight=-1.0)


# ------------------------------------------------------------ TLDR

SMALL = dict(
    n_components=8,
    projector_layer_sizes=(128, 128),
    max_iter=20,
    batch_size=128,
    random_state=0,
)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16, y[:600]


def _neighbourhood_overlap(X, Z, k=10):
    """Mean share of each point's k input-space neighbours kept in the embedding."""

    def neighbours(A):
        return NearestNeighbors(n_neighbors=k + 1).fit(A).kneighbors(A)[1][:, 1:]

    a, b = neighbours(X), neighbours(Z)
    return np.mean([len(set(a[i]) & set(b[i])) / k for i in range(len(X))])


def test_tldr_keeps_neighbourhoods_because_of_its_neighbour_pairs(digits, monkeypatch):
    X, _ = digits
    tldr = TLDREmbedder(**SMALL).fit(X)
    kept = _neighbourhood_overlap(X, tldr.transform(X))

    # The same training with random partners instead of nearest neighbours.
    def random_partners(query, k, **kwargs):
        rng = np.random.default_rng(0)
        return None, rng.integers(0, len(query), size=(len(query), k))

    monkeypatch.setattr(_label_free, "chunked_knn", random_partners)
    random = TLDREmbedder(**SMALL).fit(X)
    # A random projection keeps some neighbourhoods too, but far fewer.
    assert kept > _neighbourhood_overlap(X, random.transform(X)) + 0.1


def test_tldr_is_a_pca_drop_in_in_a_pipeline(digits):
    X, y = digits
    model = make_pipeline(TLDREmbedder(**SMALL), KNeighborsClassifier(3))
    assert model.fit(X[:400], y[:400]).score(X[400:], y[400:]) > 0.6  # chance: 0.1
    tldr = model[0]
    assert tldr.transform(X[:3]).dtype == np.float32
    assert tldr.get_feature_names_out().tolist()[:2] == [
        "tldrembedder0",
        "tldrembedder1",
    ]
    assert tldr.n_iter_ == 20 and len(tldr.loss_curve_) == 20
    assert tldr.loss_curve_[-1] < tldr.loss_curve_[0]


def test_tldr_seeded_and_label_free(digits):
    X, y = digits
    X = X[:200]
    a = TLDREmbedder(**{**SMALL, "max_iter": 3}).fit(X).transform(X)
    b = TLDREmbedder(**{**SMALL, "max_iter": 3}).fit(X, y[:200]).transform(X)
    c = TLDREmbedder(**{**SMALL, "max_iter": 3, "random_state": 1}).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)  # y is ignored
    assert not np.allclose(a, c)


def test_tldr_mlp_encoder_and_tiny_data():
    X = np.random.default_rng(0).normal(size=(5, 6))
    tldr = TLDREmbedder(
        n_components=3, hidden_layer_sizes=(7,), projector_layer_sizes=(4,),
        n_neighbors=10, max_iter=2, random_state=0,
    ).fit(X)  # fmt: skip
    assert tldr.n_neighbors_ == 4  # n_samples - 1
    assert isinstance(tldr.backbone_[1], torch.nn.BatchNorm1d)
    assert not tldr.backbone_.training
    np.testing.assert_array_equal(tldr.transform(X[:2]), tldr.transform(X)[:2])


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"n_components": 0}, ValueError, "'n_components' parameter"),
        ({"n_neighbors": 0}, ValueError, "'n_neighbors' parameter"),
        ({"projector_layer_sizes": ()}, ValueError, "'projector_layer_sizes'"),
        ({"redundancy_weight": -0.1}, ValueError, "'redundancy_weight' parameter"),
        ({"batch_size": 1}, ValueError, "'batch_size' parameter"),
        ({"device": "tpu"}, ValueError, "'device' parameter"),
    ],
)
def test_tldr_failed_fit_changes_nothing(digits, params, error, match):
    X, _ = digits
    fitted = TLDREmbedder(**{**SMALL, "max_iter": 1}).fit(X[:100])
    before = dict(fitted.__dict__)
    embedding = fitted.transform(X[:5])
    with pytest.raises(error, match=match):
        fitted.set_params(**params).fit(X[100:200])
    assert fitted.__dict__.keys() == before.keys()
    assert fitted.backbone_ is before["backbone_"]
    fitted.set_params(
        **{k: SMALL.get(k, TLDREmbedder().get_params()[k]) for k in params}
    )
    np.testing.assert_array_equal(fitted.transform(X[:5]), embedding)
    unfitted = clone(fitted).set_params(**params)
    with pytest.raises(error, match=match):
        unfitted.fit(X[:100])
    assert not hasattr(unfitted, "n_features_in_")


def test_tldr_failed_data_check_keeps_the_fitted_model(digits):
    X, _ = digits
    fitted = TLDREmbedder(**{**SMALL, "max_iter": 1}).fit(X[:100])
    with pytest.raises(ValueError, match="NaN"):
        fitted.fit(np.full((10, X.shape[1]), np.nan))
    assert fitted.n_features_in_ == X.shape[1]
    with pytest.raises(ValueError, match="features"):
        fitted.transform(X[:, :5])


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_tldr_device_without_cuda(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="CUDA is not available"):
        TLDREmbedder(**{**SMALL, "device": "cuda"}).fit(X[:50])
    cpu = TLDREmbedder(**{**SMALL, "device": "cpu", "max_iter": 1}).fit(X[:50])
    assert cpu.transform(X[:2]).shape == (2, 8)
