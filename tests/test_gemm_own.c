/*
 * The packed SGEMM of our own (src/ops/sgemm_own.c):
 *  1. against a double-precision reference, within the rigorous bound of a k-term float
 *     FMA chain, for the four forms, edge sizes (not multiples of any tile, k = 1, k past
 *     the depth block, n past the column block, tiny shapes), alpha, beta 0 / 1 / other,
 *     bias and ReLU epilogues, and beta 0 over a C full of NaN;
 *  2. bit for bit against a plain fmaf chain over k in ascending order, on every path this
 *     CPU runs (scalar, AVX2, AVX-512) and with 1 and 2 threads: the bits do not depend on
 *     the CPU.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "harness.h"
#include "ops/internal.h"

static uint64_t seed = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(seed >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static float *frand_array(size_t n)
{
    float *a = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) a[i] = frand();
    return a;
}

typedef struct {
    int ta, tb, m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b, *bias, *c0;
    int relu;
} problem;

static float elem_a(const problem *q, int i, int p) { return q->ta ? q->a[(size_t)p * q->lda + i] : q->a[(size_t)i * q->lda + p]; }
static float elem_b(const problem *q, int p, int j) { return q->tb ? q->b[(size_t)j * q->ldb + p] : q->b[(size_t)p * q->ldb + j]; }

/* The chain the kernel promises, written plainly. */
static void chain_reference(const problem *q, float *c)
{
    for (int i = 0; i < q->m; i++)
        for (int j = 0; j < q->n; j++) {
            float c0 = q->c0[(size_t)i * q->ldc + j];
            float acc = q->beta == 0.0f ? 0.0f : q->beta == 1.0f ? c0 : q->beta * c0;
            for (int p = 0; p < q->k; p++) {
                float a = elem_a(q, i, p);
                if (q->alpha != 1.0f) a = q->alpha * a;
                acc = fmaf(a, elem_b(q, p, j), acc);
            }
            if (q->bias) acc += q->bias[j]; /* after the chain, one rounding */
            c[(size_t)i * q->ldc + j] = q->relu && !(acc > 0.0f) ? 0.0f : acc;
        }
}

/* max over elements of |got - exact| / bound, bound = gamma_{k+3} * (sum |terms|): k FMAs,
   beta*C and the bias added to the finished sum */
static double double_check(const problem *q, const float *c)
{
    const double u = ldexp(1.0, -24);
    double worst = 0;
    for (int i = 0; i < q->m; i++)
        for (int j = 0; j < q->n; j++) {
            double c0 = q->beta == 0.0f ? 0 : q->c0[(size_t)i * q->ldc + j];
            double s = q->beta * c0 + (q->bias ? q->bias[j] : 0), mag = fabs(s);
            for (int p = 0; p < q->k; p++) {
                double t = (double)q->alpha * elem_a(q, i, p) * elem_b(q, p, j);
                s += t, mag += fabs(t);
            }
            if (q->relu && s < 0) s = 0;
            double bound = (q->k + 4) * u * 1.01 * mag + 1e-30;
            double e = fabs(c[(size_t)i * q->ldc + j] - s) / bound;
            if (!(e <= worst)) worst = e; /* NaN wins */
        }
    return worst;
}

static int run_case(int ta, int tb, int m, int n, int k, float alpha, float beta, int with_bias,
                    int relu, int nan_c)
{
    int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2; /* strides past the width */
    size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb, nc = (size_t)m * ldc;
    float *a = frand_array(na), *b = frand_array(nb), *c0 = frand_array(nc), *bias = frand_array(n);
    if (nan_c)
        for (size_t i = 0; i < nc; i++) c0[i] = NAN;
    problem q = {ta, tb, m, n, k, lda, ldb, ldc, alpha, beta, a, b, with_bias ? bias : NULL, c0, relu};
    float *want = malloc(sizeof(float) * nc), *got = malloc(sizeof(float) * nc);
    memcpy(want, c0, sizeof(float) * nc);
    chain_reference(&q, want);
    char what[160];
    snprintf(what, sizeof what, "%c%c %dx%dx%d alpha %g beta %g bias %d relu %d nanC %d", ta ? 'T' : 'N',
             tb ? 'T' : 'N', m, n, k, alpha, beta, with_bias, relu, nan_c);
    double e = double_check(&q, want);
    CHECK_MSG(e <= 1.0, "%s: fmaf chain %.3g x the error bound", what, e);
    int ran = 0;
    for (int path = CORED_SGEMM_SCALAR; path <= CORED_SGEMM_AVX512; path++) {
        if (!cored_sgemm_own_supported(path)) continue;
        for (int t = 1; t <= 2; t++) {
            cored_set_threads(t);
            memcpy(got, c0, sizeof(float) * nc);
            cored_sgemm_own(path, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, got, ldc, q.bias, relu);
            /* columns past n keep C's values */
            int same = 1;
            for (int i = 0; i < m && same; i++)
                same = memcmp(got + (size_t)i * ldc, want + (size_t)i * ldc, sizeof(float) * n) == 0 &&
                       memcmp(got + (size_t)i * ldc + n, c0 + (size_t)i * ldc + n, sizeof(float) * 2) == 0;
            CHECK_MSG(same, "%s: path %d, %d threads: not the bits of the fmaf chain", what, path, t);
            ran++;
        }
    }
    cored_set_threads(2);
    free(a), free(b), free(c0), free(bias), free(want), free(got);
    return ran;
}

static void test_gemm_own_shapes(void)
{
    static const int shapes[][3] = {
        {1, 1, 1},     {1, 1, 7},      {7, 5, 3},      {13, 33, 1},   {12, 32, 256},
        {6, 16, 257},  {25, 47, 513},  {2, 3, 530},    {300, 40, 120}, {24, 700, 90},
        {130, 129, 70}, {200, 150, 600}, {97, 2100, 20}, {1000, 200, 64}, {40, 1100, 96},
        {64, 96, 3000},
    };
    int paths = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int form = 0; form < 4; form++) {
            int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            paths = run_case(form & 1, form >> 1, m, n, k, 1.0f, 0.0f, 0, 0, 0);
            run_case(form & 1, form >> 1, m, n, k, 1.0f, 1.0f, 0, 0, 0);
            if (s % 3 == 0) run_case(form & 1, form >> 1, m, n, k, 0.5f, 0.75f, 0, 0, 0);
        }
    fprintf(stderr, "        paths x threads run here: %d (scalar%s%s)\n", paths,
            cored_sgemm_own_supported(CORED_SGEMM_AVX2) ? ", AVX2" : "",
            cored_sgemm_own_supported(CORED_SGEMM_AVX512) ? ", AVX-512" : "");
}

static void test_gemm_own_epilogue(void)
{
    static const int shapes[][3] = {{7, 5, 3}, {37, 70, 300}, {300, 33, 64}, {5, 40, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        run_case(0, 1, m, n, k, 1.0f, 0.0f, 1, 1, 1); /* forward: bias + ReLU over a NaN C */
        run_case(0, 1, m, n, k, 1.0f, 0.0f, 1, 0, 0);
        run_case(0, 1, m, n, k, 1.0f, 0.0f, 0, 1, 0);
        run_case(1, 0, m, n, k, 1.0f, 1.0f, 1, 0, 0); /* bias with beta 1 */
        run_case(0, 0, m, n, k, 1.0f, 0.0f, 0, 0, 1); /* beta 0 never reads C */
    }
    /* k = 0: C = init (+ epilogue) */
    run_case(0, 1, 9, 17, 0, 1.0f, 0.5f, 0, 0, 0);
    run_case(0, 1, 9, 17, 0, 1.0f, 0.0f, 1, 1, 0);
}

/* The epilogue in registers gives the bits of the product followed by the separate pass
   the convolutions ran before (cored_bias_act_rows), -0 and NaN included: the folded
   convolutions switch between the two. */
static void test_gemm_own_epilogue_as_pass(void)
{
    const int m = 61, n = 45, k = 300;
    float *a = frand_array((size_t)m * k), *b = frand_array((size_t)n * k), *bias = frand_array(n);
    float *fused = malloc(sizeof(float) * m * n), *pass = malloc(sizeof(float) * m * n);
    a[0] = NAN; /* row 0 all NaN */
    for (int p = 0; p < k; p++) a[(size_t)1 * k + p] = 0.0f; /* row 1: the bias alone */
    bias[3] = -0.0f, bias[4] = 0.0f;
    for (int path = CORED_SGEMM_SCALAR; path <= CORED_SGEMM_AVX512; path++) {
        if (!cored_sgemm_own_supported(path)) continue;
        for (int relu = 0; relu < 2; relu++) {
            cored_sgemm_own(path, 0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, fused, n, bias, relu);
            cored_sgemm_own(path, 0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, pass, n, NULL, 0);
            cored_bias_act_rows(pass, bias, (size_t)m, n, relu ? CORED_ACT_RELU : CORED_ACT_NONE);
            CHECK_MSG(!memcmp(fused, pass, sizeof(float) * m * n), "path %d relu %d: the epilogue's bits differ from the pass's",
                  path, relu);
        }
    }
    free(a), free(b), free(bias), free(fused), free(pass);
}

int main(void)
{
    cored_set_threads(2);
    RUN(test_gemm_own_shapes);
    RUN(test_gemm_own_epilogue);
    RUN(test_gemm_own_epilogue_as_pass);
    return test_finish();
}
