"""Embedders trained as normalised classifiers: the equiangular basis."""

import pytest
import torch
from sklearn.base import clone

from sklearn_dml import (
    EquiangularBasisEmbedder,
)
from sklearn_dml.losses import (
    EquiangularBasisLoss,
)

SMALL = {"n_components": 8, "hidden_layer_sizes": (16,)}


@pytest.mark.parametrize(
    "cls, loss_cls, names",
    [
        (EquiangularBasisEmbedder, EquiangularBasisLoss, ["temperature", "max_cosine"]),
    ],
)
def test_defaults_are_the_components_paper_defaults(cls, loss_cls, names):
    est, loss = cls(), loss_cls()
    for name in names:
        assert getattr(est, name) == getattr(loss, name), name


@pytest.mark.parametrize(
    "est, error, match",
    [
        (
            EquiangularBasisEmbedder(max_cosine=1.0),
            ValueError,
            "'max_cosine' parameter",
        ),
        (
            EquiangularBasisEmbedder(temperature=0),
            ValueError,
            "'temperature' parameter",
        ),
        (EquiangularBasisEmbedder(basis_max_iter=-1), ValueError, "basis_max_iter"),
        (
            EquiangularBasisEmbedder(basis_random_state="a"),
            TypeError,
            "'basis_random_state' parameter",
        ),
    ],
)
def test_bad_parameters_rejected_before_training(est, error, match, tiny):
    X, y = tiny
    with pytest.raises(error, match=match):
        est.set_params(max_iter=1, **SMALL).fit(X, y)
    assert not hasattr(est, "backbone_")


def test_equiangular_basis_is_fixed_and_fixes_the_classes(tiny):
    X, y = tiny
    # n_components >= classes, so the target max |cos| is reachable.
    est = EquiangularBasisEmbedder(
        max_iter=2, random_state=0, n_components=16, hidden_layer_sizes=(16,)
    ).fit(X, y)
    reference = EquiangularBasisLoss(max_cosine=0.05).configure(10, 16)
    assert torch.equal(est.loss_.basis_vectors, reference.basis_vectors)
    assert list(est.loss_.parameters()) == []
    assert len(est._optimizer_state["param_groups"]) == 1
    assert est.loss_.max_cosine_reached_ <= 0.05 + 1e-3
    first = y < 5
    warm = clone(est).set_params(warm_start=True, max_iter=1).fit(X[first], y[first])
    with pytest.raises(ValueError, match="one parameter per class"):
        warm.fit(X, y)
    other = est.set_params(basis_random_state=1).fit(X, y)
    assert not torch.equal(other.loss_.basis_vectors, reference.basis_vectors)
