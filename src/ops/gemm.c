/*
 * GEMM, row-major, C = alpha*op(A)*op(B) + beta*C, on cored's own packed SGEMM
 * (sgemm_own.c): every element of C is one chain of fused multiply-adds over k in
 * ascending order on every path (AVX-512, AVX2 + FMA, scalar), wherever tile, block and
 * thread edges fall, so the bits depend neither on the CPU nor on the thread count. It
 * replaced OpenBLAS, whose AVX2 (Haswell) and AVX-512 (SkylakeX, Cooper Lake) kernels
 * round differently, so that a Zen 3 and a Zen 4 machine trained other models from the
 * same seed, at the same speed (docs/engine.md has the measurements). Column sums for bias
 * gradients, reduced over fixed partitions in double.
 *
 * CORED_GEMM=openblas in the environment runs the products on OpenBLAS instead, for
 * comparisons (make bench-gemm). Its threading: a large product is cut into GEMM_PARTS
 * blocks of C's rows (or of its columns when C is wide and short) and each block is one
 * single-threaded BLAS call on an OpenMP thread. OpenBLAS's own threading divides the thin
 * shapes of these networks poorly (a 131072 x 96 x 16 product ran at half the speed,
 * 8192 x 240 x 40 at a quarter, measured side by side). The blocks cut C, never k, and the
 * cut depends on the shape only (OpenBLAS computes a product under about a million
 * multiply-adds with other kernels, other bits), never on the thread count, so the result
 * does not depend on the thread count on one CPU either. This needs a BLAS that runs
 * serially inside an OpenMP parallel region (the OpenMP build of OpenBLAS does; see the
 * Makefile) or a serial one; with a pthread BLAS the product is left to it whole.
 */
#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ops.h"

#define GEMM_PARTS 8
#define GEMM_SPLIT_MIN_MACS (1 << 20) /* smaller products: one call */
#define GEMM_DEEP_MIN_MACS (1 << 23)  /* per block of a deep product */
#define GEMM_DEEP_PARTS 2             /* blocks of a deep product */

/* OpenBLAS: 0 serial, 1 pthreads, 2 OpenMP. */
int openblas_get_parallel(void);

static void sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* 1: cored's own SGEMM, 2: OpenBLAS (CORED_GEMM=openblas) */
static int gemm_choice(void)
{
    const char *e = getenv("CORED_GEMM");
    return e && !strcmp(e, "openblas") ? 2 : 1;
}

/* 1 when CORED_GEMM=openblas: read once. */
static int use_openblas(void)
{
    static int chosen;
    return cored_once(&chosen, gemm_choice) == 2;
}

void cored_gemm_serial(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                       int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return;
    if (use_openblas())
        sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else /* inside the caller's parallel loop the own kernel runs on this thread alone */
        cored_sgemm_own(CORED_SGEMM_AUTO, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                        NULL, 0);
}

void cored_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return;
    if (!use_openblas()) {
        cored_sgemm_own(CORED_SGEMM_AUTO, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                        NULL, 0);
        return;
    }
    if (omp_in_parallel() || openblas_get_parallel() == 1) { /* serial here, or not ours to cut */
        sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int split_rows = m >= n, dim = split_rows ? m : n;
    int parts = dim >= 16 * GEMM_PARTS ? GEMM_PARTS : dim / 16;
    /* A deep product (k beyond m and n: a weight gradient summed over every pixel of the
       batch) is cut in two: each block packs all of op(B) again, which eight blocks paid
       eight times over (728 x 728 x 2048 ran at 137 GFLOP/s in eight blocks, 165 in two on
       two threads; the Xception training step, 2 threads: 17.0 img/s in two blocks, 15.6
       in four). The count comes from the shape alone, never from the thread count: BLAS
       kernels may sum an element in another order depending on where the block edges fall
       (OpenBLAS's Haswell sgemm does), so a cut that followed the threads gave other bits
       on another machine. */
    double macs = (double)m * n * k;
    if (k > m && k > n && parts > GEMM_DEEP_PARTS && macs >= GEMM_DEEP_PARTS * (double)GEMM_DEEP_MIN_MACS)
        parts = GEMM_DEEP_PARTS;
    if (parts < 2 || macs < GEMM_SPLIT_MIN_MACS) {
        if (omp_get_max_threads() == 1) {
            sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        /* one call inside a team, where OpenMP BLAS runs serially: a small product is the
           same bits for any thread count too */
        #pragma omp parallel num_threads(2)
        {
            #pragma omp single
            sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        }
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < parts; p++) {
        /* block boundaries on multiples of 16 rows/columns, the last block takes the rest */
        int lo = (int)((long long)dim * p / parts) & ~15;
        int hi = p == parts - 1 ? dim : (int)((long long)dim * (p + 1) / parts) & ~15;
        if (hi <= lo) continue;
        if (split_rows) /* rows lo..hi of C: rows of op(A) */
            sgemm(trans_a, trans_b, hi - lo, n, k, alpha, trans_a ? a + lo : a + (size_t)lo * lda,
                  lda, b, ldb, beta, c + (size_t)lo * ldc, ldc);
        else /* columns lo..hi of C: columns of op(B) */
            sgemm(trans_a, trans_b, m, hi - lo, k, alpha, a, lda,
                  trans_b ? b + (size_t)lo * ldb : b + lo, ldb, beta, c + lo, ldc);
    }
}

void cored_gemm_bias_relu(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                          const float *b, int ldb, float *c, const float *bias, int relu)
{
    if (m <= 0 || n <= 0) return;
    if (!use_openblas()) {
        cored_sgemm_own(CORED_SGEMM_AUTO, trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n, bias,
                        relu);
        return;
    }
    cored_gemm(trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
    if (bias || relu) cored_bias_act(c, bias, (size_t)m, n, relu ? CORED_ACT_RELU : CORED_ACT_NONE);
}

void cored_colsum_acc(float *out, const float *x, int rows, int c, float *ws)
{
    /* [CORED_PARTS][c] doubles, at the first 8-byte boundary of ws */
    double *part = (double *)(void *)((uintptr_t)(ws + 1) & ~(uintptr_t)7);
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < CORED_PARTS; p++) {
        double *acc = part + (size_t)p * c;
        memset(acc, 0, sizeof(double) * (size_t)c);
        int lo, hi;
        cored_part_range(rows, CORED_PARTS, p, &lo, &hi);
        for (int i = lo; i < hi; i++) {
            const float *row = x + (size_t)i * c;
            #pragma omp simd
            for (int j = 0; j < c; j++) acc[j] += row[j];
        }
    }
    for (int j = 0; j < c; j++) {
        double s = 0;
        for (int p = 0; p < CORED_PARTS; p++) s += part[(size_t)p * c + j];
        out[j] += (float)s;
    }
}
