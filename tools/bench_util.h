/*
 * What the op benchmarks (tools/bench_gemm.c, tools/bench_bn.c) share: reproducible random
 * arrays and the median of a set of timings.
 */
#ifndef CORED_BENCH_UTIL_H
#define CORED_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>

/* n floats uniform in [-0.5, 0.5) from seed s (a linear congruential generator); exits
   with a message when memory runs out. */
static inline float *bench_frand(size_t n, unsigned s)
{
    float *a = malloc(sizeof(float) * (n ? n : 1));
    if (!a) {
        fprintf(stderr, "bench: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        a[i] = (float)((s >> 8) * (1.0 / 16777216.0) - 0.5);
    }
    return a;
}

static inline int bench_cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The median of t[0..n), n >= 1; sorts t. */
static inline double bench_median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof(double), bench_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

#endif
