"""The training objective: terms summed by the engine, each checked on its own."""

import numpy as np
import pytest
import torch

from sklearn_dml import MultiSimilarityEmbedder
from sklearn_dml.backbones import L2Normalize, ResidualMLP
from sklearn_dml.base import _training_penalty
from sklearn_dml.losses import (
    ContrastiveLoss,
    EnergyConfusionRegularizer,
    MultiSimilarityLoss,
    RKDLoss,
    TripletMarginLoss,
)
from sklearn_dml.miners import BatchHardMiner
from sklearn_dml.mixup import Metrix, MixupPlan, mix_batch
from sklearn_dml.training import engine
from sklearn_dml.training.objective import (
    EnergyConfusionTerm,
    MetricLossTerm,
    MixupTerm,
    PenaltyTerm,
    RelationalTerm,
)


def config(objective, **params):
    """A TrainingConfig with the estimators' defaults, for driving the engine."""
    base = dict(
        max_iter=1,
        batch_size=32,
        samples_per_class=4,
        learning_rate_init=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        n_iter_no_change=10,
        tol=1e-4,
        device="cpu",
        verbose=0,
        seed=0,
    )
    base.update(params)
    return engine.TrainingConfig(**base, objective=tuple(objective))


class Constant:
    """A term of a fixed value that records the batch it saw."""

    def __init__(self, name, value):
        self.name, self.value, self.seen = name, value, []

    def __call__(self, state, batch):
        self.seen.append(batch)
        return None if self.value is None else torch.tensor(self.value)


def _batch(n=12, d=5, seed=0):
    rng = np.random.RandomState(seed)
    x = torch.tensor(rng.randn(n, d), dtype=torch.float32)
    y = torch.tensor(np.repeat(np.arange(n // 4), 4))
    return x, y


def test_terms_are_summed_in_order_and_none_is_skipped():
    x, y = _batch()
    state = engine.TrainingState(torch.nn.Identity(), ContrastiveLoss(), None)
    terms = [Constant("a", 1.5), Constant("b", None), Constant("c", -0.25)]
    total, values = engine.batch_objective(state, config(terms), x, y)
    assert total.item() == pytest.approx(1.25)
    assert set(values) == {"a", "c"}
    assert values["c"].item() == pytest.approx(-0.25)
    # Every term saw the same embeddings, computed once.
    assert terms[0].seen[0].embeddings is terms[2].seen[0].embeddings


def test_an_objective_with_no_applicable_term_is_an_error():
    x, y = _batch()
    state = engine.TrainingState(torch.nn.Identity(), ContrastiveLoss(), None)
    with pytest.raises(ValueError, match="no term that applies"):
        engine.batch_objective(state, config([Constant("a", None)]), x, y)


def test_metric_term_uses_the_miner_and_its_weight():
    x, y = _batch()
    loss, miner = TripletMarginLoss(margin=0.2), BatchHardMiner()
    state = engine.TrainingState(torch.nn.Identity(), loss, miner)
    total, _ = engine.batch_objective(state, config([MetricLossTerm(0.5)]), x, y)
    expected = 0.5 * loss(x, y, miner(x, y))
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    unmined = loss(x, y)
    assert abs(expected.item() - 0.5 * unmined.item()) > 1e-4  # the miner mattered


def test_relational_term_compares_with_the_batch_targets():
    x, y = _batch()
    targets = torch.tensor(np.random.RandomState(1).randn(12, 3), dtype=torch.float32)
    loss = TripletMarginLoss(margin=0.2)
    state = engine.TrainingState(torch.nn.Identity(), loss, None)
    terms = [MetricLossTerm(0.5), RelationalTerm(RKDLoss())]
    total, values = engine.batch_objective(state, config(terms), x, y, targets)
    expected = 0.5 * loss(x, y) + RKDLoss()(x, targets)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert values["relational"].item() == pytest.approx(RKDLoss()(x, targets).item())


@pytest.mark.parametrize("on", ["embedding", "input", "feature"])
def test_mixup_term_adds_the_weighted_mixed_loss(on):
    torch.manual_seed(0)
    backbone = ResidualMLP(4, 3, hidden_layer_sizes=(6,), init="random")
    loss = MultiSimilarityLoss()
    state = engine.TrainingState(backbone=backbone, loss=loss, miner=None)
    metrix = Metrix(on=on, alpha=1.5, weight=0.4)
    terms = [MetricLossTerm(), MixupTerm(MixupPlan(metrix, 3, True))]
    xb = torch.randn(6, 4)
    yb = torch.tensor([0, 0, 1, 1, 2, 2])
    torch.manual_seed(5)
    total, _ = engine.batch_objective(state, config(terms), xb, yb)
    # The same draws, by hand.
    torch.manual_seed(5)
    emb = backbone(xb)
    first, second, lam, targets = mix_batch(yb, 3, 1.5)
    lam_col = lam[:, None]
    if on == "embedding":
        mixed = torch.nn.functional.normalize(
            lam_col * emb[first] + (1 - lam_col) * emb[second], dim=1
        )
    elif on == "input":
        mixed = backbone(lam_col * xb[first] + (1 - lam_col) * xb[second])
    else:
        mixed = backbone.forward_mixed_features(xb, first, second, lam)
    expected = loss(emb, yb) + 0.4 * loss.soft_forward(emb, yb, mixed, targets)
    torch.testing.assert_close(total, expected)
    assert total > loss(emb, yb)


def test_penalty_term_is_the_backbone_anchor_also_behind_l2_normalisation():
    torch.manual_seed(0)
    x, y = _batch(d=5)
    net = ResidualMLP(5, 5, hidden_layer_sizes=(), init="identity", anchor_weight=3.0)
    with torch.no_grad():
        net.skip.weight.add_(0.3 * torch.randn(5, 5))  # move away from the start
    loss = ContrastiveLoss()
    for backbone in (net, torch.nn.Sequential(net, L2Normalize())):
        penalty = _training_penalty(backbone)
        assert penalty is not None
        state = engine.TrainingState(backbone=backbone, loss=loss, miner=None)
        terms = [MetricLossTerm(), PenaltyTerm(penalty, name="anchor")]
        with torch.no_grad():
            E = backbone(x)
            assert net.training_penalty(x, E).item() > 0
            expected = loss(E, y) + net.training_penalty(x, E)
            got, values = engine.batch_objective(state, config(terms), x, y)
        assert got.item() == pytest.approx(expected.item(), rel=1e-6)
        assert values["anchor"].item() > 0
    # A module after the network changes the embedding: no penalty then.
    assert _training_penalty(torch.nn.Sequential(net, torch.nn.Linear(5, 2))) is None
    assert _training_penalty(torch.nn.Linear(5, 2)) is None


def test_energy_confusion_gradient_reaches_only_the_output_layers():
    X = np.random.RandomState(0).rand(200, 16)
    y = np.repeat(np.arange(10), 20)
    est = MultiSimilarityEmbedder(
        n_components=8, hidden_layer_sizes=(16,), max_iter=1, random_state=0
    ).fit(X, y)
    state = engine.TrainingState(est.backbone_, est.loss_, None)
    xb = torch.tensor(X[::3][:64], dtype=torch.float32)
    yb = torch.tensor(y[::3][:64])

    def grads(weight):
        terms = [MetricLossTerm()]
        if weight:
            terms.append(EnergyConfusionTerm(weight, EnergyConfusionRegularizer()))
        est.backbone_.zero_grad()
        loss, _ = engine.batch_objective(state, config(terms), xb, yb)
        loss.backward()
        out = {n: p.grad.clone() for n, p in est.backbone_.named_parameters()}
        return loss.item(), out

    plain_value, plain = grads(0.0)
    value, with_ec = grads(0.5)
    term = EnergyConfusionRegularizer()(est.backbone_(xb), yb).item()
    assert value == pytest.approx(plain_value + 0.5 * term, rel=1e-5)
    head = {"skip.weight", "skip.bias", "branch.2.weight", "branch.2.bias"}
    assert set(plain) > head
    for name in plain:
        if name in head:
            assert not torch.allclose(plain[name], with_ec[name]), name
        else:
            torch.testing.assert_close(plain[name], with_ec[name])
    # The routed gradient is the term's own gradient with respect to the head.
    est.backbone_.zero_grad()
    (0.5 * EnergyConfusionRegularizer()(est.backbone_(xb), yb)).backward()
    for name, p in est.backbone_.named_parameters():
        if name in head:
            torch.testing.assert_close(with_ec[name] - plain[name], p.grad)


def test_an_embedder_builds_its_objective_from_its_options():
    est = MultiSimilarityEmbedder(mixup="embedding", energy_confusion=0.1, max_iter=1)
    X = np.random.RandomState(0).rand(40, 6)
    y = np.repeat(np.arange(4), 10)
    est.fit(X, y)
    names = [term.name for term in est._objective(est._state_from_fitted())]
    assert names == ["metric", "mixup", "anchor", "energy_confusion"]
    assert set(est.history_[0]["terms"]) == set(names)
    # The recorded objective is the sum of its terms, epoch by epoch.
    record = est.history_[0]
    assert record["loss"] == pytest.approx(sum(record["terms"].values()), rel=1e-5)
