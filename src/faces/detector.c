/*
 * The face detector of cored.h: SSD-MobileNetV1 (face-api.js's ssdMobilenetv1, trained on
 * WIDER FACE) run on cored's ops. faces.h has the pipeline, docs/faces.md the details.
 *
 * The network is a fixed chain, so it is not built with the model machinery of
 * src/models (made for classifiers that train): every layer is a convolution with a bias,
 * most followed by ReLU6, computed with cored_conv_forward (pointwise, depthwise and
 * im2col paths) at TF "same" padding. The depthwise layers' batch norms are folded into
 * their weights and biases when the file is loaded (the pointwise ones were folded by
 * TensorFlow before export). Activations alternate between two buffers; each box
 * predictor writes its outputs straight into the [anchors, 4] and [anchors, 3] arrays,
 * since a 1x1 convolution's NHWC output is already (row, column, anchor)-major.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "faces.h"
#include "io/safetensors.h"
#include "ops/ops.h"

#define INPUT CORED_FACE_INPUT_SIZE
#define N_BLOCKS 13
#define N_EXTRAS 8
#define N_HEADS 6
#define MAX_PIXELS ((size_t)64 << 20)
#define HINT "make the file with `make faces-model` (tools/fetch_faces.sh, then tools/face_convert.py; docs/faces.md)"

enum { BUF_A, BUF_B, BUF_HEAD };

typedef struct {
    cored_conv_shape s;  /* n = 1 */
    float *w, *b;        /* into the weight slab */
    int relu6;
    int out;             /* BUF_A, BUF_B or BUF_HEAD */
} fconv;

/* MobileNetV1: pointwise outputs of blocks 1..13 and the strides of their depthwise
   layers; the SSD's extra layers (out channels, kernel, stride); the box predictors'
   anchors per cell. */
static const int pw_out[N_BLOCKS] = {64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
static const int dw_stride[N_BLOCKS] = {1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1};
static const struct { int cout, k, stride; } extras[N_EXTRAS] = {
    {256, 1, 1}, {512, 3, 2}, {128, 1, 1}, {256, 3, 2}, {128, 1, 1}, {256, 3, 2}, {64, 1, 1}, {128, 3, 2}};
static const int head_anchors[N_HEADS] = {3, 6, 6, 6, 6, 6};

struct cored_face_detector {
    float *slab;              /* every weight and bias */
    size_t n_slab;
    fconv conv0, dw[N_BLOCKS], pw[N_BLOCKS], extra[N_EXTRAS], box[N_HEADS], cls[N_HEADS];
    int head_off[N_HEADS];    /* first anchor of each predictor */
    float *in, *a, *b, *ws;   /* input [512, 512, 3], the two activation buffers, workspace */
    size_t n_a, n_b, n_ws;
    float *enc, *logits;      /* [anchors, 4], [anchors, 3] */
    float *anchors, *boxes, *scores;
    uint64_t *order;
    int *keep;
    int square;
    double macs;
};

/* ---------------------------------------------------------------- building */

/* TF "same" padding of one dimension. */
static void same_pad(int in, int k, int stride, int *lo, int *hi)
{
    int out = (in + stride - 1) / stride;
    int total = (out - 1) * stride + k - in;
    if (total < 0) total = 0;
    *lo = total / 2;
    *hi = total - *lo;
}

/* Sets up a convolution on an h x w x cin input; returns its output's side. */
static int plan_conv(cored_face_detector *d, fconv *c, int side, int cin, int cout, int k,
                     int stride, int groups, int relu6, int out)
{
    int lo, hi;
    same_pad(side, k, stride, &lo, &hi);
    c->s = (cored_conv_shape){.n = 1, .h = side, .w = side, .cin = cin, .cout = cout, .kh = k,
                              .kw = k, .stride = stride, .pad_t = lo, .pad_l = lo, .pad_b = hi,
                              .pad_r = hi, .groups = groups};
    CORED_ASSERT(cored_conv_shape_init(&c->s) == 0);
    c->relu6 = relu6;
    c->out = out;
    size_t numel = (size_t)c->s.oh * c->s.ow * cout;
    if (out == BUF_A && numel > d->n_a) d->n_a = numel;
    if (out == BUF_B && numel > d->n_b) d->n_b = numel;
    size_t ws = cored_conv_ws_floats(&c->s);
    if (ws > d->n_ws) d->n_ws = ws;
    d->n_slab += (size_t)cout * (cin / groups) * k * k + (size_t)cout;
    d->macs += (double)c->s.oh * c->s.ow * cout * (cin / groups) * k * k;
    return c->s.oh;
}

static void plan(cored_face_detector *d)
{
    int side = plan_conv(d, &d->conv0, INPUT, 3, 32, 3, 2, 1, 1, BUF_A);
    int c = 32, head = 0, off = 0;
    for (int i = 0; i < N_BLOCKS; i++) {
        side = plan_conv(d, &d->dw[i], side, c, c, 3, dw_stride[i], c, 1, BUF_B);
        side = plan_conv(d, &d->pw[i], side, c, pw_out[i], 1, 1, 1, 1, BUF_A);
        c = pw_out[i];
        if (i == 10 || i == N_BLOCKS - 1) { /* conv_11 and the backbone's output */
            plan_conv(d, &d->box[head], side, c, 4 * head_anchors[head], 1, 1, 1, 0, BUF_HEAD);
            plan_conv(d, &d->cls[head], side, c, CORED_FACE_CLASSES * head_anchors[head], 1, 1, 1, 0, BUF_HEAD);
            d->head_off[head] = off;
            off += side * side * head_anchors[head];
            head++;
        }
    }
    for (int j = 0; j < N_EXTRAS; j++) {
        side = plan_conv(d, &d->extra[j], side, c, extras[j].cout, extras[j].k, extras[j].stride, 1, 1,
                         j % 2 ? BUF_A : BUF_B);
        c = extras[j].cout;
        if (j % 2) {
            plan_conv(d, &d->box[head], side, c, 4 * head_anchors[head], 1, 1, 1, 0, BUF_HEAD);
            plan_conv(d, &d->cls[head], side, c, CORED_FACE_CLASSES * head_anchors[head], 1, 1, 1, 0, BUF_HEAD);
            d->head_off[head] = off;
            off += side * side * head_anchors[head];
            head++;
        }
    }
    CORED_ASSERT(head == N_HEADS && off == CORED_FACE_ANCHORS);
}

/* ---------------------------------------------------------------- loading */

typedef struct {
    const cored_st_file *f;
    unsigned char *seen;  /* per tensor of the file */
    float *next;          /* where the next weight goes in the slab */
} loader;

static int load_tensor(loader *L, const char *name, int ndim, const int *shape, float *dst,
                       cored_error *err)
{
    const cored_st_tensor *t = cored_st_find(L->f, name);
    if (!t) {
        int rc = CORED_FAIL(err, CORED_E_SHAPE, "%s: tensor '%s' is missing", L->f->path, name);
        cored_error_hint(err, "is it a cored face detector? " HINT);
        return rc;
    }
    int ok = t->ndim == ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        ok = ok && t->shape[i] == shape[i];
        numel *= (size_t)shape[i];
    }
    if (!ok) {
        char want[64] = "", got[64] = "";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", i ? ", " : "", shape[i]);
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        return CORED_FAIL(err, CORED_E_SHAPE, "%s: tensor '%s' has shape [%s], expected [%s]", L->f->path,
                          name, got, want);
    }
    L->seen[t - L->f->tensors] = 1;
    return cored_st_to_f32(L->f, t, dst, numel, 0, err);
}

/* A convolution's weight (OIHW) and, when the file has one, its bias, into the slab (the
   depthwise layers' biases come from their batch norms). */
static int load_conv(loader *L, fconv *c, const char *name, int has_bias, cored_error *err)
{
    char key[CORED_NAME_MAX];
    int cg = c->s.cin / c->s.groups;
    int wshape[4] = {c->s.cout, cg, c->s.kh, c->s.kw}, bshape[1] = {c->s.cout};
    c->w = L->next;
    L->next += (size_t)c->s.cout * cg * c->s.kh * c->s.kw;
    c->b = L->next;
    L->next += (size_t)c->s.cout;
    snprintf(key, sizeof key, "%s.weight", name);
    int rc = load_tensor(L, key, 4, wshape, c->w, err);
    if (rc || !has_bias) return rc;
    snprintf(key, sizeof key, "%s.bias", name);
    return load_tensor(L, key, 1, bshape, c->b, err);
}

/* The batch norm after depthwise layer i (0-based), folded into its weight and bias:
   w' = w * g / sqrt(var + eps), b' = beta - mean * g / sqrt(var + eps), in double. */
static int load_dw_bn(loader *L, fconv *c, int i, float *tmp, cored_error *err)
{
    static const char *const keys[4] = {"weight", "bias", "running_mean", "running_var"};
    int C = c->s.cout, shape[1] = {C};
    for (int k = 0; k < 4; k++) {
        char key[CORED_NAME_MAX];
        snprintf(key, sizeof key, "mobilenet.bn%d.%s", i + 1, keys[k]);
        int rc = load_tensor(L, key, 1, shape, tmp + (size_t)k * C, err);
        if (rc) return rc;
    }
    const float *gamma = tmp, *beta = tmp + C, *mean = tmp + 2 * C, *var = tmp + 3 * C;
    int taps = c->s.kh * c->s.kw;
    for (int ch = 0; ch < C; ch++) {
        double v = (double)var[ch] + CORED_FACE_BN_EPS;
        if (!(v > 0))
            return CORED_FAIL(err, CORED_E_FORMAT,
                              "%s: tensor 'mobilenet.bn%d.running_var' holds %g at index %d: a variance "
                              "must not be negative", L->f->path, i + 1, (double)var[ch], ch);
        double inv = gamma[ch] / sqrt(v);
        for (int k = 0; k < taps; k++) c->w[(size_t)ch * taps + k] = (float)(c->w[(size_t)ch * taps + k] * inv);
        c->b[ch] = (float)(beta[ch] - mean[ch] * inv);
    }
    return CORED_OK;
}

/* The anchors of the file must be the SSD's (cored_face_anchors), which cored uses. */
static int check_anchors(loader *L, const float *anchors, float *tmp, cored_error *err)
{
    int shape[2] = {CORED_FACE_ANCHORS, 4};
    int rc = load_tensor(L, "anchors", 2, shape, tmp, err);
    if (rc) return rc;
    for (int i = 0; i < CORED_FACE_ANCHORS * 4; i++) {
        if (fabsf(tmp[i] - anchors[i]) > 1e-5f)
            return CORED_FAIL(err, CORED_E_FORMAT,
                              "%s: tensor 'anchors' holds %.7g at [%d, %d] where the SSD's anchor generator gives "
                              "%.7g: the file is not the network cored runs", L->f->path, (double)tmp[i], i / 4, i % 4,
                              (double)anchors[i]);
    }
    return CORED_OK;
}

static int load_all(cored_face_detector *d, const cored_st_file *f, cored_error *err)
{
    const char *fmt = cored_st_meta(f, "format");
    if (!fmt || strcmp(fmt, "cored-face-detector") != 0) {
        int rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: not a cored face detector (its metadata's \"format\" is %s%s%s)",
                            f->path, fmt ? "\"" : "", fmt ? fmt : "missing", fmt ? "\"" : "");
        cored_error_hint(err, HINT);
        return rc;
    }
    loader L = {.f = f, .next = d->slab};
    L.seen = cored_calloc((size_t)f->n_tensors + 1, 1);
    float *tmp = cored_alloc(sizeof(float) * CORED_FACE_ANCHORS * 4);
    int rc = L.seen && tmp ? CORED_OK : CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate the loader", f->path);
    char name[CORED_NAME_MAX];
    if (!rc) rc = load_conv(&L, &d->conv0, "mobilenet.conv0", 1, err);
    for (int i = 0; i < N_BLOCKS && !rc; i++) {
        snprintf(name, sizeof name, "mobilenet.dw%d", i + 1);
        rc = load_conv(&L, &d->dw[i], name, 0, err);
        if (!rc) rc = load_dw_bn(&L, &d->dw[i], i, tmp, err);
        snprintf(name, sizeof name, "mobilenet.pw%d", i + 1);
        if (!rc) rc = load_conv(&L, &d->pw[i], name, 1, err);
    }
    for (int j = 0; j < N_EXTRAS && !rc; j++) {
        snprintf(name, sizeof name, "extras.%d", j);
        rc = load_conv(&L, &d->extra[j], name, 1, err);
    }
    for (int h = 0; h < N_HEADS && !rc; h++) {
        snprintf(name, sizeof name, "heads.%d.box", h);
        rc = load_conv(&L, &d->box[h], name, 1, err);
        snprintf(name, sizeof name, "heads.%d.cls", h);
        if (!rc) rc = load_conv(&L, &d->cls[h], name, 1, err);
    }
    if (!rc) rc = check_anchors(&L, d->anchors, tmp, err);
    if (!rc) CORED_ASSERT((size_t)(L.next - d->slab) == d->n_slab);
    for (int i = 0; i < f->n_tensors && !rc; i++) {
        if (!L.seen[i]) {
            rc = CORED_FAIL(err, CORED_E_SHAPE, "%s: tensor '%s' is not part of the face detector", f->path,
                            f->tensors[i].name);
            cored_error_hint(err, "is it a cored face detector? " HINT);
        }
    }
    cored_free(L.seen);
    cored_free(tmp);
    return rc;
}

/* ---------------------------------------------------------------- the API */

int cored_face_detector_open(cored_face_detector **out, const char *path, cored_error *err)
{
    if (!out) return CORED_FAIL(err, CORED_E_ARG, "cored_face_detector_open: out is NULL");
    *out = NULL;
    if (!path || !*path) {
        int rc = CORED_FAIL(err, CORED_E_ARG, "no face detector weights given");
        cored_error_hint(err, "the usual file is " CORED_FACE_MODEL_DEFAULT "; " HINT);
        return rc;
    }
    cored_fp_mode_apply();
    cored_face_detector *d = cored_calloc(1, sizeof *d);
    if (!d) return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate a face detector", path);
    plan(d);
    d->slab = cored_alloc(sizeof(float) * d->n_slab);
    d->in = cored_alloc(sizeof(float) * INPUT * INPUT * 3);
    d->a = cored_alloc(sizeof(float) * d->n_a);
    d->b = cored_alloc(sizeof(float) * d->n_b);
    d->ws = cored_alloc(sizeof(float) * (d->n_ws ? d->n_ws : 1));
    d->enc = cored_alloc(sizeof(float) * CORED_FACE_ANCHORS * 4);
    d->logits = cored_alloc(sizeof(float) * CORED_FACE_ANCHORS * CORED_FACE_CLASSES);
    d->anchors = cored_alloc(sizeof(float) * CORED_FACE_ANCHORS * 4);
    d->boxes = cored_alloc(sizeof(float) * CORED_FACE_ANCHORS * 4);
    d->scores = cored_alloc(sizeof(float) * CORED_FACE_ANCHORS);
    d->order = cored_alloc(sizeof(uint64_t) * CORED_FACE_ANCHORS);
    d->keep = cored_alloc(sizeof(int) * CORED_FACE_ANCHORS);
    int rc = CORED_OK;
    if (!d->slab || !d->in || !d->a || !d->b || !d->ws || !d->enc || !d->logits || !d->anchors || !d->boxes ||
        !d->scores || !d->order || !d->keep) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate a face detector (%zu MB)", path,
                        (sizeof(float) * (d->n_slab + d->n_a + d->n_b + d->n_ws + (size_t)INPUT * INPUT * 3)) >> 20);
    }
    if (!rc) CORED_ASSERT(cored_face_anchors(d->anchors) == CORED_FACE_ANCHORS);
    cored_st_file *f = NULL;
    if (!rc) {
        rc = cored_st_open(&f, path, err);
        if (rc == CORED_E_IO) cored_error_hint(err, HINT);
    }
    if (!rc) rc = load_all(d, f, err);
    cored_st_close(f);
    if (rc) {
        cored_face_detector_free(d);
        return rc;
    }
    *out = d;
    return CORED_OK;
}

void cored_face_detector_free(cored_face_detector *d)
{
    if (!d) return;
    cored_free(d->slab);
    cored_free(d->in);
    cored_free(d->a);
    cored_free(d->b);
    cored_free(d->ws);
    cored_free(d->enc);
    cored_free(d->logits);
    cored_free(d->anchors);
    cored_free(d->boxes);
    cored_free(d->scores);
    cored_free(d->order);
    cored_free(d->keep);
    cored_free(d);
}

static void conv_run(cored_face_detector *d, const fconv *c, float *y, const float *x)
{
    cored_conv_forward(y, x, c->w, c->b, &c->s, d->ws);
    if (c->relu6) cored_relu6_forward(y, y, (size_t)c->s.oh * c->s.ow * c->s.cout);
}

static void heads_run(cored_face_detector *d, int h, const float *x)
{
    conv_run(d, &d->box[h], d->enc + (size_t)d->head_off[h] * 4, x);
    conv_run(d, &d->cls[h], d->logits + (size_t)d->head_off[h] * CORED_FACE_CLASSES, x);
}

static void forward(cored_face_detector *d)
{
    conv_run(d, &d->conv0, d->a, d->in);
    int head = 0;
    for (int i = 0; i < N_BLOCKS; i++) {
        conv_run(d, &d->dw[i], d->b, d->a);
        conv_run(d, &d->pw[i], d->a, d->b);
        if (i == 10 || i == N_BLOCKS - 1) heads_run(d, head++, d->a);
    }
    for (int j = 0; j < N_EXTRAS; j++) {
        if (j % 2 == 0) {
            conv_run(d, &d->extra[j], d->b, d->a);
        } else {
            conv_run(d, &d->extra[j], d->a, d->b);
            heads_run(d, head++, d->a);
        }
    }
}

int cored_faces_detect(cored_face_detector *d, const uint8_t *rgb, int w, int h, int stride,
                       float min_score, cored_face *out, int max, int *n, cored_error *err)
{
    if (!d || !rgb || !n || (max > 0 && !out))
        return CORED_FAIL(err, CORED_E_ARG, "cored_faces_detect: %s is NULL",
                          !d ? "the detector" : !rgb ? "the image" : !n ? "n" : "out");
    if (w < 1 || h < 1 || (size_t)w * (size_t)h > MAX_PIXELS)
        return CORED_FAIL(err, CORED_E_ARG, "cored_faces_detect: an image of %dx%d pixels (1 to %zu Mpx are accepted)",
                          w, h, MAX_PIXELS >> 20);
    if (stride < 3 * w)
        return CORED_FAIL(err, CORED_E_ARG, "cored_faces_detect: a row stride of %d bytes is shorter than %d RGB "
                          "pixels (%d bytes)", stride, w, 3 * w);
    if (!(min_score >= 0.0f && min_score < 1.0f))
        return CORED_FAIL(err, CORED_E_ARG, "cored_faces_detect: min_score %g is outside [0, 1)", (double)min_score);
    if (max < 0) return CORED_FAIL(err, CORED_E_ARG, "cored_faces_detect: max is %d", max);

    cored_face_preprocess(d->in, INPUT, rgb, w, h, (size_t)stride);
    forward(d);
    for (int a = 0; a < CORED_FACE_ANCHORS; a++) {
        /* tf.sigmoid of class 1's logit, then the decoded box */
        double z = d->logits[(size_t)a * CORED_FACE_CLASSES + 1];
        d->scores[a] = (float)(1.0 / (1.0 + exp(-z)));
        cored_face_decode(d->boxes + 4 * (size_t)a, d->enc + 4 * (size_t)a, d->anchors + 4 * (size_t)a);
    }
    d->square = w > h ? w : h;
    int k = cored_face_nms(d->keep, CORED_FACE_ANCHORS, d->boxes, d->scores, CORED_FACE_ANCHORS, CORED_FACE_NMS_IOU,
                           min_score, d->order);
    int m = 0;
    double S = d->square;
    for (int i = 0; i < k && m < max; i++) {
        const float *b = d->boxes + 4 * (size_t)d->keep[i];
        /* face-api clips to the padded square; cored to the image itself */
        double y0 = fmax(b[0], 0.0) * S, x0 = fmax(b[1], 0.0) * S;
        double y1 = fmin(fmin(b[2], 1.0) * S, h), x1 = fmin(fmin(b[3], 1.0) * S, w);
        if (!(x1 > x0 && y1 > y0)) continue; /* wholly in the padding, or empty */
        out[m++] = (cored_face){.x0 = (float)x0, .y0 = (float)y0, .x1 = (float)x1, .y1 = (float)y1,
                                .score = d->scores[d->keep[i]]};
    }
    *n = m;
    return CORED_OK;
}

const float *cored_face_detector_input(const cored_face_detector *d) { return d->in; }
const float *cored_face_detector_boxes(const cored_face_detector *d) { return d->boxes; }
const float *cored_face_detector_scores(const cored_face_detector *d) { return d->scores; }
int cored_face_detector_square(const cored_face_detector *d) { return d->square; }
double cored_face_detector_macs(const cored_face_detector *d) { return d->macs; }
