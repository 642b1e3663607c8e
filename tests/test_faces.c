/*
 * Tests of the face detector (src/faces) that need no downloaded weights: ReLU6, the SSD
 * anchors, box decoding, IoU and NMS against hand-worked cases (face-api's rules: a box
 * is dropped when its IoU with a kept one exceeds 0.5, scores must exceed the threshold,
 * ties keep the lower index), the input transform (identity at 512 px, the black padding,
 * TF's legacy bilinear weights, strided rows), and a whole detector on a synthetic weights
 * file of the real layout: the faces' invariants, bit-identical results for 1 and 2
 * threads and for packed and strided rows, no allocation per call, every refusal of
 * cored_faces_detect's arguments and of a broken file (naming the file and the tensor),
 * and injected allocation failures without leaks. Parity with the real weights and the
 * reference implementation is tests/parity_faces.py.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "data/data.h"
#include "faces/faces.h"
#include "harness.h"
#include "io/safetensors.h"
#include "ops/ops.h"

/* ---------------------------------------------------------------- pure parts */

static void test_relu6(void)
{
    float x[7] = {-3.0f, -0.0f, 0.0f, 0.5f, 5.999f, 6.0f, 1e30f}, y[7];
    const float want[7] = {0.0f, 0.0f, 0.0f, 0.5f, 5.999f, 6.0f, 6.0f};
    cored_relu6_forward(y, x, 7);
    for (int i = 0; i < 7; i++) CHECK_MSG(y[i] == want[i], "relu6(%g) = %g", (double)x[i], (double)y[i]);
    /* a long array, in place, across the chunks of the parallel loop */
    size_t n = 100003;
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = (float)((double)i / n * 16.0 - 4.0);
    cored_relu6_forward(v, v, n);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double t = (double)(float)((double)i / n * 16.0 - 4.0);
        bad += v[i] != (float)(t < 0 ? 0 : t > 6 ? 6 : t);
    }
    CHECK_MSG(bad == 0, "%d wrong of %zu", bad, n);
    free(v);
}

static void test_anchors(void)
{
    static float a[CORED_FACE_ANCHORS * 4];
    CHECK(cored_face_anchors(a) == CORED_FACE_ANCHORS);
    /* layer 0 (32 x 32, 3 per cell): the first cell's (0.1, 1), (0.2, 2), (0.2, 1/2) */
    const double c = 0.5 / 32, r2 = sqrt(2.0);
    const double want0[3][4] = {{c - 0.05, c - 0.05, c + 0.05, c + 0.05},
                                {c - 0.1 / r2, c - 0.1 * r2, c + 0.1 / r2, c + 0.1 * r2},
                                {c - 0.1 * r2, c - 0.1 / r2, c + 0.1 * r2, c + 0.1 / r2}};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++)
            CHECK_MSG(fabs(a[4 * i + k] - want0[i][k]) < 1e-6, "anchor %d[%d] = %.7f, want %.7f", i, k,
                      (double)a[4 * i + k], want0[i][k]);
    /* the next anchor is the next column: x moves by 1/32 */
    CHECK(fabs(a[4 * 3 + 1] - (want0[0][1] + 1.0 / 32)) < 1e-6 && fabs(a[4 * 3] - want0[0][0]) < 1e-6);
    /* layer 1 (16 x 16, 6 per cell) starts at 3072: scale 0.35, then sqrt(0.35 * 0.5) */
    const float *l1 = a + 4 * 3072;
    double c1 = 0.5 / 16, s = 0.35, si = sqrt(0.35 * 0.5);
    CHECK(fabs(l1[0] - (c1 - s / 2)) < 1e-6 && fabs(l1[2] - (c1 + s / 2)) < 1e-6);
    CHECK(fabs(l1[4] - (c1 - si / 2)) < 1e-6 && fabs(l1[6] - (c1 + si / 2)) < 1e-6);
    /* the last layer (1 x 1): centred, scale 0.95, interpolated sqrt(0.95), ratio 1/0.3333 */
    const float *last = a + 4 * (CORED_FACE_ANCHORS - 6);
    CHECK(fabs(last[0] - (0.5 - 0.475)) < 1e-6 && fabs(last[3] - (0.5 + 0.475)) < 1e-6);
    CHECK(fabs(last[6] - (0.5 + sqrt(0.95) / 2)) < 1e-6);
    double h5 = 0.95 / sqrt(0.3333);
    CHECK_MSG(fabs(last[4 * 5 + 2] - last[4 * 5] - h5) < 1e-5, "last anchor height %.6f, want %.6f",
              (double)(last[4 * 5 + 2] - last[4 * 5]), h5);
    /* every anchor is centred on its cell: per layer the centres step by 1/grid */
    int bad = 0;
    for (int i = 0; i < CORED_FACE_ANCHORS; i++) bad += !(a[4 * i + 2] > a[4 * i] && a[4 * i + 3] > a[4 * i + 1]);
    CHECK(bad == 0);
}

static void test_decode(void)
{
    const float anchor[4] = {0.2f, 0.3f, 0.4f, 0.7f}; /* h 0.2, w 0.4, centre (0.3, 0.5) */
    float box[4];
    const float zero[4] = {0, 0, 0, 0};
    cored_face_decode(box, zero, anchor);
    for (int k = 0; k < 4; k++) CHECK_MSG(fabsf(box[k] - anchor[k]) < 1e-7f, "[%d] %g", k, (double)box[k]);
    /* ty = 10 moves the centre down by one anchor height, tw = 5 ln 2 doubles the width */
    const float enc[4] = {10.0f, -5.0f, 0.0f, (float)(5.0 * log(2.0))};
    cored_face_decode(box, enc, anchor);
    const float want[4] = {0.4f, -0.1f, 0.6f, 0.7f};
    for (int k = 0; k < 4; k++)
        CHECK_MSG(fabsf(box[k] - want[k]) < 1e-6f, "[%d] %g, want %g", k, (double)box[k], (double)want[k]);
}

static void test_iou(void)
{
    const float a[4] = {0, 0, 2, 2}, b[4] = {0, 1, 2, 3}, c[4] = {5, 5, 6, 6}, swapped[4] = {2, 3, 0, 1},
                empty[4] = {1, 1, 1, 3};
    CHECK(fabs(cored_face_iou(a, a) - 1.0) < 1e-12);
    CHECK(fabs(cored_face_iou(a, b) - 1.0 / 3) < 1e-12);
    CHECK(fabs(cored_face_iou(a, swapped) - 1.0 / 3) < 1e-12); /* corners sorted first */
    CHECK(cored_face_iou(a, c) == 0.0);
    CHECK(cored_face_iou(a, empty) == 0.0 && cored_face_iou(empty, a) == 0.0);
}

static void test_nms(void)
{
    /* 0 and 1 overlap at IoU 1/3 (kept), 2 sits on 0 at IoU 0.9 (dropped), 3 has IoU
       exactly 0.5 with 0 (kept: face-api drops above 0.5 only), 4 is below the threshold,
       5 ties with 1 and is a copy of it (the lower index wins) */
    const float boxes[6][4] = {{0, 0, 2, 2}, {0, 1, 2, 3}, {0, 0, 2, 1.8f}, {0, 0, 2, 4}, {10, 10, 11, 11},
                               {0, 1, 2, 3}};
    const float scores[6] = {0.9f, 0.8f, 0.85f, 0.7f, 0.5f, 0.8f};
    int keep[6];
    uint64_t order[6];
    int k = cored_face_nms(keep, 6, &boxes[0][0], scores, 6, 0.5f, 0.5f, order);
    CHECK_MSG(k == 3 && keep[0] == 0 && keep[1] == 1 && keep[2] == 3, "k %d: %d %d %d", k, keep[0], keep[1], keep[2]);
    /* the threshold is strict: 0.5 itself is out; max caps the count */
    k = cored_face_nms(keep, 2, &boxes[0][0], scores, 6, 0.5f, 0.49f, order);
    CHECK(k == 2 && keep[0] == 0 && keep[1] == 1);
    k = cored_face_nms(keep, 6, &boxes[0][0], scores, 6, 0.5f, 0.9f, order);
    CHECK(k == 0);
    /* at threshold 0 every distinct box is kept, 4 included */
    k = cored_face_nms(keep, 6, &boxes[0][0], scores, 6, 0.5f, 0.0f, order);
    CHECK(k == 4 && keep[3] == 4);
}

static uint8_t *random_image(int h, size_t stride, uint64_t seed)
{
    uint8_t *p = malloc(stride * (size_t)h);
    cored_rng r;
    cored_rng_seed(&r, seed, 1);
    for (size_t i = 0; i < stride * (size_t)h; i++) p[i] = (uint8_t)cored_rng_below(&r, 256);
    return p;
}

static void test_preprocess(void)
{
    const int N = CORED_FACE_INPUT_SIZE;
    float *x = malloc(sizeof(float) * N * N * 3);
    /* a 512-px square is not resized: x = v / 127.5 - 1 exactly */
    uint8_t *img = random_image(N, (size_t)N * 3, 3);
    cored_face_preprocess(x, N, img, N, N, (size_t)N * 3);
    int bad = 0;
    for (size_t i = 0; i < (size_t)N * N * 3; i++) bad += x[i] != (float)((double)(float)(img[i] / 127.5) - 1.0);
    CHECK_MSG(bad == 0, "%d values differ", bad);
    free(img);

    /* 2 x 1 pixels, S = 2: output (oy, ox) samples (oy / 256, ox / 256) of the padded
       square; row 1 is padding (black, -1 after scaling) */
    const uint8_t px[6] = {255, 0, 100, 51, 255, 200};
    cored_face_preprocess(x, N, px, 2, 1, 6);
    const float *o = x;
#define AT(oy, ox, c) o[((size_t)(oy) * N + (ox)) * 3 + (c)]
    CHECK(AT(0, 0, 0) == 1.0f && AT(0, 0, 1) == -1.0f);        /* pixel (0, 0) */
    CHECK(AT(0, 256, 0) == (float)(51 / 127.5) - 1.0f);         /* pixel (1, 0) */
    /* halfway between the two pixels: (255 + 51) / 2 = 153 */
    CHECK_MSG(AT(0, 128, 0) == (float)((double)(float)(153 / 127.5) - 1.0), "%.9g", (double)AT(0, 128, 0));
    /* a quarter of the way down towards the black row: 0.75 * 255 */
    CHECK_MSG(fabsf(AT(64, 0, 0) - (float)(0.75 * 255 / 127.5 - 1.0)) < 1e-6f, "%.9g", (double)AT(64, 0, 0));
    CHECK(AT(256, 0, 0) == -1.0f && AT(511, 511, 2) == -1.0f);
    /* the last column samples x = 511/256, between pixel 1 and its clamped self */
    CHECK(AT(0, 511, 2) == (float)((double)(float)(200 / 127.5) - 1.0));
#undef AT

    /* rows with padding bytes give the same input as packed rows */
    int w = 37, h = 53;
    uint8_t *packed = random_image(h, (size_t)w * 3, 5);
    size_t stride = (size_t)w * 3 + 13;
    uint8_t *strided = malloc(stride * h);
    memset(strided, 0xAB, stride * h);
    for (int y = 0; y < h; y++) memcpy(strided + y * stride, packed + (size_t)y * w * 3, (size_t)w * 3);
    float *x2 = malloc(sizeof(float) * N * N * 3);
    cored_face_preprocess(x, N, packed, w, h, (size_t)w * 3);
    cored_face_preprocess(x2, N, strided, w, h, stride);
    CHECK(memcmp(x, x2, sizeof(float) * N * N * 3) == 0);
    /* the right of a tall image is padding: beyond x = w * 512 / h everything is -1 */
    int edge = (int)ceil((double)w * N / h) + 1, pad = 0;
    for (int oy = 0; oy < N; oy++)
        for (int ox = edge; ox < N; ox++) pad += x[((size_t)oy * N + ox) * 3] != -1.0f;
    CHECK_MSG(pad == 0, "%d padding values are not -1", pad);
    free(packed);
    free(strided);
    free(x2);
    free(x);
}

/* ---------------------------------------------------------------- a synthetic detector */

#define MAXT 160

typedef struct {
    char names[MAXT][CORED_NAME_MAX];
    cored_st_out t[MAXT];
    float *data[MAXT];
    int n;
} tensors;

static float *add(tensors *T, const char *name, int ndim, const int *shape, float scale, float offset, cored_rng *r)
{
    CORED_ASSERT(T->n < MAXT);
    int i = T->n++;
    snprintf(T->names[i], CORED_NAME_MAX, "%s", name);
    size_t numel = 1;
    cored_st_out *t = &T->t[i];
    t->name = T->names[i];
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) numel *= (size_t)(t->shape[d] = shape[d]);
    T->data[i] = malloc(sizeof(float) * numel);
    for (size_t k = 0; k < numel; k++) T->data[i][k] = offset + scale * (2.0f * cored_rng_uniform(r) - 1.0f);
    t->data = T->data[i];
    return T->data[i];
}

static void conv(tensors *T, const char *name, int cout, int cin, int k, int bias, float bias_offset, cored_rng *r)
{
    char key[CORED_NAME_MAX];
    int w[4] = {cout, cin, k, k}, b[1] = {cout};
    snprintf(key, sizeof key, "%s.weight", name);
    add(T, key, 4, w, 1.5f / sqrtf((float)(cin * k * k)), 0.0f, r);
    snprintf(key, sizeof key, "%s.bias", name);
    if (bias) add(T, key, 1, b, 0.1f, bias_offset, r);
}

/* Every tensor of the real file, random (weights scaled by fan-in so activations stay in
   ReLU6's range), with the class-1 biases of the predictors raised so that some anchors
   score above 0.5. */
static void synthetic(tensors *T, uint64_t seed)
{
    static const int pw[13] = {64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
    static const int ex[8][2] = {{256, 1}, {512, 3}, {128, 1}, {256, 3}, {128, 1}, {256, 3}, {64, 1}, {128, 3}};
    static const int head_in[6] = {512, 1024, 512, 256, 256, 128}, head_a[6] = {3, 6, 6, 6, 6, 6};
    cored_rng r;
    cored_rng_seed(&r, seed, 7);
    memset(T, 0, sizeof *T);
    char name[CORED_NAME_MAX];
    conv(T, "mobilenet.conv0", 32, 3, 3, 1, 0.2f, &r);
    int c = 32;
    for (int i = 1; i <= 13; i++) {
        int s[1] = {c}, dw[4] = {c, 1, 3, 3};
        snprintf(name, sizeof name, "mobilenet.dw%d.weight", i);
        add(T, name, 4, dw, 0.5f, 0.0f, &r);
        snprintf(name, sizeof name, "mobilenet.bn%d.weight", i);
        add(T, name, 1, s, 0.2f, 1.0f, &r);
        snprintf(name, sizeof name, "mobilenet.bn%d.bias", i);
        add(T, name, 1, s, 0.1f, 0.3f, &r);
        snprintf(name, sizeof name, "mobilenet.bn%d.running_mean", i);
        add(T, name, 1, s, 0.1f, 0.0f, &r);
        snprintf(name, sizeof name, "mobilenet.bn%d.running_var", i);
        add(T, name, 1, s, 0.2f, 0.5f, &r);
        snprintf(name, sizeof name, "mobilenet.pw%d", i);
        conv(T, name, pw[i - 1], c, 1, 1, 0.1f, &r);
        c = pw[i - 1];
    }
    for (int j = 0; j < 8; j++) {
        snprintf(name, sizeof name, "extras.%d", j);
        conv(T, name, ex[j][0], c, ex[j][1], 1, 0.1f, &r);
        c = ex[j][0];
    }
    for (int h = 0; h < 6; h++) {
        snprintf(name, sizeof name, "heads.%d.box", h);
        conv(T, name, 4 * head_a[h], head_in[h], 1, 1, 0.0f, &r);
        snprintf(name, sizeof name, "heads.%d.cls", h);
        conv(T, name, 3 * head_a[h], head_in[h], 1, 1, 0.0f, &r);
        float *b = T->data[T->n - 1];
        for (int a = 0; a < head_a[h]; a++) b[3 * a + 1] = h >= 3 ? 1.0f : -2.0f;
    }
    int as[2] = {CORED_FACE_ANCHORS, 4};
    float *anchors = add(T, "anchors", 2, as, 0.0f, 0.0f, &r);
    cored_face_anchors(anchors);
}

static void release(tensors *T)
{
    for (int i = 0; i < T->n; i++) free(T->data[i]);
    T->n = 0;
}

static const char *const meta_ok[] = {"format", "cored-face-detector", "model", "ssd_mobilenetv1_face"};

static void write_file(const char *path, tensors *T, const char *const *meta, int n_meta)
{
    cored_error err = {0};
    int rc = cored_st_write(path, T->t, T->n, meta, n_meta, &err);
    CHECK_MSG(rc == CORED_OK, "%s", err.msg);
}

static int find(tensors *T, const char *name)
{
    for (int i = 0; i < T->n; i++)
        if (!strcmp(T->names[i], name)) return i;
    return -1;
}

static char good_path[512];

static void test_detect(void)
{
    tensors T;
    synthetic(&T, 11);
    snprintf(good_path, sizeof good_path, "%s/faces.safetensors", test_tmpdir());
    write_file(good_path, &T, meta_ok, 2);
    release(&T);

    cored_error err = {0};
    cored_face_detector *d = NULL;
    int rc = cored_face_detector_open(&d, good_path, &err);
    CHECK_MSG(rc == CORED_OK && d, "%s", err.msg);
    if (!d) return;
    CHECK_MSG(cored_face_detector_macs(d) > 3.0e9 && cored_face_detector_macs(d) < 4.0e9, "%.3g MACs",
              cored_face_detector_macs(d));

    int w = 301, h = 173, n = -1, n2 = -1;
    uint8_t *img = random_image(h, (size_t)w * 3, 21);
    cored_face faces[64], faces2[64];
    static float scores1[CORED_FACE_ANCHORS];
    cored_set_threads(1);
    rc = cored_faces_detect(d, img, w, h, w * 3, 0.5f, faces, 64, &n, &err);
    CHECK_MSG(rc == CORED_OK, "%s", err.msg);
    CHECK_MSG(n > 0 && n <= 64, "%d faces", n);
    memcpy(scores1, cored_face_detector_scores(d), sizeof scores1);
    CHECK(cored_face_detector_square(d) == w);
    for (int i = 0; i < n; i++) {
        const cored_face *f = &faces[i];
        CHECK_MSG(f->x0 >= 0 && f->y0 >= 0 && f->x1 <= w && f->y1 <= h && f->x1 > f->x0 && f->y1 > f->y0,
                  "face %d: %g %g %g %g", i, (double)f->x0, (double)f->y0, (double)f->x1, (double)f->y1);
        CHECK(f->score > 0.5f && f->score < 1.0f && (i == 0 || f->score <= faces[i - 1].score));
    }

    /* 2 threads: the same bits; no allocation in a call */
    cored_set_threads(2);
    cored_alloc_stats before = cored_alloc_counts();
    rc = cored_faces_detect(d, img, w, h, w * 3, 0.5f, faces2, 64, &n2, &err);
    cored_alloc_stats after = cored_alloc_counts();
    CHECK(rc == CORED_OK && n2 == n && memcmp(faces, faces2, sizeof(cored_face) * (size_t)n) == 0);
    CHECK(memcmp(scores1, cored_face_detector_scores(d), sizeof scores1) == 0);
    CHECK_MSG(after.allocs == before.allocs, "%llu allocations in a call",
              (unsigned long long)(after.allocs - before.allocs));

    /* strided rows: the same faces */
    size_t stride = (size_t)w * 3 + 5;
    uint8_t *s = calloc(stride, (size_t)h);
    for (int y = 0; y < h; y++) memcpy(s + y * stride, img + (size_t)y * w * 3, (size_t)w * 3);
    rc = cored_faces_detect(d, s, w, h, (int)stride, 0.5f, faces2, 64, &n2, &err);
    CHECK(rc == CORED_OK && n2 == n && memcmp(faces, faces2, sizeof(cored_face) * (size_t)n) == 0);

    /* max caps the list (the best first); max 0 writes nothing */
    rc = cored_faces_detect(d, img, w, h, w * 3, 0.5f, faces2, 1, &n2, &err);
    CHECK(rc == CORED_OK && (n == 0 || (n2 == 1 && !memcmp(faces, faces2, sizeof(cored_face)))));
    rc = cored_faces_detect(d, img, w, h, w * 3, 0.5f, NULL, 0, &n2, &err);
    CHECK(rc == CORED_OK && n2 == 0);
    /* a higher threshold keeps a prefix of the faces */
    float mid = n > 1 ? faces[n / 2].score : 0.9f;
    rc = cored_faces_detect(d, img, w, h, w * 3, mid, faces2, 64, &n2, &err);
    CHECK(rc == CORED_OK && n2 <= n && !memcmp(faces, faces2, sizeof(cored_face) * (size_t)n2));
    for (int i = 0; i < n2; i++) CHECK(faces2[i].score > mid);

    /* a 1 x 1 image and an image wider than tall work */
    rc = cored_faces_detect(d, img, 1, 1, 3, 0.5f, faces2, 64, &n2, &err);
    CHECK_MSG(rc == CORED_OK, "%s", err.msg);
    for (int i = 0; i < n2; i++) CHECK(faces2[i].x1 <= 1 && faces2[i].y1 <= 1);
    rc = cored_faces_detect(d, img, 3, 100, 9, 0.5f, faces2, 64, &n2, &err);
    CHECK(rc == CORED_OK);
    for (int i = 0; i < n2; i++) CHECK(faces2[i].x1 <= 3 && faces2[i].y1 <= 100);

    /* refused arguments, each named */
    struct {
        const char *what;
        cored_face_detector *det;
        const uint8_t *px;
        int w, h, stride;
        float min;
        cored_face *out;
        int max;
        int *n;
        const char *want;
    } bad[] = {
        {"no detector", NULL, img, w, h, w * 3, 0.5f, faces, 8, &n2, "detector"},
        {"no image", d, NULL, w, h, w * 3, 0.5f, faces, 8, &n2, "image"},
        {"no n", d, img, w, h, w * 3, 0.5f, faces, 8, NULL, "n is NULL"},
        {"no out", d, img, w, h, w * 3, 0.5f, NULL, 8, &n2, "out"},
        {"w 0", d, img, 0, h, 0, 0.5f, faces, 8, &n2, "0x173"},
        {"h -1", d, img, w, -1, w * 3, 0.5f, faces, 8, &n2, "301x-1"},
        {"huge", d, img, 100000, 100000, 300000, 0.5f, faces, 8, &n2, "Mpx"},
        {"stride", d, img, w, h, w * 3 - 1, 0.5f, faces, 8, &n2, "stride"},
        {"min 1", d, img, w, h, w * 3, 1.0f, faces, 8, &n2, "min_score"},
        {"min -0.1", d, img, w, h, w * 3, -0.1f, faces, 8, &n2, "min_score"},
        {"min NaN", d, img, w, h, w * 3, NAN, faces, 8, &n2, "min_score"},
        {"max -1", d, img, w, h, w * 3, 0.5f, faces, -1, &n2, "max"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = (cored_error){0};
        n2 = 77;
        rc = cored_faces_detect(bad[i].det, bad[i].px, bad[i].w, bad[i].h, bad[i].stride, bad[i].min, bad[i].out,
                                bad[i].max, bad[i].n, &err);
        CHECK_MSG(rc == CORED_E_ARG && strstr(err.msg, bad[i].want), "%s: rc %d: %s", bad[i].what, rc, err.msg);
        CHECK_MSG(n2 == 77, "%s: n written on failure", bad[i].what);
    }
    free(s);
    free(img);
    cored_face_detector_free(d);
    cored_face_detector_free(NULL);
}

/* Opening must fail with `code` and a message holding the file's path and `want`. */
static void expect_open_fail(const char *what, const char *path, int code, const char *want)
{
    cored_error err = {0};
    cored_face_detector *d = (cored_face_detector *)&err;
    cored_alloc_stats before = cored_alloc_counts();
    int rc = cored_face_detector_open(&d, path, &err);
    cored_alloc_stats after = cored_alloc_counts();
    CHECK_MSG(rc == code && d == NULL, "%s: rc %d, expected %d (%s)", what, rc, code, err.msg);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, want), "%s: message '%s' lacks the path or '%s'", what,
              err.msg, want);
    CHECK_MSG(after.allocs - before.allocs == after.frees - before.frees, "%s: leaked", what);
}

static void test_bad_files(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bad.safetensors", test_tmpdir());

    cored_error err = {0};
    cored_face_detector *d = NULL;
    int rc = cored_face_detector_open(&d, "/nonexistent/face.safetensors", &err);
    CHECK_MSG(rc == CORED_E_IO && !d && strstr(err.msg, "/nonexistent/face.safetensors") &&
                  strstr(err.hint, "make faces-model"), "rc %d: %s (%s)", rc, err.msg, err.hint);
    rc = cored_face_detector_open(&d, NULL, &err);
    CHECK(rc == CORED_E_ARG && strstr(err.hint, CORED_FACE_MODEL_DEFAULT));
    CHECK(cored_face_detector_open(NULL, path, &err) == CORED_E_ARG);

    tensors T;
    synthetic(&T, 12);
    const char *const meta_other[] = {"format", "cored", "model", "tiny"};
    write_file(path, &T, meta_other, 2);
    expect_open_fail("a classifier's format", path, CORED_E_FORMAT, "not a cored face detector");
    write_file(path, &T, meta_other, 0);
    expect_open_fail("no metadata", path, CORED_E_FORMAT, "missing");

    /* a tensor missing (the last one swapped out), of another shape, extra */
    int i = find(&T, "heads.2.cls.bias");
    cored_st_out saved = T.t[i];
    T.t[i] = T.t[T.n - 1];
    T.n--;
    write_file(path, &T, meta_ok, 2);
    expect_open_fail("missing tensor", path, CORED_E_SHAPE, "'heads.2.cls.bias' is missing");
    T.n++;
    T.t[T.n - 1] = T.t[i];
    T.t[i] = saved;

    i = find(&T, "mobilenet.pw4.weight");
    T.t[i].shape[1] = 64;
    T.t[i].shape[0] = 512; /* same number of elements, another shape */
    write_file(path, &T, meta_ok, 2);
    expect_open_fail("wrong shape", path, CORED_E_SHAPE, "'mobilenet.pw4.weight' has shape [512, 64, 1, 1], expected [256, 128, 1, 1]");
    T.t[i].shape[0] = 256;
    T.t[i].shape[1] = 128;

    int one[1] = {1};
    cored_rng r;
    cored_rng_seed(&r, 1, 1);
    add(&T, "extra.tensor", 1, one, 1.0f, 0.0f, &r);
    write_file(path, &T, meta_ok, 2);
    expect_open_fail("extra tensor", path, CORED_E_SHAPE, "'extra.tensor' is not part of the face detector");
    T.n--;
    free(T.data[T.n]);

    /* a NaN (cored_st_write refuses to write one: a marker value is patched in the file) */
    i = find(&T, "extras.3.weight");
    float keep = T.data[i][17];
    T.data[i][17] = 12345.0f;
    write_file(path, &T, meta_ok, 2);
    T.data[i][17] = keep;
    {
        unsigned char *buf = NULL;
        size_t len = 0, at = 0;
        CHECK(cored_read_file(path, (size_t)1 << 30, &buf, &len, &err) == CORED_OK);
        const float marker = 12345.0f, nan = NAN;
        while (buf && at + 4 <= len && memcmp(buf + at, &marker, 4)) at++;
        CHECK(buf && at + 4 <= len);
        if (buf && at + 4 <= len) {
            memcpy(buf + at, &nan, 4);
            FILE *f = fopen(path, "wb");
            CHECK(f && fwrite(buf, 1, len, f) == len);
            if (f) fclose(f);
        }
        cored_free(buf);
    }
    expect_open_fail("NaN", path, CORED_E_NONFINITE, "extras.3.weight");

    i = find(&T, "mobilenet.bn5.running_var");
    keep = T.data[i][3];
    T.data[i][3] = -2.0f;
    write_file(path, &T, meta_ok, 2);
    expect_open_fail("negative variance", path, CORED_E_FORMAT, "'mobilenet.bn5.running_var' holds -2 at index 3");
    T.data[i][3] = keep;

    i = find(&T, "anchors");
    T.data[i][4 * 4000 + 2] += 0.01f;
    write_file(path, &T, meta_ok, 2);
    expect_open_fail("other anchors", path, CORED_E_FORMAT, "[4000, 2]");
    T.data[i][4 * 4000 + 2] -= 0.01f;

    write_file(path, &T, meta_ok, 2);
    rc = cored_face_detector_open(&d, path, &err);
    CHECK_MSG(rc == CORED_OK, "restored file: %s", err.msg);
    cored_face_detector_free(d);
    release(&T);
}

static void test_alloc_failures(void)
{
    /* How many allocations a successful open makes; then each of the detector's own (the
       first ones) and the loader's (the last ones) failing in turn: a clean CORED_E_NOMEM,
       nothing leaked. Those in between are the safetensors reader's (tests/test_safetensors.c). */
    cored_error err = {0};
    cored_face_detector *d = NULL;
    cored_alloc_stats before = cored_alloc_counts();
    int rc = cored_face_detector_open(&d, good_path, &err);
    cored_face_detector_free(d);
    int total = (int)(cored_alloc_counts().allocs - before.allocs);
    CHECK_MSG(rc == CORED_OK && total > 16, "rc %d, %d allocations (%s)", rc, total, err.msg);
    for (int k = 1; k <= total; k++) {
        if (k > 16 && k < total - 3) k = total - 3;
        d = NULL;
        before = cored_alloc_counts();
        cored_alloc_fail_at((uint64_t)k);
        rc = cored_face_detector_open(&d, good_path, &err);
        cored_alloc_fail_at(0);
        cored_face_detector_free(d);
        cored_alloc_stats after = cored_alloc_counts();
        CHECK_MSG(after.allocs - before.allocs == after.frees - before.frees, "k %d: leaked", k);
        CHECK_MSG(rc == CORED_E_NOMEM && !d, "k %d of %d: rc %d (%s)", k, total, rc, err.msg);
    }
}

/* The FaceForensics++ crop: the box x margin as a square around its centre, shifted inside
   the image where it fits, black where it overhangs, then the training resize. */
static void test_crop(void)
{
    int b[4];
    cored_face f = {40, 50, 60, 90, 0.9f}; /* 20 x 40, centre (50, 70) */
    cored_face_square(&f, 1.3f, 200, 100, b);
    CHECK(b[0] == 24 && b[1] == 44 && b[2] == 76 && b[3] == 96); /* side 52 */
    cored_face edge = {0, 0, 30, 30, 0.9f};
    cored_face_square(&edge, 1.3f, 200, 100, b);
    CHECK(b[0] == 0 && b[1] == 0 && b[2] == 39 && b[3] == 39); /* shifted in, not cut */
    cored_face big = {0, 0, 20, 16, 0.9f};
    cored_face_square(&big, 2.0f, 30, 20, b);
    CHECK(b[2] - b[0] == 40 && b[0] == -10 && b[1] == -12); /* larger than the image: centred, overhanging */

    enum { W = 30, H = 20 };
    uint8_t img[H][W][3], out[8 * 8 * 3], want[8 * 8 * 3], sq[40 * 40 * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) img[y][x][0] = (uint8_t)(x * 8), img[y][x][1] = (uint8_t)(y * 12), img[y][x][2] = 200;
    cored_error err = {0};
    CHECK(cored_face_crop(out, 8, &img[0][0][0], W, H, W * 3, &big, 2.0f, &err) == 0);
    memset(sq, 0, sizeof sq);
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 40; x++)
            if (y - 12 >= 0 && y - 12 < H && x - 10 >= 0 && x - 10 < W) memcpy(&sq[(y * 40 + x) * 3], img[y - 12][x - 10], 3);
    cored_resizer rz = {0};
    CHECK(cored_resize_rgb8(want, 8, 8, sq, 40, 40, &rz, &err) == 0);
    cored_resizer_release(&rz);
    CHECK(memcmp(out, want, sizeof out) == 0);
    CHECK(cored_face_crop(out, 8, &img[0][0][0], W, H, W * 3 - 1, &big, 2.0f, &err) == CORED_E_ARG);
    CHECK(cored_face_crop(out, 8, &img[0][0][0], W, H, W * 3, &big, 0.0f, &err) == CORED_E_ARG);
}

int main(void)
{
    RUN(test_relu6);
    RUN(test_anchors);
    RUN(test_decode);
    RUN(test_iou);
    RUN(test_nms);
    RUN(test_preprocess);
    RUN(test_detect);
    RUN(test_bad_files);
    RUN(test_alloc_failures);
    RUN(test_crop);
    return test_finish();
}
