"""The training behaviour pinned by fixed-seed fits (see ``reference_fits.py``)."""

from pathlib import Path

import numpy as np
import pytest

from . import reference_fits

RECORDED = np.load(Path(__file__).parent / "data" / "reference_embeddings.npz")


@pytest.mark.parametrize("name", sorted(reference_fits.cases()))
def test_embeddings_match_the_recorded_fit(name):
    estimator = reference_fits.cases()[name]
    Z = reference_fits.embeddings(name, estimator)
    np.testing.assert_allclose(Z, RECORDED[name], rtol=0, atol=1e-6)


def test_every_case_is_recorded():
    assert set(RECORDED.files) == set(reference_fits.cases())
