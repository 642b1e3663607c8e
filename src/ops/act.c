/*
 * Element-wise ops over flat float arrays: ReLU, ReLU6 (inference only), SiLU (swish),
 * sigmoid, residual add, per-channel scale (squeeze-excitation), dropout and drop-connect.
 * PyTorch references: F.relu, F.relu6, F.silu (x*sigmoid(x)), torch.sigmoid, F.dropout
 * (inverted), EfficientNet-PyTorch's utils.drop_connect.
 */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "internal.h"
#include "ops.h"
#include "simd.h"

/* Rows per task of cored_bias_act. */
#define BIAS_ACT_ROWS 64
/* Elements per independent random stream in dropout, so masks do not depend on threads. */
#define DROPOUT_CHUNK 4096
/* Elements per task of the element-wise kernels: large enough to amortise the threads. */
#define EW_CHUNK 16384

/* Runs leaf(lo, len) over [0, n) in EW_CHUNK pieces, in parallel when there are several. */
#define EW_PARALLEL(n, LEAF_CALL)                                                          \
    do {                                                                                   \
        size_t n_chunks_ = ((n) + EW_CHUNK - 1) / EW_CHUNK;                                \
        _Pragma("omp parallel for schedule(static) if (n_chunks_ > 1)")                    \
        for (size_t c_ = 0; c_ < n_chunks_; c_++) {                                        \
            size_t lo = c_ * EW_CHUNK, len = (n) - lo < EW_CHUNK ? (n) - lo : EW_CHUNK;    \
            LEAF_CALL;                                                                     \
        }                                                                                  \
    } while (0)

CORED_CLONES static void relu_fwd(float *y, const float *x, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

CORED_CLONES static void relu_bwd(float *dx, const float *dy, const float *y, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

CORED_CLONES static void relu6_fwd(float *y, const float *x, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = x[i] > 0.0f ? x[i] : 0.0f;
        y[i] = v < 6.0f ? v : 6.0f;
    }
}

CORED_CLONES static void silu_fwd(float *y, const float *x, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = x[i] * cored_sigmoidf_fast(x[i]);
}

CORED_CLONES static void silu_bwd(float *dx, const float *dy, const float *x, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float s = cored_sigmoidf_fast(x[i]);
        dx[i] = dy[i] * (s + x[i] * s * (1.0f - s));
    }
}

CORED_CLONES static void sigmoid_fwd(float *y, const float *x, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = cored_sigmoidf_fast(x[i]);
}

CORED_CLONES static void sigmoid_bwd(float *dx, const float *dy, const float *y, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

CORED_CLONES static void add_fwd(float *y, const float *a, const float *b, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

CORED_CLONES static void scale_rows(float *y, const float *x, float s, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = x[i] * s;
}

CORED_CLONES static void mul_rows(float *y, const float *x, const float *s, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = x[i] * s[i];
}

CORED_CLONES static void dot_acc_rows(float *acc, const float *a, const float *b, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) acc[i] += a[i] * b[i];
}

void cored_relu_forward(float *y, const float *x, size_t n)
{
    EW_PARALLEL(n, relu_fwd(y + lo, x + lo, len));
}

void cored_relu_backward(float *dx, const float *dy, const float *y, size_t n)
{
    EW_PARALLEL(n, relu_bwd(dx + lo, dy + lo, y + lo, len));
}

void cored_relu6_forward(float *y, const float *x, size_t n)
{
    EW_PARALLEL(n, relu6_fwd(y + lo, x + lo, len));
}

void cored_silu_forward(float *y, const float *x, size_t n)
{
    EW_PARALLEL(n, silu_fwd(y + lo, x + lo, len));
}

void cored_silu_backward(float *dx, const float *dy, const float *x, size_t n)
{
    EW_PARALLEL(n, silu_bwd(dx + lo, dy + lo, x + lo, len));
}

void cored_sigmoid_forward(float *y, const float *x, size_t n)
{
    EW_PARALLEL(n, sigmoid_fwd(y + lo, x + lo, len));
}

void cored_sigmoid_backward(float *dx, const float *dy, const float *y, size_t n)
{
    EW_PARALLEL(n, sigmoid_bwd(dx + lo, dy + lo, y + lo, len));
}

void cored_add_forward(float *y, const float *a, const float *b, size_t n)
{
    EW_PARALLEL(n, add_fwd(y + lo, a + lo, b + lo, len));
}

CORED_CLONES static void acc_fwd(float *y, const float *x, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void cored_acc(float *y, const float *x, size_t n)
{
    EW_PARALLEL(n, acc_fwd(y + lo, x + lo, len));
}

void cored_copy(float *y, const float *x, size_t n)
{
    EW_PARALLEL(n, memcpy(y + lo, x + lo, sizeof(float) * len));
}

void cored_zero(float *y, size_t n)
{
    EW_PARALLEL(n, memset(y + lo, 0, sizeof(float) * len));
}

void cored_add_backward(float *da, float *db, const float *dy, size_t n)
{
    if (da && da != dy) cored_copy(da, dy, n);
    if (db && db != dy) cored_copy(db, dy, n);
}

void cored_chscale_forward(float *y, const float *x, const float *s, int n, int hw, int c)
{
    int rows = n * hw;
    #pragma omp parallel for schedule(static) if ((size_t)rows * c > EW_CHUNK)
    for (int r = 0; r < rows; r++)
        mul_rows(y + (size_t)r * c, x + (size_t)r * c, s + (size_t)(r / hw) * c, (size_t)c);
}

void cored_chscale_backward(float *dx, float *ds, const float *dy, const float *x,
                            const float *s, int n, int hw, int c)
{
    #pragma omp parallel for schedule(static) if ((size_t)n * hw * c > EW_CHUNK)
    for (int i = 0; i < n; i++) {
        const float *sc = s + (size_t)i * c;
        float *dsi = ds ? ds + (size_t)i * c : NULL;
        if (dsi) memset(dsi, 0, sizeof(float) * (size_t)c);
        for (int p = 0; p < hw; p++) {
            size_t off = ((size_t)i * hw + p) * c;
            if (dx) mul_rows(dx + off, dy + off, sc, (size_t)c);
            if (dsi) dot_acc_rows(dsi, dy + off, x + off, (size_t)c);
        }
    }
}

void cored_dropout_forward(float *y, float *mask, const float *x, int n, size_t per, int first,
                           float p, uint64_t seed, uint64_t stream)
{
    float keep = 1.0f - p, scale = keep > 0.0f ? 1.0f / keep : 0.0f;
    size_t chunks = (per + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK, cells = (size_t)n * chunks;
    #pragma omp parallel for schedule(static)
    for (size_t k = 0; k < cells; k++) {
        size_t img = k / chunks, ch = k % chunks;
        cored_rng r;
        cored_rng_derive(&r, seed, stream, (uint64_t)first + img, 0xD80 + ch);
        size_t lo = img * per + ch * DROPOUT_CHUNK, hi = img * per + (ch + 1 < chunks ? (ch + 1) * DROPOUT_CHUNK : per);
        for (size_t i = lo; i < hi; i++) {
            mask[i] = cored_rng_uniform(&r) < p ? 0.0f : scale;
            y[i] = x[i] * mask[i];
        }
    }
}

void cored_dropout_backward(float *dx, const float *dy, const float *mask, size_t n)
{
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * mask[i];
}

void cored_dropconnect_forward(float *y, float *scale, const float *x, int n, size_t per, int first,
                               float p, uint64_t seed, uint64_t stream)
{
    float keep = 1.0f - p;
    for (int i = 0; i < n; i++) {
        cored_rng r;
        cored_rng_derive(&r, seed, stream, 0xDC, (uint64_t)first + (uint64_t)i);
        scale[i] = floorf(keep + cored_rng_uniform(&r)) > 0.0f ? 1.0f / keep : 0.0f;
    }
    cored_dropconnect_backward(y, x, scale, n, per);
}

void cored_dropconnect_backward(float *dx, const float *dy, const float *scale, int n, size_t per)
{
    #pragma omp parallel for schedule(static) if ((size_t)n * per > EW_CHUNK)
    for (int i = 0; i < n; i++) scale_rows(dx + (size_t)i * per, dy + (size_t)i * per, scale[i], per);
}

/* ---------------------------------------------------------------- output pass */

CORED_CLONES static void bias_act_leaf(float *y, const float *b, size_t rows, int c, cored_act act)
{
    cored_bias_act_rows(y, b, rows, c, act);
}

/* A plain function around the clone: Clang 14 names a cloned function's dispatcher
   `<name>.ifunc`, so no other file can call a clone by its name. */
void cored_bias_act_serial(float *y, const float *b, size_t rows, int c, cored_act act)
{
    bias_act_leaf(y, b, rows, c, act);
}

void cored_bias_act(float *y, const float *b, size_t rows, int c, cored_act act)
{
    size_t blocks = (rows + BIAS_ACT_ROWS - 1) / BIAS_ACT_ROWS;
    #pragma omp parallel for schedule(static) if (blocks > 1)
    for (size_t k = 0; k < blocks; k++) {
        size_t lo = k * BIAS_ACT_ROWS, n = rows - lo < BIAS_ACT_ROWS ? rows - lo : BIAS_ACT_ROWS;
        bias_act_leaf(y + lo * (size_t)c, b, n, c, act);
    }
}
