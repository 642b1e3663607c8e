/*
 * The pure parts of face detection: the input transform, the SSD's anchors, box decoding
 * and non-maximum suppression (faces.h). Each mirrors face-api's JavaScript step by step,
 * float32 rounding included, so that cored and the reference differ only where the
 * network's own arithmetic does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "faces.h"

/* ---------------------------------------------------------------- input */

/* Where output pixel i samples one axis of the padded square: the two source pixels
   (-1 where they fall in the padding) and the weight of the second. */
typedef struct {
    int i0, i1;
    double f;
} tap;

static void taps(tap *t, int size, int S, int n)
{
    double ratio = (double)S / size; /* tfjs: effective input size / output size */
    for (int i = 0; i < size; i++) {
        double src = ratio * i;
        int i0 = (int)floor(src), i1 = (int)ceil(src);
        if (i0 < 0) i0 = 0;
        if (i1 > S - 1) i1 = S - 1;
        t[i].f = src - i0;
        t[i].i0 = i0 < n ? i0 : -1;
        t[i].i1 = i1 < n ? i1 : -1;
    }
}

void cored_face_preprocess(float *x, int size, const uint8_t *rgb, int w, int h, size_t stride)
{
    CORED_ASSERT(size >= 1 && size <= CORED_FACE_MAX_SIDE);
    tap cols[CORED_FACE_MAX_SIDE], rows[CORED_FACE_MAX_SIDE];
    int S = w > h ? w : h;
    taps(cols, size, S, w);
    taps(rows, size, S, h);
    #pragma omp parallel for schedule(static)
    for (int oy = 0; oy < size; oy++) {
        const tap *ty = &rows[oy];
        /* the padded square: black (0) outside the image */
        const uint8_t *r0 = ty->i0 >= 0 ? rgb + (size_t)ty->i0 * stride : NULL;
        const uint8_t *r1 = ty->i1 >= 0 ? rgb + (size_t)ty->i1 * stride : NULL;
        float *dst = x + (size_t)oy * size * 3;
        for (int ox = 0; ox < size; ox++) {
            const tap *tx = &cols[ox];
            for (int c = 0; c < 3; c++) {
                double tl = 0, tr = 0, bl = 0, br = 0;
                if (r0 && tx->i0 >= 0) tl = r0[(size_t)tx->i0 * 3 + c];
                if (r0 && tx->i1 >= 0) tr = r0[(size_t)tx->i1 * 3 + c];
                if (r1 && tx->i0 >= 0) bl = r1[(size_t)tx->i0 * 3 + c];
                if (r1 && tx->i1 >= 0) br = r1[(size_t)tx->i1 * 3 + c];
                double top = tl + (tr - tl) * tx->f;
                double bottom = bl + (br - bl) * tx->f;
                float v = (float)(top + (bottom - top) * ty->f); /* resizeBilinear's float32 */
                float t = (float)((double)v / 127.5);            /* tf.div */
                dst[(size_t)ox * 3 + c] = (float)((double)t - 1.0); /* tf.sub */
            }
        }
    }
}

/* ---------------------------------------------------------------- anchors */

/* The six feature maps of the 512-px network and their anchors per cell. */
static const int grid[6] = {32, 16, 8, 4, 2, 1};

int cored_face_anchors(float *out)
{
    /* ssd_anchor_generator: min_scale 0.2, max_scale 0.95, 6 layers, aspect ratios
       1, 2, 0.5, 3, 0.3333 and an interpolated scale of aspect ratio 1; lowest layer
       reduced. Scales in Python doubles, the tiling in float32 as TensorFlow. */
    static const float ratios[5] = {1.0f, 2.0f, 0.5f, 3.0f, 0.3333f};
    double scales[7];
    for (int i = 0; i < 6; i++) scales[i] = 0.2 + (0.95 - 0.2) * i / 5.0;
    scales[6] = 1.0;
    int n = 0;
    for (int l = 0; l < 6; l++) {
        float hs[6], ws[6];
        int na = 0;
        if (l == 0) {
            const double sc[3] = {0.1, scales[0], scales[0]};
            const float ar[3] = {1.0f, 2.0f, 0.5f};
            for (int a = 0; a < 3; a++, na++) {
                float s = (float)sc[a], r = sqrtf(ar[a]);
                hs[na] = s / r, ws[na] = s * r;
            }
        } else {
            for (int a = 0; a < 5; a++, na++) {
                float s = (float)scales[l], r = sqrtf(ratios[a]);
                hs[na] = s / r, ws[na] = s * r;
                if (a == 0) { /* the interpolated scale follows aspect ratio 1 */
                    na++;
                    float si = (float)sqrt(scales[l] * scales[l + 1]);
                    hs[na] = si, ws[na] = si;
                }
            }
        }
        int g = grid[l];
        float stride = 1.0f / (float)g, offset = 0.5f * stride;
        for (int y = 0; y < g; y++) {
            float cy = (float)y * stride + offset;
            for (int x = 0; x < g; x++) {
                float cx = (float)x * stride + offset;
                for (int a = 0; a < na; a++, n++) {
                    out[4 * n + 0] = cy - 0.5f * hs[a];
                    out[4 * n + 1] = cx - 0.5f * ws[a];
                    out[4 * n + 2] = cy + 0.5f * hs[a];
                    out[4 * n + 3] = cx + 0.5f * ws[a];
                }
            }
        }
    }
    return n;
}

/* ---------------------------------------------------------------- decoding */

void cored_face_decode(float box[4], const float enc[4], const float anchor[4])
{
    /* face-api's outputLayer, one float32 tensor op after another */
    float ha = anchor[2] - anchor[0], wa = anchor[3] - anchor[1];
    float cya = anchor[0] + ha / 2.0f, cxa = anchor[1] + wa / 2.0f;
    float half_h = ((float)exp((double)(enc[2] / 5.0f)) * ha) / 2.0f;
    float cy = (enc[0] / 10.0f) * ha + cya;
    float half_w = ((float)exp((double)(enc[3] / 5.0f)) * wa) / 2.0f;
    float cx = (enc[1] / 10.0f) * wa + cxa;
    box[0] = cy - half_h;
    box[1] = cx - half_w;
    box[2] = cy + half_h;
    box[3] = cx + half_w;
}

/* ---------------------------------------------------------------- suppression */

double cored_face_iou(const float *a, const float *b)
{
    double ay0 = fmin(a[0], a[2]), ax0 = fmin(a[1], a[3]), ay1 = fmax(a[0], a[2]), ax1 = fmax(a[1], a[3]);
    double by0 = fmin(b[0], b[2]), bx0 = fmin(b[1], b[3]), by1 = fmax(b[0], b[2]), bx1 = fmax(b[1], b[3]);
    double area_a = (ay1 - ay0) * (ax1 - ax0), area_b = (by1 - by0) * (bx1 - bx0);
    if (area_a <= 0 || area_b <= 0) return 0.0;
    double ih = fmax(fmin(ay1, by1) - fmax(ay0, by0), 0.0);
    double iw = fmax(fmin(ax1, bx1) - fmax(ax0, bx0), 0.0);
    double inter = ih * iw;
    return inter / (area_a + area_b - inter);
}

/* Sort key of a candidate: its score's bits mapped to an unsigned order and inverted
   (higher scores first) above its index (ties: lower index first, as JavaScript's stable
   sort leaves them). */
static uint64_t sort_key(float score, int i)
{
    uint32_t u;
    memcpy(&u, &score, sizeof u);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u;
    return ((uint64_t)~u << 32) | (uint32_t)i;
}

static int cmp_u64(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return (a > b) - (a < b);
}

int cored_face_nms(int *keep, int max, const float *boxes, const float *scores, int n,
                   float iou, float min_score, uint64_t *order)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (scores[i] > min_score) order[m++] = sort_key(scores[i], i);
    qsort(order, (size_t)m, sizeof *order, cmp_u64);
    int k = 0;
    for (int i = 0; i < m && k < max; i++) {
        int c = (int)(uint32_t)order[i];
        const float *b = boxes + 4 * (size_t)c;
        int suppressed = 0;
        for (int j = k - 1; j >= 0 && !suppressed; j--)
            suppressed = cored_face_iou(b, boxes + 4 * (size_t)keep[j]) > iou;
        if (!suppressed) keep[k++] = c;
    }
    return k;
}
