/*
 * Element-wise ops over flat float arrays: ReLU, SiLU (swish), sigmoid, residual add,
 * per-channel scale (squeeze-excitation), dropout and drop-connect.
 * PyTorch references: F.relu, F.silu (x*sigmoid(x)), torch.sigmoid, F.dropout (inverted),
 * EfficientNet-PyTorch's utils.drop_connect.
 */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "ops.h"

/* Elements per independent random stream in dropout, so masks do not depend on threads. */
#define DROPOUT_CHUNK 4096

static inline float sigmoidf(float x)
{
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

void cored_relu_forward(float *y, const float *x, size_t n)
{
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void cored_relu_backward(float *dx, const float *dy, const float *y, size_t n)
{
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void cored_silu_forward(float *y, const float *x, size_t n)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * sigmoidf(x[i]);
}

void cored_silu_backward(float *dx, const float *dy, const float *x, size_t n)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float s = sigmoidf(x[i]);
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void cored_sigmoid_forward(float *y, const float *x, size_t n)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = sigmoidf(x[i]);
}

void cored_sigmoid_backward(float *dx, const float *dy, const float *y, size_t n)
{
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

void cored_add_forward(float *y, const float *a, const float *b, size_t n)
{
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void cored_add_backward(float *da, float *db, const float *dy, size_t n)
{
    if (da && da != dy) memcpy(da, dy, sizeof(float) * n);
    if (db && db != dy) memcpy(db, dy, sizeof(float) * n);
}

void cored_chscale_forward(float *y, const float *x, const float *s, int n, int hw, int c)
{
    int rows = n * hw;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *sc = s + (size_t)(r / hw) * c;
        const float *rx = x + (size_t)r * c;
        float *ry = y + (size_t)r * c;
        #pragma omp simd
        for (int j = 0; j < c; j++) ry[j] = rx[j] * sc[j];
    }
}

void cored_chscale_backward(float *dx, float *ds, const float *dy, const float *x,
                            const float *s, int n, int hw, int c)
{
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *sc = s + (size_t)i * c;
        float *dsi = ds ? ds + (size_t)i * c : NULL;
        if (dsi) memset(dsi, 0, sizeof(float) * (size_t)c);
        for (int p = 0; p < hw; p++) {
            size_t off = ((size_t)i * hw + p) * c;
            if (dx) {
                #pragma omp simd
                for (int j = 0; j < c; j++) dx[off + j] = dy[off + j] * sc[j];
            }
            if (dsi) {
                #pragma omp simd
                for (int j = 0; j < c; j++) dsi[j] += dy[off + j] * x[off + j];
            }
        }
    }
}

void cored_dropout_forward(float *y, float *mask, const float *x, size_t n, float p,
                           uint64_t seed, uint64_t stream)
{
    float keep = 1.0f - p, scale = keep > 0.0f ? 1.0f / keep : 0.0f;
    size_t chunks = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
    #pragma omp parallel for schedule(static)
    for (size_t ch = 0; ch < chunks; ch++) {
        cored_rng r;
        cored_rng_derive(&r, seed, stream, ch, 0xD80);
        size_t lo = ch * DROPOUT_CHUNK, hi = lo + DROPOUT_CHUNK < n ? lo + DROPOUT_CHUNK : n;
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

void cored_dropconnect_forward(float *y, float *scale, const float *x, int n, size_t per,
                               float p, uint64_t seed, uint64_t stream)
{
    float keep = 1.0f - p;
    cored_rng r;
    cored_rng_derive(&r, seed, stream, 0xDC, 0);
    for (int i = 0; i < n; i++)
        scale[i] = floorf(keep + cored_rng_uniform(&r)) > 0.0f ? 1.0f / keep : 0.0f;
    cored_dropconnect_backward(y, x, scale, n, per);
}

void cored_dropconnect_backward(float *dx, const float *dy, const float *scale, int n, size_t per)
{
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *src = dy + (size_t)i * per;
        float *dst = dx + (size_t)i * per;
        float s = scale[i];
        #pragma omp simd
        for (size_t j = 0; j < per; j++) dst[j] = src[j] * s;
    }
}
