/*
 * Model machinery tests: parameter tables of the three architectures (names, shapes,
 * counts), any batch up to the built maximum, inference build == training build in eval
 * mode, copying slabs into a teacher, the feature tap and its gradient (directional
 * derivative), zero allocations per training step after warm-up (counting allocator),
 * BN calibration for benchmarks, and clean failure under injected allocation failures.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "harness.h"
#include "io/checkpoint.h"
#include "models/model.h"
#include "ops/ops.h"
#include "train/optim.h"

static void fill_input(cored_model *m, int n, uint64_t seed)
{
    cored_rng r;
    cored_rng_seed(&r, seed, 9);
    int s = cored_model_size(m);
    float *x = cored_model_input(m);
    for (size_t i = 0; i < (size_t)n * s * s * 3; i++) x[i] = 2 * cored_rng_uniform(&r) - 1;
}

static size_t count_params(cored_model *m)
{
    size_t n = 0;
    for (int i = 0; i < cored_model_param_count(m); i++)
        if (cored_param_trainable(cored_model_param(m, i)->kind)) n += cored_model_param(m, i)->numel;
    return n;
}

static void test_param_tables(void)
{
    static const struct {
        const char *arch;
        size_t trainable;
        const char *names[6];
        int tap_c, tap_hw;
    } cases[] = {
        /* trainable counts are those of the PyTorch twins (sum of p.numel() over parameters()) */
        {"tiny", 65890, {"conv1.weight", "bn4.running_var", "fc.weight", "fc.bias"}, 64, 8},
        {"xception", 20811050,
         {"block1.rep.0.conv1.weight", "block1.rep.1.running_mean", "block2.rep.1.pointwise.weight",
          "block12.skipbn.weight", "conv4.pointwise.weight", "last_linear.bias"},
         2048, 4},
        {"efficientnet-b0", 4010110,
         {"_conv_stem.weight", "_blocks.0._se_reduce.bias", "_blocks.15._project_conv.weight",
          "_blocks.1._expand_conv.weight", "_bn1.running_var", "_fc.weight"},
         1280, 4},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cored_model *m = NULL;
        cored_error err = {0};
        int rc = cored_model_create(&m, cases[k].arch, 128, 2, CORED_BUILD_INFER, &err);
        CHECK_MSG(rc == 0, "%s: %s", cases[k].arch, err.msg);
        if (rc) continue;
        CHECK_MSG(count_params(m) == cases[k].trainable, "%s: %zu trainable parameters, want %zu",
                  cases[k].arch, count_params(m), cases[k].trainable);
        for (int i = 0; i < 6 && cases[k].names[i]; i++)
            CHECK_MSG(cored_model_param_find(m, cases[k].names[i]) >= 0, "%s: no parameter %s",
                      cases[k].arch, cases[k].names[i]);
        int h, w, c;
        cored_model_features(m, &h, &w, &c);
        CHECK_MSG(c == cases[k].tap_c && h == cases[k].tap_hw && w == cases[k].tap_hw,
                  "%s: tap %dx%dx%d", cases[k].arch, c, h, w);
        cored_model_free(m);
    }
    /* the block1 unit indices count the ReLU modules, as nn.Sequential does */
    cored_model *m = NULL;
    CHECK(cored_model_create(&m, "xception", 128, 1, CORED_BUILD_INFER, NULL) == 0);
    CHECK(cored_model_param_find(m, "block1.rep.3.pointwise.weight") >= 0);
    CHECK(cored_model_param_find(m, "block2.rep.4.pointwise.weight") >= 0);
    CHECK(cored_model_param_find(m, "block12.rep.5.weight") >= 0);
    CHECK(cored_model_param_find(m, "block4.skip.weight") < 0); /* identity skip */
    const cored_param *p = cored_model_param(m, cored_model_param_find(m, "block1.rep.0.conv1.weight"));
    CHECK(p && p->ndim == 4 && p->shape[0] == 64 && p->shape[1] == 1 && p->shape[2] == 3);
    cored_model_free(m);
}

static void test_bad_arguments(void)
{
    cored_model *m = (cored_model *)1;
    cored_error err = {0};
    CHECK(cored_model_create(&m, "resnet50", 128, 2, CORED_BUILD_INFER, &err) == CORED_E_ARG);
    CHECK(m == NULL && strstr(err.msg, "resnet50") && strstr(err.msg, "xception"));
    CHECK(cored_model_create(&m, "xception", 32, 2, CORED_BUILD_INFER, &err) == CORED_E_ARG);
    CHECK(strstr(err.msg, "64") != NULL);
    CHECK(cored_model_create(&m, "tiny", 128, 0, CORED_BUILD_INFER, &err) == CORED_E_ARG);
    CHECK(cored_model_create(&m, "tiny", 64, 4, CORED_BUILD_TRAIN, &err) == 0);
    CHECK(cored_model_forward(m, 5, CORED_FWD_EVAL, 0, &err) == CORED_E_ARG);
    CHECK(cored_model_backward(m, NULL, NULL, &err) == CORED_E_ARG); /* before any forward */
    cored_model_free(m);
    /* one image cannot give batch statistics at 1x1 spatial maps */
    CHECK(cored_model_create(&m, "tiny", 16, 1, CORED_BUILD_TRAIN, &err) == 0);
    CHECK(cored_model_forward(m, 1, CORED_FWD_BN_BATCH, 0, &err) == CORED_E_ARG);
    cored_model_free(m);
}

/* Smaller batches in a bigger build, inference build vs training build, teacher copy. */
static void test_builds_agree(void)
{
    const char *archs[] = {"tiny", "efficientnet-b0"};
    for (int a = 0; a < 2; a++) {
        cored_model *big = NULL, *small = NULL, *inf = NULL;
        CHECK(cored_model_create(&big, archs[a], 64, 6, CORED_BUILD_TRAIN, NULL) == 0);
        CHECK(cored_model_create(&small, archs[a], 64, 3, CORED_BUILD_TRAIN, NULL) == 0);
        CHECK(cored_model_create(&inf, archs[a], 64, 3, CORED_BUILD_INFER, NULL) == 0);
        if (!big || !small || !inf) return;
        cored_model_init_params(big, 5);
        CHECK(cored_model_copy_params(small, big, NULL) == 0);
        CHECK(cored_model_copy_params(inf, big, NULL) == 0);
        fill_input(big, 6, 1);
        CHECK(cored_model_forward(big, 6, CORED_FWD_EVAL, 0, NULL) == 0);
        fill_input(big, 3, 1); /* the same first three images, now a batch of 3 */
        fill_input(small, 3, 1);
        fill_input(inf, 3, 1);
        CHECK(cored_model_forward(big, 3, CORED_FWD_EVAL, 0, NULL) == 0);
        CHECK(cored_model_forward(small, 3, CORED_FWD_EVAL, 0, NULL) == 0);
        CHECK(cored_model_forward(inf, 3, CORED_FWD_EVAL, 0, NULL) == 0);
        check_close_ff("batch 3 of 6 vs built for 3", cored_model_logits(big), cored_model_logits(small), 6, 1e-6, 1e-5);
        check_close_ff("inference build vs training build", cored_model_logits(inf), cored_model_logits(small), 6, 1e-6, 1e-5);
        int h, w, c;
        const float *f1 = cored_model_features(inf, &h, &w, &c), *f2 = cored_model_features(small, NULL, NULL, NULL);
        check_close_ff("tap of both builds", f1, f2, (size_t)3 * h * w * c, 1e-6, 1e-5);
        /* the input survives a forward in both builds */
        float first = cored_model_input(inf)[0];
        fill_input(inf, 1, 1);
        CHECK(cored_model_input(inf)[0] == first);
        cored_model *other = NULL;
        CHECK(cored_model_create(&other, a ? "tiny" : "xception", 64, 1, CORED_BUILD_INFER, NULL) == 0);
        CHECK(cored_model_copy_params(other, big, NULL) == CORED_E_SHAPE);
        cored_model_free(other);
        cored_model_free(big);
        cored_model_free(small);
        cored_model_free(inf);
    }
}

/* The tap gradient enters at the right place: for tiny, whose head is ReLU -> average pool
   -> fc, the gradient that logits * Q sends to the tap is known in closed form. Injecting it
   as dfeatures (with zero dlogits) must give the same gradients below the tap as
   backpropagating Q from the logits, and no gradient in the head. */
static void test_tap_gradient(void)
{
    for (int flags = CORED_FWD_EVAL; flags <= CORED_FWD_BN_BATCH; flags++) {
        const int n = 3;
        cored_model *m = NULL;
        CHECK(cored_model_create(&m, "tiny", 64, n, CORED_BUILD_TRAIN, NULL) == 0);
        if (!m) return;
        cored_model_init_params(m, 11);
        fill_input(m, n, 4);
        CHECK(cored_model_forward(m, n, flags, 0, NULL) == 0);
        int h, w, c;
        const float *f = cored_model_features(m, &h, &w, &c);
        const float *fc = cored_model_param_data(m, cored_model_param_find(m, "fc.weight"));
        float q[6] = {0.3f, -0.7f, 1.1f, 0.2f, -0.4f, 0.9f}, zero[6] = {0};
        size_t nf = (size_t)n * h * w * c, nw;
        float *dfeat = calloc(nf, sizeof(float));
        for (int i = 0; i < n; i++)
            for (int p = 0; p < h * w; p++)
                for (int j = 0; j < c; j++) {
                    size_t o = ((size_t)i * h * w + p) * c + j;
                    if (f[o] > 0) dfeat[o] = (q[2 * i] * fc[j] + q[2 * i + 1] * fc[c + j]) / (h * w);
                }
        cored_model_grads(m, &nw);
        float *g_logits = malloc(sizeof(float) * nw), *g_tap = malloc(sizeof(float) * nw);
        cored_model_zero_grad(m);
        CHECK(cored_model_backward(m, q, NULL, NULL) == 0);
        memcpy(g_logits, cored_model_grads(m, NULL), sizeof(float) * nw);
        CHECK(cored_model_backward(m, zero, dfeat, NULL) == CORED_E_ARG); /* one per forward */
        CHECK(cored_model_forward(m, n, flags, 0, NULL) == 0);
        cored_model_zero_grad(m);
        CHECK(cored_model_backward(m, zero, dfeat, NULL) == 0);
        memcpy(g_tap, cored_model_grads(m, NULL), sizeof(float) * nw);
        for (int i = 0; i < cored_model_param_count(m); i++) {
            const cored_param *p = cored_model_param(m, i);
            if (!cored_param_trainable(p->kind)) continue;
            if (strncmp(p->name, "fc.", 3) == 0) {
                for (size_t k = 0; k < p->numel; k++) CHECK(g_tap[p->offset + k] == 0.0f);
            } else {
                char what[160];
                snprintf(what, sizeof what, "%s BN: gradient of %.80s through the tap",
                         flags ? "train" : "eval", p->name);
                check_close_ff(what, g_tap + p->offset, g_logits + p->offset, p->numel, 1e-7, 1e-4);
            }
        }
        free(dfeat), free(g_logits), free(g_tap);
        cored_model_free(m);
    }
}

/* After warm-up a training step (forward, loss, backward, optimiser) allocates nothing;
   nor does an inference forward. */
static void test_no_allocation_in_step(void)
{
    const char *archs[] = {"tiny", "efficientnet-b0"};
    for (int a = 0; a < 2; a++) {
        cored_model *m = NULL, *t = NULL;
        cored_optim *o = NULL;
        CHECK(cored_model_create(&m, archs[a], 64, 4, CORED_BUILD_TRAIN, NULL) == 0);
        CHECK(cored_model_create(&t, archs[a], 64, 4, CORED_BUILD_INFER, NULL) == 0);
        if (!m || !t) return;
        cored_model_init_params(m, 1);
        size_t nw;
        float *w = cored_model_weights(m, &nw);
        cored_optim_cfg cfg = cored_optim_defaults(CORED_OPT_SGD);
        CHECK(cored_optim_create(&o, &cfg, nw, NULL) == 0);
        int labels[4] = {0, 1, 0, 1};
        float dl[8];
        fill_input(m, 4, 2);
        fill_input(t, 4, 2);
        cored_alloc_stats before = {0};
        for (int step = 0; step < 5; step++) {
            if (step == 2) before = cored_alloc_counts();
            CHECK(cored_model_copy_params(t, m, NULL) == 0);
            CHECK(cored_model_forward(t, 4, CORED_FWD_EVAL, 0, NULL) == 0);
            CHECK(cored_model_forward(m, 4, CORED_FWD_BN_BATCH | CORED_FWD_STOCHASTIC, step, NULL) == 0);
            cored_softmax_ce(dl, cored_model_logits(m), labels, 4, 2, 1.0f);
            cored_model_zero_grad(m);
            CHECK(cored_model_backward(m, dl, NULL, NULL) == 0);
            cored_optim_step(o, w, cored_model_grads(m, NULL));
        }
        cored_alloc_stats after = cored_alloc_counts();
        CHECK_MSG(after.allocs == before.allocs && after.frees == before.frees,
                  "%s: %llu allocations and %llu frees in 3 steps after warm-up", archs[a],
                  (unsigned long long)(after.allocs - before.allocs),
                  (unsigned long long)(after.frees - before.frees));
        cored_optim_free(o);
        cored_model_free(m);
        cored_model_free(t);
    }
}

/* Serialises every tensor of m as PyTorch's state_dict holds them, with an I64
   `num_batches_tracked` after each BN's running variance; the tensor named `flat` (if any)
   is written flattened to one dimension. */
static cored_st_file *state_dict_file(cored_model *m, const char *label, const char *flat,
                                      const char *const *meta)
{
    static const int64_t nbt = 7;
    int np = cored_model_param_count(m), nt = 0;
    cored_st_out *t = calloc(2 * (size_t)np, sizeof *t);
    char(*names)[CORED_NAME_MAX + 32] = calloc((size_t)np, sizeof *names);
    if (!t || !names) return NULL;
    for (int i = 0; i < np; i++) {
        const cored_param *p = cored_model_param(m, i);
        cored_st_out o = {.name = p->name, .ndim = p->ndim, .data = cored_model_param_data(m, i)};
        for (int d = 0; d < p->ndim; d++) o.shape[d] = p->shape[d];
        if (flat && strcmp(flat, p->name) == 0) {
            o.ndim = 1;
            o.shape[0] = (int64_t)p->numel;
        }
        t[nt++] = o;
        if (p->kind == CORED_PARAM_BN_VAR) {
            snprintf(names[i], sizeof names[i], "%.*s.num_batches_tracked",
                     (int)(strlen(p->name) - strlen(".running_var")), p->name);
            t[nt++] = (cored_st_out){.name = names[i], .ndim = 0, .raw = &nbt,
                                     .raw_dtype = CORED_DT_I64};
        }
    }
    unsigned char *buf = NULL;
    size_t len = 0;
    cored_st_file *f = NULL;
    cored_error err = {0};
    CHECK_MSG(cored_st_serialize(&buf, &len, t, nt, meta, meta ? 1 : 0, &err) == 0, "%s", err.msg);
    if (buf) CHECK_MSG(cored_st_parse(&f, buf, len, label, &err) == 0, "%s", err.msg);
    cored_free(buf);
    free(t);
    free(names);
    return f;
}

/* Checkpoints: a PyTorch state_dict of each big model, num_batches_tracked included, loads
   into a fresh model bit for bit; weights of another architecture, or with one tensor of
   another shape, are refused with the names that do not fit and m stays unchanged. */
static void test_checkpoints(void)
{
    const char *archs[] = {"xception", "efficientnet-b0"};
    for (int a = 0; a < 2; a++) {
        cored_model *src = NULL, *dst = NULL, *other = NULL;
        CHECK(cored_model_create(&src, archs[a], 64, 1, CORED_BUILD_INFER, NULL) == 0);
        CHECK(cored_model_create(&dst, archs[a], 96, 2, CORED_BUILD_TRAIN, NULL) == 0);
        CHECK(cored_model_create(&other, archs[1 - a], 64, 1, CORED_BUILD_INFER, NULL) == 0);
        if (!src || !dst || !other) return;
        cored_model_init_params(src, 3);
        cored_model_init_params(other, 4);
        const char *meta_src[] = {"model", archs[a]}, *meta_other[] = {"model", archs[1 - a]};
        cored_st_file *f = state_dict_file(src, "sd", NULL, meta_src);
        int n_nbt = 0, n_bn = 0;
        for (int j = 0; f && j < f->n_tensors; j++)
            n_nbt += strstr(f->tensors[j].name, "num_batches_tracked") != NULL;
        for (int i = 0; i < cored_model_param_count(src); i++)
            n_bn += cored_model_param(src, i)->kind == CORED_PARAM_BN_VAR;
        CHECK_MSG(n_nbt == n_bn && n_bn >= 40, "%s: %d num_batches_tracked tensors, %d BN layers",
                  archs[a], n_nbt, n_bn);
        cored_error err = {0};
        CHECK_MSG(f && cored_model_load_file(dst, f, &err) == 0, "%s: %s", archs[a], err.msg);
        size_t nw, nb, nw2, nb2;
        const float *w = cored_model_weights(src, &nw), *b = cored_model_buffers(src, &nb);
        float *w2 = cored_model_weights(dst, &nw2), *b2 = cored_model_buffers(dst, &nb2);
        CHECK(nw == nw2 && nb == nb2 && memcmp(w, w2, 4 * nw) == 0 && memcmp(b, b2, 4 * nb) == 0);
        cored_st_close(f);

        /* another architecture: missing, unexpected and mis-shaped names, with a hint */
        f = state_dict_file(other, "other.safetensors", NULL, meta_other);
        memset(w2, 0, 4 * nw2);
        int rc = f ? cored_model_load_file(dst, f, &err) : -1;
        CHECK_MSG(rc == CORED_E_SHAPE, "%s: rc %d", archs[a], rc);
        CHECK_MSG(strstr(err.msg, "other.safetensors does not fit model") &&
                      strstr(err.msg, "missing (") && strstr(err.msg, "unexpected (") &&
                      strstr(err.msg, a ? "conv1.weight" : "_conv_stem.weight") &&
                      !strstr(err.msg, "num_batches_tracked"),
                  "%s: %s", archs[a], err.msg);
        CHECK_MSG(strstr(err.hint, "--model") && strstr(err.hint, archs[1 - a]), "hint: %s", err.hint);
        size_t nonzero = 0;
        for (size_t k = 0; k < nw2; k++) nonzero += w2[k] != 0.0f;
        CHECK_MSG(nonzero == 0, "%zu weights changed by a refused load", nonzero);
        cored_st_close(f);

        /* the right architecture with one tensor of another shape: named with both shapes */
        const char *bad = a ? "_blocks.3._depthwise_conv.weight" : "block2.rep.1.conv1.weight";
        f = state_dict_file(src, "flat", bad, meta_src);
        rc = f ? cored_model_load_file(dst, f, &err) : -1;
        char want[160];
        snprintf(want, sizeof want, "1 with another shape (%s: file [%zu], model [", bad,
                 cored_model_param(dst, cored_model_param_find(dst, bad))->numel);
        CHECK_MSG(rc == CORED_E_SHAPE && strstr(err.msg, want) && !strstr(err.msg, "missing") &&
                      !strstr(err.msg, "unexpected"),
                  "%s: %s", archs[a], err.msg);
        cored_st_close(f);
        cored_model_free(src);
        cored_model_free(dst);
        cored_model_free(other);
    }
}

/* Initial weights with another classifier (an ImageNet backbone: [1000, C]): --init-head
   reset loads every other tensor by name, bit for bit, and gives the classifier the values
   a fresh model's init has; keep refuses the file with a hint at reset; a backbone tensor of
   another shape, or a classifier over other features, is refused by name, m unchanged. */
static void test_backbone_init(void)
{
    cored_model *src = NULL, *dst = NULL, *fresh = NULL;
    CHECK(cored_model_create(&src, "tiny", 32, 1, CORED_BUILD_INFER, NULL) == 0);
    CHECK(cored_model_create(&dst, "tiny", 32, 2, CORED_BUILD_TRAIN, NULL) == 0);
    CHECK(cored_model_create(&fresh, "tiny", 32, 1, CORED_BUILD_INFER, NULL) == 0);
    if (!src || !dst || !fresh) return;
    CHECK(!strcmp(cored_model_head(src), "fc") && cored_model_param_is_head(src, "fc.bias") &&
          !cored_model_param_is_head(src, "fc") && !cored_model_param_is_head(src, "conv1.weight"));
    cored_model_init_params(src, 3);
    size_t nb;
    float *b = cored_model_buffers(src, &nb);
    for (size_t k = 0; k < nb; k++) b[k] = 0.5f + 0.001f * (float)k; /* not the defaults */
    cored_model_init_params(fresh, 9);
    static float head_w[1000 * 64], head_b[1000];
    for (int k = 0; k < 1000 * 64; k++) head_w[k] = 0.01f * (float)(k % 97);
    const int np = cored_model_param_count(src);
    cored_st_out t[64];
    CHECK(np <= 64);
    char path[3][4200];
    const char *bad_names[3] = {NULL, "conv2.weight", "fc.weight"};
    for (int v = 0; v < 3; v++) {
        snprintf(path[v], sizeof path[v], "%s/backbone%d.safetensors", test_tmpdir(), v);
        for (int i = 0; i < np && i < 64; i++) {
            const cored_param *p = cored_model_param(src, i);
            t[i] = (cored_st_out){.name = p->name, .ndim = p->ndim, .data = cored_model_param_data(src, i)};
            for (int d = 0; d < p->ndim; d++) t[i].shape[d] = p->shape[d];
            if (!strcmp(p->name, "fc.weight")) t[i].shape[0] = 1000, t[i].data = head_w;
            if (!strcmp(p->name, "fc.bias")) t[i].shape[0] = 1000, t[i].data = head_b;
            if (bad_names[v] && !strcmp(p->name, bad_names[v])) t[i].shape[1] /= 2;
        }
        cored_error err = {0};
        CHECK_MSG(cored_st_write(path[v], t, np, NULL, 0, &err) == 0, "%s", err.msg);
    }
    cored_error err = {0};
    CHECK_MSG(cored_model_load_init(dst, path[0], CORED_INIT_HEAD_RESET, 9, &err) == 0, "%s", err.msg);
    int same_body = 1, same_head = 1;
    for (int i = 0; i < np; i++) {
        const cored_param *p = cored_model_param(dst, i);
        const float *want = cored_model_param_is_head(dst, p->name) ? cored_model_param_data(fresh, i)
                                                                     : cored_model_param_data(src, i);
        int same = memcmp(cored_model_param_data(dst, i), want, 4 * p->numel) == 0;
        if (cored_model_param_is_head(dst, p->name)) same_head &= same;
        else same_body &= same;
    }
    CHECK_MSG(same_body, "every backbone tensor (BN running statistics too) as in the file");
    CHECK_MSG(same_head, "the classifier as a fresh model's init from the same seed");

    size_t nw;
    float *w = cored_model_weights(dst, &nw), *before = malloc(4 * nw);
    if (!before) return;
    memcpy(before, w, 4 * nw);
    int rc = cored_model_load_init(dst, path[0], CORED_INIT_HEAD_KEEP, 9, &err);
    CHECK_MSG(rc == CORED_E_SHAPE && strstr(err.msg, "backbone0.safetensors does not fit model 'tiny'") &&
                  strstr(err.msg, "fc.weight: file [1000,64], model [2,64]") &&
                  strstr(err.hint, "--init-head reset") && strstr(err.hint, "1000 classes"),
              "keep: %s / %s", err.msg, err.hint);
    rc = cored_model_load_init(dst, path[1], CORED_INIT_HEAD_RESET, 9, &err);
    CHECK_MSG(rc == CORED_E_SHAPE && strstr(err.msg, "backbone1.safetensors") &&
                  strstr(err.msg, "1 with another shape (conv2.weight: file [32,16,3,3], model [32,32,3,3])") &&
                  !strstr(err.hint, "--init-head"),
              "reset, a backbone tensor of another shape: %s / %s", err.msg, err.hint);
    rc = cored_model_load_init(dst, path[2], CORED_INIT_HEAD_RESET, 9, &err);
    CHECK_MSG(rc == CORED_E_SHAPE && strstr(err.msg, "fc.weight: file [1000,32], model [2,64]"),
              "reset, a classifier over other features: %s", err.msg);
    CHECK_MSG(memcmp(before, w, 4 * nw) == 0, "a refused load changed the weights");
    CHECK(cored_init_head_parse("reset") == CORED_INIT_HEAD_RESET && cored_init_head_parse("keep") == 0 &&
          cored_init_head_parse("Reset") < 0 && !strcmp(cored_init_head_name(CORED_INIT_HEAD_RESET), "reset"));
    free(before);
    cored_model_free(src);
    cored_model_free(dst);
    cored_model_free(fresh);
}

/* A training step gives the same bits for 1, 2 and 4 threads (fixed reduction partitions,
   GEMM blocks that BLAS computes alike): logits, the tap and every parameter gradient. */
static void test_thread_invariance(void)
{
    const char *archs[] = {"tiny", "efficientnet-b0", "xception"};
    for (int a = 0; a < 3; a++) {
        cored_model *m = NULL;
        CHECK(cored_model_create(&m, archs[a], 64, 3, CORED_BUILD_TRAIN, NULL) == 0);
        if (!m) return;
        cored_model_init_params(m, 21);
        size_t nw, nl = 6;
        cored_model_grads(m, &nw);
        int h, w, c;
        cored_model_features(m, &h, &w, &c);
        size_t nf = (size_t)3 * h * w * c;
        float *g[3], *f[3], z[3][6];
        int labels[3] = {0, 1, 1};
        for (int t = 0; t < 3; t++) {
            cored_set_threads(1 << t);
            fill_input(m, 3, 8);
            cored_model_zero_grad(m);
            CHECK(cored_model_forward(m, 3, CORED_FWD_BN_BATCH, 0, NULL) == 0);
            memcpy(z[t], cored_model_logits(m), sizeof z[t]);
            f[t] = malloc(sizeof(float) * nf);
            memcpy(f[t], cored_model_features(m, NULL, NULL, NULL), sizeof(float) * nf);
            float dl[6];
            cored_softmax_ce(dl, cored_model_logits(m), labels, 3, 2, 1.0f);
            CHECK(cored_model_backward(m, dl, NULL, NULL) == 0);
            g[t] = malloc(sizeof(float) * nw);
            memcpy(g[t], cored_model_grads(m, NULL), sizeof(float) * nw);
        }
        for (int t = 1; t < 3; t++) {
            CHECK_MSG(memcmp(z[0], z[t], sizeof(float) * nl) == 0, "%s: logits differ (%d threads)", archs[a], 1 << t);
            CHECK_MSG(memcmp(f[0], f[t], sizeof(float) * nf) == 0, "%s: features differ (%d threads)", archs[a], 1 << t);
            CHECK_MSG(memcmp(g[0], g[t], sizeof(float) * nw) == 0, "%s: gradients differ (%d threads)", archs[a], 1 << t);
        }
        for (int t = 0; t < 3; t++) free(g[t]), free(f[t]);
        cored_model_free(m);
    }
    cored_set_threads(2);
}

/* max|got - want| / max|want| */
static double max_rel_ff(const float *got, const float *want, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (e > num || e != e) num = e;
        if (fabs(want[i]) > den) den = fabs(want[i]);
    }
    return den > 0 ? num / den : num;
}

/* An inference build folds every BN into its convolution for eval-mode forwards: logits
   and the tap agree with the unfolded model (the training build's eval forward) within
   1e-5 relative, on random weights and BN statistics; the fold follows the parameters
   (copied again after a change); a batch-statistics forward of the inference build runs
   unfolded and equals the training build's; the folded forward is the same bits for 1 and
   4 threads. */
static void test_folded_inference(void)
{
    const char *archs[] = {"tiny", "xception", "efficientnet-b0"};
    for (int a = 0; a < 3; a++) {
        const int n = 2, size = a ? 64 : 32;
        cored_model *ref = NULL, *inf = NULL;
        CHECK(cored_model_create(&ref, archs[a], size, n, CORED_BUILD_TRAIN, NULL) == 0);
        CHECK(cored_model_create(&inf, archs[a], size, n, CORED_BUILD_INFER, NULL) == 0);
        if (!ref || !inf) return;
        int h, w, c;
        cored_model_features(ref, &h, &w, &c);
        size_t nf = (size_t)n * h * w * c;
        float *tap = malloc(sizeof(float) * nf), z1[4];
        for (int round = 0; round < 2; round++) {
            cored_model_init_params(ref, 31 + (uint64_t)round);
            cored_rng r;
            cored_rng_seed(&r, 77 + (uint64_t)round, 3);
            for (int i = 0; i < cored_model_param_count(ref); i++) { /* BN away from identity */
                const cored_param *p = cored_model_param(ref, i);
                float *d = cored_model_param_data(ref, i);
                for (size_t k = 0; k < p->numel; k++) {
                    float u = cored_rng_uniform(&r);
                    if (p->kind == CORED_PARAM_BN_WEIGHT) d[k] = 0.5f + u;
                    else if (p->kind == CORED_PARAM_BN_BIAS || p->kind == CORED_PARAM_BN_MEAN) d[k] = 0.4f * (u - 0.5f);
                    else if (p->kind == CORED_PARAM_BN_VAR) d[k] = 0.5f + u;
                }
            }
            CHECK(cored_model_copy_params(inf, ref, NULL) == 0);
            fill_input(ref, n, 12 + (uint64_t)round);
            fill_input(inf, n, 12 + (uint64_t)round);
            CHECK(cored_model_forward(ref, n, CORED_FWD_EVAL, 0, NULL) == 0);
            CHECK(cored_model_forward(inf, n, CORED_FWD_EVAL, 0, NULL) == 0);
            double el = max_rel_ff(cored_model_logits(inf), cored_model_logits(ref), (size_t)n * 2);
            double ef = max_rel_ff(cored_model_features(inf, NULL, NULL, NULL),
                                   cored_model_features(ref, NULL, NULL, NULL), nf);
            CHECK_MSG(el <= 1e-5, "%s round %d: folded logits off by %.3g relative", archs[a], round, el);
            CHECK_MSG(ef <= 1e-5, "%s round %d: folded tap off by %.3g relative", archs[a], round, ef);
            if (round == 1) printf("  %s: folded vs unfolded, logits %.2g, tap %.2g relative\n", archs[a], el, ef);
        }
        /* thread invariance of the folded forward */
        cored_set_threads(1);
        CHECK(cored_model_forward(inf, n, CORED_FWD_EVAL, 0, NULL) == 0);
        memcpy(z1, cored_model_logits(inf), sizeof(float) * 2 * n);
        memcpy(tap, cored_model_features(inf, NULL, NULL, NULL), sizeof(float) * nf);
        cored_set_threads(4);
        CHECK(cored_model_forward(inf, n, CORED_FWD_EVAL, 0, NULL) == 0);
        CHECK_MSG(memcmp(z1, cored_model_logits(inf), sizeof(float) * 2 * n) == 0, "%s: folded logits differ (1 vs 4 threads)", archs[a]);
        CHECK_MSG(memcmp(tap, cored_model_features(inf, NULL, NULL, NULL), sizeof(float) * nf) == 0, "%s: folded tap differs (1 vs 4 threads)", archs[a]);
        cored_set_threads(2);
        /* batch statistics on the inference build: the unfolded path, as the training build */
        CHECK(cored_model_copy_params(inf, ref, NULL) == 0);
        CHECK(cored_model_forward(ref, n, CORED_FWD_BN_BATCH, 0, NULL) == 0);
        CHECK(cored_model_forward(inf, n, CORED_FWD_BN_BATCH, 0, NULL) == 0);
        CHECK_MSG(memcmp(cored_model_logits(inf), cored_model_logits(ref), sizeof(float) * 2 * n) == 0,
                  "%s: batch-statistics forward of the inference build differs", archs[a]);
        free(tap);
        cored_model_free(ref);
        cored_model_free(inf);
    }
}

/* cored_model_calibrate_bn: every BN's running mean is its batch mean of that forward, its
   running variance the unbiased batch variance, and the momenta are as before (tiny's
   0.1). */
static void test_calibrate_bn(void)
{
    const int n = 4;
    cored_model *m = NULL;
    CHECK(cored_model_create(&m, "tiny", 32, n, CORED_BUILD_TRAIN, NULL) == 0);
    if (!m) return;
    cored_model_init_params(m, 5);
    fill_input(m, n, 21);
    CHECK(cored_model_calibrate_bn(m, n, NULL) == 0);
    int checked = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const cored_layer *l = &m->layers[i];
        if (l->kind != LAYER_BN) continue;
        const float *mean = m->aux + l->aux_off, *invstd = mean + l->c;
        const float *run_mean = cored_model_param_data(m, l->p_mean), *run_var = cored_model_param_data(m, l->p_var);
        double rows = (double)n * l->h * l->w;
        for (int j = 0; j < l->c; j++) {
            double var = 1.0 / ((double)invstd[j] * invstd[j]) - l->u.bn.eps;
            CHECK_MSG(run_mean[j] == mean[j], "layer %d channel %d: running mean %g, batch mean %g", i, j, run_mean[j], mean[j]);
            CHECK_MSG(fabs(run_var[j] - var * rows / (rows - 1)) <= 1e-5 * (var + 1e-3),
                      "layer %d channel %d: running variance %g, unbiased batch variance %g", i, j, run_var[j], var * rows / (rows - 1));
        }
        CHECK_MSG(l->u.bn.momentum == 0.1f, "layer %d: momentum %g after calibration", i, l->u.bn.momentum);
        checked++;
    }
    CHECK(checked == 4);
    cored_model_free(m);
}

/* Every allocation of a model build can fail; the build then reports CORED_E_NOMEM and
   frees what it had (the sanitizer run checks for leaks). */
static void test_allocation_failures(void)
{
    int failures = 0, k;
    for (k = 1; k < 200; k++) {
        cored_model *m = NULL;
        cored_error err = {0};
        cored_alloc_fail_at((uint64_t)k);
        int rc = cored_model_create(&m, "tiny", 32, 2, CORED_BUILD_TRAIN, &err);
        cored_alloc_fail_at(0);
        if (rc == CORED_OK) {
            cored_model_free(m);
            break;
        }
        CHECK_MSG(rc == CORED_E_NOMEM && m == NULL, "fail at %d: rc %d (%s)", k, rc, err.msg);
        failures++;
    }
    CHECK_MSG(k < 200 && failures > 5, "the build made %d allocations", failures);
}

int main(void)
{
    cored_set_threads(2);
    RUN(test_param_tables);
    RUN(test_bad_arguments);
    RUN(test_builds_agree);
    RUN(test_tap_gradient);
    RUN(test_no_allocation_in_step);
    RUN(test_checkpoints);
    RUN(test_backbone_init);
    RUN(test_thread_invariance);
    RUN(test_folded_inference);
    RUN(test_calibrate_bn);
    RUN(test_allocation_failures);
    return test_finish();
}
