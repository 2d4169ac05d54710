"""Image arrays and sequences as inputs: shapes, backbones, augmentation, parameter groups."""

import copy
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

from sklearn_dml import TripletEmbedder
from sklearn_dml.augmentation import (
    Compose,
    GaussianNoise,
    RandomCrop,
    RandomHorizontalFlip,
    RandomTimeShift,
)
from sklearn_dml.backbones import (
    ImageConvNet,
    PatchPCANet,
    ResidualMLP,
    SequenceConvNet,
    load_weights,
)
from sklearn_dml.model_selection import ClassDisjointKFold
from sklearn_dml.persistence import load, save

FAST = {"n_components": 4, "max_iter": 1, "batch_size": 16, "random_state": 0}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    keep = y < 4
    X, y = (X[keep] / 16.0).astype(np.float32)[:64], y[keep][:64]
    return X, y


def _images(X):
    return X.reshape(-1, 1, 8, 8)


@pytest.fixture(scope="module")
def image_model(digits):
    X, y = digits
    return TripletEmbedder(**FAST).fit(_images(X), y)


def test_image_arrays_through_fit_transform_score_and_pipeline(digits, image_model):
    X, y = digits
    Xi = _images(X)
    before = Xi.copy()
    emb = image_model
    assert isinstance(emb.backbone_, PatchPCANet)  # chosen from the 4-D input
    assert emb.input_shape_ == (1, 8, 8)
    assert emb.n_features_in_ == 64
    assert not hasattr(emb, "feature_names_in_")
    Z = emb.transform(Xi[:5])
    assert Z.shape == (5, 4) and Z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-5)
    assert 0.0 <= emb.score(Xi, y) <= 1.0
    pipe = make_pipeline(TripletEmbedder(**FAST), KNeighborsClassifier(3)).fit(Xi, y)
    np.testing.assert_array_equal(Xi, before)  # the input is not modified
    assert pipe.predict(Xi[:7]).shape == (7,)
    # Pair API on N-D samples.
    pairs = np.stack([Xi[:3], Xi[3:6]], axis=1)
    assert emb.pair_distance(pairs).shape == (3,)
    # clone and pickle keep the N-D model.
    assert clone(emb).get_params() == emb.get_params()
    again = pickle.loads(pickle.dumps(emb))
    np.testing.assert_allclose(again.transform(Xi[:5]), Z, atol=1e-6)


def test_nd_model_saves_and_loads(digits, image_model, tmp_path):
    X, _ = digits
    save(image_model, tmp_path / "m.pt")
    loaded = load(tmp_path / "m.pt")
    assert loaded.input_shape_ == (1, 8, 8)
    np.testing.assert_allclose(
        loaded.transform(_images(X[:4])),
        image_model.transform(_images(X[:4])),
        atol=1e-6,
    )


def test_sequences_partial_fit_and_grid_search_with_class_disjoint_folds(digits):
    X, y = digits
    Xs = X.reshape(-1, 8, 8)
    emb = TripletEmbedder(**FAST)
    emb.partial_fit(Xs[:32], y[:32], classes=np.unique(y))
    emb.partial_fit(Xs[32:], y[32:])
    assert emb.n_iter_ == 2 and emb.input_shape_ == (8, 8)
    assert isinstance(emb.backbone_, SequenceConvNet)  # (n, T, d): a sequence
    with pytest.raises(ValueError, match=r"samples of shape \(8, 4\).*\(8, 8\)"):
        emb.partial_fit(Xs[:, :, :4], y)
    search = GridSearchCV(
        TripletEmbedder(**FAST),
        {"margin": [0.2]},
        cv=ClassDisjointKFold(n_splits=2),
        refit=False,
    ).fit(Xs, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_shape_errors_are_clear_and_leave_the_model_unchanged(digits, image_model):
    X, y = digits
    emb = copy.deepcopy(image_model)
    Z = emb.transform(_images(X[:3]))
    with pytest.raises(ValueError, match=r"shape \(64,\).*fitted on samples of shape"):
        emb.transform(X[:3])  # flattened samples
    with pytest.raises(ValueError, match=r"shape \(1, 4, 16\)"):
        emb.transform(X[:3].reshape(-1, 1, 4, 16))
    flat = TripletEmbedder(**FAST).fit(X, y)
    assert isinstance(flat.backbone_, ResidualMLP) and flat.input_shape_ == (64,)
    with pytest.raises(ValueError, match=r"shape \(1, 8, 8\).*shape \(64,\)"):
        flat.transform(_images(X[:3]))
    with pytest.raises(ValueError, match="input_type='tabular' needs 2-D X"):
        TripletEmbedder(input_type="tabular", **FAST).fit(_images(X), y)
    with pytest.raises(ValueError, match="requires y to be passed"):
        TripletEmbedder(**FAST).fit(_images(X), None)
    with pytest.raises(ValueError, match="5 dimensions"):
        TripletEmbedder(**FAST).fit(X.reshape(-1, 1, 1, 8, 8), y)
    # A failed warm refit on other shapes keeps the fitted model as it was.
    emb.set_params(warm_start=True)
    with pytest.raises(ValueError, match="fitted on samples of shape"):
        emb.fit(X, y)
    np.testing.assert_array_equal(emb.transform(_images(X[:3])), Z)


def test_user_backbone_takes_the_nd_batch(digits):
    X, y = digits
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    emb = TripletEmbedder(backbone=net, **FAST).fit(_images(X), y)
    assert emb.transform(_images(X[:2])).shape == (2, 3)
    with pytest.raises(ValueError, match=r"batch of shape \(2, 1, 8, 8\)"):
        TripletEmbedder(backbone=torch.nn.Linear(5, 3), **FAST).fit(_images(X), y)


class _Recorder:
    def __init__(self):
        self.sizes = []

    def __call__(self, x):
        self.sizes.append(x.shape[0])
        return x + 0.5 * torch.randn_like(x)


def test_augment_runs_on_training_batches_only(digits):
    X, y = digits
    Xi = _images(X)
    record = _Recorder()
    emb = TripletEmbedder(
        augment=record, early_stopping=True, validation_fraction=0.25, **FAST
    ).fit(Xi, y)
    # One call per training batch (48 training rows in batches of 16); the
    # validation part, embedded before training and after the epoch, adds none.
    assert record.sizes == [16, 16, 16]
    record.sizes.clear()
    Z = emb.transform(Xi)
    emb.score(Xi, y)
    assert record.sizes == []
    with torch.no_grad():
        direct = emb.backbone_(torch.from_numpy(Xi)).numpy()
    np.testing.assert_allclose(Z, direct, atol=1e-6)
    # The augmented batches train another model (compared without early
    # stopping, which may keep the shared starting point of both).
    augmented = TripletEmbedder(augment=_Recorder(), **FAST).fit(Xi, y).transform(Xi)
    plain = TripletEmbedder(**FAST).fit(Xi, y).transform(Xi)
    assert not np.allclose(plain, augmented, atol=1e-4)


def test_augment_must_keep_the_rows(digits):
    X, y = digits
    with pytest.raises(ValueError, match="as many rows"):
        TripletEmbedder(augment=lambda x: x[:2], **FAST).fit(_images(X), y)


def _shifted(x, dy, dx):
    """Numpy reference: shift an image (H, W) by (dy, dx), zeros shifted in."""
    out = np.zeros_like(x)
    h, w = x.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_builtin_augmentations_against_references():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 5, 5) + 1.0  # no zero inside the images
    out = RandomCrop(padding=2)(x).numpy()
    shifts = set()
    for i in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(out[i, 0], _shifted(x[i, 0].numpy(), dy, dx))
        ]
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > 1  # each image draws its own shift
    assert RandomCrop(padding=2)(x[:, 0]).shape == (6, 5, 5)
    flipped = RandomHorizontalFlip(p=1.0)(x)
    np.testing.assert_array_equal(flipped.numpy(), x.numpy()[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x).numpy(), x.numpy())
    noise = GaussianNoise(std=0.3)(torch.zeros(20000)).numpy()
    assert abs(noise.std() - 0.3) < 0.01 and abs(noise.mean()) < 0.01
    seq = torch.rand(5, 9, 2) + 1.0
    moved = RandomTimeShift(max_shift=3)(seq).numpy()
    for i in range(len(seq)):
        ref = [
            s
            for s in range(-3, 4)
            if np.array_equal(moved[i].T, _shifted(seq[i].numpy().T, 0, s))
        ]
        assert len(ref) == 1
    both = Compose([RandomHorizontalFlip(p=1.0), lambda t: t * 2])(x)
    np.testing.assert_allclose(both.numpy(), 2 * x.numpy()[..., ::-1])
    assert clone(Compose([GaussianNoise(std=0.2)])).transforms[0].std == 0.2
    with pytest.raises(ValueError, match="callables"):
        Compose([1])


def _image_net():
    torch.manual_seed(1)
    return ImageConvNet(1, 4, widths=(4, 8))


def test_frozen_body_stays_and_head_trains(digits):
    X, y = digits
    net = _image_net()
    emb = TripletEmbedder(
        backbone=net, backbone_learning_rates={"body": 0.0}, **{**FAST, "max_iter": 2}
    ).fit(_images(X), y)
    trained = emb.backbone_[0]
    for (name, p0), p1 in zip(net.body.named_parameters(), trained.body.parameters()):
        assert torch.equal(p0, p1), name
    assert not torch.equal(net.head.weight, trained.head.weight)
    with pytest.raises(ValueError, match=r"names \['bdy'\].*\['body', 'head'\]"):
        TripletEmbedder(backbone=net, backbone_learning_rates={"bdy": 0.0}, **FAST).fit(
            _images(X), y
        )


def test_lower_learning_rate_group_moves_less(digits):
    X, y = digits
    net = _image_net()

    def moved(rates):
        emb = TripletEmbedder(backbone=net, backbone_learning_rates=rates, **FAST).fit(
            _images(X), y
        )
        trained = emb.backbone_[0]
        body = sum(
            float((a - b).detach().abs().sum())
            for a, b in zip(net.body.parameters(), trained.body.parameters())
        )
        head = float((net.head.weight - trained.head.weight).detach().abs().sum())
        return body, head

    body_full, head_full = moved(None)
    body_slow, head_slow = moved({"body": 1e-5})
    assert body_slow < 0.05 * body_full
    assert head_slow > 0.2 * head_full


def _patches(images, size):
    """NumPy reference: every size x size patch (zero padded) of (n, H, W) images."""
    a = size // 2
    padded = np.pad(images, ((0, 0), (a, a), (a, a)))
    n, h, w = images.shape
    return np.stack(
        [padded[:, i : i + size, j : j + size] for i in range(h) for j in range(w)],
        axis=1,
    ).reshape(-1, size * size)


def test_image_default_starts_from_whitened_patch_axes_and_the_pca_of_their_features(
    digits,
):
    """The start: whitened principal patch filters, then the PCA of the pooled features."""
    X, _ = digits
    images = X.reshape(-1, 8, 8).astype(np.float64)
    torch.manual_seed(0)
    net = PatchPCANet(1, 3, n_filters=4, patch_size=3, grid_size=2)
    net.initialize(torch.from_numpy(images).float())
    assert net.initialized
    # Each filter, applied to patches, is a direction of the patches' principal
    # axes scaled to about unit variance; the filters are uncorrelated there.
    patches = _patches(images, 3)
    responses = (patches - patches.mean(0)) @ net.filters.reshape(
        4, 9
    ).double().numpy().T
    cov = np.cov(responses.T)
    np.testing.assert_allclose(np.diag(cov), 1.0, rtol=0.1)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 0.1
    _, _, vt = np.linalg.svd(patches - patches.mean(0), full_matrices=False)
    directions = net.filters.reshape(4, 9).double().numpy()
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    np.testing.assert_allclose(
        np.abs(np.sum(directions * vt[:4], axis=1)), 1.0, atol=0.02
    )
    # The pooled features, recomputed in NumPy: rectified responses split by
    # sign, averaged over the 2 x 2 quadrants (4 x 4 pixels each).
    bias = net.filter_bias.double().numpy()
    r = (patches @ net.filters.reshape(4, 9).double().numpy().T + bias).reshape(
        len(images), 8, 8, 4
    )

    def quadrants(v):
        return v.reshape(len(images), 2, 4, 2, 4, 4).mean(axis=(2, 4))

    feats = (
        np.concatenate(
            [quadrants(np.maximum(r, 0)), quadrants(np.maximum(-r, 0))], axis=3
        )
        .transpose(0, 3, 1, 2)
        .reshape(len(images), -1)
    )
    with torch.no_grad():
        got = net.features(torch.from_numpy(images).float()).double().numpy()
    np.testing.assert_allclose(got, feats, atol=1e-4)
    # Before training the embedding is the (normalised) PCA of those features.
    centred = feats - feats.mean(0)
    _, _, vt_f = np.linalg.svd(centred, full_matrices=False)
    pca = centred @ vt_f[:3].T
    pca /= np.linalg.norm(pca, axis=1, keepdims=True)
    with torch.no_grad():
        Z = net(torch.from_numpy(images).float()).double().numpy()
    signs = np.sign(np.sum(Z * pca, axis=0))  # each axis up to its sign
    np.testing.assert_allclose(Z, pca * signs, atol=1e-3)


def test_image_default_is_anchored_to_its_start(digits):
    """The method's anchor holds the image default near its PCA start; 0 lets it go."""
    X, y = digits
    Xi = _images(X)
    params = {**FAST, "max_iter": 4, "n_components": 8}

    def drift(**kw):
        emb = TripletEmbedder(**params, **kw).fit(Xi, y)
        net = emb.backbone_
        assert isinstance(net, PatchPCANet)
        x = torch.from_numpy(Xi)
        with torch.no_grad():
            f = net.features(x)
            start = torch.nn.functional.normalize(
                torch.nn.functional.linear(
                    f, net.mlp._start_weight, net.mlp._start_bias
                )
            )
            now = net(x)
        return float((now @ now.T - start @ start.T).pow(2).mean()), emb.anchor_weight_

    anchored, weight = drift()
    free, no_weight = drift(anchor_weight=0.0)
    assert weight == 10.0 and no_weight == 0.0
    assert anchored < 0.5 * free


def test_patch_pca_net_rejects_bad_settings():
    with pytest.raises(ValueError, match="n_filters must be between 1 and .* = 9"):
        PatchPCANet(1, 4, n_filters=10, patch_size=3)
    with pytest.raises(ValueError, match="patch_size must be a positive odd int"):
        PatchPCANet(1, 4, patch_size=4)
    with pytest.raises(ValueError, match="grid_size must be >= 1"):
        PatchPCANet(1, 4, grid_size=0)
    net = PatchPCANet(3, 4, n_filters=4, patch_size=3)
    with pytest.raises(ValueError, match=r"images of shape \(n_samples, 3, H, W\)"):
        net.initialize(np.zeros((5, 1, 8, 8), np.float32))
    assert not net.initialized
    with pytest.raises(ValueError, match=r"images of shape \(batch, 3, H, W\)"):
        net(torch.zeros(2, 8, 8))


def test_image_default_trains_with_feature_mixup(digits):
    """Manifold mixup mixes the first hidden layer of the image default's MLP."""
    from sklearn_dml import ContrastiveEmbedder

    X, y = digits
    fitted = ContrastiveEmbedder(mixup="feature", **FAST).fit(_images(X), y)
    assert isinstance(fitted.backbone_, PatchPCANet)
    assert np.isfinite(fitted.transform(_images(X[:4]))).all()
    net = fitted.backbone_
    x = torch.from_numpy(_images(X[:3]))
    with torch.no_grad():
        whole = net.forward_mixed_features(
            x, torch.tensor([0, 1]), torch.tensor([2, 2]), torch.tensor([1.0, 0.0])
        )
        np.testing.assert_allclose(whole, net(x)[[0, 2]], atol=1e-5)


def test_sequence_backbone_pools_over_time():
    torch.manual_seed(0)
    net = SequenceConvNet(2, 3, widths=(4, 4), kernel_size=3).eval()
    a = torch.zeros(1, 40, 2)
    a[0, 10:13] = torch.rand(3, 2)
    b = torch.roll(a, 4, dims=1)  # a multiple of the stride 2, away from the ends
    np.testing.assert_allclose(net(a).detach(), net(b).detach(), atol=1e-6)


def test_load_weights_round_trip(tmp_path):
    source = _image_net()
    path = tmp_path / "w.pt"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path
    )
    torch.manual_seed(5)
    target = ImageConvNet(1, 4, widths=(4, 8))
    load_weights(target, path, drop_prefix="module.")
    x = torch.rand(2, 1, 8, 8)
    np.testing.assert_allclose(
        target.eval()(x).detach(), source.eval()(x).detach(), atol=1e-6
    )
    headless = torch.nn.Sequential()
    headless.body = ImageConvNet(1, 4, widths=(4, 8)).body
    torch.save(source.state_dict(), path)
    result = load_weights(headless, path, strict=False)
    assert set(result.unexpected_keys) == {"head.weight", "head.bias"}
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match="not a state_dict"):
        load_weights(target, path)


def test_patch_pca_net_penalty_reuses_the_features_of_the_forward_pass(monkeypatch):
    # The pooled filter responses are most of a training step's cost: the
    # anchoring penalty on the batch just embedded takes them from forward,
    # with the same value as when computed anew.
    torch.manual_seed(0)
    net = PatchPCANet(1, 4, n_filters=3, grid_size=2, hidden_layer_sizes=(8,))
    net.initialize(torch.rand(30, 1, 10, 10)).train()
    x = torch.rand(6, 1, 10, 10)
    fresh = net.training_penalty(x, net(x).detach() + 0.1)

    calls = []
    features = PatchPCANet.features

    def counting(self, batch):
        calls.append(batch)
        return features(self, batch)

    monkeypatch.setattr(PatchPCANet, "features", counting)
    embeddings = net(x)
    reused = net.training_penalty(x, embeddings.detach() + 0.1)
    assert len(calls) == 1 and torch.allclose(reused, fresh)
    # Another tensor gets its own features; nothing is kept after training.
    net(x)
    net.training_penalty(x.clone(), embeddings.detach())
    assert len(calls) == 3
    net(x)
    net.eval()
    assert net._batch_features is None
