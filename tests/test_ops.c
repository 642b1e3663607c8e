/*
 * Op tests. For every op:
 *  1. the naive double reference (tests/ref_ops.c) passes a double-precision central
 *     finite-difference gradient check of L = sum(R * y) for a random R;
 *  2. the optimised float kernel matches the reference, forward and backward, on seeded
 *     random shapes including odd sizes, stride 2 and asymmetric (TF "same") padding;
 *  3. the gradient rule holds: a second backward call doubles parameter gradients and
 *     leaves input gradients unchanged;
 *  4. kernels with reductions give bit-identical results with 1 and 2 threads.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "harness.h"
#include "ops/conv_direct.h"
#include "ops/simd.h"
#include "ref_ops.h"

#define FD_H 1e-6
#define FD_ATOL 1e-7
#define FD_RTOL 1e-6
#define KERNEL_TOL 2e-5 /* max |float - ref| / max |ref| */

static cored_rng rng;

static double *drand_array(size_t n, double lo, double hi)
{
    double *a = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) a[i] = lo + (hi - lo) * cored_rng_uniform_d(&rng);
    return a;
}

static float *to_float(const double *a, size_t n)
{
    float *f = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) f[i] = (float)a[i];
    return f;
}

/* Inputs rounded to float, so the reference sees exactly what the kernel sees. */
static void round_to_float(double *a, size_t n)
{
    for (size_t i = 0; i < n; i++) a[i] = (float)a[i];
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void check_kernel(const char *what, const float *got, const double *want, size_t n)
{
    double e = max_rel_error_fd(got, want, n, 1e-6);
    CHECK_MSG(e <= KERNEL_TOL, "%s: relative error %.3g > %.1g", what, e, KERNEL_TOL);
}

/* Central differences of loss() with respect to up to `samples` elements of arr,
   compared with the analytic gradient. `skip` (may be NULL) excludes points at kinks. */
typedef double (*loss_fn)(void *ctx);
static void fd_check(const char *what, loss_fn loss, void *ctx, double *arr, size_t n,
                     const double *analytic, int samples, int (*skip)(void *ctx, size_t i))
{
    int bad = 0;
    double worst = 0;
    for (int t = 0; t < samples && n > 0; t++) {
        size_t i = (size_t)samples >= n ? (size_t)t : cored_rng_below(&rng, (uint32_t)n);
        if ((size_t)t >= n) break;
        if (skip && skip(ctx, i)) continue;
        double keep = arr[i];
        arr[i] = keep + FD_H;
        double lp = loss(ctx);
        arr[i] = keep - FD_H;
        double lm = loss(ctx);
        arr[i] = keep;
        double num = (lp - lm) / (2 * FD_H);
        double err = fabs(num - analytic[i]);
        if (err > FD_ATOL + FD_RTOL * fabs(analytic[i])) {
            if (!bad)
                fprintf(stderr, "  FAIL %s: finite difference at %zu: numeric %.10g analytic %.10g\n",
                        what, i, num, analytic[i]);
            bad++;
        }
        if (err > worst) worst = err;
    }
    CHECK_MSG(bad == 0, "%s: %d finite-difference mismatches (worst %.3g)", what, bad, worst);
}

/* ================================================================ convolution */

typedef struct {
    cored_conv_shape s;
    double *x, *w, *b, *r;
    size_t nx, nw, ny;
} conv_ctx;

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    double *y = malloc(sizeof(double) * c->ny);
    ref_conv_forward(y, c->x, c->w, c->b, &c->s);
    double l = dot(y, c->r, c->ny);
    free(y);
    return l;
}

static void conv_case(int n, int h, int w, int cin, int cout, int k, int stride, int pt, int pl,
                      int pb, int pr, int groups, int bias)
{
    char name[160];
    snprintf(name, sizeof name, "conv n%d %dx%d %d->%d k%d s%d pad(%d,%d,%d,%d) g%d%s", n, h, w,
             cin, cout, k, stride, pt, pl, pb, pr, groups, bias ? " bias" : "");
    conv_ctx c = {.s = {.n = n, .h = h, .w = w, .cin = cin, .cout = cout, .kh = k, .kw = k,
                        .stride = stride, .pad_t = pt, .pad_l = pl, .pad_b = pb, .pad_r = pr,
                        .groups = groups}};
    CHECK_MSG(cored_conv_shape_init(&c.s) == 0, "%s: shape rejected", name);
    c.nx = (size_t)n * h * w * cin;
    c.nw = (size_t)cout * (cin / groups) * k * k;
    c.ny = (size_t)n * c.s.oh * c.s.ow * cout;
    c.x = drand_array(c.nx, -1, 1);
    c.w = drand_array(c.nw, -1, 1);
    c.b = bias ? drand_array((size_t)cout, -1, 1) : NULL;
    c.r = drand_array(c.ny, -1, 1);
    round_to_float(c.x, c.nx);
    round_to_float(c.w, c.nw);
    if (c.b) round_to_float(c.b, (size_t)cout);
    round_to_float(c.r, c.ny);

    double *y = malloc(sizeof(double) * c.ny), *dx = malloc(sizeof(double) * c.nx);
    double *dw = malloc(sizeof(double) * c.nw), *db = malloc(sizeof(double) * (size_t)cout);
    ref_conv_forward(y, c.x, c.w, c.b, &c.s);
    ref_conv_backward(dx, dw, bias ? db : NULL, c.r, c.x, c.w, &c.s);

    char what[200];
    snprintf(what, sizeof what, "%s: ref dx", name);
    fd_check(what, conv_loss, &c, c.x, c.nx, dx, 40, NULL);
    snprintf(what, sizeof what, "%s: ref dw", name);
    fd_check(what, conv_loss, &c, c.w, c.nw, dw, 40, NULL);
    if (bias) {
        snprintf(what, sizeof what, "%s: ref db", name);
        fd_check(what, conv_loss, &c, c.b, (size_t)cout, db, 40, NULL);
    }

    float *fx = to_float(c.x, c.nx), *fw = to_float(c.w, c.nw), *fr = to_float(c.r, c.ny);
    float *fb = bias ? to_float(c.b, (size_t)cout) : NULL;
    float *fy = calloc(c.ny, sizeof(float)), *fdx = calloc(c.nx, sizeof(float));
    float *fdw = calloc(c.nw, sizeof(float)), *fdb = calloc((size_t)cout, sizeof(float));
    float *ws = malloc(sizeof(float) * (cored_conv_ws_floats(&c.s) + 1));
    cored_conv_forward(fy, fx, fw, fb, &c.s, ws);
    snprintf(what, sizeof what, "%s: forward", name);
    check_kernel(what, fy, y, c.ny);
    for (int rep = 1; rep <= 2; rep++) {
        cored_conv_backward(fdx, fdw, bias ? fdb : NULL, fr, fx, fw, &c.s, ws);
        double *dw2 = malloc(sizeof(double) * c.nw), *db2 = malloc(sizeof(double) * (size_t)cout);
        for (size_t i = 0; i < c.nw; i++) dw2[i] = rep * dw[i];
        for (int i = 0; i < cout; i++) db2[i] = rep * db[i];
        snprintf(what, sizeof what, "%s: dx (call %d, overwritten)", name, rep);
        check_kernel(what, fdx, dx, c.nx);
        snprintf(what, sizeof what, "%s: dw (call %d, accumulated)", name, rep);
        check_kernel(what, fdw, dw2, c.nw);
        if (bias) {
            snprintf(what, sizeof what, "%s: db (call %d, accumulated)", name, rep);
            check_kernel(what, fdb, db2, (size_t)cout);
        }
        free(dw2);
        free(db2);
    }
    free(c.x), free(c.w), free(c.b), free(c.r), free(y), free(dx), free(dw), free(db);
    free(fx), free(fw), free(fr), free(fb), free(fy), free(fdx), free(fdw), free(fdb), free(ws);
}

static void test_conv_fixed(void)
{
    conv_case(2, 5, 4, 6, 5, 1, 1, 0, 0, 0, 0, 1, 0);   /* pointwise */
    conv_case(2, 5, 4, 6, 5, 1, 1, 0, 0, 0, 0, 1, 1);   /* pointwise + bias */
    conv_case(2, 7, 5, 4, 3, 1, 2, 0, 0, 0, 0, 1, 0);   /* strided pointwise (Xception skip) */
    conv_case(2, 6, 5, 3, 4, 3, 1, 1, 1, 1, 1, 1, 0);   /* 3x3 pad 1 */
    conv_case(2, 9, 7, 3, 4, 3, 2, 0, 0, 0, 0, 1, 0);   /* Xception conv1: s2 p0 */
    conv_case(2, 8, 8, 3, 5, 3, 2, 0, 0, 1, 1, 1, 0);   /* TF same 3x3 s2: pad (0,1) */
    conv_case(1, 7, 9, 2, 3, 5, 2, 1, 1, 2, 2, 1, 1);   /* TF same 5x5 s2: pad (1,2) */
    conv_case(2, 6, 5, 5, 5, 3, 1, 1, 1, 1, 1, 5, 0);   /* depthwise */
    conv_case(2, 9, 8, 7, 7, 5, 2, 1, 1, 2, 2, 7, 0);   /* depthwise 5x5 s2 asymmetric */
    conv_case(2, 8, 7, 6, 6, 3, 2, 0, 0, 1, 1, 6, 1);   /* depthwise s2 + bias */
    conv_case(2, 6, 5, 40, 40, 3, 1, 1, 1, 1, 1, 40, 1); /* depthwise: a 32-channel block + tail */
    conv_case(1, 9, 7, 72, 72, 5, 2, 1, 1, 2, 2, 72, 0); /* two blocks + tail, 5x5 s2 same */
    conv_case(2, 5, 6, 4, 6, 3, 1, 1, 1, 1, 1, 2, 1);   /* grouped */
    conv_case(3, 1, 1, 8, 3, 1, 1, 0, 0, 0, 0, 1, 1);   /* 1x1 spatial (squeeze-excitation) */
}

static void test_conv_random(void)
{
    for (int t = 0; t < 12; t++) {
        int k = 1 + 2 * (int)cored_rng_below(&rng, 3);          /* 1, 3, 5 */
        int stride = 1 + (int)cored_rng_below(&rng, 2);
        int h = k + (int)cored_rng_below(&rng, 8), w = k + (int)cored_rng_below(&rng, 8);
        int kind = (int)cored_rng_below(&rng, 3); /* dense, depthwise, grouped */
        int cin = 1 + (int)cored_rng_below(&rng, 7), cout = 1 + (int)cored_rng_below(&rng, 7);
        int groups = 1;
        if (kind == 1) cout = cin, groups = cin;
        if (kind == 2) groups = 2, cin = 2 * cin, cout = 2 * cout;
        int p[4];
        for (int i = 0; i < 4; i++) p[i] = (int)cored_rng_below(&rng, (uint32_t)(k / 2 + 2));
        conv_case(1 + (int)cored_rng_below(&rng, 3), h, w, cin, cout, k, stride, p[0], p[1], p[2],
                  p[3], groups, (int)cored_rng_below(&rng, 2));
    }
}

/* Shapes that conv.c sends to the direct kernel (groups 1, at most 64 channels, 8 or more
   output columns): channels that are no multiple of 8 or 16, stride 1, 2 and 3, padding
   symmetric and not, batch 1. */
static void test_conv_direct_dispatch(void)
{
    conv_case(1, 9, 33, 3, 16, 3, 2, 1, 1, 1, 1, 1, 0);   /* tiny/EfficientNet stem class */
    conv_case(2, 5, 34, 3, 32, 3, 2, 0, 0, 1, 1, 1, 1);   /* TF same, bias */
    conv_case(1, 4, 20, 17, 16, 3, 1, 1, 1, 1, 1, 1, 0);  /* Cin 17 (16 + 1 in the dx tile) */
    conv_case(2, 6, 37, 16, 48, 3, 2, 1, 1, 1, 1, 1, 1);  /* odd width, three channel tiles */
    conv_case(1, 5, 18, 20, 16, 3, 1, 0, 0, 0, 0, 1, 0);  /* no padding (Xception conv2 class) */
    conv_case(1, 7, 40, 9, 13, 5, 2, 2, 1, 2, 2, 1, 1);   /* 5x5, Cout 13: forward only */
    conv_case(1, 6, 50, 24, 32, 3, 3, 1, 1, 1, 1, 1, 0);  /* stride 3 */
    conv_case(2, 6, 17, 24, 32, 3, 2, 1, 1, 1, 1, 1, 1);  /* 9 columns */
    conv_case(1, 6, 7, 24, 32, 3, 1, 1, 1, 1, 1, 1, 0);   /* 7 columns: the general path */
}

/* check_kernel against a float result (another path of the same op). */
static void check_vs_float(const char *what, const float *got, const float *want, size_t n)
{
    double *d = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) d[i] = want[i];
    check_kernel(what, got, d, n);
    free(d);
}

/* The direct kernel called whatever the dispatch rule says, on small odd shapes (narrow
   rows, everything border, 1x1 and 2x2 kernels), against the double reference and the
   general path. */
static void direct_case(int n, int h, int w, int cin, int cout, int k, int stride, int pt,
                        int pl, int pb, int pr, int bias)
{
    char name[160];
    snprintf(name, sizeof name, "direct conv n%d %dx%d %d->%d k%d s%d pad(%d,%d,%d,%d)%s", n, h,
             w, cin, cout, k, stride, pt, pl, pb, pr, bias ? " bias" : "");
    cored_conv_shape s = {.n = n, .h = h, .w = w, .cin = cin, .cout = cout, .kh = k, .kw = k,
                          .stride = stride, .pad_t = pt, .pad_l = pl, .pad_b = pb, .pad_r = pr,
                          .groups = 1};
    CHECK_MSG(cored_conv_shape_init(&s) == 0, "%s: shape rejected", name);
    size_t nx = (size_t)n * h * w * cin, nw = (size_t)cout * cin * k * k;
    size_t ny = (size_t)n * s.oh * s.ow * cout;
    double *x = drand_array(nx, -1, 1), *wt = drand_array(nw, -1, 1), *r = drand_array(ny, -1, 1);
    double *b = bias ? drand_array((size_t)cout, -1, 1) : NULL;
    round_to_float(x, nx), round_to_float(wt, nw), round_to_float(r, ny);
    if (b) round_to_float(b, (size_t)cout);
    double *y = malloc(sizeof(double) * ny), *dx = malloc(sizeof(double) * nx);
    double *dw = malloc(sizeof(double) * nw);
    ref_conv_forward(y, x, wt, b, &s);
    ref_conv_backward(dx, dw, NULL, r, x, wt, &s);
    float *fx = to_float(x, nx), *fw = to_float(wt, nw), *fr = to_float(r, ny);
    float *fb = b ? to_float(b, (size_t)cout) : NULL;
    float *fy = calloc(ny, sizeof(float)), *gy = calloc(ny, sizeof(float));
    float *fdx = calloc(nx, sizeof(float)), *gdx = calloc(nx, sizeof(float));
    float *fdw = calloc(nw, sizeof(float)), *gdw = calloc(nw, sizeof(float));
    size_t wa = cored_conv_direct_ws_floats(&s), wb = cored_conv_ws_floats(&s);
    float *ws = malloc(sizeof(float) * (wa > wb ? wa : wb));
    char what[200];
    cored_conv_direct_forward(fy, fx, fw, fb, CORED_ACT_NONE, &s, ws);
    cored_conv_forward(gy, fx, fw, fb, &s, ws);
    snprintf(what, sizeof what, "%s: forward", name);
    check_kernel(what, fy, y, ny);
    snprintf(what, sizeof what, "%s: forward vs general path", name);
    check_vs_float(what, fy, gy, ny);
    /* the fused output pass: the activation applied afterwards (ReLU to the bit, SiLU within
       rounding: the kernel's clone may contract other products than this file's code) */
    for (cored_act act = CORED_ACT_RELU; act <= CORED_ACT_SILU; act++) {
        float *ay = calloc(ny, sizeof(float));
        cored_conv_direct_forward(ay, fx, fw, fb, act, &s, ws);
        for (size_t i = 0; i < ny; i++) {
            float v = act == CORED_ACT_RELU ? (fy[i] > 0.0f ? fy[i] : 0.0f)
                                            : fy[i] * cored_sigmoidf_fast(fy[i]);
            int ok = act == CORED_ACT_RELU ? ay[i] == v : fabsf(ay[i] - v) <= 1e-6f * fabsf(v) + 1e-30f;
            CHECK_MSG(ok, "%s: forward with %s at %zu: %g, activation after: %g", name,
                      act == CORED_ACT_RELU ? "ReLU" : "SiLU", i, ay[i], v);
            if (!ok) break;
        }
        free(ay);
    }
    for (size_t i = 0; i < nx; i++) fdx[i] = 1e30f; /* overwritten, never read */
    cored_conv_direct_backward_data(fdx, fr, fw, &s, ws);
    cored_conv_backward(gdx, gdw, NULL, fr, fx, fw, &s, ws);
    snprintf(what, sizeof what, "%s: dx", name);
    check_kernel(what, fdx, dx, nx);
    snprintf(what, sizeof what, "%s: dx vs general path", name);
    check_vs_float(what, fdx, gdx, nx);
    if (cout % 16 == 0) {
        for (int rep = 1; rep <= 2; rep++) {
            cored_conv_direct_backward_weight(fdw, fr, fx, &s, ws);
            for (size_t i = 0; i < nw; i++) dw[i] *= rep == 2 ? 2.0 : 1.0;
            snprintf(what, sizeof what, "%s: dw (call %d, accumulated)", name, rep);
            check_kernel(what, fdw, dw, nw);
        }
        snprintf(what, sizeof what, "%s: dw vs general path", name);
        for (size_t i = 0; i < nw; i++) fdw[i] *= 0.5f;
        check_vs_float(what, fdw, gdw, nw);
    }
    free(x), free(wt), free(r), free(b), free(y), free(dx), free(dw);
    free(fx), free(fw), free(fr), free(fb), free(fy), free(gy), free(fdx), free(gdx), free(fdw),
        free(gdw), free(ws);
}

static void test_conv_direct(void)
{
    direct_case(1, 7, 9, 3, 5, 3, 1, 1, 1, 1, 1, 1);
    direct_case(2, 8, 8, 3, 17, 3, 2, 0, 0, 1, 1, 0);
    direct_case(2, 9, 7, 5, 32, 3, 2, 1, 1, 1, 1, 1);
    direct_case(1, 13, 11, 19, 16, 5, 2, 1, 2, 2, 1, 0);
    direct_case(3, 6, 5, 33, 48, 3, 1, 1, 1, 1, 1, 1);
    direct_case(1, 3, 3, 4, 16, 3, 1, 1, 1, 1, 1, 0);
    direct_case(1, 2, 2, 4, 16, 3, 2, 1, 1, 1, 1, 0);   /* every pixel a border pixel */
    direct_case(2, 17, 17, 3, 32, 3, 2, 0, 0, 0, 0, 0);
    direct_case(1, 9, 10, 8, 32, 2, 3, 1, 0, 0, 1, 1);  /* stride beyond the kernel */
    direct_case(1, 4, 23, 16, 16, 3, 1, 1, 1, 1, 1, 0); /* a row of 23: tiles of 6 + tail */
    direct_case(1, 5, 8, 7, 16, 7, 1, 3, 3, 3, 3, 0);   /* kernel wider than the interior */
    /* partitions of several output rows, some across two images */
    direct_case(3, 26, 9, 6, 16, 3, 1, 1, 1, 1, 1, 1);
    direct_case(2, 41, 11, 4, 32, 5, 2, 2, 2, 2, 2, 0);
    for (int i = 0; i < 12; i++) {
        int k = 1 + (int)cored_rng_below(&rng, 5), stride = 1 + (int)cored_rng_below(&rng, 3);
        int p[4];
        for (int j = 0; j < 4; j++) p[j] = (int)cored_rng_below(&rng, (uint32_t)k);
        int h = k + (int)cored_rng_below(&rng, 12), w = k + (int)cored_rng_below(&rng, 30);
        int cin = 1 + (int)cored_rng_below(&rng, 40), cout = 1 + (int)cored_rng_below(&rng, 40);
        if (i % 2) cout = 16 * (1 + (int)cored_rng_below(&rng, 3));
        direct_case(1 + (int)cored_rng_below(&rng, 2), h, w, cin, cout, k, stride, p[0], p[1], p[2],
                    p[3], i % 3 == 0);
    }
}

static void test_conv_shape_errors(void)
{
    cored_conv_shape s = {.n = 1, .h = 2, .w = 2, .cin = 3, .cout = 4, .kh = 3, .kw = 3,
                          .stride = 1, .groups = 1};
    CHECK(cored_conv_shape_init(&s) == -1); /* kernel larger than the padded input */
    s.pad_t = s.pad_b = s.pad_l = s.pad_r = 1;
    CHECK(cored_conv_shape_init(&s) == 0 && s.oh == 2 && s.ow == 2);
    s.groups = 2;
    CHECK(cored_conv_shape_init(&s) == -1); /* 3 channels not divisible by 2 groups */
}

/* ================================================================ batch norm */

typedef struct {
    double *x, *g, *b, *rm, *rv, *r;
    int rows, c, train;
    double eps;
    cored_act act;
} bn_ctx;

/* y = act(z) in double. */
static void ref_act(double *y, const double *z, size_t n, cored_act act)
{
    if (act == CORED_ACT_RELU) ref_relu_forward(y, z, n);
    else if (act == CORED_ACT_SILU) ref_silu_forward(y, z, n);
    else memcpy(y, z, sizeof(double) * n);
}

static double bn_loss(void *p)
{
    bn_ctx *c = p;
    size_t n = (size_t)c->rows * c->c;
    double *z = malloc(sizeof(double) * n), *y = malloc(sizeof(double) * n);
    ref_bn_forward(z, c->x, c->g, c->b, c->rm, c->rv, c->rows, c->c, c->eps, c->train, 0, NULL, NULL);
    ref_act(y, z, n, c->act);
    double l = dot(y, c->r, n);
    free(z);
    free(y);
    return l;
}

static void bn_case(int rows, int c, double eps, double momentum, int train, cored_act act)
{
    static const char *act_names[] = {"", " +relu", " +silu"};
    char name[96], what[160];
    snprintf(name, sizeof name, "bn rows %d c %d eps %g mom %g %s%s", rows, c, eps, momentum,
             train ? "train" : "eval", act_names[act]);
    size_t n = (size_t)rows * c;
    bn_ctx k = {.rows = rows, .c = c, .train = train, .eps = eps, .act = act};
    k.x = drand_array(n, -2, 3);
    k.g = drand_array((size_t)c, 0.5, 1.5);
    k.b = drand_array((size_t)c, -1, 1);
    k.rm = drand_array((size_t)c, -0.5, 0.5);
    k.rv = drand_array((size_t)c, 0.5, 2);
    k.r = drand_array(n, -1, 1);
    double *arrays[] = {k.x, k.g, k.b, k.rm, k.rv, k.r};
    size_t sizes[] = {n, (size_t)c, (size_t)c, (size_t)c, (size_t)c, n};
    for (int i = 0; i < 6; i++) round_to_float(arrays[i], sizes[i]);

    double *z = malloc(sizeof(double) * n), *y = malloc(sizeof(double) * n);
    double *dz = malloc(sizeof(double) * n), *dx = malloc(sizeof(double) * n);
    double *dg = malloc(sizeof(double) * c), *db = malloc(sizeof(double) * c);
    double *nrm = malloc(sizeof(double) * c), *nrv = malloc(sizeof(double) * c);
    ref_bn_forward(z, k.x, k.g, k.b, k.rm, k.rv, rows, c, eps, train, momentum, nrm, nrv);
    ref_act(y, z, n, act);
    if (act == CORED_ACT_RELU) ref_relu_backward(dz, k.r, z, n);
    else if (act == CORED_ACT_SILU) ref_silu_backward(dz, k.r, z, n);
    else memcpy(dz, k.r, sizeof(double) * n);
    ref_bn_backward(dx, dg, db, dz, k.x, k.g, k.rm, k.rv, rows, c, eps, train);
    if (act != CORED_ACT_RELU) { /* the ReLU's kinks would need care; its parts are checked */
        snprintf(what, sizeof what, "%s: ref dx", name);
        fd_check(what, bn_loss, &k, k.x, n, dx, 40, NULL);
        snprintf(what, sizeof what, "%s: ref dgamma", name);
        fd_check(what, bn_loss, &k, k.g, (size_t)c, dg, 40, NULL);
        snprintf(what, sizeof what, "%s: ref dbeta", name);
        fd_check(what, bn_loss, &k, k.b, (size_t)c, db, 40, NULL);
    }

    float *fx = to_float(k.x, n), *fg = to_float(k.g, c), *fb = to_float(k.b, c);
    float *frm = to_float(k.rm, c), *frv = to_float(k.rv, c), *fr = to_float(k.r, n);
    float *fy = malloc(sizeof(float) * n), *fdx = malloc(sizeof(float) * n);
    float *fdg = calloc((size_t)c, sizeof(float)), *fdb = calloc((size_t)c, sizeof(float));
    float *mean = malloc(sizeof(float) * c), *invstd = malloc(sizeof(float) * c);
    cored_bn_shape s = {.rows = rows, .c = c, .eps = (float)eps, .momentum = (float)momentum,
                        .act = act};
    float *ws = malloc(sizeof(float) * cored_bn_ws_floats(&s));
    if (train)
        cored_bn_forward_train(fy, mean, invstd, frm, frv, fx, fg, fb, &s, ws);
    else
        cored_bn_forward_eval(fy, mean, invstd, fx, fg, fb, frm, frv, &s);
    snprintf(what, sizeof what, "%s: forward", name);
    check_kernel(what, fy, y, n);
    if (train) {
        snprintf(what, sizeof what, "%s: running mean", name);
        check_kernel(what, frm, nrm, (size_t)c);
        snprintf(what, sizeof what, "%s: running var (unbiased)", name);
        check_kernel(what, frv, nrv, (size_t)c);
    }
    for (int rep = 1; rep <= 2; rep++) {
        if (train)
            cored_bn_backward_train(fdx, fdg, fdb, fr, fx, fy, mean, invstd, fg, fb, &s, ws);
        else
            cored_bn_backward_eval(fdx, fdg, fdb, fr, fx, fy, mean, invstd, fg, fb, &s, ws);
        for (int j = 0; j < c; j++) dg[j] *= rep == 2 ? 2 : 1, db[j] *= rep == 2 ? 2 : 1;
        snprintf(what, sizeof what, "%s: dx call %d", name, rep);
        check_kernel(what, fdx, dx, n);
        snprintf(what, sizeof what, "%s: dgamma call %d", name, rep);
        check_kernel(what, fdg, dg, (size_t)c);
        snprintf(what, sizeof what, "%s: dbeta call %d", name, rep);
        check_kernel(what, fdb, db, (size_t)c);
    }
    free(k.x), free(k.g), free(k.b), free(k.rm), free(k.rv), free(k.r);
    free(z), free(y), free(dz), free(dx), free(dg), free(db), free(nrm), free(nrv);
    free(fx), free(fg), free(fb), free(frm), free(frv), free(fr), free(fy), free(fdx), free(fdg),
        free(fdb), free(mean), free(invstd), free(ws);
}

static void test_bn(void)
{
    bn_case(30, 7, 1e-5, 0.1, 1, CORED_ACT_NONE);
    bn_case(30, 7, 1e-5, 0.1, 0, CORED_ACT_NONE);
    bn_case(2 * 3 * 5, 16, 1e-3, 0.01, 1, CORED_ACT_NONE); /* EfficientNet's eps and momentum */
    bn_case(3, 5, 1e-5, 0.1, 1, CORED_ACT_NONE);           /* three values per channel */
    bn_case(123, 3, 1e-3, 0.01, 0, CORED_ACT_NONE);
    /* fused activations, with widths that exercise vector bodies and tails */
    for (int train = 0; train <= 1; train++) {
        bn_case(41, 37, 1e-5, 0.1, train, CORED_ACT_RELU);
        bn_case(29, 19, 1e-3, 0.01, train, CORED_ACT_SILU);
    }
}

/* A large mean against a small spread: the shifted accumulation must keep precision. */
static void test_bn_offset_precision(void)
{
    int rows = 4096, c = 3;
    float *x = malloc(sizeof(float) * rows * c), *y = malloc(sizeof(float) * rows * c);
    for (int i = 0; i < rows * c; i++) x[i] = 1000.0f + (float)(cored_rng_uniform(&rng) - 0.5f) * 0.01f;
    float g[3] = {1, 1, 1}, b[3] = {0, 0, 0}, mean[3], invstd[3];
    cored_bn_shape s = {.rows = rows, .c = c, .eps = 1e-5f, .momentum = 0.1f};
    float *ws = malloc(sizeof(float) * cored_bn_ws_floats(&s));
    cored_bn_forward_train(y, mean, invstd, NULL, NULL, x, g, b, &s, ws);
    for (int j = 0; j < c; j++) {
        double m = 0, v = 0;
        for (int i = 0; i < rows; i++) m += x[i * c + j];
        m /= rows;
        for (int i = 0; i < rows; i++) v += (x[i * c + j] - m) * (x[i * c + j] - m);
        v /= rows;
        double want = 1 / sqrt(v + 1e-5);
        CHECK_MSG(fabs(invstd[j] - want) / want < 1e-4, "invstd %g want %g", invstd[j], want);
    }
    free(x), free(y), free(ws);
}

/* ================================================================ activations */

typedef struct {
    double *x, *r;
    size_t n;
    int kind; /* 0 relu, 1 silu, 2 sigmoid */
} act_ctx;

static double act_loss(void *p)
{
    act_ctx *c = p;
    double *y = malloc(sizeof(double) * c->n);
    if (c->kind == 0) ref_relu_forward(y, c->x, c->n);
    if (c->kind == 1) ref_silu_forward(y, c->x, c->n);
    if (c->kind == 2) ref_sigmoid_forward(y, c->x, c->n);
    double l = dot(y, c->r, c->n);
    free(y);
    return l;
}

static int relu_kink(void *p, size_t i) { return fabs(((act_ctx *)p)->x[i]) < 1e-4; }

static void test_activations(void)
{
    static const char *names[] = {"relu", "silu", "sigmoid"};
    for (int kind = 0; kind < 3; kind++) {
        size_t n = 1001;
        act_ctx c = {.x = drand_array(n, -6, 6), .r = drand_array(n, -1, 1), .n = n, .kind = kind};
        round_to_float(c.x, n);
        round_to_float(c.r, n);
        double *y = malloc(sizeof(double) * n), *dx = malloc(sizeof(double) * n);
        char what[64];
        if (kind == 0) ref_relu_forward(y, c.x, n), ref_relu_backward(dx, c.r, c.x, n);
        if (kind == 1) ref_silu_forward(y, c.x, n), ref_silu_backward(dx, c.r, c.x, n);
        if (kind == 2) ref_sigmoid_forward(y, c.x, n), ref_sigmoid_backward(dx, c.r, c.x, n);
        snprintf(what, sizeof what, "%s: ref dx", names[kind]);
        fd_check(what, act_loss, &c, c.x, n, dx, 200, kind == 0 ? relu_kink : NULL);
        float *fx = to_float(c.x, n), *fr = to_float(c.r, n);
        float *fy = malloc(sizeof(float) * n), *fdx = malloc(sizeof(float) * n);
        if (kind == 0) cored_relu_forward(fy, fx, n), cored_relu_backward(fdx, fr, fy, n);
        if (kind == 1) cored_silu_forward(fy, fx, n), cored_silu_backward(fdx, fr, fx, n);
        if (kind == 2) cored_sigmoid_forward(fy, fx, n), cored_sigmoid_backward(fdx, fr, fy, n);
        snprintf(what, sizeof what, "%s: forward", names[kind]);
        check_kernel(what, fy, y, n);
        snprintf(what, sizeof what, "%s: backward", names[kind]);
        check_kernel(what, fdx, dx, n);
        free(c.x), free(c.r), free(y), free(dx), free(fx), free(fr), free(fy), free(fdx);
    }
    /* sigmoid and SiLU stay finite for large |x| */
    float big[4] = {-100.0f, 100.0f, -1000.0f, 88.0f}, out[4];
    cored_sigmoid_forward(out, big, 4);
    for (int i = 0; i < 4; i++) CHECK(isfinite(out[i]) && out[i] >= 0 && out[i] <= 1);
    cored_silu_forward(out, big, 4);
    for (int i = 0; i < 4; i++) CHECK(isfinite(out[i]));
}

/* ================================================================ pooling */

typedef struct {
    cored_pool_shape s;
    double *x, *r;
    size_t nx, ny;
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *c = p;
    double *y = malloc(sizeof(double) * c->ny);
    ref_maxpool_forward(y, c->x, &c->s);
    double l = dot(y, c->r, c->ny);
    free(y);
    return l;
}

static void maxpool_case(int n, int h, int w, int c, int k, int stride, int pad)
{
    char name[96], what[160];
    snprintf(name, sizeof name, "maxpool n%d %dx%d c%d k%d s%d p%d", n, h, w, c, k, stride, pad);
    pool_ctx p = {.s = {.n = n, .h = h, .w = w, .c = c, .k = k, .stride = stride, .pad = pad}};
    CHECK(cored_pool_shape_init(&p.s) == 0);
    p.nx = (size_t)n * h * w * c;
    p.ny = (size_t)n * p.s.oh * p.s.ow * c;
    /* distinct values (a shuffled ramp) so no window has a tie within FD_H */
    uint32_t *perm = malloc(sizeof(uint32_t) * p.nx);
    cored_rng_permutation(&rng, perm, (uint32_t)p.nx);
    p.x = malloc(sizeof(double) * p.nx);
    for (size_t i = 0; i < p.nx; i++) p.x[i] = (float)(perm[i] * 0.01 - 1.0);
    p.r = drand_array(p.ny, -1, 1);
    round_to_float(p.r, p.ny);
    double *y = malloc(sizeof(double) * p.ny), *dx = malloc(sizeof(double) * p.nx);
    ref_maxpool_forward(y, p.x, &p.s);
    ref_maxpool_backward(dx, p.r, p.x, &p.s);
    snprintf(what, sizeof what, "%s: ref dx", name);
    fd_check(what, pool_loss, &p, p.x, p.nx, dx, 60, NULL);
    float *fx = to_float(p.x, p.nx), *fr = to_float(p.r, p.ny);
    float *fy = malloc(sizeof(float) * p.ny), *fdx = malloc(sizeof(float) * p.nx);
    int32_t *am = malloc(sizeof(int32_t) * p.ny);
    cored_maxpool_forward(fy, am, fx, &p.s);
    cored_maxpool_backward(fdx, fr, am, &p.s);
    snprintf(what, sizeof what, "%s: forward", name);
    check_kernel(what, fy, y, p.ny);
    snprintf(what, sizeof what, "%s: backward", name);
    check_kernel(what, fdx, dx, p.nx);
    free(perm), free(p.x), free(p.r), free(y), free(dx), free(fx), free(fr), free(fy), free(fdx),
        free(am);
}

static void test_maxpool(void)
{
    maxpool_case(2, 9, 7, 3, 3, 2, 1); /* Xception's pool, odd size */
    maxpool_case(2, 8, 8, 4, 3, 2, 1);
    maxpool_case(1, 6, 5, 2, 2, 2, 0);
    maxpool_case(2, 5, 5, 3, 3, 1, 1);
    /* ties: the first maximum in window order receives the gradient, as in PyTorch */
    cored_pool_shape s = {.n = 1, .h = 2, .w = 2, .c = 1, .k = 2, .stride = 2, .pad = 0};
    CHECK(cored_pool_shape_init(&s) == 0);
    float x[4] = {1, 3, 3, 0}, y, dy = 1, dx[4];
    int32_t am;
    cored_maxpool_forward(&y, &am, x, &s);
    cored_maxpool_backward(dx, &dy, &am, &s);
    CHECK(y == 3 && am == 1 && dx[1] == 1 && dx[2] == 0);
}

typedef struct {
    double *x, *r, *s;
    int n, hw, c;
    int which; /* 0 gap, 1 chscale */
} misc_ctx;

static double misc_loss(void *p)
{
    misc_ctx *m = p;
    size_t ny = m->which == 0 ? (size_t)m->n * m->c : (size_t)m->n * m->hw * m->c;
    double *y = malloc(sizeof(double) * ny);
    if (m->which == 0)
        ref_gap_forward(y, m->x, m->n, m->hw, m->c);
    else
        ref_chscale_forward(y, m->x, m->s, m->n, m->hw, m->c);
    double l = dot(y, m->r, ny);
    free(y);
    return l;
}

static void test_gap_chscale(void)
{
    int n = 3, hw = 7, c = 5;
    size_t nx = (size_t)n * hw * c, ns = (size_t)n * c;
    misc_ctx m = {.x = drand_array(nx, -1, 1), .s = drand_array(ns, -1, 1), .n = n, .hw = hw, .c = c};
    round_to_float(m.x, nx);
    round_to_float(m.s, ns);
    /* global average pool */
    m.which = 0;
    m.r = drand_array(ns, -1, 1);
    round_to_float(m.r, ns);
    double *y = malloc(sizeof(double) * nx), *dx = malloc(sizeof(double) * nx);
    double *ds = malloc(sizeof(double) * ns);
    ref_gap_forward(y, m.x, n, hw, c);
    ref_gap_backward(dx, m.r, n, hw, c);
    fd_check("gap: ref dx", misc_loss, &m, m.x, nx, dx, 50, NULL);
    float *fx = to_float(m.x, nx), *fr = to_float(m.r, ns), *fy = malloc(sizeof(float) * nx);
    float *fdx = malloc(sizeof(float) * nx), *fs = to_float(m.s, ns), *fds = malloc(sizeof(float) * ns);
    cored_gap_forward(fy, fx, n, hw, c);
    check_kernel("gap: forward", fy, y, ns);
    cored_gap_backward(fdx, fr, n, hw, c);
    check_kernel("gap: backward", fdx, dx, nx);
    /* the accumulating form adds to what the gradient holds: twice gives 2x */
    cored_gap_backward_acc(fdx, fr, n, hw, c);
    for (size_t i = 0; i < nx; i++) dx[i] *= 2;
    check_kernel("gap: backward, accumulated", fdx, dx, nx);
    free(m.r), free(fr);
    /* per-channel scale */
    m.which = 1;
    m.r = drand_array(nx, -1, 1);
    round_to_float(m.r, nx);
    ref_chscale_forward(y, m.x, m.s, n, hw, c);
    ref_chscale_backward(dx, ds, m.r, m.x, m.s, n, hw, c);
    fd_check("chscale: ref dx", misc_loss, &m, m.x, nx, dx, 50, NULL);
    fd_check("chscale: ref ds", misc_loss, &m, m.s, ns, ds, 50, NULL);
    fr = to_float(m.r, nx);
    cored_chscale_forward(fy, fx, fs, n, hw, c);
    check_kernel("chscale: forward", fy, y, nx);
    cored_chscale_backward(fdx, fds, fr, fx, fs, n, hw, c);
    check_kernel("chscale: dx", fdx, dx, nx);
    check_kernel("chscale: ds", fds, ds, ns);
    /* residual add: both inputs receive dy */
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {5, 4, 3, 2, 1}, sum[5], da[5], db[5];
    cored_add_forward(sum, a, b, 5);
    cored_add_backward(da, db, a, 5);
    for (int i = 0; i < 5; i++) CHECK(sum[i] == 6 && da[i] == a[i] && db[i] == a[i]);
    cored_acc(da, b, 5); /* y += x */
    for (int i = 0; i < 5; i++) CHECK(da[i] == 6);
    size_t big = 3 * 16384 + 5; /* several parallel chunks and a tail */
    float *u = malloc(sizeof(float) * big), *v = malloc(sizeof(float) * big);
    for (size_t i = 0; i < big; i++) u[i] = (float)i, v[i] = 0.5f;
    cored_acc(u, v, big);
    int bad = 0;
    for (size_t i = 0; i < big; i++) bad += u[i] != (float)i + 0.5f;
    CHECK(bad == 0);
    free(u), free(v);
    free(m.x), free(m.s), free(m.r), free(y), free(dx), free(ds), free(fx), free(fr), free(fy),
        free(fdx), free(fs), free(fds);
}

/* ================================================================ linear */

typedef struct {
    double *x, *w, *b, *r;
    int n, in, out;
} lin_ctx;

static double lin_loss(void *p)
{
    lin_ctx *l = p;
    double *y = malloc(sizeof(double) * l->n * l->out);
    ref_linear_forward(y, l->x, l->w, l->b, l->n, l->in, l->out);
    double v = dot(y, l->r, (size_t)l->n * l->out);
    free(y);
    return v;
}

static void test_linear(void)
{
    int shapes[][3] = {{3, 7, 2}, {5, 64, 2}, {1, 9, 5}};
    for (int t = 0; t < 3; t++) {
        lin_ctx l = {.n = shapes[t][0], .in = shapes[t][1], .out = shapes[t][2]};
        size_t nx = (size_t)l.n * l.in, nw = (size_t)l.out * l.in, ny = (size_t)l.n * l.out;
        l.x = drand_array(nx, -1, 1), l.w = drand_array(nw, -1, 1);
        l.b = drand_array((size_t)l.out, -1, 1), l.r = drand_array(ny, -1, 1);
        round_to_float(l.x, nx), round_to_float(l.w, nw), round_to_float(l.b, (size_t)l.out),
            round_to_float(l.r, ny);
        double *y = malloc(sizeof(double) * ny), *dx = malloc(sizeof(double) * nx);
        double *dw = malloc(sizeof(double) * nw), *db = malloc(sizeof(double) * l.out);
        ref_linear_forward(y, l.x, l.w, l.b, l.n, l.in, l.out);
        ref_linear_backward(dx, dw, db, l.r, l.x, l.w, l.n, l.in, l.out);
        fd_check("linear: ref dx", lin_loss, &l, l.x, nx, dx, 30, NULL);
        fd_check("linear: ref dw", lin_loss, &l, l.w, nw, dw, 30, NULL);
        fd_check("linear: ref db", lin_loss, &l, l.b, (size_t)l.out, db, 30, NULL);
        float *fx = to_float(l.x, nx), *fw = to_float(l.w, nw), *fb = to_float(l.b, l.out);
        float *fr = to_float(l.r, ny), *fy = malloc(sizeof(float) * ny);
        float *fdx = malloc(sizeof(float) * nx), *fdw = calloc(nw, sizeof(float));
        float *fdb = calloc((size_t)l.out, sizeof(float));
        cored_linear_forward(fy, fx, fw, fb, l.n, l.in, l.out);
        check_kernel("linear: forward", fy, y, ny);
        cored_linear_backward(fdx, fdw, fdb, fr, fx, fw, l.n, l.in, l.out);
        cored_linear_backward(fdx, fdw, fdb, fr, fx, fw, l.n, l.in, l.out);
        for (size_t i = 0; i < nw; i++) dw[i] *= 2;
        for (int i = 0; i < l.out; i++) db[i] *= 2;
        check_kernel("linear: dx (overwritten)", fdx, dx, nx);
        check_kernel("linear: dw (accumulated twice)", fdw, dw, nw);
        check_kernel("linear: db (accumulated twice)", fdb, db, (size_t)l.out);
        free(l.x), free(l.w), free(l.b), free(l.r), free(y), free(dx), free(dw), free(db);
        free(fx), free(fw), free(fb), free(fr), free(fy), free(fdx), free(fdw), free(fdb);
    }
}

/* ================================================================ dropout */

static void test_dropout(void)
{
    const int imgs_d = 40;
    const size_t per_d = 5000, n = imgs_d * per_d; /* per_d spans two draw chunks */
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    float *mask = malloc(sizeof(float) * n), *mask2 = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    cored_set_threads(1);
    cored_dropout_forward(y, mask, x, imgs_d, per_d, 0, 0.2f, 42, 7);
    cored_set_threads(2);
    cored_dropout_forward(y, mask2, x, imgs_d, per_d, 0, 0.2f, 42, 7);
    CHECK(memcmp(mask, mask2, sizeof(float) * n) == 0); /* independent of threads */
    /* the batch cut in two shards (data parallel) draws the same masks */
    cored_dropout_forward(y, mask2, x, 13, per_d, 0, 0.2f, 42, 7);
    cored_dropout_forward(y + 13 * per_d, mask2 + 13 * per_d, x + 13 * per_d, imgs_d - 13, per_d, 13, 0.2f, 42, 7);
    CHECK(memcmp(mask, mask2, sizeof(float) * n) == 0);
    cored_dropout_forward(y, mask2, x, imgs_d, per_d, 0, 0.2f, 42, 7);
    size_t zeros = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        zeros += y[i] == 0.0f;
        sum += y[i];
        CHECK(y[i] == 0.0f || fabsf(y[i] - 1.25f) < 1e-6f);
    }
    double frac = (double)zeros / n;
    CHECK_MSG(fabs(frac - 0.2) < 0.005, "dropped fraction %.4f", frac);
    CHECK_MSG(fabs(sum / n - 1.0) < 0.01, "mean %.4f (inverted dropout keeps the mean)", sum / n);
    cored_dropout_forward(y, mask2, x, imgs_d, per_d, 0, 0.2f, 43, 7);
    CHECK(memcmp(mask, mask2, sizeof(float) * n) != 0); /* another seed, another mask */
    cored_dropout_backward(y, x, mask, n);
    CHECK(memcmp(y, mask, sizeof(float) * n) == 0);

    /* drop-connect: whole images dropped with probability p, survivors scaled 1/(1-p) */
    int imgs = 4000;
    size_t per = 3;
    float *xi = malloc(sizeof(float) * imgs * per), *yi = malloc(sizeof(float) * imgs * per);
    float *scale = malloc(sizeof(float) * imgs);
    for (size_t i = 0; i < imgs * per; i++) xi[i] = 2.0f;
    float *scale2 = malloc(sizeof(float) * imgs);
    cored_dropconnect_forward(yi, scale2, xi, 1000, per, 0, 0.25f, 5, 1);
    cored_dropconnect_forward(yi + 1000 * per, scale2 + 1000, xi + 1000 * per, imgs - 1000, per, 1000, 0.25f, 5, 1);
    cored_dropconnect_forward(yi, scale, xi, imgs, per, 0, 0.25f, 5, 1);
    CHECK(memcmp(scale, scale2, sizeof(float) * imgs) == 0); /* the same draws in shards */
    int dropped = 0;
    for (int i = 0; i < imgs; i++) {
        dropped += scale[i] == 0.0f;
        for (size_t j = 0; j < per; j++) CHECK(yi[i * per + j] == 2.0f * scale[i]);
    }
    CHECK_MSG(fabs(dropped / (double)imgs - 0.25) < 0.03, "drop-connect fraction %.3f", dropped / (double)imgs);
    free(x), free(y), free(mask), free(mask2), free(xi), free(yi), free(scale), free(scale2);
}

/* ================================================================ losses */

typedef struct {
    double *z, *t;
    int *labels;
    int n, k, kd;
} loss_ctx;

static double loss_loss(void *p)
{
    loss_ctx *l = p;
    double *g = malloc(sizeof(double) * l->n * l->k);
    double v = l->kd ? ref_kd_loss(g, l->z, l->t, l->n, l->k, 20.0, 0.5)
                     : ref_softmax_ce(g, l->z, l->labels, l->n, l->k);
    free(g);
    return v;
}

static void test_losses(void)
{
    int n = 6, k = 2;
    size_t nz = (size_t)n * k;
    loss_ctx l = {.z = drand_array(nz, -4, 4), .t = drand_array(nz, -30, 30), .n = n, .k = k};
    int labels[6] = {0, 1, 1, 0, 1, 0};
    l.labels = labels;
    round_to_float(l.z, nz);
    round_to_float(l.t, nz);
    double *g = malloc(sizeof(double) * nz);
    float *fz = to_float(l.z, nz), *ft = to_float(l.t, nz), *fg = malloc(sizeof(float) * nz);

    double ce = ref_softmax_ce(g, l.z, labels, n, k);
    fd_check("cross-entropy: ref grad", loss_loss, &l, l.z, nz, g, 12, NULL);
    double fce = cored_softmax_ce(fg, fz, labels, n, k, 1.0f);
    CHECK_MSG(fabs(fce - ce) < 1e-6 * fabs(ce) + 1e-7, "CE %.9g want %.9g", fce, ce);
    check_kernel("cross-entropy: grad", fg, g, nz);
    cored_softmax_ce(fg, fz, labels, n, k, 1.5f);
    for (size_t i = 0; i < nz; i++) g[i] *= 1.5;
    check_kernel("cross-entropy: weighted grad", fg, g, nz);

    l.kd = 1;
    double kd = ref_kd_loss(g, l.z, l.t, n, k, 20.0, 0.5);
    fd_check("KD T=20 alpha=0.5: ref grad", loss_loss, &l, l.z, nz, g, 12, NULL);
    double fkd = cored_kd_loss(fg, fz, ft, n, k, 20.0f, 0.5f, 1.0f);
    CHECK_MSG(fabs(fkd - kd) < 1e-6 * fabs(kd) + 1e-9, "KD %.9g want %.9g", fkd, kd);
    check_kernel("KD: grad", fg, g, nz);
    /* identical logits: zero loss and zero gradient */
    CHECK(fabs(cored_kd_loss(fg, fz, fz, n, k, 20.0f, 0.5f, 1.0f)) < 1e-12);
    for (size_t i = 0; i < nz; i++) CHECK(fg[i] == 0.0f);
    /* hand-computed: s = (0,0), t = (20 ln 3, 0): p_t = (3/4, 1/4), p_s = (1/2, 1/2);
       KL = 3/4 ln(3/2) + 1/4 ln(1/2); loss = 0.5 * 400 * KL */
    float s1[2] = {0, 0}, t1[2] = {(float)(20 * log(3.0)), 0};
    double want = 200.0 * (0.75 * log(1.5) + 0.25 * log(0.5));
    double got = cored_kd_loss(fg, s1, t1, 1, 2, 20.0f, 0.5f, 1.0f);
    CHECK_MSG(fabs(got - want) < 1e-5, "KD hand value %.8g want %.8g", got, want);
    CHECK_MSG(fabs(fg[0] - 0.5 * 20 * (0.5 - 0.75)) < 1e-5, "KD hand grad %.8g", fg[0]);
    /* cross-entropy stays finite for extreme logits */
    float ext[4] = {1000, -1000, -1000, 1000};
    int lab[2] = {1, 0};
    double v = cored_softmax_ce(fg, ext, lab, 2, 2, 1.0f);
    CHECK_MSG(isfinite(v) && fabs(v - 2000) < 1e-3, "CE extreme %.6g", v);
    free(l.z), free(l.t), free(g), free(fz), free(ft), free(fg);
}

/* ================================================================ threads */

/* cored_gemm against a double reference for every transpose combination, on shapes below
   and above the size where it cuts the product into blocks (tall, wide, and deep: two
   blocks), with beta 0 and 1; and the blocked result is the same bits for 1, 2 and 4
   threads. */
static void test_gemm(void)
{
    static const int shapes[][3] = {{7, 5, 3}, {300, 40, 120}, {24, 700, 90}, {2048, 48, 64},
                                    {130, 129, 70}, {200, 150, 2000}, {256, 160, 1024}};
    for (size_t q = 0; q < sizeof shapes / sizeof shapes[0]; q++) {
        int m = shapes[q][0], n = shapes[q][1], k = shapes[q][2];
        for (int tr = 0; tr < 4; tr++) {
            int ta = tr & 1, tb = tr >> 1;
            double *a = drand_array((size_t)m * k, -1, 1), *b = drand_array((size_t)k * n, -1, 1);
            double *c0 = drand_array((size_t)m * n, -1, 1), *want = malloc(sizeof(double) * m * n);
            float *fa = to_float(a, (size_t)m * k), *fb = to_float(b, (size_t)k * n);
            round_to_float(a, (size_t)m * k), round_to_float(b, (size_t)k * n);
            round_to_float(c0, (size_t)m * n);
            int lda = ta ? m : k, ldb = tb ? k : n;
            for (int beta = 0; beta <= 1; beta++) {
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double acc = beta ? c0[(size_t)i * n + j] : 0;
                        for (int l = 0; l < k; l++)
                            acc += 0.5 * (ta ? a[(size_t)l * lda + i] : a[(size_t)i * lda + l]) *
                                   (tb ? b[(size_t)j * ldb + l] : b[(size_t)l * ldb + j]);
                        want[(size_t)i * n + j] = acc;
                    }
                float *got[3];
                for (int t = 0; t < 3; t++) {
                    cored_set_threads(1 << t);
                    got[t] = to_float(c0, (size_t)m * n);
                    cored_gemm(ta, tb, m, n, k, 0.5f, fa, lda, fb, ldb, (float)beta, got[t], n);
                }
                char what[96];
                snprintf(what, sizeof what, "gemm %dx%dx%d ta %d tb %d beta %d", m, n, k, ta, tb, beta);
                check_kernel(what, got[1], want, (size_t)m * n);
                for (int t = 1; t < 3; t++)
                    CHECK_MSG(memcmp(got[0], got[t], sizeof(float) * m * n) == 0, "%s: 1 vs %d threads", what, 1 << t);
                for (int t = 0; t < 3; t++) free(got[t]);
            }
            free(a), free(b), free(c0), free(want), free(fa), free(fb);
        }
    }
    cored_set_threads(2);
}

/* Subnormal floats are flushed to zero on every thread, as results (FTZ: 1e-20 x 1e-20)
   and as inputs (DAZ: 1e-39 x 1e10), whichever thread computes the block: a product that
   cored_gemm cuts into blocks, on 4 threads. */
static void test_subnormals_flushed(void)
{
    cored_set_threads(4);
    const int m = 2048, n = 48, k = 64;
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
    float *c = malloc(sizeof(float) * m * n);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < m * k; i++) a[i] = pass ? 1e-39f : 1e-20f;
        for (int i = 0; i < k * n; i++) b[i] = pass ? 1e10f : 1e-20f;
        for (int i = 0; i < m * n; i++) c[i] = 1.0f;
        cored_gemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
        int nonzero = 0;
        for (int i = 0; i < m * n; i++) nonzero += c[i] != 0.0f;
        CHECK_MSG(nonzero == 0, "%s: %d of %d products are not flushed to zero (first row %g)",
                  pass ? "subnormal inputs" : "subnormal results", nonzero, m * n, c[0]);
    }
    for (int i = 0; i < m * k; i++) a[i] = 2e-19f; /* products 4e-38, above the bound */
    for (int i = 0; i < k * n; i++) b[i] = 2e-19f;
    cored_gemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    CHECK_MSG(fabsf(c[0] / 2.56e-36f - 1) < 1e-5f && fabsf(c[m * n - 1] / 2.56e-36f - 1) < 1e-5f,
              "normal products near the bound are kept: %g, want 2.56e-36", c[0]);
    free(a), free(b), free(c);
    cored_set_threads(2);
}

static void test_thread_invariance(void)
{
    /* depthwise and batch-norm reductions use fixed partitions: identical bits for 1 and 2
       threads */
    cored_conv_shape s = {.n = 3, .h = 17, .w = 13, .cin = 24, .cout = 24, .kh = 5, .kw = 5,
                          .stride = 2, .pad_t = 1, .pad_l = 1, .pad_b = 2, .pad_r = 2, .groups = 24};
    CHECK(cored_conv_shape_init(&s) == 0);
    size_t nx = (size_t)s.n * s.h * s.w * s.cin, nw = (size_t)s.cout * s.kh * s.kw;
    size_t ny = (size_t)s.n * s.oh * s.ow * s.cout;
    double *dx = drand_array(nx, -1, 1), *dw = drand_array(nw, -1, 1), *dy = drand_array(ny, -1, 1);
    float *x = to_float(dx, nx), *w = to_float(dw, nw), *g = to_float(dy, ny);
    float *ws = malloc(sizeof(float) * cored_conv_ws_floats(&s));
    float *gw[2], *gx[2];
    for (int t = 0; t < 2; t++) {
        cored_set_threads(t + 1);
        gw[t] = calloc(nw, sizeof(float));
        gx[t] = malloc(sizeof(float) * nx);
        cored_conv_backward(gx[t], gw[t], NULL, g, x, w, &s, ws);
    }
    CHECK(memcmp(gw[0], gw[1], sizeof(float) * nw) == 0);
    CHECK(memcmp(gx[0], gx[1], sizeof(float) * nx) == 0);
    /* the direct convolution's weight gradient too (tiny's second layer, fewer rows) */
    cored_conv_shape d = {.n = 3, .h = 40, .w = 40, .cin = 32, .cout = 32, .kh = 3, .kw = 3,
                          .stride = 2, .pad_t = 1, .pad_l = 1, .pad_b = 1, .pad_r = 1, .groups = 1};
    CHECK(cored_conv_shape_init(&d) == 0);
    size_t dnx = (size_t)d.n * d.h * d.w * d.cin, dnw = (size_t)d.cout * d.cin * 9;
    size_t dny = (size_t)d.n * d.oh * d.ow * d.cout;
    float *dws = malloc(sizeof(float) * cored_conv_ws_floats(&d)), *dgw[2], *dgx[2], *dgy[2];
    float *dxf = malloc(sizeof(float) * dnx), *dwf = malloc(sizeof(float) * dnw);
    float *dyf = malloc(sizeof(float) * dny);
    for (size_t i = 0; i < dnx; i++) dxf[i] = (float)cored_rng_uniform_d(&rng) - 0.5f;
    for (size_t i = 0; i < dnw; i++) dwf[i] = (float)cored_rng_uniform_d(&rng) - 0.5f;
    for (size_t i = 0; i < dny; i++) dyf[i] = (float)cored_rng_uniform_d(&rng) - 0.5f;
    for (int t = 0; t < 2; t++) {
        cored_set_threads(t + 1);
        dgw[t] = calloc(dnw, sizeof(float));
        dgx[t] = malloc(sizeof(float) * dnx);
        dgy[t] = malloc(sizeof(float) * dny);
        cored_conv_forward(dgy[t], dxf, dwf, NULL, &d, dws);
        cored_conv_backward(dgx[t], dgw[t], NULL, dyf, dxf, dwf, &d, dws);
    }
    CHECK(memcmp(dgw[0], dgw[1], sizeof(float) * dnw) == 0);
    CHECK(memcmp(dgx[0], dgx[1], sizeof(float) * dnx) == 0);
    CHECK(memcmp(dgy[0], dgy[1], sizeof(float) * dny) == 0);
    for (int t = 0; t < 2; t++) free(dgw[t]), free(dgx[t]), free(dgy[t]);
    free(dws), free(dxf), free(dwf), free(dyf);
    cored_bn_shape b = {.rows = (int)(nx / s.cin), .c = s.cin, .eps = 1e-5f, .momentum = 0.1f};
    float *bws = malloc(sizeof(float) * cored_bn_ws_floats(&b)), *y[2];
    float gamma[24], beta[24], mean[2][24], invstd[2][24];
    for (int j = 0; j < 24; j++) gamma[j] = 1.0f + 0.01f * j, beta[j] = 0.1f * j;
    for (int t = 0; t < 2; t++) {
        cored_set_threads(t + 1);
        y[t] = malloc(sizeof(float) * nx);
        cored_bn_forward_train(y[t], mean[t], invstd[t], NULL, NULL, x, gamma, beta, &b, bws);
    }
    CHECK(memcmp(y[0], y[1], sizeof(float) * nx) == 0);
    CHECK(memcmp(invstd[0], invstd[1], sizeof invstd[0]) == 0);
    for (int t = 0; t < 2; t++) free(gw[t]), free(gx[t]), free(y[t]);
    free(dx), free(dw), free(dy), free(x), free(w), free(g), free(ws), free(bws);
}

int main(void)
{
    cored_rng_seed(&rng, 2020, 1);
    cored_set_threads(2);
    RUN(test_gemm);
    RUN(test_conv_fixed);
    RUN(test_conv_random);
    RUN(test_conv_shape_errors);
    RUN(test_conv_direct_dispatch);
    RUN(test_conv_direct);
    RUN(test_bn);
    RUN(test_bn_offset_precision);
    RUN(test_activations);
    RUN(test_maxpool);
    RUN(test_gap_chscale);
    RUN(test_linear);
    RUN(test_dropout);
    RUN(test_losses);
    RUN(test_thread_invariance);
    RUN(test_subnormals_flushed);
    return test_finish();
}
