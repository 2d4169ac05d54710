"""Cross-batch memory: the loss against an independent computation, the queue."""

import warnings

import numpy as np
import pytest
import torch

from sklearn_dml import ContrastiveEmbedder, ProxyAnchorEmbedder
from sklearn_dml.losses import (
    ContrastiveLoss,
    CrossBatchMemoryLoss,
    MultiSimilarityLoss,
    ProxyAnchorLoss,
)
from sklearn_dml.miners import BatchHardMiner


def _reference_contrastive(batch, labels, mem, mem_labels, neg_margin=1.0):
    """Contrastive loss, written out: pairs from a batch row to every other row.

    Distances of L2-normalised rows; positives ``relu(d)``, negatives
    ``relu(m - d)``, each part a mean over its non-zero terms. The memory
    enters as constants, and so does the batch on the reference side: each
    pair's gradient flows through its anchor (XBM [Wang et al. 2020] and
    pytorch-metric-learning's ``CrossBatchMemory``).
    """
    refs = torch.cat([batch.detach(), mem.detach()])
    ref_labels = torch.cat([labels, mem_labels])
    q = batch / batch.norm(dim=1, keepdim=True)
    r = refs / refs.norm(dim=1, keepdim=True)
    d = torch.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1).clamp_min(1e-12))
    n = batch.shape[0]
    same = labels[:, None] == ref_labels[None, :]
    not_self = torch.ones_like(same)
    not_self[torch.arange(n), torch.arange(n)] = False
    pos = d[same & not_self]
    neg = torch.relu(neg_margin - d[~same])
    pos_part = pos[pos > 0].sum() / max(int((pos > 0).sum()), 1)
    neg_part = neg[neg > 0].sum() / max(int((neg > 0).sum()), 1)
    return pos_part + neg_part


def _batches(seed, n_batches=3, size=6, dim=4, n_classes=3):
    gen = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(size, dim, generator=gen, dtype=torch.float64),
            torch.randint(0, n_classes, (size,), generator=gen),
        )
        for _ in range(n_batches)
    ]


@pytest.mark.parametrize("seed", [0, 1])
def test_loss_and_gradient_equal_the_written_out_loss_over_batch_and_memory(seed):
    loss = CrossBatchMemoryLoss(ContrastiveLoss(neg_margin=1.2), memory_size=10)
    loss.configure(3, 4).double()
    seen = []
    for x, y in _batches(seed, n_batches=3):
        x = x.clone().requires_grad_(True)
        mem = torch.cat([b for b, _ in seen])[-10:] if seen else x[:0]
        mem_y = torch.cat([c for _, c in seen])[-10:] if seen else y[:0]
        value = loss(x, y)
        (grad,) = torch.autograd.grad(value, x)
        x_ref = x.detach().clone().requires_grad_(True)
        expected = _reference_contrastive(x_ref, y, mem, mem_y, 1.2)
        (grad_ref,) = torch.autograd.grad(expected, x_ref)
        assert value.item() == pytest.approx(expected.item(), rel=1e-10)
        torch.testing.assert_close(grad, grad_ref)
        seen.append((x.detach(), y))
    # After three batches of 6 the queue of 10 holds the last 10 samples.
    np.testing.assert_array_equal(
        loss.memory_labels.roll(-int(loss.memory_position)).numpy(),
        torch.cat([c for _, c in seen])[-10:].numpy(),
    )


@pytest.mark.parametrize("kind", ["contrastive", "multi_similarity"])
def test_loss_and_gradient_equal_pytorch_metric_learning_cross_batch_memory(kind):
    # An independent implementation: the same queue, pairs anchored on the
    # batch, gradient through the anchors, a per-anchor mean over the batch
    # rows (multi-similarity), mining on the batch and the memory.
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
    from sklearn_dml.miners import MultiSimilarityMiner

    if kind == "contrastive":
        ours, miner = ContrastiveLoss(), None
        theirs, their_miner = pml_losses.ContrastiveLoss(), None
    else:
        ours, miner = MultiSimilarityLoss(), MultiSimilarityMiner()
        theirs, their_miner = (
            pml_losses.MultiSimilarityLoss(),
            pml_miners.MultiSimilarityMiner(),
        )
    size = 6
    loss = CrossBatchMemoryLoss(ours, memory_size=12).configure(3, 4).double()
    # pml's queue holds the current batch too: 12 past samples + the batch
    reference = pml_losses.CrossBatchMemory(
        theirs, 4, memory_size=12 + size, miner=their_miner
    ).double()
    for x, y in _batches(7, n_batches=5, size=size):
        mine = x.clone().requires_grad_(True)
        theirs_x = x.clone().requires_grad_(True)
        value = loss(mine, y, miner=miner)
        expected = reference(theirs_x, y)
        (grad,) = torch.autograd.grad(value, mine)
        (grad_ref,) = torch.autograd.grad(expected, theirs_x)
        assert value.item() == pytest.approx(expected.item(), rel=1e-9)
        torch.testing.assert_close(grad, grad_ref)


def test_the_memory_changes_the_loss_and_holds_no_gradient():
    (x1, y1), (x2, y2) = _batches(3, n_batches=2)
    wrapped = CrossBatchMemoryLoss(MultiSimilarityLoss(), memory_size=32).configure(
        3, 4
    )
    plain = MultiSimilarityLoss()
    wrapped.double()
    assert wrapped(x1, y1).item() == pytest.approx(plain(x1, y1).item())
    with_memory = wrapped(x2, y2)
    assert with_memory.item() != pytest.approx(plain(x2, y2).item())
    assert not wrapped.memory_embeddings.requires_grad


def test_warmup_and_evaluation_mode_leave_the_memory_unused():
    (x1, y1), (x2, y2), (x3, y3) = _batches(4, n_batches=3)
    plain = ContrastiveLoss()
    loss = CrossBatchMemoryLoss(ContrastiveLoss(), 32, warmup_steps=2).configure(3, 4)
    loss.double()
    assert loss(x1, y1).item() == pytest.approx(plain(x1, y1).item())
    assert loss(x2, y2).item() == pytest.approx(plain(x2, y2).item())
    loss.eval()
    assert loss(x3, y3).item() == pytest.approx(plain(x3, y3).item())
    assert int(loss.memory_filled) == 12  # evaluation does not enqueue
    loss.train()
    assert loss(x3, y3).item() != pytest.approx(plain(x3, y3).item())


def test_a_miner_mines_the_batch_with_the_memory_and_keeps_batch_anchors():
    calls = []
    miner = BatchHardMiner()

    def recording(emb, labels):
        calls.append(emb.shape[0])
        return miner(emb, labels)

    loss = CrossBatchMemoryLoss(ContrastiveLoss(), memory_size=16).configure(3, 4)
    for x, y in _batches(5, n_batches=2):
        loss(x.float(), y, miner=recording)
    assert calls == [6, 12]


def test_a_loss_with_learned_parameters_is_refused():
    with pytest.raises(ValueError, match="without learned parameters"):
        CrossBatchMemoryLoss(ProxyAnchorLoss()).configure(3, 4)
    X = np.random.RandomState(0).rand(40, 5)
    y = np.repeat(np.arange(4), 10)
    with pytest.raises(ValueError, match="without learned parameters"):
        ProxyAnchorEmbedder(cross_batch_memory=16, max_iter=1).fit(X, y)


def test_the_estimator_parameter_trains_with_the_queue(tiny):
    X, y = tiny[0][:96], tiny[1][:96]
    params = dict(
        n_components=4,
        hidden_layer_sizes=(),
        max_iter=1,
        batch_size=16,
        anchor_weight=None,
        random_state=0,
    )
    plain = ContrastiveEmbedder(**params).fit(X, y)
    memory = ContrastiveEmbedder(cross_batch_memory=(64, 2), **params).fit(X, y)
    assert isinstance(memory.loss_, CrossBatchMemoryLoss)
    assert int(memory.loss_.memory_filled) == 64
    assert int(memory.loss_.steps) == 6  # one epoch: 96 samples in batches of 16
    assert not np.allclose(plain.transform(X), memory.transform(X))
    with pytest.raises(ValueError, match="cross_batch_memory"):
        ContrastiveEmbedder(cross_batch_memory=(8, 1, 2)).fit(X, y)


def test_a_memory_shorter_than_a_sampler_round_warns(tiny):
    # One round of the sampler visits every class once (n_classes x
    # samples_per_class samples); a shorter memory holds no positives.
    X, y = tiny[0][:96], tiny[1][:96]
    n_round = len(np.unique(y)) * 4
    params = dict(
        n_components=4,
        hidden_layer_sizes=(),
        max_iter=1,
        batch_size=16,
        samples_per_class=4,
        anchor_weight=None,
        random_state=0,
    )
    with pytest.warns(UserWarning, match="fewer than one round"):
        ContrastiveEmbedder(cross_batch_memory=n_round - 1, **params).fit(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ContrastiveEmbedder(cross_batch_memory=n_round, **params).fit(X, y)
    assert not [w for w in caught if "fewer than one round" in str(w.message)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mining_the_query_rows_equals_mining_all_and_keeping_query_anchors(seed):
    from sklearn_dml.losses._cross_batch_memory import restrict_to_queries
    from sklearn_dml.miners import MultiSimilarityMiner

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 6, (40,), generator=gen)
    for miner in (MultiSimilarityMiner(epsilon=0.3), BatchHardMiner()):
        whole = restrict_to_queries(miner(x, y), 8)
        block = miner.mine_queries(x, y, 8)
        assert len(block) == len(whole)
        for got, expected in zip(block, whole, strict=True):
            torch.testing.assert_close(got, expected)
        assert sum(t.numel() for t in block) > 0


def test_the_reference_block_gives_the_loss_of_the_stacked_batch():
    # A multi-similarity loss without the block path goes through the batch
    # stacked on the references (its mean over rows rescaled to the batch
    # rows): same value and gradient.
    from sklearn_dml.miners import MultiSimilarityMiner

    class StackedOnly(MultiSimilarityLoss):
        supports_reference_block = False

    fast = CrossBatchMemoryLoss(MultiSimilarityLoss(), 10).configure(3, 4).double()
    slow = CrossBatchMemoryLoss(StackedOnly(), 10).configure(3, 4).double()
    for x, y in _batches(11, n_batches=4):
        a = x.clone().requires_grad_(True)
        b = x.clone().requires_grad_(True)
        va = fast(a, y, miner=MultiSimilarityMiner(epsilon=0.5))
        vb = slow(b, y, miner=MultiSimilarityMiner(epsilon=0.5))
        assert va.item() == pytest.approx(vb.item(), rel=1e-10)
        torch.testing.assert_close(
            torch.autograd.grad(va, a)[0], torch.autograd.grad(vb, b)[0]
        )


def test_with_the_memory_only_the_batch_rows_of_the_distances_are_computed():
    from sklearn_dml.distances import CosineSimilarity
    from sklearn_dml.miners import MultiSimilarityMiner

    shapes = []

    class Recording(CosineSimilarity):
        def forward(self, query, ref=None):
            out = super().forward(query, ref)
            shapes.append(tuple(out.shape))
            return out

    loss = CrossBatchMemoryLoss(MultiSimilarityLoss(distance=Recording()), 30)
    loss.configure(3, 4).double()
    miner = MultiSimilarityMiner(distance=Recording())
    for x, y in _batches(12, n_batches=4):
        shapes.clear()
        loss(x, y, miner=miner)
        assert shapes and all(rows == 6 for rows, _ in shapes)
    assert shapes[-1][1] == 6 + 18  # the batch and the 18 samples before it
