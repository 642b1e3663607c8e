/*
 * Fully connected layer as torch.nn.Linear: y (N, O) = x (N, I) * W^T + b, W (O, I).
 */
#include <string.h>

#include "ops.h"

void cored_linear_forward(float *y, const float *x, const float *w, const float *b, int n,
                          int in, int out)
{
    if (b)
        for (int i = 0; i < n; i++) memcpy(y + (size_t)i * out, b, sizeof(float) * (size_t)out);
    cored_gemm(0, 1, n, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out);
}

void cored_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, int n, int in, int out)
{
    if (dw) cored_gemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (db)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += dy[(size_t)i * out + o];
            db[o] += (float)s;
        }
    if (dx) cored_gemm(0, 0, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
}
