/*
 * Vectorisation helpers of the kernels.
 *
 * CORED_CLONES compiles a leaf kernel twice, for x86-64-v3 (AVX2 + FMA) and for the
 * baseline, and picks one at load time from the CPU (GCC/Clang target_clones, an ifunc).
 * Leaf kernels hold no OpenMP pragmas other than `omp simd`: the parallel loop stays in the
 * caller, so the outlined OpenMP body never misses the clone's target. Clang gives the
 * resolver of a cloned function an external name (`<name>.resolver`) even when the function
 * is static, so each cloned function's name must be unique across src/ops. src/ops is built
 * with -ffp-contract=fast, so a*b+c becomes one FMA in the AVX2 clone, and with
 * -fno-trapping-math, so loops with float selects (ReLU, clamps) vectorise; there is no
 * -ffast-math: NaN, infinity and signed zeros keep their IEEE meaning.
 *
 * cored_expf_fast is exp(x) for float with a relative error below 2e-7 (about 2 ulp), as
 * straight-line code that vectorises: range reduction x = n ln2 + r, |r| <= ln2/2, a
 * degree-6 polynomial for exp(r) and 2^n assembled in the exponent bits. Inputs are
 * clamped to [-87.3, 88.3], so the result is finite and never denormal; NaN propagates
 * (and never reaches the float-to-int conversion).
 */
#ifndef CORED_OPS_SIMD_H
#define CORED_OPS_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(CORED_NO_CLONES)
#define CORED_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CORED_CLONES
#endif

static inline float cored_expf_fast(float in)
{
    float x = in == in ? in : 0.0f;
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    float t = x * 1.44269504088896341f;
    float fn = (t + 12582912.0f) - 12582912.0f; /* round to nearest: 1.5 * 2^23 */
    float r = x - fn * 0.693359375f;                               /* ln2, split for exactness */
    r = r - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)fn + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return in == in ? p * scale : in;
}

/* 1 / (1 + exp(-x)): exact 0 and 1 limits are approached, never NaN for finite x. */
static inline float cored_sigmoidf_fast(float x) { return 1.0f / (1.0f + cored_expf_fast(-x)); }

#endif
