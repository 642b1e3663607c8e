/*
 * GEMM through CBLAS (OpenBLAS). Row-major, C = alpha*op(A)*op(B) + beta*C.
 * Column sums for bias gradients, reduced over fixed partitions in double.
 */
#include <cblas.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "ops.h"

void cored_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
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
