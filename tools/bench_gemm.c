/*
 * Xception's pointwise GEMMs (128 px, batch 32) through OpenBLAS (cored_gemm under
 * CORED_GEMM=openblas, which this program sets) and through cored's own packed SGEMM
 * (src/ops/sgemm_own.c, what cored_gemm runs otherwise) on its AVX-512 and AVX2 paths:
 *
 *   bench_gemm [REPEATS [THREADS [IMPLS [ROWS]]]]  (default 3 2 blas,avx512,avx2, all shapes;
 *                                                 ROWS: e.g. 2048,512 for those maps only)
 *   OPENBLAS_CORETYPE=SkylakeX|Haswell bench_gemm ...   (make bench-gemm runs both)
 *
 * The shapes: rows = 32 x the map's pixels (61x61 after the entry convolutions, then 31x31,
 * 16x16, 8x8, 4x4), each pointwise convolution cin -> cout, in the three forms the
 * convolution uses: NT forward Y = X W^T (m rows, n cout, k cin), NN input gradient
 * dX = dY W (m rows, n cin, k cout), TN weight gradient dW += dY^T X (m cout, n cin, k rows).
 * Each repeat times one call of every implementation in turn (alternating, so a noisy
 * neighbour hits all of them alike) after one warm-up call each; the medians are printed in
 * GFLOP/s, with the own kernel's AVX-512 and AVX2 outputs compared bit for bit, and a hash
 * of each implementation's outputs to compare across machines and OPENBLAS_CORETYPE values.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "core/core.h"
#include "ops/internal.h"
#include "ops/ops.h"

static const struct {
    int rows, cin, cout;
} shapes[] = {
    {119072, 64, 128}, {119072, 128, 128}, {30752, 128, 256}, {30752, 256, 256}, {8192, 256, 728},
    {8192, 728, 728},  {2048, 728, 728},   {2048, 728, 1024}, {512, 1024, 1536}, {512, 1536, 2048},
};

enum { IMPL_BLAS, IMPL_AVX512, IMPL_AVX2, IMPLS };
static const char *impl_name[IMPLS] = {"blas", "avx512", "avx2"};

static void call(int impl, int ta, int tb, int m, int n, int k, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc)
{
    if (impl == IMPL_BLAS)
        cored_gemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    else
        cored_sgemm_own(impl == IMPL_AVX512 ? CORED_SGEMM_AVX512 : CORED_SGEMM_AVX2, ta, tb, m, n, k,
                        1.0f, a, lda, b, ldb, beta, c, ldc, NULL, 0);
}

/* FNV-1a over the bits of n floats, chained */
static unsigned long long hash_floats(unsigned long long h, const float *x, size_t n)
{
    const unsigned char *b = (const unsigned char *)x;
    for (size_t i = 0; i < n * sizeof(float); i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

int main(int argc, char **argv)
{
    setenv("CORED_GEMM", "openblas", 1); /* cored_gemm on OpenBLAS: the "blas" column */
    int reps = argc > 1 ? atoi(argv[1]) : 3, threads = argc > 2 ? atoi(argv[2]) : 2;
    const char *want = argc > 3 ? argv[3] : "blas,avx512,avx2", *only_rows = argc > 4 ? argv[4] : NULL;
    if (reps < 1) reps = 1;
    int use[IMPLS];
    for (int i = 0; i < IMPLS; i++) use[i] = strstr(want, impl_name[i]) != NULL;
    if (use[IMPL_AVX512] && !cored_sgemm_own_supported(CORED_SGEMM_AVX512)) {
        fprintf(stderr, "bench_gemm: no AVX-512 here, skipping that path\n");
        use[IMPL_AVX512] = 0;
    }
    if (use[IMPL_AVX2] && !cored_sgemm_own_supported(CORED_SGEMM_AVX2)) use[IMPL_AVX2] = 0;
    cored_set_threads(threads);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("# bench_gemm: %d threads, %d repeats (medians, GFLOP/s), OPENBLAS_CORETYPE=%s\n", threads,
           reps, ct ? ct : "(auto)");
    printf("%-6s %-4s %6s %5s %6s", "rows", "form", "m", "n", "k");
    for (int i = 0; i < IMPLS; i++)
        if (use[i]) printf(" %8s", impl_name[i]);
    printf("  own512==own2\n");
    double total_flop = 0, total_s[IMPLS] = {0};
    unsigned long long hash[IMPLS];
    for (int i = 0; i < IMPLS; i++) hash[i] = 14695981039346656037ull;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int rows = shapes[s].rows, cin = shapes[s].cin, cout = shapes[s].cout;
        if (only_rows) {
            char key[16];
            snprintf(key, sizeof key, "%d", rows);
            const char *hit = strstr(only_rows, key);
            if (!hit || (hit != only_rows && hit[-1] != ',') || (hit[strlen(key)] && hit[strlen(key)] != ','))
                continue;
        }
        float *x = bench_frand((size_t)rows * cin, 1 + s), *w = bench_frand((size_t)cout * cin, 2 + s);
        float *dy = bench_frand((size_t)rows * cout, 3 + s);
        size_t out_max = (size_t)rows * (cin > cout ? cin : cout);
        if (out_max < (size_t)cin * cout) out_max = (size_t)cin * cout;
        float *out[IMPLS];
        for (int i = 0; i < IMPLS; i++) out[i] = calloc(out_max, sizeof(float));
        for (int form = 0; form < 3; form++) {
            /* 0 NT forward, 1 NN input gradient, 2 TN weight gradient */
            int ta = form == 2, tb = form == 0, m, n, k, lda, ldb, ldc;
            const float *a, *b;
            float beta = form == 2 ? 1.0f : 0.0f;
            if (form == 0) m = rows, n = cout, k = cin, a = x, lda = cin, b = w, ldb = cin, ldc = cout;
            else if (form == 1) m = rows, n = cin, k = cout, a = dy, lda = cout, b = w, ldb = cin, ldc = cin;
            else m = cout, n = cin, k = rows, a = dy, lda = cout, b = x, ldb = cin, ldc = cin;
            double flop = 2.0 * m * n * k, t[IMPLS][64];
            int nrep = reps > 64 ? 64 : reps;
            for (int i = 0; i < IMPLS; i++)
                if (use[i]) {
                    memset(out[i], 0, sizeof(float) * (size_t)m * n);
                    call(i, ta, tb, m, n, k, a, lda, b, ldb, beta, out[i], ldc); /* warm-up */
                }
            for (int i = 0; i < IMPLS; i++) /* the bits of one call from zero */
                if (use[i]) hash[i] = hash_floats(hash[i], out[i], (size_t)m * n);
            int same = 1;
            if (use[IMPL_AVX512] && use[IMPL_AVX2]) /* one call each from zero: the same bits? */
                same = memcmp(out[IMPL_AVX512], out[IMPL_AVX2], sizeof(float) * (size_t)m * n) == 0;
            for (int r = 0; r < nrep; r++)
                for (int i0 = 0; i0 < IMPLS; i0++) {
                    int i = (i0 + r) % IMPLS; /* rotate who goes first */
                    if (!use[i]) continue;
                    double t0 = omp_get_wtime();
                    call(i, ta, tb, m, n, k, a, lda, b, ldb, beta, out[i], ldc);
                    t[i][r] = omp_get_wtime() - t0;
                }
            static const char *form_name[3] = {"NT", "NN", "TN"};
            printf("%-6d %-4s %6d %5d %6d", rows, form_name[form], m, n, k);
            total_flop += flop;
            for (int i = 0; i < IMPLS; i++)
                if (use[i]) {
                    double med = bench_median(t[i], nrep);
                    total_s[i] += med;
                    printf(" %8.1f", flop / med * 1e-9);
                }
            printf("  %s\n", use[IMPL_AVX512] && use[IMPL_AVX2] ? (same ? "same" : "DIFFER") : "-");
            fflush(stdout);
        }
        for (int i = 0; i < IMPLS; i++) free(out[i]);
        free(x), free(w), free(dy);
    }
    printf("%-6s %-4s %6s %5s %6s", "all", "", "", "", "");
    for (int i = 0; i < IMPLS; i++)
        if (use[i]) printf(" %8.1f", total_flop / total_s[i] * 1e-9);
    printf("\n# bits of every product (one call from zero), FNV-1a: compare across CPUs and\n"
           "# OPENBLAS_CORETYPE values:");
    for (int i = 0; i < IMPLS; i++)
        if (use[i]) printf(" %s %016llx", impl_name[i], hash[i]);
    printf("\n");
    return 0;
}
