/*
 * Pieces of the training loop on real files: the teacher cache equals a teacher forward on
 * every augmented batch (flips and CutMix included), the classifier mask of TG for each
 * architecture, EWC's Fisher equals the mean of per-image squared gradients, and the
 * detection API scores a file like the training transform does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "data/data.h"
#include "eval/evaluate.h"
#include "harness.h"
#include "io/checkpoint.h"
#include "models/model.h"
#include "ops/ops.h"
#include "train/trainer.h"
#include "test_data_util.h"
#include "train/methods.h"
#include "train/prepare.h"

static const char *root;

static const char *make_set(void)
{
    const char *dir = fresh_dir("train");
    char rel[256];
    for (int i = 0; i < 24; i++) {
        snprintf(rel, sizeof rel, "T/train/%s/%02d.png", i % 2 ? "fake" : "real", i);
        put_png(dir, rel, 40 + i % 5, 36, i);
        snprintf(rel, sizeof rel, "T/val/%s/%02d.png", i % 2 ? "fake" : "real", i);
        put_png(dir, rel, 32, 32, 100 + i);
    }
    return dir;
}

static void test_teacher_cache(void)
{
    cored_dataset *ds = NULL;
    cored_model *t = NULL, *direct = NULL;
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_TRAIN, NULL) == 0);
    CHECK(cored_model_create(&t, "tiny", 32, 8, CORED_BUILD_INFER, NULL) == 0);
    CHECK(cored_model_create(&direct, "tiny", 32, 8, CORED_BUILD_INFER, NULL) == 0);
    if (!ds || !t || !direct) return;
    cored_model_init_params(t, 3);
    CHECK(cored_model_copy_params(direct, t, NULL) == 0);
    cored_loader_opts lo = {.batch = 8, .size = 32, .threads = 2, .seed = 5, .shuffle = 1, .flip = 1,
                            .cutmix = CORED_CUTMIX_OPPOSITE, .cutmix_p = 0.9f};
    cored_teacher_cache cache;
    CHECK(cored_teacher_pass(&cache, NULL, t, ds, &lo, NULL, NULL, NULL, NULL) == 0);
    cored_loader *l = NULL;
    CHECK(cored_loader_create(&l, ds, &lo, NULL) == 0);
    float got[16];
    int mixed = 0, flipped = 0;
    for (int e = 0; e < 4 && l; e++) {
        CHECK(cored_loader_start(l, e, 0, NULL) == 0);
        cored_batch *b;
        while (cored_loader_next(l, &b, NULL) == 1) {
            CHECK(cored_teacher_batch_logits(got, &cache, t, b, 32, NULL) == 0);
            memcpy(cored_model_input(direct), b->x, sizeof(float) * (size_t)b->n * 32 * 32 * 3);
            CHECK(cored_model_forward(direct, b->n, CORED_FWD_EVAL, 0, NULL) == 0);
            check_close_ff("cached teacher logits vs a forward of the augmented batch", got,
                           cored_model_logits(direct), 2 * (size_t)b->n, 1e-5, 1e-5);
            for (int i = 0; i < b->n; i++) mixed += b->mixed[i], flipped += b->flipped[i];
            cored_loader_release(l, b);
        }
    }
    CHECK_MSG(mixed > 0 && flipped > 0, "the check saw %d mixed and %d flipped images", mixed, flipped);
    cored_loader_free(l);
    cored_teacher_cache_release(&cache);
    cored_model_free(t);
    cored_model_free(direct);
    cored_dataset_free(ds);
}

static void test_head_mask(void)
{
    const char *archs[] = {"tiny", "xception", "efficientnet-b0"}, *heads[] = {"fc.", "last_linear.", "_fc."};
    for (int a = 0; a < 3; a++) {
        cored_model *m = NULL;
        CHECK(cored_model_create(&m, archs[a], 64, 1, CORED_BUILD_INFER, NULL) == 0);
        if (!m) continue;
        size_t nw;
        cored_model_weights(m, &nw);
        uint8_t *mask = malloc(nw);
        cored_head_mask(mask, m);
        size_t in_head = 0, want = 0;
        for (size_t i = 0; i < nw; i++) in_head += mask[i];
        for (int i = 0; i < cored_model_param_count(m); i++) {
            const cored_param *p = cored_model_param(m, i);
            int head = !strncmp(p->name, heads[a], strlen(heads[a]));
            if (head) want += p->numel;
            if (cored_param_trainable(p->kind))
                CHECK_MSG(mask[p->offset] == head && mask[p->offset + p->numel - 1] == head, "%s: %s", archs[a], p->name);
        }
        CHECK_MSG(in_head == want && want == 2 * (a == 0 ? 64 : a == 1 ? 2048 : 1280) + 2,
                  "%s: %zu classifier elements, want %zu", archs[a], in_head, want);
        free(mask);
        cored_model_free(m);
    }
}

static void test_fisher(void)
{
    cored_dataset *ds = NULL, *sub = NULL;
    cored_model *m = NULL;
    CHECK(cored_dataset_open(&ds, root, "T", CORED_SPLIT_VAL, NULL) == 0);
    CHECK(cored_model_create(&m, "tiny", 32, 4, CORED_BUILD_TRAIN, NULL) == 0);
    if (!ds || !m) return;
    cored_model_init_params(m, 9);
    size_t nw;
    cored_model_weights(m, &nw);
    float *fisher = calloc(nw, sizeof(float)), *want = calloc(nw, sizeof(float));
    cored_loader_opts lo = {.batch = 4, .size = 32, .threads = 1};
    CHECK(cored_ewc_fisher(fisher, m, ds, 6, 11, &lo, NULL, NULL) == 0);
    /* the same images one by one: mean of squared cross-entropy gradients, BN in eval mode */
    CHECK(cored_dataset_cap_per_class(&sub, ds, 3, 11, NULL) == 0);
    int n = cored_dataset_count(sub);
    CHECK(n == 6);
    for (int i = 0; i < n; i++) {
        float dl[2];
        int label = cored_dataset_label(sub, i);
        CHECK(cored_image_load(cored_model_input(m), cored_dataset_path(sub, i), 32, NULL) == 0);
        CHECK(cored_model_forward(m, 1, CORED_FWD_EVAL, 0, NULL) == 0);
        cored_softmax_ce(dl, cored_model_logits(m), &label, 1, 2, 1.0f);
        cored_model_zero_grad(m);
        CHECK(cored_model_backward(m, dl, NULL, NULL) == 0);
        const float *g = cored_model_grads(m, NULL);
        for (size_t k = 0; k < nw; k++) want[k] += g[k] * g[k] / n;
    }
    check_close_ff("EWC Fisher", fisher, want, nw, 1e-9, 1e-4);
    free(fisher), free(want);
    cored_model_free(m);
    cored_dataset_free(sub);
    cored_dataset_free(ds);
}

static void test_detector(void)
{
    char ckpt[512], img[512];
    snprintf(ckpt, sizeof ckpt, "%s/tiny.safetensors", root);
    snprintf(img, sizeof img, "%s/T/val/real/00.png", root);
    cored_model *m = NULL;
    CHECK(cored_model_create(&m, "tiny", 32, 1, CORED_BUILD_INFER, NULL) == 0);
    if (!m) return;
    cored_model_init_params(m, 4);
    CHECK(cored_model_save(m, ckpt, NULL, 0, NULL, NULL) == 0);
    CHECK(cored_image_load(cored_model_input(m), img, 32, NULL) == 0);
    CHECK(cored_model_forward(m, 1, CORED_FWD_EVAL, 0, NULL) == 0);
    float want, got = -1;
    cored_p_fake(&want, cored_model_logits(m), 1);
    cored_detector *d = NULL;
    cored_error err = {0};
    CHECK(cored_detector_open(&d, ckpt, &err) == 0);
    CHECK(d && cored_detector_size(d) == 32);
    CHECK(d && cored_detector_score_file(d, img, &got, &err) == 0);
    CHECK_MSG(fabsf(got - want) < 1e-6f, "detector %.7f, forward %.7f", got, want);
    CHECK(d && cored_detector_score_file(d, root, &got, &err) != 0 && strstr(err.msg, root));
    cored_detector_close(d);
    CHECK(cored_detector_open(&d, img, &err) != 0 && d == NULL); /* not a checkpoint */
    cored_model_free(m);
}

/* config.json keeps --init-head: "reset" reads back, a file without the key (runs written
   before the option) reads as keep, an unknown value is refused by name. */
static void test_config_init_head(void)
{
    char path[4200], *strings = NULL;
    snprintf(path, sizeof path, "%s/config.json", test_tmpdir());
    cored_train_cfg c, back;
    cored_train_defaults(&c);
    CHECK(c.init_head == CORED_INIT_HEAD_KEEP);
    c.data = "d", c.arch = "tiny", c.target = "A", c.init = "w.safetensors", c.init_head = CORED_INIT_HEAD_RESET;
    cored_error err = {0};
    CHECK_MSG(cored_train_cfg_save(&c, path, &err) == 0, "%s", err.msg);
    CHECK_MSG(cored_train_cfg_load(&back, &strings, path, &err) == 0, "%s", err.msg);
    CHECK(back.init_head == CORED_INIT_HEAD_RESET && back.init && !strcmp(back.init, "w.safetensors"));
    cored_free(strings);
    strings = NULL;
    const char *texts[] = {"{\"data\": \"d\", \"model\": \"tiny\"}",
                           "{\"data\": \"d\", \"model\": \"tiny\", \"init_head\": \"new\"}"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(path, "w");
        if (!f) return;
        fputs(texts[i], f);
        fclose(f);
        back.init_head = CORED_INIT_HEAD_RESET;
        int rc = cored_train_cfg_load(&back, &strings, path, &err);
        if (i == 0) CHECK_MSG(rc == 0 && back.init_head == CORED_INIT_HEAD_KEEP, "rc %d: %s", rc, err.msg);
        else CHECK_MSG(rc == CORED_E_FORMAT && strstr(err.msg, "init_head must be one of keep, reset, got 'new'"), "rc %d: %s", rc, err.msg);
        cored_free(strings);
        strings = NULL;
    }
}

/* The run state saved in last.safetensors reads back exactly (17 digits), the largest
   64-bit counters included; a text that is not a run state is refused naming the file. */
static void test_run_state(void)
{
    cored_run_state s = {.epoch = 3, .next_batch = 17, .best_epoch = 2, .best_score = 1.0 / 3.0,
                         .optim_steps = UINT64_MAX - 1, .from_checksum = 0xfedcba9876543210ull, .seconds = 12.345678901234567,
                         .acc = {0.1, 0.2, 0.3, 0.4, 0.5, 96, 77, 1.25, 6}};
    char *json = cored_run_state_json(&s);
    cored_run_state back;
    memset(&back, 0, sizeof back);
    cored_error err = {0};
    CHECK_MSG(json && cored_run_state_parse(&back, json, "last.safetensors", &err) == 0, "%s", err.msg);
    CHECK(back.epoch == 3 && back.next_batch == 17 && back.best_epoch == 2 && back.best_score == s.best_score &&
          back.optim_steps == s.optim_steps && back.from_checksum == s.from_checksum && back.seconds == s.seconds);
    CHECK(back.acc.loss == 0.1 && back.acc.reg == 0.5 && back.acc.images == 96 && back.acc.correct == 77 &&
          back.acc.seconds == 1.25 && back.acc.batches == 6);
    free(json);
    CHECK(cored_run_state_parse(&back, "{\"epoch\": 1}", "x/last.safetensors", &err) == CORED_E_FORMAT &&
          strstr(err.msg, "x/last.safetensors: malformed run state"));
    CHECK(cored_run_state_parse(&back, NULL, "y/last.safetensors", &err) == CORED_E_FORMAT &&
          strstr(err.msg, "y/last.safetensors"));
}

int main(void)
{
    cored_set_threads(2);
    root = make_set();
    RUN(test_teacher_cache);
    RUN(test_head_mask);
    RUN(test_fisher);
    RUN(test_detector);
    RUN(test_config_init_head);
    RUN(test_run_state);
    return test_finish();
}
