/* Selection of the smallest entries of distance tiles, for chunked_knn.
 *
 * One pass over each row of a (queries x references) tile, while the tile is
 * still in cache after its matrix product. select_below keeps each row's
 * `keep` smallest entries so far in a max-heap whose largest value is the
 * row's limit: an entry below the limit replaces it. Entries are compared
 * with the limit 16 at a time (SSE2, or AVX2 where the processor has it:
 * the row functions are compiled twice, from _tile_select_rows.h, and the
 * copy is chosen when the module loads) and only those below
 * it are visited one by one. An empty heap (the first tile of a chunk) is
 * started from the entries below a bound read from the minima of 16-entry
 * groups (halving their range, branch-free), instead of entry by entry. For
 * many entries kept per row, where a heap pays log(keep) per entry,
 * select_buffered appends the entries below the limit to a buffer instead,
 * and a full buffer is cut back to those at most a bound that at least
 * `keep` of them are at most (found the same way). Both can add a column
 * vector to every row on the way (the squared norms of the references), so
 * that the matrix product needs no extra column. euclidean_to_candidates
 * computes the float64 distances of the search's second pass, reading each
 * candidate row where it lies.
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

static inline float entry(const float *tile, const float *add, int64_t j)
{
    return add ? tile[j] + add[j] : tile[j];
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

/* Whether the AVX2 copies of the row selections and of squared_distance
 * run (set when the module loads, where the processor has AVX2 and FMA). */
static int use_avx2 = 0;

#define ROWS(name) name
#include "_tile_select_rows.h"
#undef ROWS

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HAVE_AVX2_ROWS 1
#pragma GCC push_options
#pragma GCC target("avx2,popcnt")
#include <immintrin.h>
#define ROWS(name) name##_avx2
#include "_tile_select_rows.h"
#undef ROWS
#pragma GCC pop_options
#endif

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
    void (*row)(const float *, const float *, int64_t, int64_t, float *,
                int64_t *, int64_t *, float *, int64_t, int64_t, float *,
                int64_t *) = buffer_row;
#if defined(HAVE_AVX2_ROWS)
    if (use_avx2)
        row = buffer_row_avx2;
#endif
    for (Py_ssize_t i = 0; i < n_rows; i++)
        row((const float *)(uintptr_t)tile + i * row_stride,
            (const float *)(uintptr_t)add, width, offset,
            (float *)(uintptr_t)values + i * capacity,
            (int64_t *)(uintptr_t)columns + i * capacity,
            (int64_t *)(uintptr_t)counts + i, (float *)(uintptr_t)limits + i,
            capacity, keep, work_v, work_c);
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
    void (*row)(const float *, const float *, int64_t, int64_t, float *,
                int64_t *, int64_t, float *, int64_t *) = select_row;
#if defined(HAVE_AVX2_ROWS)
    if (use_avx2)
        row = select_row_avx2;
#endif
    for (Py_ssize_t i = 0; i < n_rows; i++)
        row((const float *)(uintptr_t)tile + i * row_stride,
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

#if defined(HAVE_AVX2)
/* Whether the processor runs the AVX2 copies (AVX2, FMA and POPCNT). */
static int avx2_usable(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("popcnt");
}
#endif

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
        use_avx2 = avx2_usable();
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
     "Name of the kernels that run (\"avx2\" or \"sse2\"): those of "
     "euclidean_to_candidates and, built by GCC, of the row selections; "
     "wanted=0 selects the SSE2 ones, 1 the AVX2 ones where the processor "
     "has AVX2, FMA and POPCNT."},
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
    use_avx2 = avx2_usable();
#endif
    return PyModule_Create(&module);
}
