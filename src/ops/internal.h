/*
 * Helpers shared by the kernels: fixed work partitions (so reductions give the same
 * result for any thread count) and column sums over row-major matrices.
 */
#ifndef CORED_OPS_INTERNAL_H
#define CORED_OPS_INTERNAL_H

#include <stddef.h>

/* Number of partitions of a reduction. Fixed, so results do not depend on threads. */
#define CORED_PARTS 16

/* A choice made once per process (from the environment, the CPU): *slot is 0 until the first
   call, then choose()'s answer, never 0; the same answer on every thread. */
static inline int cored_once(int *slot, int (*choose)(void))
{
    int v = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (!v) {
        v = choose();
        __atomic_store_n(slot, v, __ATOMIC_RELAXED);
    }
    return v;
}

/* Row range [*lo, *hi) of partition p out of `parts` over `rows` rows. */
static inline void cored_part_range(int rows, int parts, int p, int *lo, int *hi)
{
    *lo = (int)((long long)rows * p / parts);
    *hi = (int)((long long)rows * (p + 1) / parts);
}

/* Floats of workspace that cored_colsum_acc needs for c columns (any float alignment). */
static inline size_t cored_colsum_ws_floats(int c) { return (size_t)CORED_PARTS * 2 * (size_t)c + 2; }

/* out[j] += sum_i x[i*c + j] over rows i, accumulated in double. */
void cored_colsum_acc(float *out, const float *x, int rows, int c, float *ws);

/* One product on the calling thread, never cut (the caller's parallel loop cuts).
   Row-major, as cored_gemm. */
void cored_gemm_serial(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                       int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* y[r*c + j] = act(y[r*c + j] + b[j]) over rows r (b may be NULL): the output pass of a
   folded convolution. Inlined into the caller's CORED_CLONES leaf. */
#include "ops.h"
#include "simd.h"
__attribute__((always_inline)) static inline void cored_bias_act_rows(float *y, const float *b,
                                                                      size_t rows, int c, cored_act act)
{
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * (size_t)c;
        if (b) {
            #pragma omp simd
            for (int j = 0; j < c; j++) yr[j] += b[j];
        }
        if (act == CORED_ACT_RELU) {
            #pragma omp simd
            for (int j = 0; j < c; j++) yr[j] = yr[j] > 0.0f ? yr[j] : 0.0f;
        } else if (act == CORED_ACT_SILU) {
            #pragma omp simd
            for (int j = 0; j < c; j++) yr[j] = yr[j] * cored_sigmoidf_fast(yr[j]);
        }
    }
}

/* cored_bias_act_rows on the calling thread (through a CORED_CLONES leaf, act.c), and over
   rows x c in parallel blocks of rows: the same bits either way. */
void cored_bias_act_serial(float *y, const float *b, size_t rows, int c, cored_act act);
void cored_bias_act(float *y, const float *b, size_t rows, int c, cored_act act);

/* C (m x n, rows contiguous) = [ReLU](op(A)*op(B) + bias), bias (n floats) or NULL, added to
   each element's finished sum: the bits of cored_gemm (beta 0) followed by
   cored_bias_act_rows, in one product whose epilogue runs in registers (under
   CORED_GEMM=openblas, the product and then cored_bias_act). */
void cored_gemm_bias_relu(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                          const float *b, int ldb, float *c, const float *bias, int relu);

/* cored's packed SGEMM (sgemm_own.c), which cored_gemm runs. Row-major,
   C = alpha*op(A)*op(B) + beta*C, like cored_gemm, plus an epilogue in registers: `bias`
   (n floats) added to each element's finished sum, then `relu` (v > 0 ? v : 0), the same
   bits as cored_bias_act_rows after the product. Every element is one FMA chain
   over k in ascending order on every path, so the bits do not depend on the CPU, the path
   or the thread count. path: CORED_SGEMM_AUTO picks from the CPU (or CORED_SGEMM_PATH =
   scalar|avx2|avx512 in the environment); a path the CPU lacks falls back to AUTO.
   Packing buffers are kept in a pool for the next products; where one cannot be
   allocated the product runs unpacked, the same chains. */
enum { CORED_SGEMM_AUTO = 0, CORED_SGEMM_SCALAR, CORED_SGEMM_AVX2, CORED_SGEMM_AVX512 };
void cored_sgemm_own(int path, int trans_a, int trans_b, int m, int n, int k, float alpha,
                    const float *a, int lda, const float *b, int ldb, float beta, float *c,
                    int ldc, const float *bias, int relu);
/* 1 when this CPU can run the path. */
int cored_sgemm_own_supported(int path);
/* The path AUTO runs here. */
int cored_sgemm_own_default(void);

#endif
