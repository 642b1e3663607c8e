/*
 * BatchNorm in training (cored_bn_forward_train, cored_bn_backward_train with the activation
 * fused) on the shapes of tiny, EfficientNet-B0 and Xception at 128 px, batch 32, next to
 * the memory bandwidth of a triad on this machine, so that each pass can be placed against
 * the roofline:
 *
 *   bench_bn [REPEATS [THREADS]]   (default 9 2, THREADS 0: every CPU; make bench-bn)
 *
 * Per shape: one warm-up, then REPEATS forward + backward pairs; the medians are printed in
 * ms, in ns per element and in GB/s of the arrays the passes read and write: forward x
 * twice (statistics, then the normalisation) and y once; backward with ReLU dy, x, y twice
 * (statistics, then the input gradient) and dx once; with SiLU dy and x once, dz written
 * into dx, then dx and x read and dx written. The first row (16384 x 32) is small enough for
 * its arrays to stay in the L3: the time per element there is the passes' own cost, and
 * what a larger shape takes beyond it is waiting for memory. The triad reads two arrays of
 * 64 MB and writes a third (the GB/s count the three arrays once).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "cored.h"
#include "ops/ops.h"

#define MAX_REPS 64

static const struct {
    int rows, c;
    cored_act act;
    const char *what;
} shapes[] = {
    {16384, 32, CORED_ACT_RELU, "arrays in the L3"},
    {131072, 32, CORED_ACT_RELU, "tiny bn1"},
    {32768, 32, CORED_ACT_RELU, "tiny bn2"},
    {8192, 64, CORED_ACT_RELU, "tiny bn3"},
    {131072, 32, CORED_ACT_SILU, "EfficientNet-B0 stem"},
    {131072, 96, CORED_ACT_SILU, "EfficientNet-B0 stage 2 expansion"},
    {119072, 128, CORED_ACT_RELU, "Xception block 1"},
    {30752, 256, CORED_ACT_RELU, "Xception block 2"},
    {8192, 728, CORED_ACT_RELU, "Xception block 3"},
};

/* reps <= MAX_REPS */
static double triad_gbs(int reps)
{
    const size_t n = (size_t)16 << 20; /* 64 MB per array */
    float *a = bench_frand(n, 1), *b = bench_frand(n, 2), *c = bench_frand(n, 3);
    double t[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        double t0 = omp_get_wtime();
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) c[i] = a[i] * 0.5f + b[i];
        t[r] = omp_get_wtime() - t0;
    }
    double med = bench_median(t, reps);
    free(a), free(b), free(c);
    return 3.0 * sizeof(float) * n / med * 1e-9;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 9, threads = argc > 2 ? atoi(argv[2]) : 2;
    if (reps < 1) reps = 1;
    if (reps > MAX_REPS) reps = MAX_REPS;
    threads = cored_set_threads(threads);
    printf("# bench_bn: %d threads, %d repeats (medians); triad %.1f GB/s\n", threads, reps,
           triad_gbs(reps));
    printf("%-7s %4s %-4s %8s %8s %8s %8s %8s %8s  %s\n", "rows", "c", "act", "fwd ms", "ns/el", "GB/s",
           "bwd ms", "ns/el", "GB/s", "shape");
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        cored_bn_shape s = {.rows = shapes[k].rows, .c = shapes[k].c, .eps = 1e-5f, .momentum = 0.1f,
                            .act = shapes[k].act};
        size_t n = (size_t)s.rows * s.c;
        float *x = bench_frand(n, 10 + (unsigned)k), *dy = bench_frand(n, 20 + (unsigned)k);
        float *y = bench_frand(n, 30), *dx = bench_frand(n, 40);
        float *gamma = bench_frand((size_t)s.c, 50), *beta = bench_frand((size_t)s.c, 60);
        float *par = calloc((size_t)s.c * 6, sizeof(float));
        float *ws = malloc(sizeof(float) * cored_bn_ws_floats(&s));
        if (!par || !ws) {
            fprintf(stderr, "bench_bn: out of memory\n");
            return 1;
        }
        float *mean = par, *invstd = par + s.c, *run_mean = par + 2 * s.c, *run_var = par + 3 * s.c;
        float *dgamma = par + 4 * s.c, *dbeta = par + 5 * s.c;
        for (int j = 0; j < s.c; j++) run_var[j] = 1.0f, gamma[j] += 1.0f;
        double tf[MAX_REPS], tb[MAX_REPS];
        for (int r = -1; r < reps; r++) {
            double t0 = omp_get_wtime();
            cored_bn_forward_train(y, mean, invstd, run_mean, run_var, x, gamma, beta, &s, ws);
            double t1 = omp_get_wtime();
            cored_bn_backward_train(dx, dgamma, dbeta, dy, x, y, mean, invstd, gamma, beta, &s, ws);
            double t2 = omp_get_wtime();
            if (r >= 0) tf[r] = t1 - t0, tb[r] = t2 - t1;
        }
        double f = bench_median(tf, reps), b = bench_median(tb, reps);
        double bytes = sizeof(float) * (double)n, fwd_arrays = 3, bwd_arrays = s.act == CORED_ACT_SILU ? 6 : 7;
        printf("%-7d %4d %-4s %8.3f %8.3f %8.1f %8.3f %8.3f %8.1f  %s\n", s.rows, s.c,
               s.act == CORED_ACT_SILU ? "silu" : "relu", f * 1e3, f * 1e9 / n, fwd_arrays * bytes / f * 1e-9,
               b * 1e3, b * 1e9 / n, bwd_arrays * bytes / b * 1e-9, shapes[k].what);
        fflush(stdout);
        free(x), free(dy), free(y), free(dx), free(gamma), free(beta), free(par), free(ws);
    }
    return 0;
}
