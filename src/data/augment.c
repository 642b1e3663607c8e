/*
 * Training augmentation and output normalisation of a batch:
 *   - horizontal flip (torchvision RandomHorizontalFlip(0.5)); the decision per sample is
 *     made by the loader from (seed, epoch, sample);
 *   - CoReD's CutMix, exactly the official code's: once per batch r ~ U(0,1); only if r > 1 - p:
 *     a permutation pi of the batch, samples whose partner pi(i) has the opposite label
 *     (OPPOSITE, the default: p = 0.2, Beta(0.5, 0.5)) or the same label (SAME, the Task-1
 *     variant: p = 0.5, Beta(1, 1)) are marked, lambda ~ Beta(a, a),
 *     cut = int(size*sqrt(1 - lambda)), centre uniform in {0..size-1}^2, box
 *     [c - cut//2, c + cut//2) clipped, one box for every marked sample, partner pixels
 *     from the un-modified (flipped) batch, labels unchanged;
 *   - (x/255 - 0.5)/0.5 in float32 (ToTensor + Normalize(0.5, 0.5)), NHWC output.
 * Flip and CutMix act on the uint8 pixels before normalisation, which gives the same
 * floats as torchvision's order (normalise, then mix), since both are per-pixel copies.
 */
#include <math.h>
#include <string.h>

#include "data/data.h"

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void cored_cutmix_draw(cored_cutmix_box *box, int *partner, uint8_t *marked, uint32_t *scratch,
                       const int *labels, int n, int size, cored_cutmix_mode mode, float p,
                       float beta, cored_rng *rng)
{
    memset(box, 0, sizeof *box);
    for (int i = 0; i < n; i++) {
        partner[i] = i;
        marked[i] = 0;
    }
    if (mode == CORED_CUTMIX_NONE || n < 2) return;
    float r = cored_rng_uniform(rng);
    if (!(r > 1.0f - p)) return;
    cored_rng_permutation(rng, scratch, (uint32_t)n);
    int any = 0;
    for (int i = 0; i < n; i++) {
        int j = (int)scratch[i];
        partner[i] = j;
        int m = mode == CORED_CUTMIX_OPPOSITE ? labels[j] != labels[i] : (labels[j] == labels[i] && j != i);
        marked[i] = (uint8_t)m;
        any |= m;
    }
    if (!any) return;
    double lambda = cored_rng_beta(rng, beta, beta);
    int cut = (int)(size * sqrt(1.0 - lambda));
    int cx = (int)cored_rng_below(rng, (uint32_t)size);
    int cy = (int)cored_rng_below(rng, (uint32_t)size);
    box->fired = 1;
    box->lambda = lambda;
    box->x0 = clampi(cx - cut / 2, 0, size);
    box->x1 = clampi(cx + cut / 2, 0, size);
    box->y0 = clampi(cy - cut / 2, 0, size);
    box->y1 = clampi(cy + cut / 2, 0, size);
}

/* Columns [x0, x1) of one row (size pixels, RGB) into o, mirrored when flip. */
static void row_segment(float *restrict o, const uint8_t *restrict row, int flip, int x0, int x1,
                        int size, const float *restrict lut)
{
    if (!flip) {
        /* The formula of the table, in blocks of 16 that the compiler vectorises at -O2
           (exact: the same IEEE division; dividing by 0.5 is multiplying by 2). */
        const uint8_t *s = row + 3 * x0;
        float *d = o + 3 * x0;
        int n = 3 * (x1 - x0), i = 0;
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++) d[i + k] = ((float)s[i + k] / 255.0f - 0.5f) * 2.0f;
        for (; i < n; i++) d[i] = lut[s[i]];
        return;
    }
    for (int x = x0; x < x1; x++) {
        const uint8_t *s = row + 3 * (size - 1 - x);
        float *d = o + 3 * x;
        d[0] = lut[s[0]];
        d[1] = lut[s[1]];
        d[2] = lut[s[2]];
    }
}

void cored_compose_sample(float *out, int i, const uint8_t *const *src, const uint8_t *flip,
                          const int *partner, const uint8_t *marked, const cored_cutmix_box *box,
                          int size, const float lut[256])
{
    const uint8_t *self = src[i];
    int fs = flip ? flip[i] : 0;
    int boxed = box && box->fired && marked && partner && marked[i] && box->x1 > box->x0 &&
                box->y1 > box->y0;
    const uint8_t *other = boxed ? src[partner[i]] : NULL;
    int fo = boxed && flip ? flip[partner[i]] : 0;
    size_t stride = (size_t)size * 3;
    for (int y = 0; y < size; y++) {
        float *o = out + (size_t)y * stride;
        const uint8_t *rs = self + (size_t)y * stride;
        if (boxed && y >= box->y0 && y < box->y1) {
            const uint8_t *ro = other + (size_t)y * stride;
            row_segment(o, rs, fs, 0, box->x0, size, lut);
            row_segment(o, ro, fo, box->x0, box->x1, size, lut);
            row_segment(o, rs, fs, box->x1, size, size, lut);
        } else {
            row_segment(o, rs, fs, 0, size, size, lut);
        }
    }
}
