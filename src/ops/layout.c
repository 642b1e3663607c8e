/* Layout conversion between PyTorch's NCHW and the engine's NHWC. */
#include "ops.h"

void cored_nchw_to_nhwc(float *dst, const float *src, int n, int c, int h, int w)
{
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        for (int p = 0; p < h * w; p++)
            for (int j = 0; j < c; j++)
                dst[((size_t)i * h * w + p) * c + j] = src[((size_t)i * c + j) * h * w + p];
}

void cored_nhwc_to_nchw(float *dst, const float *src, int n, int c, int h, int w)
{
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c; j++)
            for (int p = 0; p < h * w; p++)
                dst[((size_t)i * c + j) * h * w + p] = src[((size_t)i * h * w + p) * c + j];
}
