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

#endif
