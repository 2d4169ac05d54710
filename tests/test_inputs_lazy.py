"""Lazy inputs: files and torch datasets through fit, transform and model selection."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_dml import TripletEmbedder
from sklearn_dml.backbones import PatchPCANet
from sklearn_dml.inputs import DatasetInput, FileDataset, LazyInput, init_sample
from sklearn_dml.training import engine

PARAMS = dict(
    n_components=4,
    hidden_layer_sizes=(8,),
    max_iter=2,
    batch_size=24,
    anchor_weight=None,
    random_state=0,
)


@pytest.fixture(scope="module")
def data(tiny):
    X, y = tiny
    return X[:120].astype(np.float32), y[:120]


@pytest.fixture(scope="module")
def files(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("samples")
    paths = []
    for i, row in enumerate(data[0]):
        paths.append(str(folder / f"{i}.npy"))
        np.save(paths[-1], (row * 16).astype(np.uint8))
    return paths


def _scaled(path):
    return np.load(path) / 16


def test_fit_and_transform_of_files_equal_those_of_the_array(data, files):
    X, y = data
    in_memory = TripletEmbedder(**PARAMS).fit(X, y)
    lazy = FileDataset(files, _scaled, batch_size=7)
    from_files = TripletEmbedder(**PARAMS).fit(lazy, y)
    np.testing.assert_array_equal(from_files.transform(X), in_memory.transform(X))
    # transform of a lazy input, in chunks of 7 samples, equals the array's.
    np.testing.assert_allclose(
        from_files.transform(lazy), in_memory.transform(X), rtol=0, atol=1e-6
    )
    assert from_files.n_features_in_ == X.shape[1]


def test_a_torch_dataset_of_x_y_tuples_trains_like_the_array(data):
    X, y = data
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    lazy = DatasetInput(dataset)
    fitted = TripletEmbedder(**{**PARAMS, "max_iter": 1}).fit(lazy, y)
    expected = TripletEmbedder(**{**PARAMS, "max_iter": 1}).fit(X, y)
    np.testing.assert_array_equal(fitted.transform(X), expected.transform(X))


def test_one_worker_process_reads_the_same_batches(data):
    X, y = data
    lazy = DatasetInput(X[:48], num_workers=1)
    params = {**PARAMS, "max_iter": 1, "hidden_layer_sizes": ()}
    fitted = TripletEmbedder(**params).fit(lazy, y[:48])
    expected = TripletEmbedder(**params).fit(X[:48], y[:48])
    np.testing.assert_array_equal(fitted.transform(X[:5]), expected.transform(X[:5]))


def test_indexing_selects_without_reading_and_keeps_the_type(data):
    X, _ = data
    reads = []
    lazy = DatasetInput(_Recording(X, reads))
    sub = lazy[np.array([5, 2, 9])]
    assert isinstance(sub, DatasetInput) and len(sub) == 3
    assert reads == [] or reads == [0]  # at most the first sample, for the shape
    reads.clear()
    np.testing.assert_array_equal(sub[1].numpy(), X[2])
    assert reads == [2]
    assert len(sub[np.array([True, False, True])]) == 2
    assert len(lazy[10:20][::2]) == 5
    assert lazy[np.array([3, 4]), ...][0].numpy().tolist() == X[3].tolist()
    assert lazy.shape == X.shape and isinstance(lazy, torch.utils.data.Dataset)


class _Recording(torch.utils.data.Dataset):
    def __init__(self, X, reads):
        self.X, self.reads = X, reads

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        self.reads.append(i)
        return self.X[i]


def test_cross_val_score_and_a_pipeline_split_the_lazy_input(data):
    X, y = data
    est = TripletEmbedder(**{**PARAMS, "max_iter": 1})
    lazy_scores = cross_val_score(est, DatasetInput(X), y, cv=2)
    array_scores = cross_val_score(est, X, y, cv=2)
    np.testing.assert_allclose(lazy_scores, array_scores, atol=1e-6)
    pipe = make_pipeline(est).fit(DatasetInput(X), y)
    assert pipe.transform(DatasetInput(X[:3])).shape == (3, 4)


def test_image_shaped_samples_train_a_user_backbone(data):
    X, y = data
    images = X.reshape(-1, 1, 8, 8)
    backbone = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 36, 6)
    )
    params = {**PARAMS, "max_iter": 1}
    fitted = TripletEmbedder(backbone=backbone, **params).fit(DatasetInput(images), y)
    assert fitted.transform(DatasetInput(images[:5])).shape == (5, 6)
    # With backbone=None, lazy images get the image default, trained
    # on the same batches as from the array.
    lazy = TripletEmbedder(**params).fit(DatasetInput(images), y)
    assert isinstance(lazy.backbone_, PatchPCANet)
    eager = TripletEmbedder(**params).fit(images, y)
    np.testing.assert_allclose(
        lazy.transform(images[:5]), eager.transform(images[:5]), atol=1e-5
    )


def test_the_pca_start_reads_a_bounded_subsample(data):
    X, _ = data
    reads = []
    lazy = DatasetInput(_Recording(X, reads))
    sample = init_sample(lazy, max_samples=50, seed=0)
    assert sample.shape == (50, X.shape[1])
    assert len(set(reads)) <= 51  # the 50 drawn (and the first, for the shape)
    full = init_sample(lazy, max_samples=500)
    np.testing.assert_array_equal(full.numpy(), X)


def test_bad_lazy_inputs_are_refused(data, tmp_path):
    X, y = data
    with pytest.raises(ValueError, match="one label per sample"):
        TripletEmbedder(**PARAMS).fit(DatasetInput(X), y[:-1])
    ragged = [np.zeros(3), np.zeros(4)]
    lazy = DatasetInput(ragged)
    assert lazy.sample_shape == (3,)
    with pytest.raises(ValueError, match="same shape"):
        lazy[1]
    with pytest.raises(TypeError, match="sequence of paths"):
        FileDataset(str(tmp_path))
    fitted = TripletEmbedder(**{**PARAMS, "max_iter": 1}).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        fitted.transform(DatasetInput(X[:, :10]))


def test_embed_reads_lazy_inputs_in_chunks(data):
    X, _ = data
    seen = []
    net = torch.nn.Linear(X.shape[1], 2)
    net.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    Z = engine.embed(net, DatasetInput(X[:25], batch_size=10))
    assert seen == [10, 10, 5] and Z.shape == (25, 2)
    assert isinstance(DatasetInput(X), LazyInput)
