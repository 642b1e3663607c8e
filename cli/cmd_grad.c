/*
 * cored grad: the training step of a method (the library's cored_train_step, the one
 * `cored train` and `cored adapt` run) on a batch from tensor files, for comparison with
 * PyTorch references (tools/parity.py for the models, tools/ref_step.py for the methods):
 * the loss terms, the gradient of every parameter and, with --steps K, the weights after
 * K steps on the same batch. With --decisions it also writes the side of every ReLU and
 * max-pool kink that each training forward took, the cells and the tap's maxima, so that a
 * float64 reference can follow the same branch (tools/twins.py, replay).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train_cli.h"
#include "opts.h"
#include "cli_tensors.h"
#include "core/core.h"
#include "io/checkpoint.h"
#include "train/represent.h"
#include "models/model.h"
#include "ops/ops.h"
#include "train/step.h"

/* The kink decisions of every forward, as tensors for the --decisions file. */
typedef struct {
    cored_st_out *t;
    char **names;
    void **data;
    int n, cap;
} decisions;

static void decisions_free(decisions *d)
{
    for (int i = 0; i < d->n; i++) {
        cored_free(d->names[i]);
        cored_free(d->data[i]);
    }
    cored_free(d->t);
    cored_free(d->names);
    cored_free(d->data);
}

/* Room for `more` tensors. */
static int decisions_reserve(decisions *d, int more, cored_error *err)
{
    if (d->n + more <= d->cap) return CORED_OK;
    int cap = d->n + more + 16;
    cored_st_out *t = cored_realloc(d->t, sizeof *t * (size_t)cap);
    if (t) d->t = t;
    char **names = cored_realloc(d->names, sizeof *names * (size_t)cap);
    if (names) d->names = names;
    void **data = cored_realloc(d->data, sizeof *data * (size_t)cap);
    if (data) d->data = data;
    if (!t || !names || !data) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the decision list");
    d->cap = cap;
    return CORED_OK;
}

/* Appends the decisions of the last forward of m as step `step` (NHWC -> NCHW). */
static int decisions_record(decisions *d, const cored_model *m, int step, cored_error *err)
{
    int nk = cored_model_kinks(m, NULL, 0), n_relu = 0, n_pool = 0;
    cored_kink *k = cored_alloc(sizeof *k * (size_t)(nk ? nk : 1));
    if (!k) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the kink list");
    cored_model_kinks(m, k, nk);
    if (decisions_reserve(d, nk, err)) {
        cored_free(k);
        return CORED_E_NOMEM;
    }
    for (int i = 0; i < nk; i++) {
        const cored_kink *q = &k[i];
        int relu = q->kind == LAYER_RELU;
        size_t hw = (size_t)q->h * q->w, numel = (size_t)q->n * hw * q->c;
        char *name = cored_alloc(48);
        void *data = cored_alloc((relu ? 1 : 4) * (numel ? numel : 1));
        if (!name || !data) {
            cored_free(name);
            cored_free(data);
            cored_free(k);
            return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the kink decisions");
        }
        snprintf(name, 48, "s%d.%s.%d", step, relu ? "relu" : "maxpool", relu ? n_relu++ : n_pool++);
        for (int b = 0; b < q->n; b++)
            for (size_t p = 0; p < hw; p++)
                for (int c = 0; c < q->c; c++) {
                    size_t src = ((size_t)b * hw + p) * q->c + c, dst = ((size_t)b * q->c + c) * hw + p;
                    if (relu)
                        ((uint8_t *)data)[dst] = q->y[src] > 0.0f;
                    else
                        ((int32_t *)data)[dst] = q->argmax[src];
                }
        d->names[d->n] = name;
        d->data[d->n] = data;
        d->t[d->n] = (cored_st_out){.name = name, .ndim = 4, .shape = {q->n, q->c, q->h, q->w},
                                    .raw = data, .raw_dtype = relu ? CORED_DT_U8 : CORED_DT_I32};
        d->n++;
    }
    cored_free(k);
    return CORED_OK;
}

static const cli_doc doc = {
    "grad", "--model NAME --weights W --input X --labels L --out G [options]",
    "Runs the training step of a method (the step cored train and cored adapt run) on the\n"
    "batch X ('input' float32 NCHW [N,3,S,S]) with L's 'labels' [N] (0 real, 1 fake), and\n"
    "writes G: 'loss' [1] (the total loss of the first step), 'terms' [max(K,1),5] (per step:\n"
    "ce, kd, rep, reg, total), 'losses' [K] (the total before each step, with --steps K) and\n"
    "'grad.<param>' for every trainable parameter: the whole gradient of the first step,\n"
    "weight-space terms included. Dropout and drop-connect are never applied.\n\n"
    "The teacher (--teacher) runs in eval mode on the batch as given to the student. CoReD's\n"
    "teacher statistics come from the teacher on the batch before CutMix (as cored adapt\n"
    "takes them from the training set without augmentation): cells from its eval-mode\n"
    "logits, features under batch statistics (--rep-teacher-bn student, unless --freeze-bn)\n"
    "or running statistics (--rep-teacher-bn running). EWC reads its Fisher from W's\n"
    "tensors 'cored.ewc.fisher.<param>' and anchors at W. With --cutmix-box, each image whose\n"
    "partner (L's 'partner' [N]) has the other label receives the partner's box.",
    "cored grad --model tiny --weights w.st --input x.st --labels l.st --out g.st\n"
    "cored grad --model tiny --method cored --teacher t.st --weights w.st --input x.st --labels l.st "
    "--steps 3 --out g.st --out-weights w3.st --decisions d.st"};

/* The --decisions file: kinks of every training forward, then cells and tap maxima. */
typedef struct {
    decisions dec;
    int step;
} recorder;

static int record_kinks(void *user, const cored_model *m, cored_error *err)
{
    recorder *r = user;
    return decisions_record(&r->dec, m, r->step, err);
}

/* Appends one I32 tensor (copied) to the decisions. */
static int decisions_add_i32(decisions *d, const char *name, int ndim, const int64_t *shape, const int *v,
                             size_t numel, cored_error *err)
{
    int rc = decisions_reserve(d, 1, err);
    if (rc) return rc;
    char *nm = cored_alloc(strlen(name) + 1);
    int32_t *data = cored_alloc(sizeof(int32_t) * (numel ? numel : 1));
    if (!nm || !data) {
        cored_free(nm);
        cored_free(data);
        return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the decisions");
    }
    strcpy(nm, name);
    for (size_t i = 0; i < numel; i++) data[i] = v[i];
    cored_st_out o = {.name = nm, .ndim = ndim, .raw = data, .raw_dtype = CORED_DT_I32};
    for (int k = 0; k < ndim; k++) o.shape[k] = shape[k];
    d->names[d->n] = nm;
    d->data[d->n] = data;
    d->t[d->n++] = o;
    return CORED_OK;
}

/* The flat spatial position of each channel's maximum of the tap (first on ties): where
   the representation loss sends its gradient. */
static int record_tap_argmax(decisions *d, const cored_model *m, int n, int step, int *buf, cored_error *err)
{
    int h, w, c;
    const float *f = cored_model_features(m, &h, &w, &c);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const float *x = f + (size_t)i * h * w * c + ch;
            int best = 0;
            for (int p = 1; p < h * w; p++)
                if (x[(size_t)p * c] > x[(size_t)best * c]) best = p;
            buf[(size_t)i * c + ch] = best;
        }
    char name[48];
    snprintf(name, sizeof name, "s%d.tap_argmax", step);
    int64_t shape[2] = {n, c};
    return decisions_add_i32(d, name, 2, shape, buf, (size_t)n * c, err);
}

/* Pastes box [x0,x1) x [y0,y1) of each image's partner into the images whose partner has
   the other label (opposite-class CutMix with a given box); x and orig are NHWC. */
static void cutmix_paste(float *x, const float *orig, int n, int size, const int *labels, const int *partner,
                         const int box[4])
{
    for (int i = 0; i < n; i++) {
        if (labels[partner[i]] == labels[i]) continue;
        for (int y = box[1]; y < box[3]; y++)
            memcpy(x + (((size_t)i * size + y) * size + box[0]) * 3,
                   orig + (((size_t)partner[i] * size + y) * size + box[0]) * 3,
                   sizeof(float) * 3 * (size_t)(box[2] - box[0]));
    }
}

int cmd_grad(int argc, char **argv)
{
    static const char *const rows[] = {"model", "method", "freeze_bn", "rep", "rep_estimate", "rep_teacher_bn",
                                       "rep_norm", "rep_weight", "temperature", "alpha", "lwf_temperature",
                                       "lwf_lambda", "ewc_lambda", "optimizer", "lr", "momentum", "nesterov",
                                       "weight_decay", "threads", NULL};
    static train_cli tc;
    train_cli_init_rows(&tc, &doc, rows);
    tc.line.method = CORED_METHOD_CE;
    const char *weights = NULL, *input = NULL, *labels_path = NULL, *out = NULL, *out_weights = NULL;
    const char *decisions_path = NULL, *teacher_path = NULL, *box_arg = NULL;
    int steps = 0;
    tc.defs[0].flags = OPT_REQUIRED;
    train_cli_add(&tc, (opt_def){"weights", OPT_STR, &weights, 0, 0, NULL, "FILE", "the student's safetensors weights",
                                 NULL, OPT_REQUIRED});
    train_cli_add(&tc, (opt_def){"input", OPT_STR, &input, 0, 0, NULL, "FILE", "'input' float32 NCHW [N,3,S,S]", NULL,
                                 OPT_REQUIRED});
    train_cli_add(&tc, (opt_def){"labels", OPT_STR, &labels_path, 0, 0, NULL, "FILE",
                                 "'labels' [N], optional 'partner' [N]", NULL, OPT_REQUIRED});
    train_cli_add(&tc, (opt_def){"out", OPT_STR, &out, 0, 0, NULL, "FILE", "output tensor file, replaced atomically",
                                 NULL, OPT_REQUIRED});
    train_cli_add(&tc, (opt_def){"teacher", OPT_STR, &teacher_path, 0, 0, NULL, "FILE",
                                 "teacher weights (dl, cored, tg, lwf)"});
    train_cli_add(&tc, (opt_def){"cutmix-box", OPT_STR, &box_arg, 0, 0, NULL, "X0,Y0,X1,Y1",
                                 "paste this box from each image's partner"});
    train_cli_add(&tc, (opt_def){"steps", OPT_INT, &steps, 0, 1000000, NULL, "K",
                                 "optimiser steps on the batch, 0: gradients only"});
    train_cli_add(&tc, (opt_def){"out-weights", OPT_STR, &out_weights, 0, 0, NULL, "FILE",
                                 "the weights after the K steps"});
    train_cli_add(&tc, (opt_def){"decisions", OPT_STR, &decisions_path, 0, 0, NULL, "FILE",
                                 "kinks of every training forward ('s<s>.relu.<k>' U8 NCHW, 's<s>.maxpool.<k>' I32 "
                                 "argmax h*W+w), and for CoReD 's<s>.cells', 'teacher.cells' I32 [N], "
                                 "'s<s>.tap_argmax' I32 [N,C]"});
    int rc = train_cli_parse_rows(&tc, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    cored_train_cfg cfg = tc.cfg;
    const char *method = cored_method_name(cfg.method);
    if (cfg.method == CORED_METHOD_REPLAY || cfg.method == CORED_METHOD_JOINT)
        return cli_usage_error("grad", "--method must be train, tl, dl, cored, tg, lwf or ewc, got '%s'", method);
    if (cored_method_uses_teacher(cfg.method) && !teacher_path)
        return cli_usage_error("grad", "--method %s needs --teacher", method);
    if (cfg.freeze_bn && cfg.method == CORED_METHOD_CE)
        return cli_usage_error("grad", "--freeze-bn applies to continual methods only");
    int box[4] = {0};
    if (box_arg && sscanf(box_arg, "%d,%d,%d,%d", &box[0], &box[1], &box[2], &box[3]) != 4)
        return cli_usage_error("grad", "--cutmix-box takes X0,Y0,X1,Y1, got '%s'", box_arg);
    cored_set_threads(cfg.threads);

    cored_error err = {0};
    cored_model *m = NULL, *eval = NULL, *teacher = NULL;
    cored_step step = {0};
    recorder rec = {0};
    cored_st_file *wf = NULL;
    float *x = NULL, *xm = NULL, *x0 = NULL, *losses = NULL, *terms = NULL, *grads0 = NULL, *w0 = NULL;
    float *tlogits = NULL;
    int *labels = NULL, *partner = NULL, *cells = NULL, *argmax = NULL;
    cored_st_out *t = NULL;
    char **names = NULL;
    int n, size, np = 0, iters = steps > 0 ? steps : 1;
    const cored_path_use uses[] = {
        {weights, "--weights", CORED_PATH_INPUT},           {input, "--input", CORED_PATH_INPUT},
        {labels_path, "--labels", CORED_PATH_INPUT},        {teacher_path, "--teacher", CORED_PATH_INPUT},
        {out, "--out", CORED_PATH_OUTPUT},                  {out_weights, "--out-weights", CORED_PATH_OUTPUT},
        {decisions_path, "--decisions", CORED_PATH_OUTPUT}};
    if ((rc = cored_paths_check(uses, 7, &err))) goto fail;
    if ((rc = cli_load_input(input, &x, &n, &size, &err))) goto fail;
    if ((rc = cli_load_labels(labels_path, n, &labels, &err))) goto fail;
    if ((rc = cli_load_ints(labels_path, "partner", n, 0, n - 1, box_arg != NULL, &partner, &err))) goto fail;
    if (box_arg && !(0 <= box[0] && box[0] <= box[2] && box[2] <= size && 0 <= box[1] && box[1] <= box[3] &&
                     box[3] <= size)) {
        rc = CORED_FAIL(&err, CORED_E_ARG, "--cutmix-box %s lies outside the %dx%d images", box_arg, size, size);
        goto fail;
    }
    cfg.size = size;
    cfg.batch = n;
    if ((rc = cored_model_create(&m, cfg.arch, size, n, CORED_BUILD_TRAIN, &err))) goto fail;
    if ((rc = cored_st_open(&wf, weights, &err)) || (rc = cored_model_load_file(m, wf, &err))) goto fail;
    if (cfg.method == CORED_METHOD_CORED && !cfg.freeze_bn &&
        (rc = cored_model_create(&eval, cfg.arch, size, n, CORED_BUILD_INFER, &err)))
        goto fail;
    if (teacher_path && ((rc = cored_model_create(&teacher, cfg.arch, size, n, CORED_BUILD_INFER, &err)) ||
                         (rc = cored_model_load(teacher, teacher_path, &err))))
        goto fail;
    if ((rc = cored_step_init(&step, &cfg, m, eval, teacher, &err))) goto fail;
    step.stochastic = 0;
    if (decisions_path) step.after_forward = record_kinks, step.user = &rec;
    if (cfg.method == CORED_METHOD_EWC && (rc = cored_checkpoint_load_slab(step.fisher, wf, m, "cored.ewc.fisher.", 1, &err)) < 0)
        goto fail;

    size_t nw, px = (size_t)n * size * size * 3;
    float *w = cored_model_weights(m, &nw);
    int fh, fw, fc;
    cored_model_features(m, &fh, &fw, &fc);
    xm = cored_alloc(sizeof(float) * px);
    x0 = cored_alloc(sizeof(float) * px);
    losses = cored_alloc(sizeof(float) * (size_t)iters);
    terms = cored_alloc(sizeof(float) * 5 * (size_t)iters);
    grads0 = cored_alloc(sizeof(float) * (nw ? nw : 1));
    w0 = cored_alloc(sizeof(float) * (nw ? nw : 1));
    tlogits = cored_alloc(sizeof(float) * 2 * (size_t)n);
    cells = cored_alloc(sizeof(int) * (size_t)n);
    argmax = cored_alloc(sizeof(int) * (size_t)n * fc);
    if (!xm || !x0 || !losses || !terms || !grads0 || !w0 || !tlogits || !cells || !argmax) {
        rc = CORED_FAIL(&err, CORED_E_NOMEM, "cannot allocate");
        goto fail;
    }
    memcpy(w0, w, sizeof(float) * nw);
    cored_nchw_to_nhwc(x0, x, n, 3, size, size);
    memcpy(xm, x0, sizeof(float) * px);
    if (box_arg) cutmix_paste(xm, x0, n, size, labels, partner, box);
    if (teacher) {
        int64_t shape[1] = {n};
        if (cfg.method == CORED_METHOD_CORED) {
            /* the statistics: the un-mixed batch, cells from the teacher's eval-mode logits,
               features under the student's BN mode unless running statistics are asked for */
            memcpy(cored_model_input(teacher), x0, sizeof(float) * px);
            if ((rc = cored_model_forward(teacher, n, CORED_FWD_EVAL, 0, &err))) goto fail;
            cored_cells_from_logits(cells, cored_model_logits(teacher), labels, n);
            if (!cfg.freeze_bn && !cfg.rep_teacher_running) {
                size_t nb;
                float *buf = cored_model_buffers(teacher, &nb), *saved = cored_alloc(sizeof(float) * (nb ? nb : 1));
                if (!saved) {
                    rc = CORED_FAIL(&err, CORED_E_NOMEM, "cannot allocate");
                    goto fail;
                }
                memcpy(saved, buf, sizeof(float) * nb);
                rc = cored_model_forward(teacher, n, CORED_FWD_BN_BATCH, 0, &err);
                memcpy(buf, saved, sizeof(float) * nb);
                cored_free(saved);
                if (rc) goto fail;
            }
            cored_rep_accumulate(&step.rep, cored_model_features(teacher, NULL, NULL, NULL), cells, n, fh * fw, fc);
            cored_rep_finish(&step.rep);
            if (decisions_path && (rc = decisions_add_i32(&rec.dec, "teacher.cells", 1, shape, cells, (size_t)n, &err)))
                goto fail;
        }
        memcpy(cored_model_input(teacher), xm, sizeof(float) * px);
        if ((rc = cored_model_forward(teacher, n, CORED_FWD_EVAL, 0, &err))) goto fail;
        memcpy(tlogits, cored_model_logits(teacher), sizeof(float) * 2 * (size_t)n);
    }
    for (int s = 0; s < iters; s++) {
        cored_loss_terms lt;
        int correct;
        cored_step_batch b = {.x = xm, .labels = labels, .n = n, .teacher_logits = teacher ? tlogits : NULL,
                              .index = s};
        rec.step = s;
        if ((rc = cored_train_step(&step, &b, &lt, &correct, &err))) goto fail;
        if (s == 0) memcpy(grads0, cored_model_grads(m, NULL), sizeof(float) * nw);
        losses[s] = (float)lt.total;
        const double v[5] = {lt.ce, lt.kd, lt.rep, lt.reg, lt.total};
        for (int k = 0; k < 5; k++) terms[5 * s + k] = (float)v[k];
        if (decisions_path && cfg.method == CORED_METHOD_CORED) {
            char name[32];
            int64_t shape[1] = {n};
            snprintf(name, sizeof name, "s%d.cells", s);
            if ((rc = decisions_add_i32(&rec.dec, name, 1, shape, step.cells, (size_t)n, &err)) ||
                (rc = record_tap_argmax(&rec.dec, m, n, s, argmax, &err)))
                goto fail;
        }
    }
    if (steps == 0) memcpy(w, w0, sizeof(float) * nw); /* gradients only: the weights stay */

    np = cored_model_param_count(m);
    t = cored_calloc((size_t)np + 3, sizeof *t);
    names = cored_calloc((size_t)np, sizeof *names);
    if (!t || !names) {
        rc = CORED_FAIL(&err, CORED_E_NOMEM, "cannot allocate the output list");
        goto fail;
    }
    int nt = 0;
    t[nt++] = (cored_st_out){.name = "loss", .ndim = 1, .shape = {1}, .data = &losses[0]};
    t[nt++] = (cored_st_out){.name = "terms", .ndim = 2, .shape = {iters, 5}, .data = terms};
    if (steps > 0) t[nt++] = (cored_st_out){.name = "losses", .ndim = 1, .shape = {steps}, .data = losses};
    for (int i = 0; i < np; i++) {
        const cored_param *p = cored_model_param(m, i);
        if (!cored_param_trainable(p->kind)) continue;
        names[i] = cored_alloc(strlen(p->name) + 6);
        if (!names[i]) {
            rc = CORED_FAIL(&err, CORED_E_NOMEM, "cannot allocate");
            goto fail;
        }
        sprintf(names[i], "grad.%s", p->name);
        cored_st_out o = {.name = names[i], .ndim = p->ndim, .data = grads0 + p->offset};
        for (int d = 0; d < p->ndim; d++) o.shape[d] = p->shape[d];
        t[nt++] = o;
    }
    const char *meta[] = {"model", cored_model_arch(m)};
    if ((rc = cored_st_write(out, t, nt, meta, 1, &err))) goto fail;
    if (out_weights && (rc = cored_model_save(m, out_weights, NULL, 0, NULL, &err))) goto fail;
    if (decisions_path && (rc = cored_st_write(decisions_path, rec.dec.t, rec.dec.n, meta, 1, &err))) goto fail;
    rc = 0;
    goto done;
fail:
    cli_print_error(&err);
    rc = 1;
done:
    if (names)
        for (int i = 0; i < np; i++) cored_free(names[i]);
    cored_free(names);
    decisions_free(&rec.dec);
    cored_free(t);
    cored_free(x);
    cored_free(xm);
    cored_free(x0);
    cored_free(labels);
    cored_free(partner);
    cored_free(cells);
    cored_free(argmax);
    cored_free(tlogits);
    cored_free(losses);
    cored_free(terms);
    cored_free(grads0);
    cored_free(w0);
    cored_step_release(&step);
    cored_st_close(wf);
    cored_model_free(teacher);
    cored_model_free(eval);
    cored_model_free(m);
    return rc;
}
