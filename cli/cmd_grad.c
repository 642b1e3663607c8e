/*
 * cored grad: one training-mode forward (BN batch statistics), mean cross-entropy and
 * backward on a tensor file, for comparison with PyTorch. With --steps K it continues
 * with K optimiser steps on the same batch and records the loss before each. With
 * --decisions it also writes the side of every ReLU and max-pool kink that each forward
 * took, so that a PyTorch reference can follow the same branch (tools/twins.py, replay).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_tensors.h"
#include "core/core.h"
#include "io/checkpoint.h"
#include "models/model.h"
#include "ops/ops.h"
#include "train/optim.h"

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

/* Appends the decisions of the last forward of m as step `step` (NHWC -> NCHW). */
static int decisions_record(decisions *d, const cored_model *m, int step, cored_error *err)
{
    int nk = cored_model_kinks(m, NULL, 0), n_relu = 0, n_pool = 0;
    cored_kink *k = cored_alloc(sizeof *k * (size_t)(nk ? nk : 1));
    if (!k) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the kink list");
    cored_model_kinks(m, k, nk);
    if (d->n + nk > d->cap) {
        int cap = d->n + nk + 16;
        cored_st_out *t = cored_realloc(d->t, sizeof *t * (size_t)cap);
        if (t) d->t = t;
        char **names = cored_realloc(d->names, sizeof *names * (size_t)cap);
        if (names) d->names = names;
        void **data = cored_realloc(d->data, sizeof *data * (size_t)cap);
        if (data) d->data = data;
        if (!t || !names || !data) {
            cored_free(k);
            return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the decision list");
        }
        d->cap = cap;
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

static void usage(void)
{
    printf("usage: cored grad --model NAME --weights W --input X --labels L --out G [options]\n\n"
           "One train-mode forward (BN batch statistics), mean cross-entropy against L's\n"
           "'labels' [N] (integer or float dtype; 0 real, 1 fake), and backward. G receives\n"
           "'loss' [1] and 'grad.<param>' for every trainable parameter, PyTorch layouts.\n\n"
           "  --model NAME        tiny | xception | efficientnet-b0 (required)\n"
           "  --weights FILE      safetensors weights (required)\n"
           "  --input FILE        'input' float32 NCHW [N,3,S,S] (required)\n"
           "  --labels FILE       'labels' [N] (required)\n"
           "  --out FILE          output tensor file (required; replaced atomically)\n"
           "  --steps K           then run K optimiser steps on the same batch (default 0) and\n"
           "                      write 'losses' [K]: the loss before each step\n"
           "  --optimizer NAME    sgd | adam | adamw (default sgd)\n"
           "  --lr X              learning rate (default 0.05 for sgd, 0.001 for adam/adamw)\n"
           "  --momentum X        SGD momentum (default 0.1)\n"
           "  --nesterov          SGD Nesterov momentum (default off)\n"
           "  --weight-decay X    (default 0; 0.01 for adamw)\n"
           "  --out-weights FILE  write the weights after the K steps\n"
           "  --decisions FILE    write the kink decisions of every forward (step s = 0..K-1,\n"
           "                      the first forward is step 0): 's<s>.relu.<k>' U8 [N,C,H,W]\n"
           "                      (1 where the k-th ReLU's output is > 0) and 's<s>.maxpool.<k>'\n"
           "                      I32 [N,C,OH,OW] (argmax h*W+w in the input plane), k counting\n"
           "                      each kind in execution order (default: not written)\n"
           "  --threads N         threads (default: all cores)\n\n"
           "Deterministic: dropout and drop-connect are never applied; BN uses batch\n"
           "statistics and updates its running statistics at every forward.\n");
}

int cmd_grad(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"weights", required_argument, 0, 'w'},
        {"input", required_argument, 0, 'i'},     {"labels", required_argument, 0, 'l'},
        {"out", required_argument, 0, 'o'},       {"steps", required_argument, 0, 's'},
        {"optimizer", required_argument, 0, 'O'}, {"lr", required_argument, 0, 'r'},
        {"momentum", required_argument, 0, 'M'},  {"nesterov", no_argument, 0, 'N'},
        {"weight-decay", required_argument, 0, 'd'}, {"out-weights", required_argument, 0, 'W'},
        {"threads", required_argument, 0, 'j'},   {"decisions", required_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    const char *arch = NULL, *weights = NULL, *input = NULL, *labels_path = NULL, *out = NULL;
    const char *out_weights = NULL, *decisions_path = NULL;
    int steps = 0, threads = 0, c, kind = CORED_OPT_SGD, nesterov = 0;
    float lr = -1, momentum = -1, wd = -1;
    while ((c = cli_getopt("grad", argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'm': arch = optarg; break;
        case 'w': weights = optarg; break;
        case 'i': input = optarg; break;
        case 'l': labels_path = optarg; break;
        case 'o': out = optarg; break;
        case 'W': out_weights = optarg; break;
        case 'D': decisions_path = optarg; break;
        case 'N': nesterov = 1; break;
        case 's':
            if (cli_int("grad", "steps", optarg, 0, 1000000, &steps)) return EXIT_USAGE;
            break;
        case 'O':
            if ((kind = cored_optim_kind_parse(optarg)) < 0)
                return cli_usage_error("grad", "--optimizer must be sgd, adam or adamw, got '%s'", optarg);
            break;
        case 'r':
            if (cli_float("grad", "lr", optarg, 0, 1e6, &lr)) return EXIT_USAGE;
            break;
        case 'M':
            if (cli_float("grad", "momentum", optarg, 0, 1, &momentum)) return EXIT_USAGE;
            break;
        case 'd':
            if (cli_float("grad", "weight-decay", optarg, 0, 1e3, &wd)) return EXIT_USAGE;
            break;
        case 'j':
            if (cli_int("grad", "threads", optarg, 1, 1024, &threads)) return EXIT_USAGE;
            break;
        case 'h': usage(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind < argc) return cli_usage_error("grad", "unexpected argument '%s'", argv[optind]);
    if (!arch || !weights || !input || !labels_path || !out)
        return cli_usage_error("grad", "--model, --weights, --input, --labels and --out are required");
    cored_optim_cfg cfg = cored_optim_defaults((cored_opt_kind)kind);
    if (lr >= 0) cfg.lr = lr;
    if (momentum >= 0) cfg.momentum = momentum;
    if (wd >= 0) cfg.weight_decay = wd;
    cfg.nesterov = nesterov;
    cored_set_threads(threads);

    cored_error err = {0};
    cored_model *m = NULL;
    cored_optim *opt = NULL;
    float *x = NULL, *dlogits = NULL, *losses = NULL, *grads0 = NULL;
    int *labels = NULL;
    cored_st_out *t = NULL;
    char **names = NULL;
    decisions dec = {0};
    int n, size, rc, np = 0, iters = steps > 0 ? steps : 1;
    if ((rc = cli_load_input(input, &x, &n, &size, &err))) goto fail;
    if ((rc = cli_load_labels(labels_path, n, &labels, &err))) goto fail;
    if ((rc = cored_model_create(&m, arch, size, n, CORED_BUILD_TRAIN, &err))) goto fail;
    if ((rc = cored_model_load(m, weights, &err))) goto fail;
    size_t nw;
    float *w = cored_model_weights(m, &nw);
    if (steps > 0 && (rc = cored_optim_create(&opt, &cfg, nw, &err))) goto fail;
    dlogits = cored_alloc(sizeof(float) * 2 * (size_t)n);
    losses = cored_alloc(sizeof(float) * (size_t)iters);
    grads0 = cored_alloc(sizeof(float) * (nw ? nw : 1));
    if (!dlogits || !losses || !grads0) {
        rc = CORED_FAIL(&err, CORED_E_NOMEM, "cannot allocate");
        goto fail;
    }
    float loss0 = 0;
    for (int s = 0; s < iters; s++) {
        cored_nchw_to_nhwc(cored_model_input(m), x, n, 3, size, size);
        cored_model_zero_grad(m);
        if ((rc = cored_model_forward(m, n, CORED_FWD_BN_BATCH, 0, &err))) goto fail;
        if (decisions_path && (rc = decisions_record(&dec, m, s, &err))) goto fail;
        double loss = cored_softmax_ce(dlogits, cored_model_logits(m), labels, n, 2, 1.0f);
        if ((rc = cored_model_backward(m, dlogits, NULL, &err))) goto fail;
        if (s == 0) {
            loss0 = (float)loss;
            memcpy(grads0, cored_model_grads(m, NULL), sizeof(float) * nw);
        }
        losses[s] = (float)loss;
        if (steps > 0) cored_optim_step(opt, w, cored_model_grads(m, NULL));
    }

    np = cored_model_param_count(m);
    t = cored_calloc((size_t)np + 2, sizeof *t);
    names = cored_calloc((size_t)np, sizeof *names);
    if (!t || !names) {
        rc = CORED_FAIL(&err, CORED_E_NOMEM, "cannot allocate the output list");
        goto fail;
    }
    int nt = 0;
    t[nt++] = (cored_st_out){.name = "loss", .ndim = 1, .shape = {1}, .data = &loss0};
    if (steps > 0)
        t[nt++] = (cored_st_out){.name = "losses", .ndim = 1, .shape = {steps}, .data = losses};
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
    if (decisions_path && (rc = cored_st_write(decisions_path, dec.t, dec.n, meta, 1, &err))) goto fail;
    rc = 0;
    goto done;
fail:
    cli_print_error(&err);
    rc = 1;
done:
    if (names)
        for (int i = 0; i < np; i++) cored_free(names[i]);
    cored_free(names);
    decisions_free(&dec);
    cored_free(t);
    cored_free(x);
    cored_free(labels);
    cored_free(dlogits);
    cored_free(losses);
    cored_free(grads0);
    cored_optim_free(opt);
    cored_model_free(m);
    return rc;
}
