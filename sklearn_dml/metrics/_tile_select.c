/* Selection of the smallest entries of distance tiles, for chunked_knn.
 *
 * One pass over each row of a (queries x references) tile, while the tile is
 * still in cache after its matrix product. select_below keeps each row's
 * `keep` smallest entries so far in a max-heap whose largest value is the
 * row's limit: an entry below the limit replaces it. Entries are compared
 * with the limit 16 at a time (SSE2 where available) and only those below
 * it are visited one by one. An empty heap (the first tile of a chunk) is
 * started from the entries below a bound read from the minima of 16-entry
 * groups (halving their range, branch-free), instead of entry by entry. For
 * many entries kept per row, where a heap pays log(keep) per entry,
 * select_buffered appends the entries below the limit to a buffer instead,
 * and a full buffer is cut back to those at most a bound that at least
 * `keep` of them are at most (found the same way). Both can add a column
 * vector to every row on the way (the squared norms of the references), so
 * that the matrix product needs no extra column.
 *
 * The functions take raw addresses and sizes from the caller (torch tensors'
 * data_ptr()), check nothing, and release the interpreter lock while they
 * run, so that several threads select from their own tiles at once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(_MSC_VER)
#include <intrin.h>
static inline int lowest_bit(int x)
{
    unsigned long index;
    _BitScanForward(&index, (unsigned long)x);
    return (int)index;
}
#else
#define lowest_bit(x) __builtin_ctz(x)
#endif

/* Move v[i] down the max-heap v[0..m) (columns alongside) to its place. */
static void sift_down(float *v, int64_t *col, int64_t m, int64_t i)
{
    float x = v[i];
    int64_t c = col[i];
    for (;;) {
        int64_t child = 2 * i + 1;
        if (child >= m)
            break;
        if (child + 1 < m && v[child + 1] > v[child])
            child++;
        if (!(v[child] > x))
            break;
        v[i] = v[child];
        col[i] = col[child];
        i = child;
    }
    v[i] = x;
    col[i] = c;
}

/* Rearrange v[0..n) (with the columns alongside, if any) so that v[k] holds
 * the value of rank k, v[0..k) <= v[k] <= v[k+1..n) (Hoare's FIND). */
static void select_rank(float *v, int64_t *col, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    while (hi > lo) {
        float a = v[lo], b = v[lo + (hi - lo) / 2], d = v[hi];
        float pivot = a < b ? (b < d ? b : (a < d ? d : a))
                            : (a < d ? a : (b < d ? d : b));
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                float tv = v[i];
                v[i] = v[j];
                v[j] = tv;
                if (col) {
                    int64_t tc = col[i];
                    col[i] = col[j];
                    col[j] = tc;
                }
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

static inline float entry(const float *tile, const float *add, int64_t j)
{
    return add ? tile[j] + add[j] : tile[j];
}

/* Bit t of the result is set when entry j + t (t < 16) is below `limit`;
 * *low receives the smallest of the 16 entries. */
static inline int below16(const float *tile, const float *add, int64_t j,
                          float limit, float *low)
{
#if defined(__SSE2__)
    __m128 x[4];
    for (int q = 0; q < 4; q++) {
        x[q] = _mm_loadu_ps(tile + j + 4 * q);
        if (add)
            x[q] = _mm_add_ps(x[q], _mm_loadu_ps(add + j + 4 * q));
    }
    __m128 bound = _mm_set1_ps(limit);
    int below = 0;
    for (int q = 0; q < 4; q++)
        below |= _mm_movemask_ps(_mm_cmplt_ps(x[q], bound)) << (4 * q);
    if (low) {
        __m128 m = _mm_min_ps(_mm_min_ps(x[0], x[1]), _mm_min_ps(x[2], x[3]));
        m = _mm_min_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
        m = _mm_min_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
        *low = _mm_cvtss_f32(m);
    }
    return below;
#else
    int below = 0;
    float smallest = INFINITY;
    for (int t = 0; t < 16; t++) {
        float x = entry(tile, add, j + t);
        below |= (x < limit) << t;
        smallest = x < smallest ? x : smallest;
    }
    if (low)
        *low = smallest;
    return below;
#endif
}

/* How many of v[0..n) are at most x. */
static inline int64_t count_at_most(const float *v, int64_t n, float x)
{
    static const int bits[16] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};
    int64_t count = 0, i = 0;
#if defined(__SSE2__)
    __m128 bound = _mm_set1_ps(x);
    for (; i + 4 <= n; i += 4)
        count += bits[_mm_movemask_ps(_mm_cmple_ps(_mm_loadu_ps(v + i), bound))];
#endif
    for (; i < n; i++)
        count += v[i] <= x;
    return count;
}

/* A value that at least m of v[0..n) (n >= m) are at most, close above the
 * m-th smallest, into *out: the upper end of an interval halved ten times
 * from [smallest, largest], keeping at least m values at most its upper end
 * (branch-free counts; a quickselect of a few hundred values, whose
 * branches a processor cannot predict, cost several times more). Returns 0
 * (nothing written) when the values are not all finite. */
static int bisect_bound(const float *v, int64_t n, int64_t m, float *out)
{
    float low = v[0], high = v[0];
    for (int64_t i = 1; i < n; i++) {
        low = v[i] < low ? v[i] : low;
        high = v[i] > high ? v[i] : high;
    }
    if (!isfinite(low) || !isfinite(high))
        return 0;
    for (int step = 0; step < 10; step++) {
        float middle = low + (high - low) / 2;
        if (!(middle > low && middle < high))
            break;
        if (count_at_most(v, n, middle) >= m)
            high = middle;
        else
            low = middle;
    }
    *out = high;
    return 1;
}

/* The m smallest entries of a row of at least 16 m entries, gathered
 * without merging them one by one: a value that at least m minima of the
 * row's 16-entry groups are at most (bisect_bound; their m-th smallest when
 * some are infinite) bounds them, m entries being at most it, so only the
 * entries below the float just above it are gathered, from the groups
 * whose minimum is below it (a few more than m groups of the row's
 * width / 16), and the m smallest of them selected. `work_v` has room for
 * width + width / 16 floats (the minima after the first width), `work_c`
 * for width columns. Afterwards work_v[0..m) holds them (their columns in
 * work_c), work_v[m - 1] the largest. Returns 0 (nothing done) when the
 * row has fewer than m groups. */
static int start_candidates(const float *tile, const float *add, int64_t width,
                            int64_t offset, int64_t m, float *work_v,
                            int64_t *work_c)
{
    int64_t n_groups = width / 16;
    if (n_groups < m)
        return 0;
    float *minima = work_v + width;
    for (int64_t g = 0; g < n_groups; g++)
        below16(tile, add, 16 * g, 0.0f, minima + g);
    float bound;
    int every_group = 0;
    if (!bisect_bound(minima, n_groups, m, &bound)) {
        /* some minima infinite: their m-th smallest, which reorders them */
        select_rank(minima, NULL, n_groups, m - 1);
        bound = minima[m - 1];
        every_group = 1;
    }
    bound = nextafterf(bound, INFINITY);
    int64_t n = 0, j = 0;
    for (int64_t g = 0; g < n_groups; g++, j += 16) {
        if (!every_group && !(minima[g] < bound))
            continue;
        for (int below = below16(tile, add, j, bound, NULL); below;
             below &= below - 1) {
            int t = lowest_bit(below);
            work_v[n] = entry(tile, add, j + t);
            work_c[n++] = offset + j + t;
        }
    }
    for (j = 16 * n_groups; j < width; j++) {
        float x = entry(tile, add, j);
        if (x < bound) {
            work_v[n] = x;
            work_c[n++] = offset + j;
        }
    }
    select_rank(work_v, work_c, n, m - 1);
    return 1;
}

/* A row whose heap is still empty (all inf): its heap started from
 * start_candidates. Returns 0 when not done. */
static int start_row(const float *tile, const float *add, int64_t width,
                     int64_t offset, float *v, int64_t *col, int64_t m,
                     float *work_v, int64_t *work_c)
{
    for (int64_t k = 0; k < m; k++)
        if (!isinf(v[k]))
            return 0;
    if (!start_candidates(tile, add, width, offset, m, work_v, work_c))
        return 0;
    for (int64_t k = 0; k < m; k++) {
        v[k] = work_v[k];
        col[k] = work_c[k];
    }
    for (int64_t i = m / 2 - 1; i >= 0; i--)
        sift_down(v, col, m, i);
    return 1;
}

/* Replace the largest of the heap by x (column c). */
static inline void replace_top(float *v, int64_t *col, int64_t m, float x, int64_t c)
{
    v[0] = x;
    col[0] = c;
    sift_down(v, col, m, 0);
}

/* One row: every entry below the heap's largest value replaces it. */
static void select_row(const float *tile, const float *add, int64_t width,
                       int64_t offset, float *v, int64_t *col, int64_t m,
                       float *work_v, int64_t *work_c)
{
    if (work_v && start_row(tile, add, width, offset, v, col, m, work_v, work_c))
        return;
    int64_t j = 0;
    for (; j + 16 <= width; j += 16) {
        /* the entries below the limit when the group began */
        for (int below = below16(tile, add, j, v[0], NULL); below;
             below &= below - 1) {
            int t = lowest_bit(below);
            float value = entry(tile, add, j + t);
            if (value < v[0]) /* the limit may have dropped since */
                replace_top(v, col, m, value, offset + j + t);
        }
    }
    for (; j < width; j++) {
        float value = entry(tile, add, j);
        if (value < v[0])
            replace_top(v, col, m, value, offset + j);
    }
}

/* Room to start an empty row from a whole tile row (start_candidates):
 * both arrays, or neither (*work_v NULL), in which case the rows are merged
 * entry by entry, which is slower but the same. */
static void allocate_work(int64_t width, float **work_v, int64_t **work_c)
{
    *work_v = malloc((width + width / 16) * sizeof(float));
    *work_c = malloc(width * sizeof(int64_t));
    if (!*work_v || !*work_c) {
        free(*work_v);
        free(*work_c);
        *work_v = NULL;
        *work_c = NULL;
    }
}

/* Cut the n entries of a full buffer back, keeping at least `keep`: those
 * at most a bound that `keep` of them are at most (bisect_bound), in place
 * and in order; the keep smallest exactly (a quickselect) when that bound
 * keeps more than half of the room (many equal values) or cannot be found.
 * Returns the new count; *limit receives the bound that later entries must
 * be below. */
static int64_t cut_buffer(float *v, int64_t *col, int64_t n, int64_t keep,
                          float *limit)
{
    float bound;
    if (bisect_bound(v, n, keep, &bound)) {
        int64_t kept = 0;
        for (int64_t i = 0; i < n; i++) {
            float x = v[i];
            int64_t c = col[i];
            v[kept] = x;
            col[kept] = c;
            kept += x <= bound;
        }
        if (kept <= (n + keep) / 2) {
            *limit = bound;
            return kept;
        }
        n = kept; /* the keep smallest are among them */
    }
    select_rank(v, col, n, keep - 1);
    *limit = v[keep - 1];
    return keep;
}

/* One row into a buffer of `capacity` entries (count so far, limit): an
 * entry below the limit is appended; a full buffer is cut back to at least
 * its `keep` smallest (cut_buffer), which lowers the limit. For a large
 * `keep`, where a heap would pay log(keep) per entry. */
static void buffer_row(const float *tile, const float *add, int64_t width,
                       int64_t offset, float *v, int64_t *col, int64_t *count,
                       float *limit, int64_t capacity, int64_t keep,
                       float *work_v, int64_t *work_c)
{
    int64_t n = *count;
    float bound = *limit;
    /* An empty buffer (the first tile of a chunk) starts from the keep
     * smallest entries of the row, gathered at once, instead of filling
     * and cutting back the buffer many times over. */
    if (n == 0 && work_v &&
        start_candidates(tile, add, width, offset, keep, work_v, work_c)) {
        for (int64_t k = 0; k < keep; k++) {
            v[k] = work_v[k];
            col[k] = work_c[k];
        }
        *count = keep;
        *limit = work_v[keep - 1];
        return;
    }
    for (int64_t j = 0; j < width; j += 16) {
        int below;
        if (j + 16 <= width) {
            below = below16(tile, add, j, bound, NULL);
        } else {
            below = 0;
            for (int64_t t = j; t < width; t++)
                below |= (entry(tile, add, t) < bound) << (t - j);
        }
        for (; below; below &= below - 1) {
            int t = lowest_bit(below);
            float value = entry(tile, add, j + t);
            if (!(value < bound)) /* the limit may have dropped since */
                continue;
            v[n] = value;
            col[n++] = offset + j + t;
            if (n == capacity)
                n = cut_buffer(v, col, n, keep, &bound);
        }
    }
    *count = n;
    *limit = bound;
}

static PyObject *select_buffered(PyObject *self, PyObject *args)
{
    unsigned long long tile, add, values, columns, counts, limits;
    Py_ssize_t n_rows, width, row_stride, offset, capacity, keep;
    (void)self;
    if (!PyArg_ParseTuple(args, "KnnnnKKKKKnn", &tile, &n_rows, &width,
                          &row_stride, &offset, &add, &values, &columns,
                          &counts, &limits, &capacity, &keep))
        return NULL;
    if (keep < 1 || capacity <= keep) {
        PyErr_SetString(PyExc_ValueError, "need 1 <= keep < capacity");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    float *work_v = NULL;
    int64_t *work_c = NULL;
    allocate_work(width, &work_v, &work_c);
    for (Py_ssize_t i = 0; i < n_rows; i++)
        buffer_row((const float *)(uintptr_t)tile + i * row_stride,
                   (const float *)(uintptr_t)add, width, offset,
                   (float *)(uintptr_t)values + i * capacity,
                   (int64_t *)(uintptr_t)columns + i * capacity,
                   (int64_t *)(uintptr_t)counts + i,
                   (float *)(uintptr_t)limits + i, capacity, keep, work_v,
                   work_c);
    free(work_v);
    free(work_c);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *select_below(PyObject *self, PyObject *args)
{
    unsigned long long tile, add, values, columns;
    Py_ssize_t n_rows, width, row_stride, offset, keep;
    (void)self;
    if (!PyArg_ParseTuple(args, "KnnnnKKKn", &tile, &n_rows, &width, &row_stride,
                          &offset, &add, &values, &columns, &keep))
        return NULL;
    if (keep < 1) {
        PyErr_SetString(PyExc_ValueError, "keep must be at least 1");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    float *work_v = NULL;
    int64_t *work_c = NULL;
    allocate_work(width, &work_v, &work_c);
    for (Py_ssize_t i = 0; i < n_rows; i++)
        select_row((const float *)(uintptr_t)tile + i * row_stride,
                   (const float *)(uintptr_t)add, width, offset,
                   (float *)(uintptr_t)values + i * keep,
                   (int64_t *)(uintptr_t)columns + i * keep, keep, work_v, work_c);
    free(work_v);
    free(work_c);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* Squared differences of row q (float64) and row r (float64 or float32),
 * summed in a fixed order: eight partial sums, lane j % 8 of the first
 * n - n % 8 coordinates, combined pairwise, then the rest in turn. The
 * order depends on nothing but n, so that identical pairs of rows get
 * bit-identical sums wherever they are. */
static double squared_distance(const double *q, const void *r, int r_double,
                               int64_t n)
{
    const double *rd = (const double *)r;
    const float *rf = (const float *)r;
    int64_t j = 0;
    double total;
#if defined(__SSE2__)
    __m128d acc[4] = {_mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd(),
                      _mm_setzero_pd()};
    for (; j + 8 <= n; j += 8) {
        __m128d y[4];
        if (r_double) {
            for (int t = 0; t < 4; t++)
                y[t] = _mm_loadu_pd(rd + j + 2 * t);
        } else {
            __m128 low = _mm_loadu_ps(rf + j), high = _mm_loadu_ps(rf + j + 4);
            y[0] = _mm_cvtps_pd(low);
            y[1] = _mm_cvtps_pd(_mm_movehl_ps(low, low));
            y[2] = _mm_cvtps_pd(high);
            y[3] = _mm_cvtps_pd(_mm_movehl_ps(high, high));
        }
        for (int t = 0; t < 4; t++) {
            __m128d d = _mm_sub_pd(_mm_loadu_pd(q + j + 2 * t), y[t]);
            acc[t] = _mm_add_pd(acc[t], _mm_mul_pd(d, d));
        }
    }
    __m128d pair = _mm_add_pd(_mm_add_pd(acc[0], acc[1]), _mm_add_pd(acc[2], acc[3]));
    total = _mm_cvtsd_f64(pair) + _mm_cvtsd_f64(_mm_unpackhi_pd(pair, pair));
#else
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (; j + 8 <= n; j += 8)
        for (int t = 0; t < 8; t++) {
            double d = q[j + t] - (r_double ? rd[j + t] : (double)rf[j + t]);
            acc[t] += d * d;
        }
    total = ((acc[0] + acc[4]) + (acc[2] + acc[6])) +
            ((acc[1] + acc[5]) + (acc[3] + acc[7]));
#endif
    for (; j < n; j++) {
        double d = q[j] - (r_double ? rd[j] : (double)rf[j]);
        total += d * d;
    }
    return total;
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2 1
/* squared_distance with AVX2 and fused multiply-adds, for the processors
 * that have them (chosen once, when the module loads): sixteen partial
 * sums, lane j % 16 of the first n - n % 16 coordinates, combined in a
 * fixed order, then the rest in turn. */
__attribute__((target("avx2,fma"))) static double
squared_distance_avx2(const double *q, const void *r, int r_double, int64_t n)
{
    const double *rd = (const double *)r;
    const float *rf = (const float *)r;
    __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(),
                      _mm256_setzero_pd(), _mm256_setzero_pd()};
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256d y[4];
        if (r_double) {
            for (int t = 0; t < 4; t++)
                y[t] = _mm256_loadu_pd(rd + j + 4 * t);
        } else {
            __m256 low = _mm256_loadu_ps(rf + j), high = _mm256_loadu_ps(rf + j + 8);
            y[0] = _mm256_cvtps_pd(_mm256_castps256_ps128(low));
            y[1] = _mm256_cvtps_pd(_mm256_extractf128_ps(low, 1));
            y[2] = _mm256_cvtps_pd(_mm256_castps256_ps128(high));
            y[3] = _mm256_cvtps_pd(_mm256_extractf128_ps(high, 1));
        }
        for (int t = 0; t < 4; t++) {
            __m256d d = _mm256_sub_pd(_mm256_loadu_pd(q + j + 4 * t), y[t]);
            acc[t] = _mm256_fmadd_pd(d, d, acc[t]);
        }
    }
    __m256d sum = _mm256_add_pd(_mm256_add_pd(acc[0], acc[1]),
                                _mm256_add_pd(acc[2], acc[3]));
    __m128d pair = _mm_add_pd(_mm256_castpd256_pd128(sum),
                              _mm256_extractf128_pd(sum, 1));
    double total = _mm_cvtsd_f64(pair) + _mm_cvtsd_f64(_mm_unpackhi_pd(pair, pair));
    for (; j < n; j++) {
        double d = q[j] - (r_double ? rd[j] : (double)rf[j]);
        total += d * d;
    }
    return total;
}
#endif

/* Whether squared_distance_avx2 runs (set when the module loads). */
static int use_avx2 = 0;

#define PREFETCH_AHEAD 4

static inline const char *row_at(unsigned long long base, int64_t row,
                                 Py_ssize_t stride, size_t item)
{
    return (const char *)(uintptr_t)base + (size_t)row * (size_t)stride * item;
}

/* Ask the cache for the `bytes` bytes from p on (a hint; no effect on results). */
static inline void prefetch_row(const char *p, size_t bytes)
{
#if defined(__GNUC__)
    for (size_t b = 0; b < bytes; b += 64)
        __builtin_prefetch(p + b);
#else
    (void)p;
    (void)bytes;
#endif
}

static PyObject *euclidean_to_candidates(PyObject *self, PyObject *args)
{
    unsigned long long query, reference, candidates, out;
    Py_ssize_t n_rows, n_features, q_stride, r_stride, n_candidates;
    int r_double;
    (void)self;
    if (!PyArg_ParseTuple(args, "KnnnKnpKnK", &query, &n_rows, &n_features,
                          &q_stride, &reference, &r_stride, &r_double,
                          &candidates, &n_candidates, &out))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    size_t item = r_double ? sizeof(double) : sizeof(float);
    size_t bytes = (size_t)n_features * item;
    for (Py_ssize_t i = 0; i < n_rows; i++) {
        const double *q = (const double *)(uintptr_t)query + i * q_stride;
        const int64_t *c = (const int64_t *)(uintptr_t)candidates + i * n_candidates;
        double *o = (double *)(uintptr_t)out + i * n_candidates;
        for (Py_ssize_t t = 0; t < n_candidates; t++) {
            const char *r = row_at(reference, c[t], r_stride, item);
            /* the rows lie scattered: ask for a later one ahead of time */
            if (t + PREFETCH_AHEAD < n_candidates)
                prefetch_row(row_at(reference, c[t + PREFETCH_AHEAD], r_stride, item),
                             bytes);
#if defined(HAVE_AVX2)
            if (use_avx2) {
                o[t] = sqrt(squared_distance_avx2(q, r, r_double, n_features));
                continue;
            }
#endif
            o[t] = sqrt(squared_distance(q, r, r_double, n_features));
        }
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *vector_kernel(PyObject *self, PyObject *args)
{
    int wanted = -1;
    (void)self;
    if (!PyArg_ParseTuple(args, "|i", &wanted))
        return NULL;
#if defined(HAVE_AVX2)
    if (wanted == 0)
        use_avx2 = 0;
    else if (wanted == 1)
        use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return PyUnicode_FromString(use_avx2 ? "avx2" : "sse2");
}

static PyMethodDef methods[] = {
    {"select_below", select_below, METH_VARARGS,
     "select_below(tile, n_rows, width, row_stride, offset, add, values, "
     "columns, keep)\n\n"
     "Merge each tile row into its row of (values, columns), a max-heap of "
     "keep entries (addresses of float32 and int64 arrays; add is 0 or a "
     "float32 vector added to every tile row; columns are offset)."},
    {"select_buffered", select_buffered, METH_VARARGS,
     "select_buffered(tile, n_rows, width, row_stride, offset, add, values, "
     "columns, counts, limits, capacity, keep)\n\n"
     "Append each tile row's entries below its limit to its buffer of "
     "capacity entries (counts and limits per row, int64 and float32), "
     "keeping the keep smallest whenever a buffer fills up."},
    {"euclidean_to_candidates", euclidean_to_candidates, METH_VARARGS,
     "euclidean_to_candidates(query, n_rows, n_features, query_stride, "
     "reference, reference_stride, reference_is_float64, candidates, "
     "n_candidates, out)\n\n"
     "Float64 Euclidean distances from each float64 query row to its "
     "n_candidates reference rows (int64 row indices; float32 or float64 "
     "references, row strides in entries) into out, summed in an order "
     "that depends only on n_features."},
    {"vector_kernel", vector_kernel, METH_VARARGS,
     "vector_kernel([wanted])\n\n"
     "Name of the kernel euclidean_to_candidates runs (\"avx2\" or "
     "\"sse2\"); wanted=0 selects the SSE2 one, 1 AVX2 where the "
     "processor has it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tile_select",
    "Selection of the smallest entries of distance tiles (see chunked_knn).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__tile_select(void)
{
#if defined(HAVE_AVX2)
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return PyModule_Create(&module);
}
