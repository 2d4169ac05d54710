/* The row selections of _tile_select.c, included there twice: once as
 * they are (SSE2 on x86-64) and once compiled for AVX2 (GCC on x86-64),
 * ROWS(name) giving each copy's names. No include guard, on purpose. The
 * AVX2 copy compares 16 entries in two 8-wide instructions instead of
 * four; the same entries are kept either way. Every function a copy calls
 * is in the same copy: a call from AVX2 code into code compiled without
 * it costs a transition of the vector registers' state on each call. */

/* Move v[i] down the max-heap v[0..m) (columns alongside) to its place. */
static void ROWS(sift_down)(float *v, int64_t *col, int64_t m, int64_t i)
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
static void ROWS(select_rank)(float *v, int64_t *col, int64_t n, int64_t k)
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

/* Bit t of the result is set when entry j + t (t < 16) is below `limit`;
 * *low receives the smallest of the 16 entries. */
static inline int ROWS(below16)(const float *tile, const float *add, int64_t j,
                                float limit, float *low)
{
#if defined(__AVX2__)
    __m256 x0 = _mm256_loadu_ps(tile + j), x1 = _mm256_loadu_ps(tile + j + 8);
    if (add) {
        x0 = _mm256_add_ps(x0, _mm256_loadu_ps(add + j));
        x1 = _mm256_add_ps(x1, _mm256_loadu_ps(add + j + 8));
    }
    __m256 bound = _mm256_set1_ps(limit);
    int below = _mm256_movemask_ps(_mm256_cmp_ps(x0, bound, _CMP_LT_OQ)) |
                (_mm256_movemask_ps(_mm256_cmp_ps(x1, bound, _CMP_LT_OQ)) << 8);
    if (low) {
        __m256 m8 = _mm256_min_ps(x0, x1);
        __m128 m = _mm_min_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
        m = _mm_min_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
        m = _mm_min_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
        *low = _mm_cvtss_f32(m);
    }
    return below;
#elif defined(__SSE2__)
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
static inline int64_t ROWS(count_at_most)(const float *v, int64_t n, float x)
{
    static const int bits[16] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};
    int64_t count = 0, i = 0;
#if defined(__AVX2__)
    __m256 bound8 = _mm256_set1_ps(x);
    for (; i + 8 <= n; i += 8)
        count += __builtin_popcount(
            _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v + i), bound8, _CMP_LE_OQ)));
#endif
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
static int ROWS(bisect_bound)(const float *v, int64_t n, int64_t m, float *out)
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
        if (ROWS(count_at_most)(v, n, middle) >= m)
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
static int ROWS(start_candidates)(const float *tile, const float *add, int64_t width,
                            int64_t offset, int64_t m, float *work_v,
                            int64_t *work_c)
{
    int64_t n_groups = width / 16;
    if (n_groups < m)
        return 0;
    float *minima = work_v + width;
    for (int64_t g = 0; g < n_groups; g++)
        ROWS(below16)(tile, add, 16 * g, 0.0f, minima + g);
    float bound;
    int every_group = 0;
    if (!ROWS(bisect_bound)(minima, n_groups, m, &bound)) {
        /* some minima infinite: their m-th smallest, which reorders them */
        ROWS(select_rank)(minima, NULL, n_groups, m - 1);
        bound = minima[m - 1];
        every_group = 1;
    }
    bound = nextafterf(bound, INFINITY);
    int64_t n = 0, j = 0;
    for (int64_t g = 0; g < n_groups; g++, j += 16) {
        if (!every_group && !(minima[g] < bound))
            continue;
        for (int below = ROWS(below16)(tile, add, j, bound, NULL); below;
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
    ROWS(select_rank)(work_v, work_c, n, m - 1);
    return 1;
}

/* A row whose heap is still empty (all inf): its heap started from
 * start_candidates. Returns 0 when not done. */
static int ROWS(start_row)(const float *tile, const float *add, int64_t width,
                     int64_t offset, float *v, int64_t *col, int64_t m,
                     float *work_v, int64_t *work_c)
{
    for (int64_t k = 0; k < m; k++)
        if (!isinf(v[k]))
            return 0;
    if (!ROWS(start_candidates)(tile, add, width, offset, m, work_v, work_c))
        return 0;
    for (int64_t k = 0; k < m; k++) {
        v[k] = work_v[k];
        col[k] = work_c[k];
    }
    for (int64_t i = m / 2 - 1; i >= 0; i--)
        ROWS(sift_down)(v, col, m, i);
    return 1;
}

/* Replace the largest of the heap by x (column c). */
static inline void ROWS(replace_top)(float *v, int64_t *col, int64_t m, float x, int64_t c)
{
    v[0] = x;
    col[0] = c;
    ROWS(sift_down)(v, col, m, 0);
}

/* One row: every entry below the heap's largest value replaces it. */
static void ROWS(select_row)(const float *tile, const float *add, int64_t width,
                       int64_t offset, float *v, int64_t *col, int64_t m,
                       float *work_v, int64_t *work_c)
{
    if (work_v && ROWS(start_row)(tile, add, width, offset, v, col, m, work_v, work_c))
        return;
    int64_t j = 0;
    for (; j + 16 <= width; j += 16) {
        /* the entries below the limit when the group began */
        for (int below = ROWS(below16)(tile, add, j, v[0], NULL); below;
             below &= below - 1) {
            int t = lowest_bit(below);
            float value = entry(tile, add, j + t);
            if (value < v[0]) /* the limit may have dropped since */
                ROWS(replace_top)(v, col, m, value, offset + j + t);
        }
    }
    for (; j < width; j++) {
        float value = entry(tile, add, j);
        if (value < v[0])
            ROWS(replace_top)(v, col, m, value, offset + j);
    }
}

/* Cut the n entries of a full buffer back, keeping at least `keep`: those
 * at most a bound that `keep` of them are at most (bisect_bound), in place
 * and in order; the keep smallest exactly (a quickselect) when that bound
 * keeps more than half of the room (many equal values) or cannot be found.
 * Returns the new count; *limit receives the bound that later entries must
 * be below. */
static int64_t ROWS(cut_buffer)(float *v, int64_t *col, int64_t n, int64_t keep,
                          float *limit)
{
    float bound;
    if (ROWS(bisect_bound)(v, n, keep, &bound)) {
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
    ROWS(select_rank)(v, col, n, keep - 1);
    *limit = v[keep - 1];
    return keep;
}

/* One row into a buffer of `capacity` entries (count so far, limit): an
 * entry below the limit is appended; a full buffer is cut back to at least
 * its `keep` smallest (cut_buffer), which lowers the limit. For a large
 * `keep`, where a heap would pay log(keep) per entry. */
static void ROWS(buffer_row)(const float *tile, const float *add, int64_t width,
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
        ROWS(start_candidates)(tile, add, width, offset, keep, work_v, work_c)) {
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
            below = ROWS(below16)(tile, add, j, bound, NULL);
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
                n = ROWS(cut_buffer)(v, col, n, keep, &bound);
        }
    }
    *count = n;
    *limit = bound;
}
