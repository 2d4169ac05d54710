"""Data-parallel training: 2 gloo processes match one process on the whole batch.

One launch of 2 local processes (forked: no re-import of torch, about a
second) runs every check that needs a process group; the single-process
references are computed here, in the test process. A timeout ends the
processes so that a broken collective can never hang the test run.
"""

import multiprocessing
import os

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from sklearn_dml import TripletEmbedder
from sklearn_dml.backbones import ResidualMLP
from sklearn_dml.losses import ProxyAnchorLoss, TripletMarginLoss
from sklearn_dml.miners import TripletMarginMiner
from sklearn_dml.persistence import save
from sklearn_dml.training import distributed, engine
from sklearn_dml.training.objective import MetricLossTerm, PenaltyTerm

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available()
    or not torch.distributed.is_gloo_available()
    or "fork" not in multiprocessing.get_all_start_methods(),
    reason="needs torch.distributed with gloo and the fork start method",
)

# 11 rows: the ranks hold 6 and 5 (unequal slices are gathered with padding).
N_ROWS = 11
LABELS = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3])


def _config(objective):
    return engine.TrainingConfig(
        max_iter=1,
        batch_size=N_ROWS,
        samples_per_class=2,
        learning_rate_init=0.05,
        weight_decay=0.0,
        optimizer="sgd",
        n_iter_no_change=1,
        tol=0.0,
        device="cpu",
        verbose=0,
        seed=0,
        objective=objective,
    )


def _step_cases():
    """Two one-step problems, built identically on every rank from a seed.

    A residual MLP with its anchoring penalty (a term of the inputs and the
    embeddings of the whole batch) and Proxy-Anchor (learned proxies); a
    linear map with semihard triplets mined on the whole batch.
    """
    torch.manual_seed(0)
    X = torch.randn(N_ROWS, 6)
    net = ResidualMLP(6, 3, hidden_layer_sizes=(8,), init="random", anchor_weight=1.0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    proxy = ProxyAnchorLoss()
    proxy.configure(4, 3)
    yield (
        X,
        engine.TrainingState(net, proxy, None),
        (MetricLossTerm(), PenaltyTerm(net.training_penalty)),
    )
    linear = torch.nn.Linear(6, 3)
    miner = TripletMarginMiner(margin=0.5, type_of_triplets="semihard")
    yield (
        X,
        engine.TrainingState(linear, TripletMarginLoss(margin=0.5), miner),
        (MetricLossTerm(),),
    )


def _one_step(parallel):
    """Loss, averaged gradients and updated parameters after one train_step."""
    out = []
    for X, state, objective in _step_cases():
        config = _config(objective)
        config.data_parallel = parallel
        optimizer = engine._make_optimizer(config, state.backbone, state.loss)
        loss, _ = engine.train_step(state, optimizer, X, LABELS, config)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        out.append(
            {
                "loss": float(loss),
                "grads": [p.grad.clone().numpy() for p in params],
                "params": [p.detach().clone().numpy() for p in params],
            }
        )
    return out


def _fit_data():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    keep = y < 5
    return X[keep][:120] / 16, y[keep][:120]


def _embedder(**params):
    return TripletEmbedder(
        n_components=4,
        hidden_layer_sizes=(16,),
        max_iter=2,
        batch_size=30,
        early_stopping=True,
        n_iter_no_change=5,
        random_state=0,
    ).set_params(**params)


def _error(fit):
    try:
        fit()
    except ValueError as exc:
        return str(exc)
    return None


def _rank_checks(path):
    """Everything that needs the process group; the results go to the parent."""
    rank = torch.distributed.get_rank()
    result = {
        "rank": rank,
        "data_parallel": distributed.is_data_parallel(),
        "main": distributed.is_main_process(),
        "steps": _one_step(distributed.DataParallel()),
    }
    with distributed.no_data_parallel():
        result["opt_out"] = distributed.is_data_parallel()
    # gather_rows without sizes: rank r sends r + 1 rows of value r.
    local = torch.full((rank + 1, 2), float(rank), requires_grad=True)
    rows = distributed.gather_rows(local)
    (rows * torch.arange(1.0, 4.0)[:, None]).sum().backward()
    result["gathered"] = rows.detach().numpy()
    result["gathered_grad"] = local.grad.numpy()
    # average_gradients: a gradient on rank 0 only, and none anywhere.
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    if rank == 0:
        a.grad = torch.tensor([2.0, 4.0])
    distributed.average_gradients([a, b])
    result["averaged"] = (a.grad.numpy(), b.grad)
    X, y = _fit_data()
    # Errors are raised on every rank together, before training.
    result["seed_error"] = _error(lambda: _embedder(random_state=rank).fit(X, y))
    X_other = X.copy()
    X_other[0, 0] += rank
    result["data_error"] = _error(lambda: _embedder().fit(X_other, y))
    est = _embedder().fit(X, y)
    result["weights"] = {
        k: v.numpy()
        for k, v in est.backbone_.state_dict().items()
        if v.is_floating_point()
    }
    result["history"] = [h["loss"] for h in est.history_]
    result["validation"] = [h["validation_score"] for h in est.history_]
    save(est, f"{path}.{rank}")
    auto = _auto_embedder().fit(*_auto_data())
    result["auto"] = (auto.anchor_weight_, auto.anchor_selection_)
    return result


def _auto_data():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:200] / 16, y[:200]


def _auto_embedder():
    # 10 classes: anchor_weight="auto" chooses, with 4 candidate fits.
    return _embedder(anchor_weight="auto", max_iter=1, early_stopping=False)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """The ranks' results, and the single-process references on one thread."""
    path = str(tmp_path_factory.mktemp("distributed") / "model.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # Run first here: the forked ranks then inherit what the first
        # optimisation step imports lazily.
        step = _one_step(None)
        single = _embedder().fit(*_fit_data())
        auto = _auto_embedder().fit(*_auto_data())
    finally:
        torch.set_num_threads(threads)
    results = distributed.launch(
        _rank_checks,
        2,
        path,
        backend="gloo",
        timeout=120,
        threads_per_process=1,
        start_method="fork",
    )
    return results, path, step, single, auto


def test_one_step_matches_a_single_process_on_the_whole_batch(ranks):
    results, _, reference, _, _ = ranks
    for result in results:
        for got, want in zip(result["steps"], reference):
            assert_allclose(got["loss"], want["loss"], rtol=1e-5, atol=1e-7)
            for g, w in zip(got["grads"], want["grads"]):
                # float32 sums in another order (the gathered batch): a
                # gradient's entries agree to a small share of its largest
                # entry, the size of that rounding on any CPU's kernels.
                scale = float(np.abs(w).max())
                assert_allclose(g, w, rtol=1e-4, atol=1e-6 * max(scale, 1.0))
            for g, w in zip(got["params"], want["params"]):
                assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    # The problems are not trivial: the reference gradients are not zero.
    assert all(np.abs(g).max() > 1e-3 for case in reference for g in case["grads"][:1])


def test_fit_ends_with_identical_weights_and_follows_a_single_process(ranks):
    results, path, _, single, _ = ranks
    first, second = results
    assert first["weights"].keys() == second["weights"].keys()
    for name in first["weights"]:
        assert_array_equal(first["weights"][name], second["weights"][name])
    assert first["history"] == second["history"]
    assert first["validation"] == second["validation"]
    # Rank 0 draws the batches of a single process with the same seed: the
    # same loss curve (to float rounding) and the same model.
    assert_allclose(first["history"], [h["loss"] for h in single.history_], rtol=1e-4)
    for name, value in single.backbone_.state_dict().items():
        if value.is_floating_point():
            assert_allclose(first["weights"][name], value.numpy(), atol=1e-4)
    # Only rank 0 wrote its file.
    assert os.path.exists(f"{path}.0") and not os.path.exists(f"{path}.1")


def test_ranks_refuse_other_seeds_or_data_together(ranks):
    results = ranks[0]
    for result in results:
        assert "integer random_state" in result["seed_error"]
        assert "other training data" in result["data_error"]


def test_process_group_roles(ranks):
    results = ranks[0]
    assert [r["data_parallel"] for r in results] == [True, True]
    assert [r["main"] for r in results] == [True, False]
    assert [r["opt_out"] for r in results] == [False, False]
    # Without a process group nothing changes.
    assert not distributed.is_data_parallel() and distributed.is_main_process()


def test_slice_bounds_cover_the_batch_in_order():
    assert distributed.slice_bounds(11, 2) == [0, 6, 11]
    assert distributed.slice_bounds(3, 4) == [0, 1, 2, 3, 3]


def test_launch_reports_a_failing_rank():
    with pytest.raises(RuntimeError, match="rank 1 raised"):
        distributed.launch(
            _fail_on_rank_one, 2, timeout=60, threads_per_process=1, start_method="fork"
        )


def _fail_on_rank_one():
    if torch.distributed.get_rank() == 1:
        raise KeyError("boom")
    return 0


def test_anchor_weight_auto_chooses_the_same_on_every_rank(ranks):
    results, auto = ranks[0], ranks[4]
    (w0, scores0), (w1, scores1) = results[0]["auto"], results[1]["auto"]
    assert w0 == w1 == auto.anchor_weight_
    assert scores0 == scores1
    # Each candidate fit was data-parallel: the same scores as one process.
    assert scores0.keys() == auto.anchor_selection_.keys()
    for weight, score in auto.anchor_selection_.items():
        assert_allclose(scores0[weight], score, rtol=1e-4)


def test_gather_rows_and_average_gradients_between_ranks(ranks):
    for result in ranks[0]:
        assert_array_equal(result["gathered"], [[0, 0], [1, 1], [1, 1]])
        # Both ranks minimise the same sum: each row's gradient, summed over
        # the 2 ranks, is twice its weight (1 for rank 0's row, 2 and 3 for
        # rank 1's).
        expected = [[2, 2]] if result["rank"] == 0 else [[4, 4], [6, 6]]
        assert_array_equal(result["gathered_grad"], expected)
        averaged, untouched = result["averaged"]
        assert_array_equal(averaged, [1.0, 2.0])
        assert untouched is None
