"""Exact, memory-bounded k-nearest-neighbour search in plain torch.

Every retrieval metric of :mod:`sklearn_dml.metrics` asks the same question:
which reference points are closest to each query? This module answers it once,
exactly and deterministically, without ever holding an ``n_queries x
n_references`` matrix: queries are processed in chunks, references in blocks,
and a running top-k per query is merged block after block.
"""

import contextlib
import math
import numbers
import threading

import numpy as np
import torch

from .._blas import blas_threads, numpy_products_faster

try:  # the compiled selection; absent when the package was built without C
    from ._tile_select import euclidean_to_candidates as _euclidean_to_candidates
    from ._tile_select import select_below as _select_below
    from ._tile_select import select_buffered as _select_buffered
except ImportError:  # pragma: no cover - depends on the build
    _select_below = _select_buffered = _euclidean_to_candidates = None

__all__ = ["chunked_knn"]

_METRICS = ("euclidean", "cosine")

# Number of entries in one (query chunk x reference block) distance tile:
# 2**22 float32 entries is 16 MiB, small enough to be selected from while it
# is still in the processor's cache.
_BLOCK_BUDGET = 2**22
# Default number of references per block and of queries per chunk.
_DEFAULT_BLOCK = 2**13
_DEFAULT_CHUNK = 2**9
# The same for the compiled selection (CPU): tiles of 8 MiB, whose wider
# chunks reuse each reference block for more queries in the product, and
# whose narrower blocks are read back from a nearer cache.
_COMPILED_BUDGET = 2**21
_COMPILED_BLOCK = 2**11
_COMPILED_CHUNK = 2**10
# Consecutive columns of a tile row summarised by their minimum in the
# selection (see _collect_below).
_GROUP = 32
# The compiled selection keeps up to this many entries per row in a heap
# (log(n_take) per entry that enters), more in a buffer of _BUFFER_FACTOR
# times as many entries, cut back when full.
_HEAP_LARGEST = 128
_BUFFER_FACTOR = 3
# Float32 entries of the augmented reference rows built once per search
# (256 MiB, the distance tile of earlier versions); larger reference sets
# are augmented block by block.
_AUGMENTED_BUDGET = 2**26
# Reference sets of at least this many rows have their tiles' products
# computed by NumPy's BLAS when it is the faster one (see _Prepared).
_BLAS_CHOICE_REFERENCES = 2**13


def _as_2d_float(array, name):
    """Return ``array`` as a 2-D floating torch tensor (on the CPU or as given)."""
    if isinstance(array, torch.Tensor):
        tensor = array.detach()
    else:
        values = np.asarray(array)
        if values.dtype == object or not (
            np.issubdtype(values.dtype, np.number) or values.dtype == bool
        ):
            raise ValueError(
                f"{name} must contain numbers, got an array of dtype {values.dtype}."
            )
        if values.dtype not in (np.float32, np.float64):
            values = values.astype(np.float64)
        tensor = torch.from_numpy(np.ascontiguousarray(values))
    if tensor.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), "
            f"got an array with {tensor.ndim} dimension(s)."
        )
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(
            f"{name} must have at least one sample and one feature, "
            f"got shape {tuple(tensor.shape)}."
        )
    if tensor.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {tensor.dtype}.")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    # A finite sum proves every entry finite in one cheap pass; otherwise (a
    # NaN, an infinity, or only an overflowing sum) check entry by entry.
    if not bool(torch.isfinite(tensor.sum())) and not bool(
        torch.isfinite(tensor).all()
    ):
        raise ValueError(f"{name} contains NaN or infinity.")
    return tensor


def _check_positive_int(value, name, allow_none=True):
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or int(value) < 1
    ):
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


# Unit roundoff of float32, the precision of the first pass.
_U32 = 2.0**-24
# Rows converted at once while preparing the working copy (about 8 MiB).
_PREPARE_ELEMENTS = 2**20
# Float64 values gathered at once by the exact second pass (4 MiB, so
# that the gathered rows are still in cache when the distances read them).
_EXACT_ELEMENTS = 2**19


def _float64_rows(tensor):
    """Yield ``(start, stop, rows)``: ``tensor`` in float64, a few rows at a time.

    ``rows`` is one buffer reused from step to step (fresh allocations of this
    size cost more in page faults than the conversion itself); it is a copy,
    so callers may change it in place.
    """
    n_rows, n_features = tensor.shape
    step = max(1, min(n_rows, _PREPARE_ELEMENTS // n_features))
    buffer = torch.empty((step, n_features), dtype=torch.float64, device=tensor.device)
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        rows = buffer[: stop - start]
        rows.copy_(tensor[start:stop])
        yield start, stop, rows


def _squared_norms(rows):
    """Squared norms of float64 rows, without a temporary the size of ``rows``."""
    return torch.linalg.vector_norm(rows, dim=1).square_()


class _Prepared:
    """References ready for the float32 first pass, built once per search.

    Attributes set: ``work`` (float32 references the matrix product sees:
    centred on their mean for ``"euclidean"`` when that shrinks the norms,
    and scaled by a power of two when the norms are huge or tiny,
    unit rows for ``"cosine"``; the input itself when it is float32 and
    nothing changes), ``sq_norms`` (float32 squared norms of ``work``,
    euclidean only), ``reciprocal`` (float64 inverse norms of the original
    rows, cosine only), ``shift`` (float64 mean or None), ``scale`` (the
    power of two, 1.0 when unused) and ``largest``
    (largest norm of a ``work`` row).
    """

    def __init__(self, reference, metric):
        n_rows, n_features = reference.shape
        device = reference.device
        self.metric, self.reference = metric, reference
        # The compiled selection (CPU) adds the squared norms itself: no
        # augmented rows.
        self.compiled = _select_below is not None and device.type == "cpu"
        # The tiles are then plain float32 products, which NumPy's BLAS
        # computes in a quarter less time than torch's on some processors;
        # measured once per process, and only for searches large enough to
        # repay it.
        self.numpy_products = (
            self.compiled
            and n_rows >= _BLAS_CHOICE_REFERENCES
            and numpy_products_faster()
        )
        sq_norms = torch.empty(n_rows, dtype=torch.float64, device=device)
        total = torch.zeros(n_features, dtype=torch.float64, device=device)
        for start, stop, rows in _float64_rows(reference):
            sq_norms[start:stop] = _squared_norms(rows)
            total += rows.sum(dim=0)
        self.shift, self.scale = None, 1.0
        if metric == "euclidean":
            mean = total / n_rows
            mean_sq = float(mean.square().sum())
            # Centring pays when the mean dominates the spread around it:
            # the rounding bound of the first pass grows with the norms.
            if mean_sq > float(sq_norms.mean()) - mean_sq:
                self.shift = mean
            # A power of two (exact) brings very large or very small norms
            # to about 1: squared norms of 1e20 would overflow float32.
            spread = math.sqrt(max(float(sq_norms.max()), 0.0))
            if spread > 2.0**20 or 0.0 < spread < 2.0**-20:
                self.scale = 2.0 ** -math.frexp(spread)[1]
        else:
            norms = sq_norms.sqrt()
            self.reciprocal = torch.where(norms > 0, norms.reciprocal(), norms)
        if (
            metric == "cosine"
            or self.shift is not None
            or self.scale != 1.0
            or reference.dtype != torch.float32
        ):
            work = torch.empty((n_rows, n_features), dtype=torch.float32, device=device)
            for start, stop, rows in _float64_rows(reference):
                if self.shift is not None:
                    rows -= self.shift
                rows *= self.scale
                if metric == "cosine":
                    rows *= self.reciprocal[start:stop, None]
                work[start:stop] = rows
        else:
            work = reference
        self.work = work
        if metric == "euclidean":
            if work is reference:
                work_sq = sq_norms
            else:
                work_sq = torch.empty_like(sq_norms)
                for start, stop, rows in _float64_rows(work):
                    work_sq[start:stop] = _squared_norms(rows)
            self.sq_norms = work_sq.to(torch.float32)
            self.largest = float(work_sq.max()) ** 0.5
            # The rows [r, ||r||^2, 0...] of _distance_block, built once when
            # they fit in the budget (otherwise block by block).
            width = _augmented_width(n_features)
            self.augmented = None
            if not self.compiled and n_rows * width <= _AUGMENTED_BUDGET:
                self.augmented = torch.zeros(
                    (n_rows, width), dtype=torch.float32, device=device
                )
                self.augmented[:, :n_features] = work
                self.augmented[:, n_features] = self.sq_norms
        else:
            self.largest = 1.0

    def transform(self, rows, reciprocal=None):
        """Map rows (queries or references) to the float32 working space."""
        rows = rows.to(torch.float64)
        if self.shift is not None:
            rows = rows - self.shift
        if reciprocal is not None:
            rows = rows * reciprocal
        return (rows * self.scale).to(torch.float32)


def _unit_rows(rows):
    """Rows divided by their float64 norm (zero rows stay zero)."""
    norms = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
    return rows * torch.where(norms > 0, norms.reciprocal(), norms)


def _augmented_width(n_features):
    """Columns of the augmented rows: the features, the norm, zeros to a multiple of 8."""
    return -(-(n_features + 1) // 8) * 8


def _augmented_queries(query_work, prepared):
    """Query rows ready for :func:`_distance_block`: one product gives the tile.

    ``"euclidean"``: ``[-2 q, 1, 0...]`` (scaling by -2 is exact), so that the
    product with the augmented reference rows ``[r, ||r||^2, 0...]`` is
    ``||r||^2 - 2 q.r`` without a separate pass adding the norms over the
    tile; the width is padded with zeros to a multiple of 8 (aligned rows
    for the BLAS). ``"cosine"``: ``-q`` on unit rows. With the compiled
    selection (``prepared.compiled``) the euclidean rows are ``-2 q`` alone.
    """
    if prepared.metric != "euclidean":
        return query_work.neg()
    if prepared.compiled:  # the norms are added by the selection
        return query_work.mul(-2.0)
    n_rows, n_features = query_work.shape
    out = query_work.new_zeros((n_rows, _augmented_width(n_features)))
    torch.mul(query_work, -2.0, out=out[:, :n_features])
    out[:, n_features] = 1.0
    return out


def _distance_block(query_aug, prepared, start, stop, out, block_buffer=None):
    """First-pass values of a query chunk against references ``start:stop``.

    One float32 matrix product of ``query_aug`` (from
    :func:`_augmented_queries`) with the references: ``||r||^2 - 2 q.r``
    for ``"euclidean"`` (the query's squared norm does not change a row's
    order and is left out), ``-q.r`` on unit rows for ``"cosine"``, written
    into ``out``, a contiguous float32 tensor of shape ``(n_queries, stop -
    start)``, which is returned. ``block_buffer`` (euclidean) is a float32
    buffer of at least ``(stop - start) * query_aug.shape[1]`` entries
    receiving the augmented reference rows ``[r, ||r||^2, 0...]``. With
    the compiled selection (``prepared.compiled``) the euclidean product is
    ``-2 q.r`` alone: the selection adds ``||r||^2`` as it reads the tile.
    """
    block = prepared.work[start:stop]
    if prepared.metric == "euclidean" and prepared.augmented is not None:
        block = prepared.augmented[start:stop]
    elif prepared.metric == "euclidean" and not prepared.compiled:
        n_features, width = block.shape[1], query_aug.shape[1]
        if block_buffer is None:
            block_buffer = torch.empty(
                (stop - start) * width, dtype=torch.float32, device=block.device
            )
        augmented = block_buffer[: (stop - start) * width].view(stop - start, width)
        augmented[:, :n_features] = block
        augmented[:, n_features] = prepared.sq_norms[start:stop]
        augmented[:, n_features + 1 :] = 0.0
        block = augmented
    if prepared.numpy_products:  # same product, the faster BLAS (_Prepared)
        np.matmul(query_aug.numpy(), block.numpy().T, out=out.numpy())
    else:
        torch.mm(query_aug, block.T, out=out)
    return out


def _first_pass_unit(device):
    """Unit roundoff of float32 matrix products on ``device``.

    ``torch.set_float32_matmul_precision("high")`` (or CUDA's TF32 switch)
    lets products round to 10 mantissa bits, ``"medium"`` to bfloat16's 7:
    the error bound then widens accordingly, so results stay exact.
    """
    precision = torch.get_float32_matmul_precision()
    if precision == "medium":
        return 2.0**-8
    tf32 = device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32
    if precision == "high" or tf32:
        return 2.0**-11
    return _U32


def _error_bound(query_work, prepared):
    """Bound on the float32 rounding error of one first-pass value, per query.

    A dot product of length ``d`` summed in float32 is off by at most
    ``gamma_d |q| |r|`` with ``gamma_d = d u / (1 - d u)``; rounding the
    squared norms, the addition and the conversion of the inputs to float32
    add a few ``u (|q| + |r|)^2``. Twice the sum, plus the smallest normal
    number for underflow, is returned.
    """
    n_features = query_work.shape[1]
    unit = _first_pass_unit(query_work.device)
    terms = n_features + 8
    # Past d u >= 1 nothing is proven: every reference becomes a candidate.
    gamma = terms * unit / (1.0 - terms * unit) if terms * unit < 1 else math.inf
    q_norm = torch.linalg.vector_norm(query_work.to(torch.float64), dim=1)
    reach = (q_norm + prepared.largest).square()
    return 2.0 * (gamma + 8.0 * unit) * reach + torch.finfo(torch.float32).tiny


class _Scratch:
    """Grow-only buffers of one search thread, reused from chunk to chunk.

    A fresh allocation of a few MiB per chunk costs more in page faults
    than filling it; :meth:`get` hands out a view of a kept buffer instead,
    reallocated only when a larger one is needed.
    """

    def __init__(self, device):
        self.device = device
        self._buffers = {}

    def get(self, name, shape, dtype):
        """A tensor of ``shape`` and ``dtype`` (uninitialised) under ``name``."""
        numel = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.dtype != dtype or buffer.numel() < numel:
            buffer = torch.empty(numel, dtype=dtype, device=self.device)
            self._buffers[name] = buffer
        return buffer[:numel].view(shape)


def _exact_distances(query, candidates, prepared, scratch=None):
    """Float64 distances from each query row to its candidate references.

    Computed from coordinate differences (``"euclidean"``, so a duplicate is
    at distance exactly 0) or from products of float64 unit rows
    (``"cosine"``) with the same reduction for every pair: identical points
    get bit-identical distances wherever they are. Rows go in steps keeping
    the gathered neighbours near 4 MiB (in cache), gathered into the
    buffers of ``scratch`` (a :class:`_Scratch`; a fresh one when None).
    """
    n_rows, n_candidates = candidates.shape
    reference = prepared.reference
    n_features = reference.shape[1]
    if (
        prepared.compiled
        and prepared.metric == "euclidean"
        and reference.dtype in (torch.float32, torch.float64)
        and reference.stride(1) == 1
    ):
        return _compiled_euclidean(query, candidates, reference)
    if scratch is None:
        scratch = _Scratch(query.device)
    step = min(n_rows, max(1, _EXACT_ELEMENTS // max(1, n_candidates * n_features)))
    out = torch.empty((n_rows, n_candidates), dtype=torch.float64, device=query.device)
    euclidean = prepared.metric == "euclidean"
    for start in range(0, n_rows, step):
        ind = candidates[start : start + step]
        shape = (ind.numel(), n_features)
        neighbours = scratch.get("exact", shape, torch.float64)
        if reference.dtype == torch.float64:
            torch.index_select(reference, 0, ind.reshape(-1), out=neighbours)
        else:
            gathered = scratch.get("gathered", shape, reference.dtype)
            torch.index_select(reference, 0, ind.reshape(-1), out=gathered)
            neighbours.copy_(gathered)
        neighbours = neighbours.view(*ind.shape, n_features)
        q = query[start : start + step].unsqueeze(1)
        if euclidean:
            # Batched pairwise kernel: sqrt(sum((q - r)^2)) per pair in one
            # pass, without storing the differences.
            value = torch.cdist(
                q, neighbours, compute_mode="donot_use_mm_for_euclid_dist"
            )
            out[start : start + step] = value.squeeze(1)
        else:
            scaled = neighbours.mul_(prepared.reciprocal[ind].unsqueeze(2))
            value = scaled.mul_(q).sum(dim=2).neg_().add_(1.0).clamp_(0.0, 2.0)
            out[start : start + step] = value
    return out


def _compiled_euclidean(query, candidates, reference):
    """:func:`_exact_distances` for ``"euclidean"`` by the compiled kernel
    (float32 or float64 ``reference`` with contiguous rows).

    Each distance is read from the query row and the reference row where
    they lie (no gathered copy), the squared differences summed in float64
    in an order that depends only on the number of features.
    """
    query = query.contiguous()
    candidates = candidates.contiguous()
    out = torch.empty(candidates.shape, dtype=torch.float64)
    _euclidean_to_candidates(
        query.data_ptr(),
        query.shape[0],
        query.shape[1],
        query.stride(0),
        reference.data_ptr(),
        reference.stride(0),
        reference.dtype == torch.float64,
        candidates.data_ptr(),
        candidates.shape[1],
        out.data_ptr(),
    )
    return out


def _group_minima(tile):
    """Minima of the tile's contiguous column groups, and the columns they cover.

    Row ``i`` is cut into ``width // _GROUP`` groups of ``_GROUP``
    consecutive entries (the ``width % _GROUP`` last columns stay out);
    returns ``(minima, full)`` with ``minima`` of shape ``(n_rows, width //
    _GROUP)`` and ``full`` the number of columns covered. One pass over the
    tile while it is in cache.
    """
    n_rows, width = tile.shape
    n_groups = width // _GROUP
    full = n_groups * _GROUP
    grouped = tile[:, :full].unflatten(1, (n_groups, _GROUP))
    return grouped.amin(dim=2), full


def _first_limit(tile, n_take, minima=None):
    """Per row, a value with at least ``n_take`` entries of ``tile`` below it.

    ``tile`` has at least ``n_take`` columns and at most one infinite entry
    per row (the query itself). When the row has at least ``n_take`` groups
    (:func:`_group_minima`, given as ``minima`` or computed), the
    ``n_take`` smallest group minima are finite and each is the value of
    one entry, so at least ``n_take`` entries are at most the largest of
    them; otherwise the ``n_take`` smallest entries themselves are used.
    The float32 number just above that value is returned, shape ``(n_rows,
    1)``. A cheap first bound: a top-k over ``width / _GROUP`` minima.
    """
    if minima is None:
        minima = _group_minima(tile)[0]
    values = minima if minima.shape[1] >= n_take else tile
    kth = _smallest(values, n_take)[0]
    kth = kth.amax(dim=1, keepdim=True)
    return torch.nextafter(kth, kth.new_tensor(math.inf))


def _collect_below(tile, limit, offset, parts, minima=None):
    """Append to ``parts`` the entries of ``tile`` below their row's ``limit``.

    ``limit`` has shape ``(n_rows, 1)``; ``minima`` is the
    :func:`_group_minima` pair of ``tile`` when the caller has it. Only
    the groups of ``_GROUP`` consecutive columns whose minimum is below
    the limit are read again (each one contiguous run of memory, gathered
    with one :func:`torch.index_select`), and only their entries below it
    are kept; the ``width % _GROUP`` last columns are compared directly.
    Appends ``(rows, columns, values)``: int64 rows, int64 columns shifted
    by ``offset``, float32 values, sorted by row. Returns the number of
    entries appended.
    """
    if tile.stride(1) != 1:
        tile = tile.contiguous()
    n_rows, width = tile.shape
    minima, full = _group_minima(tile) if minima is None else minima
    n_groups = full // _GROUP
    found = 0
    if full:
        selected = torch.nonzero((minima < limit).view(-1)).squeeze(1)
        if selected.numel():
            rows = torch.div(selected, n_groups, rounding_mode="floor")
            first = selected - rows * n_groups
            first *= _GROUP
            # Every window of _GROUP consecutive entries of the tile's
            # memory, as rows of a view: a group is one of them.
            windows = torch.as_strided(
                tile,
                ((n_rows - 1) * tile.stride(0) + width - _GROUP + 1, _GROUP),
                (1, 1),
            )
            entries = windows.index_select(0, rows * tile.stride(0) + first)
            which, member = torch.nonzero(
                entries < limit.view(-1)[rows].unsqueeze(1), as_tuple=True
            )
            rows = rows[which]
            columns = first[which] + member + offset
            parts.append((rows, columns, entries[which, member]))
            found += rows.numel()
    if full < width:
        rest = tile[:, full:]
        rows, columns = torch.nonzero(rest < limit, as_tuple=True)
        if rows.numel():
            parts.append((rows, columns + (full + offset), rest[rows, columns]))
            found += rows.numel()
    return found


def _merge(best, parts, n_take, fill):
    """Per row, ``n_take`` smallest values among ``best`` and ``parts``.

    ``best`` is ``None`` or a ``(values, columns)`` pair of shape ``(n_rows,
    n_take)``; ``parts`` are ``(rows, columns, values)`` triples sorted by
    row (from :func:`_collect_below`). Each part is laid out into one padded
    ``(n_rows, n_take + c)`` matrix (``c`` the largest count of new entries
    in a row; positions from per-row counts, no sort) and one selection
    (:func:`_smallest`) keeps ``n_take`` per row. A row with fewer entries is
    completed with value ``inf`` and column ``fill[row]``.
    """
    n_rows = fill.shape[0]
    device = fill.device
    counts = torch.zeros(n_rows, dtype=torch.int64, device=device)
    positions = []
    for rows, _, _ in parts:
        part_counts = torch.bincount(rows, minlength=n_rows)
        first = torch.cumsum(part_counts, 0) - part_counts
        position = torch.arange(rows.numel(), device=device) - first[rows]
        positions.append(position + counts[rows])
        counts += part_counts
    base = 0 if best is None else n_take
    width = base + int(counts.max()) if parts else base
    width = max(width, n_take)
    values = torch.full((n_rows, width), math.inf, dtype=torch.float32, device=device)
    columns = fill.unsqueeze(1).repeat(1, width)
    if best is not None:
        values[:, :n_take] = best[0]
        columns[:, :n_take] = best[1]
    for (rows, cols, vals), position in zip(parts, positions):
        values[rows, position + base] = vals
        columns[rows, position + base] = cols
    if width > n_take:
        values, keep = _smallest(values, n_take)
        columns = torch.gather(columns, 1, keep)
    return values, columns


def _fill_columns(own, n_rows, device):
    """The column a row's unused places point to: the query itself in a
    leave-one-out search (``own``), else reference 0."""
    if own is not None:
        return own
    return torch.zeros(n_rows, dtype=torch.int64, device=device)


def _tiles(query_aug, prepared, own, block_size, buffer, block_buffer=None):
    """Yield ``(r_start, tile)``: the first-pass values of the query chunk
    against each block of ``block_size`` references, in turn.

    Each tile is a view of ``buffer`` (see :func:`_distance_block`),
    overwritten by the next one; the query's own reference (``own``, a
    leave-one-out search) is set to ``inf``, so that it never enters.
    """
    n_rows, n_references = query_aug.shape[0], prepared.work.shape[0]
    if own is not None:
        own_low, own_high = int(own.min()), int(own.max())
    for r_start in range(0, n_references, block_size):
        r_stop = min(r_start + block_size, n_references)
        width = r_stop - r_start
        tile = buffer[: n_rows * width].view(n_rows, width)
        _distance_block(query_aug, prepared, r_start, r_stop, tile, block_buffer)
        if own is not None and own_low < r_stop and own_high >= r_start:
            local = own - r_start
            inside = torch.nonzero((local >= 0) & (local < width)).squeeze(1)
            tile[inside, local[inside]] = torch.inf
        yield r_start, tile


def _shortlist(
    query_work, prepared, own, n_take, block_size, buffer, block_buffer=None
):
    """The ``n_take`` smallest first-pass values per row, over all blocks.

    Returns ``(values, columns)`` of shape ``(n_rows, n_take)``, unsorted;
    the query's own index (``own``) never enters (a row of a leave-one-out
    search with fewer other references than ``n_take`` gets it with value
    ``inf``). ``buffer`` is a flat float32 tensor of at least ``n_rows *
    block_size`` entries holding each distance tile; ``block_buffer`` one
    for the augmented reference rows (see :func:`_distance_block`).

    Each row keeps a limit, a value that at least ``n_take`` entries seen
    so far are below: entries at or above it can never enter. The first
    tile sets it (:func:`_first_limit`); then every tile goes through
    :func:`_collect_below` right after its product, while in cache, and the
    entries found are merged (:func:`_merge`) once they number ``n_rows *
    n_take``, which lowers the limit to the row's current ``n_take``-th
    value. Everything left out is at least the final limit, i.e. at least
    every kept value.
    """
    n_rows = query_work.shape[0]
    n_references = prepared.work.shape[0]
    device = query_work.device
    query_aug = _augmented_queries(query_work, prepared)
    fill = _fill_columns(own, n_rows, device)
    best = limit = None
    parts, found = [], 0
    for r_start, dist in _tiles(
        query_aug, prepared, own, block_size, buffer, block_buffer
    ):
        width = dist.shape[1]
        r_stop = r_start + width
        minima = _group_minima(dist)
        if limit is None:
            if width >= 2 * n_take:
                limit = _first_limit(dist, n_take, minima[0])
            else:
                limit = torch.full((n_rows, 1), math.inf, device=device)
        found += _collect_below(dist, limit, r_start, parts, minima)
        if found >= n_rows * n_take or (parts and r_stop == n_references):
            best = _merge(best, parts, n_take, fill)
            limit = best[0].amax(dim=1, keepdim=True)
            parts, found = [], 0
    if best is None:
        best = _merge(None, [], n_take, fill)
    return best


def _shortlist_compiled(query_work, prepared, own, n_take, block_size, buffer):
    """:func:`_shortlist` with the compiled selection (CPU): same contract.

    Each tile is the plain product ``-2 q . r`` (``-q . r`` on unit rows for
    ``"cosine"``); the C functions of ``_tile_select.c`` add the squared
    norms of the references as they read the tile and merge each row into
    the row's ``n_take`` smallest values so far: up to ``_HEAP_LARGEST`` in
    a max-heap whose largest value is the limit (an entry below it replaces
    it; ``_select_below``), more in a buffer of ``_BUFFER_FACTOR * n_take``
    entries to which the entries below the limit are appended, cut back to
    at least its ``n_take`` smallest when full (``_select_buffered``). An entry left
    out is at least a limit the final values are at most. One pass over the
    tile, while in cache, with no temporary.
    """
    n_rows, device = query_work.shape[0], query_work.device
    factor = _augmented_queries(query_work, prepared)
    n_references = prepared.work.shape[0]
    if n_references <= block_size and n_references < 16 * n_take:
        # One tile, too narrow for the row starts of the compiled selection
        # (fewer 16-entry groups than entries kept): one selection over it.
        ((_, tile),) = _tiles(factor, prepared, own, block_size, buffer)
        if prepared.metric == "euclidean":
            tile += prepared.sq_norms
        return _smallest(tile, n_take)
    heap = n_take <= _HEAP_LARGEST
    capacity = n_take if heap else _BUFFER_FACTOR * n_take
    # Unused places keep value inf and the fill column of _shortlist (the
    # query itself, or 0): a row with fewer references than n_take. The
    # buffer's places beyond its count are set so at the end, and only
    # those kept.
    fill = _fill_columns(own, n_rows, device)
    if heap:
        values = torch.full((n_rows, capacity), math.inf, device=device)
        columns = fill.unsqueeze(1).repeat(1, capacity)
    else:  # the buffer, its fill counts and limits
        values = torch.empty((n_rows, capacity), device=device)
        columns = torch.empty((n_rows, capacity), dtype=torch.int64, device=device)
        counts = torch.zeros(n_rows, dtype=torch.int64, device=device)
        limits = torch.full((n_rows,), math.inf, device=device)
    for r_start, tile in _tiles(factor, prepared, own, block_size, buffer):
        width = tile.shape[1]
        norms = 0
        if prepared.metric == "euclidean":
            norms = prepared.sq_norms[r_start : r_start + width].data_ptr()
        where = (tile.data_ptr(), n_rows, width, tile.stride(0), r_start, norms)
        if heap:
            _select_below(*where, values.data_ptr(), columns.data_ptr(), n_take)
        else:
            _select_buffered(
                *where,
                values.data_ptr(),
                columns.data_ptr(),
                counts.data_ptr(),
                limits.data_ptr(),
                capacity,
                n_take,
            )
    if heap:
        return values, columns
    values.masked_fill_(
        torch.arange(capacity, device=device) >= counts[:, None], math.inf
    )
    values, keep = _smallest(values, n_take)
    columns = torch.gather(columns, 1, keep)
    return values, torch.where(keep >= counts[:, None], fill[:, None], columns)


def _smallest(values, n):
    """The ``n`` smallest entries of each row of ``values`` and their
    positions, in no particular order.

    On the CPU by NumPy's introselect, a few times faster than
    :func:`torch.topk` there (0.9 against 3.6 ms for the 201 smallest of
    450 rows of 900).
    """
    if values.device.type != "cpu":
        return torch.topk(values, n, dim=1, largest=False, sorted=False)
    positions = _smallest_positions(values, n)
    smallest = np.take_along_axis(values.numpy(), positions.numpy(), axis=1)
    return torch.from_numpy(smallest), positions


def _smallest_positions(values, n):
    """The positions alone of :func:`_smallest`."""
    if values.device.type != "cpu":
        return torch.topk(values, n, dim=1, largest=False, sorted=False).indices
    return torch.from_numpy(np.argpartition(values.numpy(), n - 1, axis=1)[:, :n])


def _knn(
    query,
    reference,
    k,
    *,
    metric="euclidean",
    self_index=None,
    chunk_size=None,
    block_size=None,
    device="cpu",
    prepared=None,
):
    """Exact kNN on validated torch tensors; see :func:`chunked_knn`.

    ``self_index`` is an optional int64 tensor of shape ``(n_queries,)`` giving,
    for each query, one reference index that must never be returned (the query
    itself in leave-one-out retrieval). ``prepared`` is a :class:`_Prepared`
    of ``reference`` on ``device``, to share between calls.
    """
    device = torch.device(device)
    n_queries = query.shape[0]
    n_references = reference.shape[0]
    chunk_given = chunk_size
    if prepared is None:
        prepared = _Prepared(reference.to(device), metric)
    block_size, chunk_size = _sizes(
        n_references, k, chunk_size, block_size, prepared.compiled
    )
    if device.type == "cpu" and chunk_given is None:
        # Whole rounds of chunks of even sizes, one chunk per thread a round,
        # so that no thread waits for another at the end (and every thread
        # has work).
        threads = torch.get_num_threads()
        n_chunks = threads * -(-n_queries // (threads * chunk_size))
        chunk_size = max(1, -(-n_queries // n_chunks))
    if self_index is not None:
        self_index = self_index.to(device)
    # Candidates kept beyond k by the first pass; widened for the rows whose
    # shortlist cannot be proven to hold the exact k nearest.
    first_extra = max(16, k // 8)

    out_dist = torch.empty((n_queries, k), dtype=torch.float64)
    out_ind = torch.empty((n_queries, k), dtype=torch.int64)
    rows_max = min(chunk_size, n_queries)
    width = _augmented_width(reference.shape[1])

    # The augmented reference rows of a block, when they are built block by
    # block (torch selection, euclidean, too many references to build once).
    block_rows = 0
    if metric == "euclidean" and not prepared.compiled and prepared.augmented is None:
        block_rows = block_size * width

    def buffers():
        return (
            torch.empty(rows_max * block_size, dtype=torch.float32, device=device),
            torch.empty(block_rows, dtype=torch.float32, device=device),
            _Scratch(device),
        )

    def search(q_start, own_buffers):
        q_stop = min(q_start + chunk_size, n_queries)
        own = None if self_index is None else self_index[q_start:q_stop]
        _knn_chunk(
            query[q_start:q_stop],
            prepared,
            k,
            own,
            first_extra,
            block_size,
            own_buffers,
            (out_dist[q_start:q_stop], out_ind[q_start:q_stop]),
        )

    starts = range(0, n_queries, chunk_size)
    n_workers = 1
    if device.type == "cpu":
        n_workers = max(1, min(torch.get_num_threads(), len(starts)))
    # NumPy's BLAS, when it computes the products, gets torch's threads: all
    # of them for one worker, one per worker thread otherwise.
    blas = contextlib.nullcontext()
    if prepared.numpy_products:
        blas = blas_threads(torch.get_num_threads() if n_workers == 1 else 1)
    with blas:
        if n_workers == 1:
            own_buffers = buffers()
            with torch.inference_mode():
                for q_start in starts:
                    search(q_start, own_buffers)
        else:
            _in_worker_threads(starts, n_workers, search, buffers)
    return out_dist, out_ind


def _in_worker_threads(starts, n_workers, search, buffers):
    """Run ``search(start, buffers)`` for every chunk start in worker threads.

    Each of ``n_workers`` Python threads takes the next chunk until none is
    left, with its own buffers, while torch runs single-threaded (restored
    afterwards): the chunks are independent, so the parallelism is over
    chunks, as in faiss, instead of inside each operation. The many small
    operations of the selection then never wait for a sleeping thread of
    the pool at a barrier, which costs a scheduler time slice on a busy
    machine; torch operations release the interpreter lock. The first error
    of a worker is raised once all have stopped.
    """
    pending = iter(starts)
    lock = threading.Lock()
    errors = []

    def work():
        try:
            own_buffers = buffers()
            with torch.inference_mode():
                while not errors:
                    with lock:
                        q_start = next(pending, None)
                    if q_start is None:
                        return
                    search(q_start, own_buffers)
        except BaseException as error:  # re-raised in the calling thread
            errors.append(error)

    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        workers = [threading.Thread(target=work) for _ in range(n_workers)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        torch.set_num_threads(threads_before)
    if errors:
        raise errors[0]


def _knn_chunk(query, prepared, k, own, extra, block_size, buffers, out):
    """Exact neighbours of one query chunk, written into ``out``.

    ``buffers`` is the ``(tile buffer, block buffer)`` pair of
    :func:`_shortlist` and the thread's :class:`_Scratch`.
    """
    device = buffers[0].device
    n_references = prepared.work.shape[0]
    q = query.to(device=device, dtype=torch.float64)
    if prepared.metric == "cosine":
        q = _unit_rows(q)
    q_work = prepared.transform(q)
    bound = _error_bound(q_work, prepared)
    pending = None  # every row, until some need a wider shortlist
    while pending is None or pending.numel():
        n_take = min(k + extra, n_references)
        p_own, p_work, p_bound = own, q_work, bound
        if pending is not None:
            p_own = None if own is None else own[pending]
            p_work, p_bound = q_work[pending], bound[pending]
        if prepared.compiled:
            values, cols = _shortlist_compiled(
                p_work, prepared, p_own, n_take, block_size, buffers[0]
            )
        else:
            values, cols = _shortlist(
                p_work, prepared, p_own, n_take, block_size, *buffers[:2]
            )
        if n_take < n_references:
            # Every reference left out has a first-pass value at least the
            # largest kept one; the exact k nearest have values at most the
            # k-th smallest plus twice the bound (Notes).
            reach = _kth_smallest(values, k).double()
            reach += 2.0 * p_bound
            ok = reach < values.amax(dim=1).double()
        else:
            reach = torch.full((values.shape[0],), torch.inf, device=device)
            ok = torch.ones(values.shape[0], dtype=torch.bool, device=device)
        if pending is None:
            pending = torch.arange(q.shape[0], device=device)
        every = bool(ok.all())
        done = pending if every else pending[ok]
        if done.numel():
            if not every:
                values, cols, reach = values[ok], cols[ok], reach[ok]
            # Only candidates within ``reach`` can be among the k nearest:
            # the others are recomputed by no one (Notes).
            width = int((values.double() <= reach.unsqueeze(1)).sum(dim=1).max())
            width = max(width, k)
            if width < cols.shape[1]:
                cols = torch.gather(cols, 1, _smallest_positions(values, width))
            cols = _sorted_rows(cols)
            whole = done.numel() == q.shape[0]  # then done is every row, in order
            exact = _exact_distances(
                q if whole else q[done], cols, prepared, buffers[2]
            )
            if own is not None:
                done_own = own if whole else own[done]
                exact.masked_fill_(cols == done_own.unsqueeze(1), torch.inf)
            exact, order = _stable_sort_rows(exact)
            rows = slice(None) if whole else done.cpu()
            out[0][rows] = exact[:, :k].cpu()
            out[1][rows] = torch.gather(cols, 1, order[:, :k]).cpu()
        pending = pending[~ok]
        extra *= 4


def _kth_smallest(values, k):
    """The ``k``-th smallest entry of each row (NumPy's introselect on the
    CPU, a fraction of :func:`torch.kthvalue`'s time there)."""
    if values.device.type != "cpu":
        return torch.kthvalue(values, k, dim=1).values
    return torch.from_numpy(np.partition(values.numpy(), k - 1, axis=1)[:, k - 1])


def _sorted_rows(columns):
    """Each row of the int64 ``columns`` in increasing order.

    On the CPU by NumPy, whose integer sort takes a few percent of
    :func:`torch.sort`'s time on rows of a few hundred entries.
    """
    if columns.device.type == "cpu":
        return torch.from_numpy(np.sort(columns.numpy(), axis=1))
    return torch.sort(columns, dim=1).values


def _stable_sort_rows(values):
    """``(sorted values, order)`` per row, equal values kept in column order.

    On the CPU, NumPy's vectorised (unstable) sort, then its stable sort
    again on the rows where two sorted values are equal, the only rows
    where the two can differ: together a fraction of :func:`torch.sort`'s
    time on rows of a few hundred entries.
    """
    if values.device.type != "cpu":
        return torch.sort(values, dim=1, stable=True)
    array = values.numpy()
    order = np.argsort(array, axis=1)
    ranked = np.take_along_axis(array, order, axis=1)
    tied = np.flatnonzero((ranked[:, 1:] == ranked[:, :-1]).any(axis=1))
    if tied.size:
        order[tied] = np.argsort(array[tied], axis=1, kind="stable")
        ranked[tied] = np.take_along_axis(array[tied], order[tied], axis=1)
    return torch.from_numpy(ranked), torch.from_numpy(order)


def _sizes(n_references, k, chunk_size, block_size, compiled=False):
    """Reference block and query chunk sizes from the memory budget.

    By default a block holds 8192 references (at least four times the
    ``k + max(16, k // 8)`` candidates kept per row, so that the first
    tile bounds the selection) and a chunk 512 queries, fewer when the tile
    would exceed ``_BLOCK_BUDGET`` entries; with the compiled selection
    (``compiled``) 2048 references and 1024 queries within
    ``_COMPILED_BUDGET``, or all the references in one block when they are
    fewer than 16 per kept candidate (the search's single-tile selection:
    with many neighbours among few references, as in the retrieval scores
    of a few large classes, it is the faster).
    """
    budget, block, chunk = _BLOCK_BUDGET, _DEFAULT_BLOCK, _DEFAULT_CHUNK
    n_take = k + max(16, k // 8)
    if compiled:
        budget, block, chunk = _COMPILED_BUDGET, _COMPILED_BLOCK, _COMPILED_CHUNK
        if n_references < 16 * n_take:
            # Too few references for the compiled row starts: one tile
            # holds them all, selected at once (see _shortlist_compiled).
            block = n_references
    if block_size is None:
        if chunk_size is None:
            block_size = max(block, 4 * n_take)
        else:
            block_size = max(1, budget // chunk_size)
    block_size = min(block_size, n_references)
    if chunk_size is None:
        chunk_size = max(1, min(chunk, budget // block_size))
    return block_size, chunk_size


def chunked_knn(
    query,
    k,
    reference=None,
    *,
    metric="euclidean",
    exclude_self=False,
    chunk_size=None,
    block_size=None,
    device="cpu",
):
    r"""Find the exact k nearest neighbours without an n x n distance matrix.

    Queries are processed ``chunk_size`` at a time against blocks of
    ``block_size`` references; each block's nearest references are merged
    into a running top-k, so memory grows with ``chunk_size * block_size`` and never
    with ``n_queries * n_references``. Designed for a million 128-dimensional
    embeddings on a CPU; ``device="cuda"`` runs the same search on a GPU.

    Parameters
    ----------
    query : array-like of shape (n_queries, n_features)
        Points whose neighbours are searched (a torch tensor works too).
    k : int
        Number of neighbours returned per query. At most ``n_references``
        (``n_references - 1`` with ``exclude_self=True``).
    reference : array-like of shape (n_references, n_features), default=None
        Points among which neighbours are searched (a torch tensor works too).
        ``None`` searches the query set itself.
    metric : {"euclidean", "cosine"}, default="euclidean"
        ``"euclidean"`` is the L2 distance; ``"cosine"`` is one minus the
        cosine similarity (a zero vector is at distance 1 from everything).
    exclude_self : bool, default=False
        Leave-one-out search: never return query ``i`` as a neighbour of
        itself. Requires the query set to be the reference set
        (``reference=None`` or of the same length, row ``i`` being query
        ``i``). Only the query's own index is excluded; duplicates of it are
        ordinary neighbours at distance 0.
    chunk_size : int, default=None
        Number of queries processed at once. ``None`` uses 1024 with the
        compiled selection (the CPU, see Notes) and 512 otherwise, fewer
        when the float32 distance tile (``chunk_size x block_size``) would
        exceed 8 MiB (16 MiB without the compiled selection); on the CPU
        the queries are then cut into whole rounds of chunks of even sizes,
        one chunk per thread a round (see Notes for the memory used).
    block_size : int, default=None
        Number of references compared with a chunk at once. ``None`` uses
        2048 with the compiled selection and 8192 otherwise, or ``4 * (k +
        max(16, k // 8))`` when larger (capped at ``n_references``); with
        the compiled selection every reference when they are fewer than
        ``16 * (k + max(16, k // 8))``; when only ``chunk_size`` is given,
        the largest block keeping the distance tile within 8 MiB (16 MiB).
    device : str or torch.device, default="cpu"
        Device on which distances are computed. Inputs are moved there;
        results always come back as NumPy arrays.

    Returns
    -------
    distances : ndarray of shape (n_queries, k), dtype float64
        Distance from each query to its neighbours, non-decreasing per row.
    indices : ndarray of shape (n_queries, k), dtype int64
        Row indices into ``reference`` (or into ``query`` when ``reference``
        is None) of the neighbours.

    See Also
    --------
    sklearn.neighbors.NearestNeighbors : General neighbour search; ties are
        not broken deterministically.

    Notes
    -----
    For each query :math:`q` the neighbours are the references sorted by the
    key :math:`(d(q, r_j), j)`, i.e. by distance and, among exactly equal
    distances, by increasing reference index :math:`j`. The result therefore
    does not depend on ``chunk_size``, ``block_size`` nor on how
    :func:`torch.topk` orders ties. Inputs are kept as given (float32 keeps
    memory low); returned distances are float64.

    *First pass (float32).* Each (chunk x block) tile is one float32 matrix
    product, the squared norms riding along as one more column
    (:math:`[-2q, 1] \cdot [r, \lVert r\rVert^2]`, no separate pass over the
    tile),

    .. math::

        v(q, r) = \lVert r\rVert^2 - 2\, q^\top r \quad (\text{euclidean}),
        \qquad v(q, r) = -\hat q^\top \hat r \quad (\text{cosine}),

    which orders references like the distance (:math:`\lVert q\rVert^2` is
    constant in a row; :math:`\hat x = x / \lVert x\rVert`). The
    ``m = k + max(16, k // 8)`` smallest values per row are kept. Tiles are
    small (1024 x 2048 entries, 8 MiB, by default with the compiled
    selection; 512 x 8192 otherwise) and each is reduced right after its
    product, while it is still in cache. On the CPU, when the package was built with
    its C extension (any C compiler at install time), one compiled pass per
    tile row does it: the row's ``m`` smallest values so far are a max-heap
    whose largest value is the limit, entries are compared with it 16 at a
    time (with AVX2 where the processor has it), and an entry below it
    replaces it; the squared norms
    :math:`\lVert r\rVert^2` are added as the tile is read, so the product
    is the plain :math:`-2 q^\top r`; an empty heap is started from the
    entries below a bound that at least ``m`` minima of 16-entry groups are
    at most (found by halving their range), read from the groups whose
    minimum is below it; above 128 candidates per row,
    where a heap pays
    :math:`\log m` per entry that enters, the entries below the limit are
    appended to a buffer of ``3 m`` instead, cut back when full to the
    entries at most a bound that at least ``m`` of them are at most (ten
    branch-free halvings of their range; a quickselect of the ``m``
    smallest when that keeps too many); a reference set of one tile with
    fewer than 16 entries per kept candidate (small searches keeping most
    of a row) is selected at once by NumPy's introselect. Otherwise (no
    compiler, or a GPU) torch operations do it:
    every row keeps a limit, a value that at least ``m`` entries seen so
    far are below (from the first tile, the ``m``-th smallest minimum of its
    column groups; later, the row's current ``m``-th value); each row of
    the tile is cut into groups of 32 consecutive columns, one pass takes
    their minima, and only the groups whose minimum is below the limit are
    read again (one contiguous run of memory each), keeping their entries
    below it; the entries found are merged into the row's ``m`` best (one
    selection over them: :func:`torch.topk`, NumPy's introselect on the
    CPU) once they number ``m`` per row on
    average, which lowers the limit. Either way an entry left out is at
    least a limit the final ``m`` kept values are at most, so they are a
    true ``m`` smallest. On the CPU the query chunks are shared by as many
    worker threads as torch has threads, torch itself running
    single-threaded meanwhile (restored afterwards; calls from several
    threads at once should therefore not rely on torch's thread count, nor
    on NumPy's BLAS's when it computes the products, below):
    the selection never waits at a thread-pool barrier. With the compiled
    selection and 8,192 references or more, the tiles' products go through
    NumPy's BLAS instead of torch's when NumPy's is the faster one on the
    machine (measured once per process; it then gets torch's thread count,
    one thread per worker), the same products in any order of summation:
    the bound below holds for both. The rounding of :math:`v` is at most
    :math:`b = 2(\gamma_{d+8} + 8u)(\lVert q\rVert + \max_j \lVert r_j
    \rVert)^2` with :math:`u = 2^{-24}` and :math:`\gamma_m = m u / (1 - m
    u)`; references are centred on their mean first when that shrinks their
    norms. If the :math:`k`-th smallest kept value :math:`v_{(k)}` plus
    :math:`2b` is below the largest kept value, every exact :math:`k`
    nearest (ties included) is in the shortlist; rows where it is not are
    searched again with four times more candidates.

    *Second pass (float64).* A candidate with :math:`v > v_{(k)} + 2b` is
    strictly farther than the exact :math:`k`-th neighbour, so only the
    candidates with :math:`v \le v_{(k)} + 2b` (at least :math:`k`) are
    recomputed, pair by pair from coordinate differences, :math:`\sqrt{\sum_i
    (q_i - r_i)^2}` (with the C extension a compiled loop reading each
    reference row where it lies, summing in an order that depends only on
    the number of features, with AVX2 where the processor has it;
    otherwise one fused :func:`torch.cdist` pass) and :math:`1 -
    \sum_i \hat q_i \hat r_i`, which gives duplicates bit-identical
    distances (exactly 0 to the query's own duplicates), and sorted stably
    by (distance, index). The float32 values only choose the candidates;
    the returned order and distances are those of the float64 formula for
    every returned neighbour, so ranks (and MAP@R) do not depend on the
    first pass's rounding.

    *Memory.* Besides the inputs and the output (``n_queries * k * 16``
    bytes): a float32 working copy of the references when they are not
    float32 already, are centred, or for ``"cosine"`` (``n_references *
    n_features * 4`` bytes); for ``"euclidean"`` with the torch selection,
    the augmented reference rows (``n_references * (n_features + 8) * 4``
    bytes, built once when that is at most 256 MiB, otherwise block by
    block); per thread, one distance tile of ``chunk_size * block_size *
    4`` bytes allocated once and reused (8 MiB by default with the compiled
    selection, 16 MiB otherwise), the shortlist
    (``chunk_size * m * 12`` bytes, three times that in the compiled
    selection's buffer above 128 candidates per row), with the torch selection the group
    minima (a 32nd of the tile) and the entries found before a merge
    (about ``chunk_size * m * 16`` bytes), and the buffers of the float64 second
    pass, kept from chunk to chunk (about 6 MiB, more only when the
    candidates of one query alone need more).
    Nothing grows with ``n_queries * n_references``. A smaller
    ``chunk_size`` lowers the peak; a very small one makes the matrix
    products inefficient.

    References
    ----------
    .. [1] J. Johnson, M. Douze and H. Jégou, "Billion-scale similarity search
       with GPUs", IEEE Transactions on Big Data, 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.metrics import chunked_knn
    >>> X = np.array([[0.0], [1.0], [1.0], [3.0]])
    >>> distances, indices = chunked_knn(X, k=2, exclude_self=True)
    >>> indices
    array([[1, 2],
           [2, 0],
           [1, 0],
           [1, 2]])
    >>> distances[3]
    array([2., 2.])
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")
    k = _check_positive_int(k, "k", allow_none=False)
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    block_size = _check_positive_int(block_size, "block_size")
    query = _as_2d_float(query, "query")
    if reference is None:
        reference = query
    else:
        reference = _as_2d_float(reference, "reference")
        if reference.shape[1] != query.shape[1]:
            raise ValueError(
                f"query has {query.shape[1]} features but reference has "
                f"{reference.shape[1]}; they must match."
            )
    n_queries, n_references = query.shape[0], reference.shape[0]
    self_index = None
    if exclude_self:
        if n_references != n_queries:
            raise ValueError(
                "exclude_self=True needs the query set to be the reference set, "
                f"got {n_queries} queries and {n_references} references."
            )
        self_index = torch.arange(n_queries)
    available = n_references - (1 if exclude_self else 0)
    if k > available:
        raise ValueError(
            f"k={k} neighbours requested but only {available} reference points "
            "are available"
            + (" (excluding the query itself)." if exclude_self else ".")
        )
    distances, indices = _knn(
        query,
        reference,
        k,
        metric=metric,
        self_index=self_index,
        chunk_size=chunk_size,
        block_size=block_size,
        device=device,
    )
    return distances.numpy(), indices.numpy()
