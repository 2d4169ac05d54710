"""transform: the network's output, no copy nor change of the input, output_dtype."""

import warnings

import numpy as np
import pytest
import torch

from sklearn_dml import TripletEmbedder
from sklearn_dml.training import engine


@pytest.fixture(scope="module")
def fitted(tiny):
    X, y = tiny
    emb = TripletEmbedder(
        n_components=4,
        hidden_layer_sizes=(8,),
        max_iter=1,
        anchor_weight=None,
        random_state=0,
    )
    return emb.fit(X, y), X


def _direct(module, X):
    with torch.inference_mode():
        return module(torch.from_numpy(np.array(X, dtype=np.float32))).numpy()


def test_transform_equals_the_module_and_leaves_the_input_alone(fitted):
    emb, X = fitted
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    before = X32.copy()
    Z = emb.transform(X32)
    np.testing.assert_array_equal(X32, before)
    np.testing.assert_array_equal(Z, _direct(emb.backbone_, X32))
    assert Z.dtype == np.float32
    # A read-only input (a memory map) works, silently, with the same result.
    frozen = X32.copy()
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(emb.transform(frozen), Z)
    # float64 and Fortran-ordered inputs are converted batch by batch.
    np.testing.assert_array_equal(emb.transform(X32.astype(np.float64)), Z)
    np.testing.assert_array_equal(emb.transform(np.asfortranarray(X32)), Z)


def test_batches_do_not_change_the_embeddings(fitted):
    emb, X = fitted
    whole = engine.embed(emb.backbone_, X, batch_size=len(X))
    np.testing.assert_allclose(
        engine.embed(emb.backbone_, X, batch_size=7), whole, rtol=0, atol=1e-6
    )
    assert engine.embed(emb.backbone_, X[:0]).shape[0] == 0


def test_output_dtype_float16(fitted):
    emb, X = fitted
    Z = emb.transform(X)
    half = emb.set_params(output_dtype="float16")
    try:
        Z16 = half.transform(X)
        assert Z16.dtype == np.float16
        np.testing.assert_array_equal(Z16, Z.astype(np.float16))
        assert half.__sklearn_tags__().transformer_tags.preserves_dtype == []
    finally:
        emb.set_params(output_dtype="float32")
    with pytest.raises(ValueError, match="output_dtype"):
        TripletEmbedder(output_dtype="bfloat16", max_iter=1).fit(
            X, np.arange(len(X)) % 3
        )
