/*
 * Helpers shared by the kernels: fixed work partitions (so reductions give the same
 * result for any thread count) and column sums over row-major matrices.
 */
#ifndef CORED_OPS_INTERNAL_H
#define CORED_OPS_INTERNAL_H

#include <stddef.h>

/* Number of partitions of a reduction. Fixed, so results do not depend on threads. */
#define CORED_PARTS 16

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

/* The packed SGEMM of our own (sgemm_own.c), not yet behind cored_gemm. Row-major,
   C = alpha*op(A)*op(B) + beta*C, like cored_gemm, plus an epilogue in registers: with
   `bias` (n floats) each element's sum starts at bias[j] instead of 0 (beta 0; with another
   beta, beta*C + bias), and `relu` clamps the result at 0. Every element is one FMA chain
   over k in ascending order on every path, so the bits do not depend on the CPU, the path
   or the thread count. path: CORED_SGEMM_AUTO picks from the CPU (or CORED_SGEMM_PATH =
   scalar|avx2|avx512 in the environment); a path the CPU lacks falls back to AUTO.
   Returns 0, or -1 when the packing buffers could not be allocated. */
enum { CORED_SGEMM_AUTO = 0, CORED_SGEMM_SCALAR, CORED_SGEMM_AVX2, CORED_SGEMM_AVX512 };
int cored_sgemm_own(int path, int trans_a, int trans_b, int m, int n, int k, float alpha,
                    const float *a, int lda, const float *b, int ldb, float beta, float *c,
                    int ldc, const float *bias, int relu);
/* 1 when this CPU can run the path. */
int cored_sgemm_own_supported(int path);
/* The path AUTO runs here. */
int cored_sgemm_own_default(void);

#endif
