"""Exact chunked kNN: neighbours against NumPy brute force, memory bound, routing."""

import numpy as np
import pytest
import torch

from sklearn_dml.metrics import (
    _knn,
    _retrieval,
    chunked_knn,
    map_at_r_score,
    mean_average_precision_score,
    mean_reciprocal_rank_score,
    precision_at_k_score,
    r_precision_score,
    recall_at_k_score,
)


@pytest.fixture(autouse=True, params=["avx2", "sse2"])
def vector_kernel(request):
    """Every test runs with the compiled kernels' AVX2 copies (skipped where
    the processor or the compiler has none) and with their SSE2 ones."""
    try:
        from sklearn_dml.metrics import _tile_select
    except ImportError:
        if request.param == "sse2":
            pytest.skip("the compiled selection was not built")
        yield request.param
        return
    if _tile_select.vector_kernel(1 if request.param == "avx2" else 0) != request.param:
        pytest.skip("no AVX2 kernels on this machine")
    try:
        yield request.param
    finally:
        _tile_select.vector_kernel(1)


@pytest.fixture(autouse=True, params=["heap", "buffer", "torch"])
def selection(request, monkeypatch):
    """Every test runs with the compiled tile selection (its heap, and its
    buffer for many candidates per row) and with the torch one."""
    if request.param == "torch":
        monkeypatch.setattr(_knn, "_select_below", None)
    elif _knn._select_below is None:
        pytest.skip("the compiled selection was not built")
    elif request.param == "buffer":
        monkeypatch.setattr(_knn, "_HEAP_LARGEST", 0)
    return request.param


def numpy_knn(query, k, reference=None, metric="euclidean", exclude_self=False):
    """Brute force: all float64 distances, rows sorted by (distance, index)."""
    query = np.asarray(query, dtype=np.float64)
    reference = query if reference is None else np.asarray(reference, np.float64)
    if metric == "euclidean":
        diff = query[:, None, :] - reference[None, :, :]
        dist = np.sqrt((diff**2).sum(axis=2))
    else:
        qn = np.linalg.norm(query, axis=1, keepdims=True)
        rn = np.linalg.norm(reference, axis=1, keepdims=True)
        qu = np.divide(query, qn, out=np.zeros_like(query), where=qn > 0)
        ru = np.divide(reference, rn, out=np.zeros_like(reference), where=rn > 0)
        dist = 1.0 - (qu[:, None, :] * ru[None, :, :]).sum(axis=2)
    if exclude_self:
        np.fill_diagonal(dist, np.inf)
    columns = np.broadcast_to(np.arange(reference.shape[0]), dist.shape)
    order = np.lexsort((columns, dist), axis=1)[:, :k]
    return np.take_along_axis(dist, order, axis=1), order


def grid_points(seed, n, d=3):
    """Integer coordinates in {0, 1, 2}: exact distance ties and duplicates."""
    X = np.random.default_rng(seed).integers(0, 3, size=(n, d)).astype(np.float32)
    assert np.unique(X, axis=0).shape[0] < n
    return X


def sign_points(seed, n):
    """Vectors of +-1 entries times 1/2, 1 or 2: exact cosine ties, parallel copies."""
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n, 4))
    return signs * rng.choice([0.5, 1.0, 2.0], size=(n, 1))


def duplicated_normal(seed, n, d=6):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n // 3, d))
    return base[rng.integers(0, n // 3, size=n)]


DATA = {"euclidean": grid_points, "cosine": sign_points}


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize(
    "chunk_size, block_size",
    [(1, None), (3, 2), (7, 13), (None, None)],
)
@pytest.mark.parametrize("k", [1, 25])
def test_leave_one_out_matches_brute_force(
    metric, exclude_self, chunk_size, block_size, k
):
    # chunk smaller than k and than n, blocks smaller than k, everything at once
    X = DATA[metric](k, 47)
    distances, indices = chunked_knn(
        X,
        k,
        metric=metric,
        exclude_self=exclude_self,
        chunk_size=chunk_size,
        block_size=block_size,
    )
    expected_distances, expected_indices = numpy_knn(
        X, k, metric=metric, exclude_self=exclude_self
    )
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=0, atol=1e-12)
    if exclude_self:
        assert not (indices == np.arange(X.shape[0])[:, None]).any()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk_size, block_size", [(2, 3), (5, None), (None, 7)])
def test_query_vs_reference_matches_brute_force(metric, chunk_size, block_size):
    reference = DATA[metric](1, 60)
    query = DATA[metric](2, 23)
    distances, indices = chunked_knn(
        query,
        10,
        reference,
        metric=metric,
        chunk_size=chunk_size,
        block_size=block_size,
    )
    expected_distances, expected_indices = numpy_knn(query, 10, reference, metric)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=0, atol=1e-12)


@pytest.mark.parametrize("exclude_self", [False, True])
def test_duplicated_real_points(exclude_self):
    X = duplicated_normal(0, 90)
    distances, indices = chunked_knn(
        X, 8, exclude_self=exclude_self, chunk_size=4, block_size=16
    )
    expected_distances, expected_indices = numpy_knn(X, 8, exclude_self=exclude_self)
    np.testing.assert_array_equal(indices, expected_indices)
    # a duplicate of a point is at distance exactly 0 from it
    np.testing.assert_array_equal(distances == 0, expected_distances == 0)


def test_ties_broken_by_index_not_position_in_chunk():
    # Five copies of one point and a far point: every query's neighbours are
    # the copies in increasing index, whatever the chunk and block sizes.
    X = np.array([[1.0, 2.0]] * 5 + [[9.0, 9.0]])
    for chunk_size, block_size in [(1, 1), (2, 3), (6, 6)]:
        _, indices = chunked_knn(
            X, 4, exclude_self=True, chunk_size=chunk_size, block_size=block_size
        )
        expected = [[j for j in range(5) if j != i][:4] for i in range(5)]
        np.testing.assert_array_equal(indices[:5], expected)
        np.testing.assert_array_equal(indices[5], [0, 1, 2, 3])


def test_float32_first_pass_cannot_separate_points():
    # Two far groups with micro-scale structure: float32 products cannot rank
    # inside a group, the shortlist must widen and the exact pass decide.
    rng = np.random.default_rng(3)
    centres = np.repeat([[3000.0, -3000.0, 0.0], [-3000.0, 3000.0, 0.0]], 30, axis=0)
    X = centres + rng.normal(scale=1e-4, size=centres.shape)
    distances, indices = chunked_knn(X, 5, exclude_self=True, chunk_size=7)
    expected_distances, expected_indices = numpy_knn(X, 5, exclude_self=True)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-12)


def test_float32_and_float64_inputs_agree():
    X = grid_points(5, 40)
    _, from_float32 = chunked_knn(X, 7, exclude_self=True)
    _, from_float64 = chunked_knn(X.astype(np.float64), 7, exclude_self=True)
    np.testing.assert_array_equal(from_float32, from_float64)


def test_input_is_not_modified():
    X = duplicated_normal(1, 30).astype(np.float32)
    before = X.copy()
    chunked_knn(X, 3, metric="cosine", exclude_self=True, chunk_size=4)
    np.testing.assert_array_equal(X, before)


def _tile_shapes(monkeypatch):
    """A list that receives the shape of every distance tile of the search."""
    shapes = []
    original = _knn._distance_block

    def spy(*args, **kwargs):
        block = original(*args, **kwargs)
        shapes.append(tuple(block.shape))
        return block

    monkeypatch.setattr(_knn, "_distance_block", spy)
    return shapes


@pytest.mark.parametrize(
    "chunk_size, block_size, n_reference",
    [(8, 16, 100), (3, None, 70), (None, 10, 64), (5, 1000, 50)],
)
def test_distance_blocks_are_bounded_by_chunk_and_block(
    monkeypatch, chunk_size, block_size, n_reference
):
    shapes = _tile_shapes(monkeypatch)
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(n_reference, 4))
    query = rng.normal(size=(41, 4))
    _, indices = chunked_knn(
        query, 4, reference, chunk_size=chunk_size, block_size=block_size
    )
    np.testing.assert_array_equal(indices, numpy_knn(query, 4, reference)[1])
    assert shapes, "the distance block function was not used"
    rows = max(shape[0] for shape in shapes)
    columns = max(shape[1] for shape in shapes)
    if chunk_size is not None:
        assert rows <= chunk_size
        assert rows * columns <= chunk_size * n_reference
    if block_size is not None:
        assert columns <= block_size
    # never the full query x reference matrix when chunking is asked for
    assert rows * columns < query.shape[0] * n_reference


def test_default_sizes_follow_the_memory_budget(monkeypatch):
    # A tiny budget forces small blocks: chunk x block stays within it
    # (the torch selection's budget and the compiled one's).
    monkeypatch.setattr(_knn, "_BLOCK_BUDGET", 64)
    monkeypatch.setattr(_knn, "_COMPILED_BUDGET", 64)
    shapes = _tile_shapes(monkeypatch)
    X = grid_points(7, 50)
    _, indices = chunked_knn(X, 3, exclude_self=True, block_size=16)
    np.testing.assert_array_equal(indices, numpy_knn(X, 3, exclude_self=True)[1])
    assert max(rows * columns for rows, columns in shapes) <= 64


@pytest.mark.parametrize(
    "score, kwargs",
    [
        (map_at_r_score, {}),
        (r_precision_score, {}),
        (precision_at_k_score, {"k": 2}),
        (recall_at_k_score, {"k": 2}),
        (mean_average_precision_score, {}),
        (mean_reciprocal_rank_score, {}),
    ],
)
def test_every_retrieval_score_uses_the_one_knn(monkeypatch, score, kwargs):
    calls = []
    original = _retrieval._knn

    def spy(*args, **kw):
        calls.append(kw.get("metric"))
        return original(*args, **kw)

    monkeypatch.setattr(_retrieval, "_knn", spy)
    X = grid_points(2, 30)
    y = np.arange(30) % 3
    value = score(X, y, metric="cosine", **kwargs)
    assert calls and set(calls) == {"cosine"}
    assert 0.0 <= value <= 1.0


@pytest.mark.parametrize("precision", ["high", "medium"])
def test_reduced_matmul_precision_keeps_the_exact_result(precision):
    X = duplicated_normal(4, 45)
    expected = numpy_knn(X, 6, exclude_self=True)[1]
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        _, indices = chunked_knn(X, 6, exclude_self=True, chunk_size=8)
    finally:
        torch.set_float32_matmul_precision(before)
    np.testing.assert_array_equal(indices, expected)


@pytest.mark.parametrize(
    "width, n_take", [(1000, 7), (1003, 30), (64, 32), (5000, 300)]
)
def test_first_limit_has_n_take_entries_below_it(width, n_take):
    # Small integers give exact ties within and across the column groups;
    # one infinite entry per row stands for the query itself.
    rng = np.random.default_rng(width + n_take)
    values = rng.integers(0, 50, size=(9, width)).astype(np.float32)
    values[0, :] = 7.0
    values[np.arange(9), rng.integers(0, width, size=9)] = np.inf
    limit = _knn._first_limit(torch.from_numpy(values), n_take).numpy()
    assert limit.shape == (9, 1)
    below = (values < limit).sum(axis=1)
    assert (below >= n_take).all()
    # a bound, not the whole row: at most n_take groups' worth of entries
    assert (limit[:, 0] <= np.sort(values, axis=1)[:, -2] + 1).all()


@pytest.mark.parametrize("sliced", [False, True])
@pytest.mark.parametrize("width", [1000, 1003, 20, 31])
def test_collect_below_finds_exactly_the_entries_below_the_limit(width, sliced):
    rng = np.random.default_rng(width)
    values = rng.integers(0, 400, size=(7, width)).astype(np.float32)
    values[6, :] = 2.0  # the limit ties every entry: nothing passes
    limit = np.array([[-1.0], [0.0], [1.0], [3.0], [5.0], [400.0], [2.0]], np.float32)
    tile = torch.from_numpy(values)
    if sliced:  # a column slice of a wider tile: rows farther apart in memory
        wide = torch.full((7, width + 45), -1e9)
        wide[:, 13 : 13 + width] = tile
        tile = wide[:, 13 : 13 + width]
    parts = []
    found = _knn._collect_below(tile, torch.from_numpy(limit), 100, parts)
    rows = np.concatenate([p[0].numpy() for p in parts]) if parts else np.array([])
    cols = np.concatenate([p[1].numpy() for p in parts]) if parts else np.array([])
    vals = np.concatenate([p[2].numpy() for p in parts]) if parts else np.array([])
    expected_rows, expected_cols = np.nonzero(values < limit)
    assert found == expected_rows.size
    got = sorted(zip(rows.tolist(), cols.tolist()))
    assert got == sorted(zip(expected_rows.tolist(), (expected_cols + 100).tolist()))
    np.testing.assert_array_equal(
        vals, values[rows.astype(int), cols.astype(int) - 100]
    )
    for part in parts:  # each part is sorted by row, as _merge needs
        assert (np.diff(part[0].numpy()) >= 0).all()


def test_merge_keeps_the_n_take_smallest_per_row():
    rng = np.random.default_rng(0)
    n_rows, n_take = 6, 5
    best_v = rng.integers(0, 20, size=(n_rows, n_take)).astype(np.float32)
    best_c = np.arange(n_rows * n_take).reshape(n_rows, n_take) + 1000
    parts, pool = [], {r: list(zip(best_v[r], best_c[r])) for r in range(n_rows)}
    column = 0
    for size in (9, 0, 23):
        rows = np.sort(rng.integers(0, n_rows - 1, size=size))  # last row: none
        vals = rng.integers(0, 20, size=size).astype(np.float32)
        cols = np.arange(column, column + size)
        column += size
        parts.append(
            (torch.from_numpy(rows), torch.from_numpy(cols), torch.from_numpy(vals))
        )
        for r, c, v in zip(rows, cols, vals):
            pool[r].append((v, c))
    fill = torch.arange(n_rows)
    values, columns = _knn._merge(
        (torch.from_numpy(best_v), torch.from_numpy(best_c)), parts, n_take, fill
    )
    for r in range(n_rows):
        kept = sorted(zip(values[r].tolist(), columns[r].tolist()))
        assert len({c for _, c in kept}) == n_take
        for v, c in kept:  # each kept pair is a real one
            assert any(v == pv and c == pc for pv, pc in pool[r])
        wanted = sorted(v for v, _ in pool[r])[:n_take]
        assert [v for v, _ in kept] == wanted
    # fewer entries than n_take: completed with inf and the fill column
    values, columns = _knn._merge(None, parts[:1], n_take, fill)
    assert np.isinf(values[n_rows - 1].numpy()).all()
    assert (columns[n_rows - 1].numpy() == n_rows - 1).all()


def test_second_pass_recomputes_only_candidates_within_reach(monkeypatch):
    widths = []
    original = _knn._exact_distances

    def spy(query, candidates, prepared, *scratch):
        widths.append(candidates.shape[1])
        return original(query, candidates, prepared, *scratch)

    monkeypatch.setattr(_knn, "_exact_distances", spy)
    # Points on a line 1 apart: the float32 values separate every neighbour,
    # so no candidate beyond the k-th is within the rounding reach.
    X = np.arange(200, dtype=np.float64)[:, None] * np.ones((1, 3))
    distances, indices = chunked_knn(X, 4, exclude_self=True)
    expected_d, expected_i = numpy_knn(X, 4, exclude_self=True)
    np.testing.assert_array_equal(indices, expected_i)
    np.testing.assert_allclose(distances, expected_d, rtol=1e-15)
    # the shortlist holds k + 16 = 20 candidates; far fewer are recomputed
    assert widths and max(widths) < 20


def test_search_across_many_blocks_uses_the_limit_and_stays_exact(
    monkeypatch, selection
):
    merges = []
    original = _knn._merge

    def spy(best, parts, n_take, fill):
        merges.append(sum(p[0].numel() for p in parts))
        return original(best, parts, n_take, fill)

    monkeypatch.setattr(_knn, "_merge", spy)
    rng = np.random.default_rng(3)
    # Rounded coordinates: exact ties across blocks and duplicated points.
    X = np.round(rng.normal(size=(1500, 5)), 1).astype(np.float32)
    X[700:760] = X[:60]
    cases = [(X, None, True), (X[:300], X[::-1].copy(), False)]
    for query, reference, exclude_self in cases:
        merges.clear()
        distances, indices = chunked_knn(
            query,
            6,
            reference,
            exclude_self=exclude_self,
            chunk_size=97,
            block_size=500,
        )
        expected_d, expected_i = numpy_knn(
            query, 6, reference, exclude_self=exclude_self
        )
        np.testing.assert_array_equal(indices, expected_i)
        np.testing.assert_allclose(distances, expected_d, rtol=1e-12, atol=1e-12)
        if selection == "torch":
            # the limit keeps most of the 1,500 references of each row out
            assert merges and sum(merges) < 0.2 * query.shape[0] * 1500


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_worker_threads_give_the_single_thread_result(metric):
    # Chunks not dividing the queries, blocks not dividing the references;
    # two worker threads, then one: same exact result, thread count restored.
    X = DATA[metric](5, 403)  # exact ties and duplicates
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        two = chunked_knn(
            X, 7, metric=metric, exclude_self=True, chunk_size=64, block_size=97
        )
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        one = chunked_knn(
            X, 7, metric=metric, exclude_self=True, chunk_size=64, block_size=97
        )
    finally:
        torch.set_num_threads(before)
    expected_d, expected_i = numpy_knn(X, 7, metric=metric, exclude_self=True)
    np.testing.assert_array_equal(two[1], expected_i)
    np.testing.assert_allclose(two[0], expected_d, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[0], two[0])


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("threads", [1, 2])
def test_numpy_products_give_the_same_neighbours(monkeypatch, metric, threads):
    # The tiles' products by NumPy's BLAS (chosen when it is the faster one
    # on large searches; forced here): the exact result, with NumPy's BLAS
    # at one thread in each worker and at torch's count without workers.
    from threadpoolctl import threadpool_info

    if _knn._select_below is None or _knn._HEAP_LARGEST == 0:
        pytest.skip("products by NumPy go with the compiled heap")
    monkeypatch.setattr(_knn, "_BLAS_CHOICE_REFERENCES", 1)
    monkeypatch.setattr(_knn, "numpy_products_faster", lambda: True)
    seen = []
    numpy_matmul = np.matmul

    def matmul(*args, **kwargs):
        seen.append(
            {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
        )
        return numpy_matmul(*args, **kwargs)

    monkeypatch.setattr(_knn.np, "matmul", matmul)
    X = DATA[metric](6, 203)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        distances, indices = chunked_knn(
            X, 7, metric=metric, exclude_self=True, chunk_size=32, block_size=50
        )
    finally:
        torch.set_num_threads(before)
    expected_d, expected_i = numpy_knn(X, 7, metric=metric, exclude_self=True)
    np.testing.assert_array_equal(indices, expected_i)
    np.testing.assert_allclose(distances, expected_d, rtol=1e-12, atol=1e-12)
    assert seen and all(counts <= {1 if threads == 2 else threads} for counts in seen)


def test_the_blas_choice_is_measured_once_and_restores_the_threads(monkeypatch):
    from sklearn_dml import _blas

    monkeypatch.setattr(_blas, "_NUMPY_FASTER", None)
    measured = []
    time_products = _blas._time_products

    def counting():
        measured.append(1)
        return time_products()

    monkeypatch.setattr(_blas, "_time_products", counting)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first = _blas.numpy_products_faster()
        assert torch.get_num_threads() == 2
        assert _blas.numpy_products_faster() is first  # remembered
    finally:
        torch.set_num_threads(before)
    assert isinstance(first, bool) and len(measured) == 1


def test_worker_error_is_raised_and_threads_restored(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("broken tile")

    monkeypatch.setattr(_knn, "_distance_block", broken)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="broken tile"):
            chunked_knn(grid_points(1, 40), 3, chunk_size=8)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_too_many_neighbours_is_an_error():
    X = grid_points(0, 12)
    with pytest.raises(ValueError, match="only 11 reference points"):
        chunked_knn(X, 12, exclude_self=True)
    # k = n - 1 in leave-one-out: every other point, never the query itself
    _, indices = chunked_knn(X, 11, exclude_self=True, block_size=5)
    assert (indices != np.arange(12)[:, None]).all()
    np.testing.assert_array_equal(indices, numpy_knn(X, 11, exclude_self=True)[1])


@pytest.mark.parametrize("value", [3e38, 1e19, 1e-30, 1e-40])
def test_huge_and_tiny_values_keep_exact_neighbours(value):
    # Squared norms of 1e19 overflow float32 and those of 1e-30 underflow;
    # the sum of 3e38 entries overflows although each is finite.
    X = np.full((4, 3), value, dtype=np.float32)
    X[[1, 3]] *= -1
    X[3, 0] *= 0.5
    distances, indices = chunked_knn(X, 2, exclude_self=True)
    expected_d, expected_i = numpy_knn(X, 2, exclude_self=True)
    np.testing.assert_array_equal(indices, expected_i)
    np.testing.assert_allclose(distances, expected_d, rtol=1e-12)
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        chunked_knn(X, 1)


def _select_in_two_tiles(select, width, *state):
    """A tile case for the compiled selection, passed to ``select`` in two
    calls (the rows' state carries from one tile to the next).

    Small integers: many exact ties; a wider row stride; an added vector;
    one infinite entry per row (the query itself) that must never enter.
    ``state`` are the arrays and sizes after the tile's arguments. Returns
    the values of the tile's rows (with the vector added) and the column
    offset of the tile.
    """
    rng = np.random.default_rng(width)
    n_rows, stride, offset = 6, width + 5, 1000
    tile = rng.integers(0, 30, size=(n_rows, stride)).astype(np.float32)
    tile[np.arange(n_rows), rng.integers(0, width, size=n_rows)] = np.inf
    add = rng.integers(0, 5, size=width).astype(np.float32)
    pointers = [x.ctypes.data if isinstance(x, np.ndarray) else x for x in state]
    for part in (slice(0, width // 2), slice(width // 2, width)):
        view = tile[:, part]
        select(
            view.ctypes.data,
            n_rows,
            view.shape[1],
            stride,
            offset + part.start,
            add[part].ctypes.data,
            *pointers,
        )
    return tile[:, :width] + add, offset


@pytest.mark.parametrize("width, keep", [(1000, 5), (37, 4), (16, 3), (40, 40)])
def test_compiled_heap_keeps_the_smallest_entries(selection, width, keep):
    if selection != "heap":
        pytest.skip("a test of the compiled heap itself")
    n_rows = 6
    values = np.full((n_rows, keep), np.inf, np.float32)
    columns = np.full((n_rows, keep), -1, np.int64)
    row_values, offset = _select_in_two_tiles(
        _knn._select_below, width, values, columns, keep
    )
    for i in range(n_rows):
        entered = columns[i] >= 0
        kept_c = columns[i, entered] - offset
        assert len(set(kept_c.tolist())) == kept_c.size  # no entry twice
        np.testing.assert_array_equal(values[i, entered], row_values[i, kept_c])
        assert np.isinf(values[i, ~entered]).all()  # never the infinite entry
        # the keep smallest of the row, ties included, the largest first
        np.testing.assert_array_equal(np.sort(values[i]), np.sort(row_values[i])[:keep])
        assert values[i, 0] == values[i].max()
        left_out = np.setdiff1d(np.arange(width), kept_c)
        assert (row_values[i, left_out] >= values[i, 0]).all()


@pytest.mark.parametrize("values_of", ["spread", "infinite groups", "one value"])
def test_compiled_row_start_keeps_the_smallest_entries(selection, values_of):
    # An empty heap starts from a bound on the group minima (halving an
    # interval; a quickselect when some are infinite): any such row gives
    # its keep smallest entries.
    if selection != "heap":
        pytest.skip("a test of the compiled heap itself")
    rng = np.random.default_rng(0)
    n_rows, width, keep = 4, 2000, 50
    tile = np.exp(rng.uniform(-8, 14, size=(n_rows, width))).astype(np.float32)
    if values_of == "infinite groups":
        tile[:, 16:80] = np.inf  # four whole groups
    elif values_of == "one value":
        tile[:] = 3.0
    values = np.full((n_rows, keep), np.inf, np.float32)
    columns = np.full((n_rows, keep), -1, np.int64)
    _knn._select_below(
        tile.ctypes.data,
        n_rows,
        width,
        width,
        0,
        0,
        values.ctypes.data,
        columns.ctypes.data,
        keep,
    )
    for i in range(n_rows):
        np.testing.assert_array_equal(np.sort(values[i]), np.sort(tile[i])[:keep])
        np.testing.assert_array_equal(tile[i, columns[i]], values[i])
        assert len(set(columns[i].tolist())) == keep


@pytest.mark.parametrize(
    "width, keep, capacity", [(1000, 5, 7), (37, 4, 12), (16, 3, 4)]
)
def test_compiled_buffer_keeps_the_smallest_entries(selection, width, keep, capacity):
    if selection != "buffer":
        pytest.skip("a test of the compiled buffer itself")
    # A small capacity, so that the buffers fill often.
    n_rows = 6
    values = np.zeros((n_rows, capacity), np.float32)
    columns = np.zeros((n_rows, capacity), np.int64)
    counts = np.zeros(n_rows, np.int64)
    limits = np.full(n_rows, np.inf, np.float32)
    row_values, offset = _select_in_two_tiles(
        _knn._select_buffered, width, values, columns, counts, limits, capacity, keep
    )
    for i in range(n_rows):
        kept_v, kept_c = values[i, : counts[i]], columns[i, : counts[i]] - offset
        assert keep <= counts[i] < capacity
        assert len(set(kept_c.tolist())) == counts[i]  # no entry twice
        np.testing.assert_array_equal(kept_v, row_values[i, kept_c])
        smallest = np.sort(kept_v)[:keep]
        np.testing.assert_array_equal(smallest, np.sort(row_values[i])[:keep])
        # everything left out is at least the limit, which is at least the
        # keep smallest kept
        left_out = np.setdiff1d(np.arange(width), kept_c)
        assert (row_values[i, left_out] >= limits[i]).all()
        assert smallest.max() <= limits[i]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_features", [1, 7, 16, 37, 128])
def test_compiled_exact_distances_match_numpy(selection, dtype, n_features):
    # The compiled second pass (its SSE2 and AVX2 kernels, vector_kernel):
    # float64 distances from the rows where they lie, a wider row stride
    # than the features, against NumPy; a pair of identical rows gets the
    # same bits at every position.
    if selection != "heap":
        pytest.skip("a test of the compiled kernel itself")
    rng = np.random.default_rng(n_features)
    storage = rng.normal(size=(50, n_features + 3)).astype(dtype)
    reference = torch.from_numpy(storage)[:, :n_features]
    query = torch.from_numpy(rng.normal(size=(6, n_features)) * 3)
    query[2] = reference[7].double()
    candidates = torch.from_numpy(rng.integers(0, 50, size=(6, 9)))
    candidates[2, ::2] = 7
    query[3] = query[1]
    candidates[1, 0] = candidates[3, 8] = 5
    distances = _knn._compiled_euclidean(query, candidates, reference).numpy()
    rows = storage[:, :n_features].astype(np.float64)[candidates.numpy()]
    expected = np.sqrt(((query.numpy()[:, None, :] - rows) ** 2).sum(axis=2))
    np.testing.assert_allclose(distances, expected, rtol=1e-13, atol=0)
    assert (distances[2, ::2] == 0).all()
    assert distances[1, 0] == distances[3, 8]


def test_default_tiles_cover_few_references_at_once_and_share_chunks_evenly(
    monkeypatch, selection
):
    # With the compiled selection, fewer references than 16 per kept
    # candidate (a few large classes) go into one tile, selected at once;
    # the queries are cut into whole rounds of even chunks, one per thread.
    if selection == "torch":
        pytest.skip("the compiled selection's sizes")
    shapes = _tile_shapes(monkeypatch)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2500, 6))
    k = 300  # 16 x (300 + 37) references would be needed for the row starts
    threads = torch.get_num_threads()
    _, indices = chunked_knn(X, k, exclude_self=True)
    assert {width for _, width in shapes} == {2500}
    rows = [n_rows for n_rows, _ in shapes]
    assert len(rows) % threads == 0
    assert max(rows) - min(rows) < len(rows)  # only the last is shorter
    expected = numpy_knn(X[:50], k + 1, X)[1][:, 1:]  # the query itself first
    np.testing.assert_array_equal(indices[:50], expected)
