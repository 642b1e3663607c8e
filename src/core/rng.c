/*
 * Random numbers: PCG32 (M. O'Neill, "PCG: A Family of Simple Fast Space-Efficient
 * Statistically Good Algorithms for Random Number Generation", 2014), with derived
 * streams so that every random decision of a training run can be a pure function of
 * (seed, what it is about). Gamma by Marsaglia-Tsang (2000); Beta from two Gammas.
 */
#include <math.h>

#include "core.h"

#define PCG_MULT 6364136223846793005ULL

uint32_t cored_rng_u32(cored_rng *r)
{
    uint64_t old = r->state;
    r->state = old * PCG_MULT + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31u));
}

void cored_rng_seed(cored_rng *r, uint64_t seed, uint64_t stream)
{
    r->state = 0;
    r->inc = (stream << 1u) | 1u;
    cored_rng_u32(r);
    r->state += seed;
    cored_rng_u32(r);
}

uint64_t cored_hash64(uint64_t a, uint64_t b)
{
    uint64_t z = a + 0x9E3779B97F4A7C15ULL * (b + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void cored_rng_derive(cored_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = cored_hash64(cored_hash64(cored_hash64(seed, a), b), c);
    cored_rng_seed(r, h, cored_hash64(h, 0x5EED));
}

uint64_t cored_rng_u64(cored_rng *r)
{
    uint64_t hi = cored_rng_u32(r);
    return (hi << 32) | cored_rng_u32(r);
}

float cored_rng_uniform(cored_rng *r) { return (float)(cored_rng_u32(r) >> 8) * 0x1.0p-24f; }

double cored_rng_uniform_d(cored_rng *r) { return (double)(cored_rng_u64(r) >> 11) * 0x1.0p-53; }

uint32_t cored_rng_below(cored_rng *r, uint32_t n)
{
    /* Lemire's nearly divisionless method, made exact by rejection. */
    uint64_t m = (uint64_t)cored_rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)cored_rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double cored_rng_normal(cored_rng *r)
{
    double u1 = cored_rng_uniform_d(r), u2 = cored_rng_uniform_d(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double cored_rng_gamma(cored_rng *r, double shape)
{
    if (shape < 1.0) {
        double u = cored_rng_uniform_d(r);
        if (u < 1e-300) u = 1e-300;
        return cored_rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = cored_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = cored_rng_uniform_d(r);
        if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
        if (u > 0.0 && log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
    }
}

double cored_rng_beta(cored_rng *r, double a, double b)
{
    double x = cored_rng_gamma(r, a), y = cored_rng_gamma(r, b);
    if (x + y <= 0.0) return 0.5;
    return x / (x + y);
}

void cored_rng_permutation(cored_rng *r, uint32_t *perm, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) perm[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = cored_rng_below(r, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
