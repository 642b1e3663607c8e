/*
 * cored's packed SGEMM, behind cored_gemm (gemm.c), for the three forms the convolutions
 * and linear layers use: NT (forward), NN (input gradient), TN (weight gradient); the
 * fourth (TT) works too. Row-major, C = alpha*op(A)*op(B) + beta*C. tools/bench_gemm.c
 * measures it against OpenBLAS.
 *
 * Bits that do not depend on the CPU: every element of C is one FMA chain over k in
 * ascending order,
 *     acc = init;  for p = 0 .. k-1: acc = fma(alpha*A[i][p], B[p][j], acc)
 * with init = 0 (beta 0), C (beta 1) or beta*C (other beta); then, when asked, the bias
 * added (acc + bias[j], one rounding) and ReLU (acc > 0 ? acc : 0: NaN and -0 give 0), the
 * same bits as a separate pass over C that adds the bias and clamps (cored_bias_act_rows).
 * alpha*A is rounded once while packing (nothing when alpha is 1).
 * Cache blocking over k stores the running sum in C and reloads it: a float round trip is
 * exact, so the chain is unchanged. The AVX-512 kernel (12 x 32 tiles), the AVX2 + FMA
 * kernel (6 x 16) and the scalar one (4 x 4, fmaf) compute that same chain: identical bits
 * whichever runs, wherever tile, block and thread edges fall (tests/test_gemm_own.c).
 *
 * Path: chosen once from the CPU (__builtin_cpu_supports), or forced by the caller, or by
 * CORED_SGEMM_PATH=scalar|avx2|avx512 in the environment (for measurements).
 *
 * Threading: blocks of C's rows, each packed and computed by one thread, taken dynamically
 * (no barrier inside a product); a C too short for that is shared tile by tile. The bits do
 * not depend on which thread computes a tile, so block counts may follow the thread count.
 */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define OWN_X86 1
#include <immintrin.h>
#else
#define OWN_X86 0
#endif

#ifndef OWN_KC
#define OWN_KC 256    /* depth of a packed block */
#endif
#ifndef OWN_MC
#define OWN_MC 4032   /* rows of a packed A block (a multiple of every MR) */
#endif
#ifndef OWN_NC
#define OWN_NC 256    /* columns of a packed B block (a multiple of every NR) */
#endif
#ifndef OWN_KUNROLL
#define OWN_KUNROLL 4 /* steps of k per trip of the micro-kernels' loop */
#endif
#define OWN_SPLIT_MIN_MACS (1 << 20)
#ifndef OWN_ROWS_MIN
#define OWN_ROWS_MIN 1024 /* rows of a thread's block, at least, when there are more blocks */
#endif
#define OWN_PRAGMA(x) _Pragma(#x)
#define OWN_UNROLL(n) OWN_PRAGMA(GCC unroll n)

/* How a micro-kernel starts the accumulators. */
enum { INIT_LOAD, INIT_ZERO, INIT_BETA };

/* kc steps of an MR x NR tile: a is kc x MR (packed), b kc x NR (packed), c MR rows of ldc;
   then bias (NR floats, when not NULL) added and ReLU (when relu), both on the last block of
   k only. */
typedef void (*own_kernel)(int kc, const float *a, const float *b, float *c, long ldc, int init,
                           float beta, const float *bias, int relu);

static void own_kernel_scalar(int kc, const float *a, const float *b, float *c, long ldc,
                              int init, float beta, const float *bias, int relu)
{
    enum { MR = 4, NR = 4 };
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            acc[i][j] = init == INIT_LOAD ? c[i * ldc + j] : init == INIT_BETA ? beta * c[i * ldc + j] : 0.0f;
    for (int p = 0; p < kc; p++, a += MR, b += NR)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            float v = bias ? acc[i][j] + bias[j] : acc[i][j];
            c[i * ldc + j] = relu && !(v > 0.0f) ? 0.0f : v; /* as max_ps(v, 0) */
        }
}

#if OWN_X86
__attribute__((target("avx2,fma"))) static void own_kernel_avx2(int kc, const float *a,
                                                                 const float *b, float *c, long ldc,
                                                                 int init, float beta,
                                                                 const float *bias, int relu)
{
    enum { MR = 6 };
    __m256 c0[MR], c1[MR];
    __m256 vb = _mm256_set1_ps(beta);
    #pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        if (init == INIT_ZERO) {
            c0[i] = _mm256_setzero_ps(), c1[i] = _mm256_setzero_ps();
        } else {
            c0[i] = _mm256_loadu_ps(c + i * ldc), c1[i] = _mm256_loadu_ps(c + i * ldc + 8);
            if (init == INIT_BETA) c0[i] = _mm256_mul_ps(vb, c0[i]), c1[i] = _mm256_mul_ps(vb, c1[i]);
        }
    }
#ifndef OWN_NO_PREFETCH
    #pragma GCC unroll 6
    for (int i = 0; i < MR; i++) _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
#endif
    OWN_UNROLL(OWN_KUNROLL)
    for (int p = 0; p < kc; p++, a += MR, b += 16) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        #pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
        }
    }
    __m256 z = _mm256_setzero_ps(), bias0 = z, bias1 = z;
    if (bias) bias0 = _mm256_loadu_ps(bias), bias1 = _mm256_loadu_ps(bias + 8);
    #pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        if (bias) c0[i] = _mm256_add_ps(c0[i], bias0), c1[i] = _mm256_add_ps(c1[i], bias1);
        if (relu) c0[i] = _mm256_max_ps(c0[i], z), c1[i] = _mm256_max_ps(c1[i], z);
        _mm256_storeu_ps(c + i * ldc, c0[i]);
        _mm256_storeu_ps(c + i * ldc + 8, c1[i]);
    }
}

__attribute__((target("avx512f"))) static void own_kernel_avx512(int kc, const float *a,
                                                                  const float *b, float *c,
                                                                  long ldc, int init, float beta,
                                                                  const float *bias, int relu)
{
    enum { MR = 12 };
    __m512 c0[MR], c1[MR];
    __m512 vb = _mm512_set1_ps(beta);
    #pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        if (init == INIT_ZERO) {
            c0[i] = _mm512_setzero_ps(), c1[i] = _mm512_setzero_ps();
        } else {
            c0[i] = _mm512_loadu_ps(c + i * ldc), c1[i] = _mm512_loadu_ps(c + i * ldc + 16);
            if (init == INIT_BETA) c0[i] = _mm512_mul_ps(vb, c0[i]), c1[i] = _mm512_mul_ps(vb, c1[i]);
        }
    }
#ifndef OWN_NO_PREFETCH
    #pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        _mm_prefetch((const char *)(c + i * ldc + 32), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 48), _MM_HINT_T0);
    }
#endif
    OWN_UNROLL(OWN_KUNROLL)
    for (int p = 0; p < kc; p++, a += MR, b += 32) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        #pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
    }
    __m512 z = _mm512_setzero_ps(), bias0 = z, bias1 = z;
    if (bias) bias0 = _mm512_loadu_ps(bias), bias1 = _mm512_loadu_ps(bias + 16);
    #pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        if (bias) c0[i] = _mm512_add_ps(c0[i], bias0), c1[i] = _mm512_add_ps(c1[i], bias1);
        if (relu) c0[i] = _mm512_max_ps(c0[i], z), c1[i] = _mm512_max_ps(c1[i], z);
        _mm512_storeu_ps(c + i * ldc, c0[i]);
        _mm512_storeu_ps(c + i * ldc + 16, c1[i]);
    }
}
#endif

typedef struct {
    int mr, nr;
    own_kernel kernel;
} own_path;

static int path_supported(int path)
{
    switch (path) {
    case CORED_SGEMM_SCALAR: return 1;
#if OWN_X86
    case CORED_SGEMM_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CORED_SGEMM_AVX512: return __builtin_cpu_supports("avx512f");
#endif
    default: return 0;
    }
}

int cored_sgemm_own_supported(int path) { return path_supported(path); }

/* CORED_SGEMM_PATH when the CPU has that path, else the widest path it has */
static int path_choice(void)
{
    const char *env = getenv("CORED_SGEMM_PATH");
    if (env && !strcmp(env, "avx512") && path_supported(CORED_SGEMM_AVX512)) return CORED_SGEMM_AVX512;
    if (env && !strcmp(env, "avx2") && path_supported(CORED_SGEMM_AVX2)) return CORED_SGEMM_AVX2;
    if (env && !strcmp(env, "scalar")) return CORED_SGEMM_SCALAR;
    if (path_supported(CORED_SGEMM_AVX512)) return CORED_SGEMM_AVX512;
    if (path_supported(CORED_SGEMM_AVX2)) return CORED_SGEMM_AVX2;
    return CORED_SGEMM_SCALAR;
}

int cored_sgemm_own_default(void)
{
    static int chosen;
    return cored_once(&chosen, path_choice);
}

static own_path get_path(int path)
{
#if OWN_X86
    if (path == CORED_SGEMM_AVX512) return (own_path){12, 32, own_kernel_avx512};
    if (path == CORED_SGEMM_AVX2) return (own_path){6, 16, own_kernel_avx2};
#endif
    (void)path;
    return (own_path){4, 4, own_kernel_scalar};
}

/* One panel, dst[p*w + r] = alpha * src[r*ld + p] for r < valid (rows of src run along p),
   0 for valid <= r < w: the transposing packs of NN/NT's A and NT's B. 4 x 4 blocks go
   through SSE shuffles (x86-64's baseline), the rest element by element; packing only
   moves values (and rounds alpha * a once), so it cannot change a chain's bits. */
#if OWN_X86
/* Rows r .. r+3 of a transposing pack, 4 x 4 blocks through SSE shuffles. */
static void pack_t4(float *dst, const float *src, long ld, int r, int w, int kc)
{
    const float *s0 = src + r * ld, *s1 = s0 + ld, *s2 = s1 + ld, *s3 = s2 + ld;
    int p = 0;
    for (; p + 4 <= kc; p += 4) {
        __m128 x0 = _mm_loadu_ps(s0 + p), x1 = _mm_loadu_ps(s1 + p);
        __m128 x2 = _mm_loadu_ps(s2 + p), x3 = _mm_loadu_ps(s3 + p);
        _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
        _mm_storeu_ps(dst + (size_t)p * w + r, x0);
        _mm_storeu_ps(dst + (size_t)(p + 1) * w + r, x1);
        _mm_storeu_ps(dst + (size_t)(p + 2) * w + r, x2);
        _mm_storeu_ps(dst + (size_t)(p + 3) * w + r, x3);
    }
    for (; p < kc; p++) {
        float *d = dst + (size_t)p * w + r;
        d[0] = s0[p], d[1] = s1[p], d[2] = s2[p], d[3] = s3[p];
    }
}
#endif

static void pack_t(float *dst, const float *src, long ld, int valid, int w, int kc, float alpha)
{
    int r = 0;
#if OWN_X86
    if (alpha == 1.0f && valid >= 4) {
        for (; r + 4 <= valid; r += 4) pack_t4(dst, src, ld, r, w, kc);
        if (r < valid) { /* the last rows as a group of 4 that overlaps the one before it (6 = 4 + 4 - 2) */
            pack_t4(dst, src, ld, valid - 4, w, kc);
            r = valid;
        }
    }
#endif
    for (; r < valid; r++) {
        const float *sr = src + r * ld;
        if (alpha == 1.0f)
            for (int p = 0; p < kc; p++) dst[(size_t)p * w + r] = sr[p];
        else
            for (int p = 0; p < kc; p++) dst[(size_t)p * w + r] = alpha * sr[p];
    }
    for (; r < w; r++)
        for (int p = 0; p < kc; p++) dst[(size_t)p * w + r] = 0.0f;
}

/* One panel, dst[p*w + r] = alpha * src[p*ld + r] (rows of src run along r): TN's A, NN's B. */
static void pack_n(float *dst, const float *src, long ld, int valid, int w, int kc, float alpha)
{
    /* full panels of the usual widths: copies of a constant size, inlined (a memcpy call
       per row of 12 floats was half the time of the deep weight-gradient products) */
#define OWN_COPY_ROWS(W)                                                                   \
    case W:                                                                                \
        for (int p = 0; p < kc; p++) memcpy(dst + (size_t)p * W, src + p * ld, sizeof(float) * W); \
        return;
    if (valid == w && alpha == 1.0f) switch (w) {
        OWN_COPY_ROWS(4)
        OWN_COPY_ROWS(6)
        OWN_COPY_ROWS(12)
        OWN_COPY_ROWS(16)
        OWN_COPY_ROWS(32)
        default: break;
    }
#undef OWN_COPY_ROWS
    for (int p = 0; p < kc; p++) {
        const float *sp = src + p * ld;
        float *d = dst + (size_t)p * w;
        if (alpha == 1.0f)
            memcpy(d, sp, sizeof(float) * valid);
        else
            for (int r = 0; r < valid; r++) d[r] = alpha * sp[r];
        if (valid < w) memset(d + valid, 0, sizeof(float) * (w - valid));
    }
}

/* alpha * op(A)[i0 .. i0+rows) x [p0 .. p0+kc) as one MR-row panel (kc x MR), zero rows
   past `rows`. */
static void pack_a(float *dst, const float *a, int lda, int ta, int i0, int rows, int p0, int kc,
                   float alpha, int mr)
{
    if (ta) /* A(i, p) = a[p*lda + i] */
        pack_n(dst, a + (size_t)p0 * lda + i0, lda, rows, mr, kc, alpha);
    else /* A(i, p) = a[i*lda + p] */
        pack_t(dst, a + (size_t)i0 * lda + p0, lda, rows, mr, kc, alpha);
}

/* op(B)[p0 .. p0+kc) x [j0 .. j0+cols) as one NR-column panel (kc x NR), zero columns past
   `cols`. */
static void pack_b(float *dst, const float *b, int ldb, int tb, int p0, int kc, int j0, int cols,
                   int nr)
{
    if (!tb) /* B(p, j) = b[p*ldb + j] */
        pack_n(dst, b + (size_t)p0 * ldb + j0, ldb, cols, nr, kc, 1.0f);
    else /* B(p, j) = b[j*ldb + p] */
        pack_t(dst, b + (size_t)j0 * ldb + p0, ldb, cols, nr, kc, 1.0f);
}

typedef struct {
    int ta, tb, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b, *bias;
    float *c;
    int relu;
    own_path path;
} own_args;

/* The whole product, run by every thread of the team (orphaned worksharing loops). The
   loops are BLIS's with the roles of A and B swapped (C is row-major and the vectors run
   along its rows): an A block of up to OWN_MC rows stays in L2/L3, a B block of
   OWN_KC x OWN_NC in L2, one A micro-panel (MR x OWN_KC) in L1 while the B micro-panels
   stream past it. The threads pack each block together (shared buffers pa and pb), then
   share its tiles; the implicit barriers of the loops order packing and use. */
static void own_team(const own_args *g, int m, int n, float *pa, float *pb)
{
    const int mr = g->path.mr, nr = g->path.nr, k = g->k;
    int init0 = g->beta == 0.0f ? INIT_ZERO : g->beta == 1.0f ? INIT_LOAD : INIT_BETA;
    float tile[12 * 32] __attribute__((aligned(64)));
    float tbias[32];
    for (int ic = 0; ic < m; ic += OWN_MC) {
        int mc = m - ic < OWN_MC ? m - ic : OWN_MC, npa = (mc + mr - 1) / mr;
        for (int pc = 0; pc < k; pc += OWN_KC) {
            int kc = k - pc < OWN_KC ? k - pc : OWN_KC;
            int init = pc == 0 ? init0 : INIT_LOAD, last = pc + kc == k, relu = g->relu && last;
            #pragma omp for schedule(static)
            for (int q = 0; q < npa; q++)
                pack_a(pa + (size_t)q * kc * mr, g->a, g->lda, g->ta, ic + q * mr,
                       mc - q * mr < mr ? mc - q * mr : mr, pc, kc, g->alpha, mr);
            for (int jc = 0; jc < n; jc += OWN_NC) {
                int nc = n - jc < OWN_NC ? n - jc : OWN_NC, npb = (nc + nr - 1) / nr;
                #pragma omp for schedule(static)
                for (int q = 0; q < npb; q++)
                    pack_b(pb + (size_t)q * kc * nr, g->b, g->ldb, g->tb, pc, kc, jc + q * nr,
                           nc - q * nr < nr ? nc - q * nr : nr, nr);
                #pragma omp for collapse(2) schedule(static)
                for (int qi = 0; qi < npa; qi++)
                    for (int qj = 0; qj < npb; qj++) {
                        int ir = qi * mr, jr = qj * nr;
                        int rows = mc - ir < mr ? mc - ir : mr, cols = nc - jr < nr ? nc - jr : nr;
                        const float *ap = pa + (size_t)qi * kc * mr, *bp = pb + (size_t)qj * kc * nr;
                        const float *bias = g->bias && last ? g->bias + jc + jr : NULL;
                        float *c = g->c + (size_t)(ic + ir) * g->ldc + jc + jr;
                        if (rows == mr && cols == nr) {
                            g->path.kernel(kc, ap, bp, c, g->ldc, init, g->beta, bias, relu);
                            continue;
                        }
                        /* an edge tile: through a full tile, the valid part copied */
                        if (bias && cols < nr) {
                            memset(tbias, 0, sizeof tbias);
                            memcpy(tbias, bias, sizeof(float) * cols);
                            bias = tbias;
                        }
                        memset(tile, 0, sizeof(float) * mr * nr);
                        if (init == INIT_LOAD || init == INIT_BETA)
                            for (int i = 0; i < rows; i++)
                                memcpy(tile + i * nr, c + (size_t)i * g->ldc, sizeof(float) * cols);
                        g->path.kernel(kc, ap, bp, tile, nr, init, g->beta, bias, relu);
                        for (int i = 0; i < rows; i++)
                            memcpy(c + (size_t)i * g->ldc, tile + i * nr, sizeof(float) * cols);
                    }
            }
        }
    }
}

/* Packing buffers, kept for the next products so that a warm training step allocates
   nothing (as a BLAS keeps its buffers): a pool from which a product takes one for its
   duration and gives it back. The pool holds them, so they stay reachable whichever thread
   used them last, and products on several threads at once (a caller's parallel loop over
   tiles) each get their own. */
#define OWN_POOL 64
static struct {
    float *p;
    size_t cap;
    int busy;
} own_pool[OWN_POOL];
static pthread_mutex_t own_pool_lock = PTHREAD_MUTEX_INITIALIZER;

/* A buffer of at least `floats` floats, or NULL when it cannot be allocated. */
static float *own_buffer_take(size_t floats)
{
    pthread_mutex_lock(&own_pool_lock);
    int pick = -1;
    for (int i = 0; i < OWN_POOL; i++) { /* the smallest idle one that fits, else the largest idle one */
        if (own_pool[i].busy) continue;
        if (pick < 0) {
            pick = i;
            continue;
        }
        int fits = own_pool[i].cap >= floats, pick_fits = own_pool[pick].cap >= floats;
        if (fits ? !pick_fits || own_pool[i].cap < own_pool[pick].cap : !pick_fits && own_pool[i].cap > own_pool[pick].cap)
            pick = i;
    }
    float *buf = NULL;
    if (pick >= 0) {
        if (own_pool[pick].cap < floats) {
            cored_free(own_pool[pick].p);
            own_pool[pick].p = cored_alloc(sizeof(float) * floats);
            own_pool[pick].cap = own_pool[pick].p ? floats : 0;
        }
        if ((buf = own_pool[pick].p)) own_pool[pick].busy = 1;
    }
    pthread_mutex_unlock(&own_pool_lock);
    return buf;
}

static void own_buffer_give(float *buf)
{
    pthread_mutex_lock(&own_pool_lock);
    for (int i = 0; i < OWN_POOL; i++)
        if (own_pool[i].p == buf) own_pool[i].busy = 0;
    pthread_mutex_unlock(&own_pool_lock);
}

/* The start of one element's chain, as the micro-kernels' init: 0, C or beta*C. */
static float start1(const own_args *g, const float *c)
{
    return g->beta == 0.0f ? 0.0f : g->beta == 1.0f ? *c : g->beta * *c;
}

/* The bias and ReLU of one element of column j, as the micro-kernels apply them. */
static float epilogue1(const own_args *g, float acc, int j)
{
    if (g->bias) acc += g->bias[j];
    return g->relu && !(acc > 0.0f) ? 0.0f : acc;
}

/* The product without packing, element by element: the same chain (alpha * a rounded
   once, then fma over k in ascending order), so the same bits, slowly. For when the
   packing buffer cannot be allocated. */
static void own_unpacked(const own_args *g, int m, int n)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float *c = g->c + (size_t)i * g->ldc + j;
            float acc = start1(g, c);
            for (int p = 0; p < g->k; p++) {
                float av = g->ta ? g->a[(size_t)p * g->lda + i] : g->a[(size_t)i * g->lda + p];
                float bv = g->tb ? g->b[(size_t)j * g->ldb + p] : g->b[(size_t)p * g->ldb + j];
                acc = fmaf(g->alpha == 1.0f ? av : g->alpha * av, bv, acc);
            }
            *c = epilogue1(g, acc, j);
        }
}

/* k == 0: C = init, then the bias and ReLU. */
static void own_no_depth(const own_args *g, int m, int n)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float *c = g->c + (size_t)i * g->ldc + j;
            *c = epilogue1(g, start1(g, c), j);
        }
}

void cored_sgemm_own(int path, int trans_a, int trans_b, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta, float *c,
                     int ldc, const float *bias, int relu)
{
    if (m <= 0 || n <= 0) return;
    if (path == CORED_SGEMM_AUTO || !path_supported(path)) path = cored_sgemm_own_default();
    own_args g = {trans_a, trans_b, k, lda, ldb, ldc, alpha, beta, a, b, bias, c, relu, get_path(path)};
    if (k <= 0) {
        own_no_depth(&g, m, n);
        return;
    }
    /* The team shares every block; small products run on this thread alone. The bits do
       not depend on how the tiles fall to threads (one chain per element). */
    int nt = (double)m * n * k < OWN_SPLIT_MIN_MACS || omp_in_parallel() ? 1 : omp_get_max_threads();
    int kc = k < OWN_KC ? k : OWN_KC, mr = g.path.mr;
    /* C is cut in blocks of rows, each packed and computed by one thread alone, taken
       dynamically: no barrier inside a product. (Sharing every block among the team, BLIS's
       way, took three barriers per OWN_KC steps of k; with a busy neighbour on the cores a
       descheduled thread stalled the other at each of them, down to 1-8 GFLOP/s against
       OpenBLAS's 50-100 in the same minutes.) Each block packs op(B) again: k x n floats
       against k x n x rows multiply-adds. A C too short for two panels per thread is shared
       among the team instead. The bits do not depend on the cut. */
    int panels = (m + mr - 1) / mr, own_rows = nt > 1 && panels >= 2 * nt;
    int parts = !own_rows ? 1 : m >= 2 * OWN_ROWS_MIN * nt ? m / OWN_ROWS_MIN : nt;
    if (parts > 8 * nt) parts = 8 * nt;
    int bm = own_rows ? (panels + parts - 1) / parts * mr : m;
    size_t na = ((size_t)kc * ((bm < OWN_MC ? bm : OWN_MC) + mr) + 15) & ~(size_t)15;
    size_t nb = ((size_t)kc * ((n < OWN_NC ? n : OWN_NC) + g.path.nr) + 15) & ~(size_t)15;
    float *buf = own_buffer_take((na + nb) * (own_rows ? nt : 1));
    if (!buf) { /* no memory for the packs: the same chains, unpacked */
        own_unpacked(&g, m, n);
        return;
    }
    if (own_rows) {
        #pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int p = 0; p < parts; p++) {
            int lo = panels * p / parts * mr, hi = p == parts - 1 ? m : panels * (p + 1) / parts * mr;
            own_args h = g;
            h.a = trans_a ? a + lo : a + (size_t)lo * lda;
            h.c = c + (size_t)lo * ldc;
            float *pa = buf + (na + nb) * omp_get_thread_num();
            if (hi > lo) {
                /* a team of one, which own_team's worksharing loops bind to */
                #pragma omp parallel num_threads(1)
                own_team(&h, hi - lo, n, pa, pa + na);
            }
        }
    } else {
        #pragma omp parallel num_threads(nt) if (nt > 1)
        own_team(&g, m, n, buf, buf + na);
    }
    own_buffer_give(buf);
}
