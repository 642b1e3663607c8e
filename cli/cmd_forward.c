/*
 * cored forward: runs a model on a tensor file, for comparison with PyTorch.
 * X holds `input` (float32 NCHW [N,3,S,S]); Y receives `logits` [N,2], with --features
 * the tap (NCHW), and with --train-mode the updated BN running statistics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "opts.h"
#include "train_cli.h"
#include "cli_tensors.h"
#include "core/core.h"
#include "io/checkpoint.h"
#include "ops/ops.h"

static const cli_doc doc = {
    "forward", "--model NAME --weights W --input X --out Y [--train-mode] [--features] [--threads N]",
    "Runs the model on X's tensor 'input' (float32 NCHW [N,3,S,S], any square S the model\n"
    "accepts) and writes 'logits' [N,2] to Y, for comparison with PyTorch. BN uses its running\n"
    "statistics unless --train-mode is given. Deterministic: dropout and drop-connect are never\n"
    "applied, in either mode.",
    "cored forward --model tiny --weights w.safetensors --input x.safetensors --out y.safetensors\n"
    "cored forward --model xception --weights w.safetensors --input x.safetensors --out y.safetensors --features\n"
    "cored forward --model tiny --weights w.safetensors --input x.safetensors --out y.safetensors --train-mode"};

int cmd_forward(int argc, char **argv)
{
    const char *arch = NULL, *weights = NULL, *input = NULL, *out = NULL;
    int train = 0, features = 0, threads = 0;
    const opt_def defs[] = {
        train_cli_opt("model", &arch, OPT_REQUIRED),
        {"weights", OPT_STR, &weights, 0, 0, NULL, "FILE", "the weights: safetensors with PyTorch state_dict names", NULL,
         OPT_REQUIRED},
        {"input", OPT_STR, &input, 0, 0, NULL, "FILE", "'input' float32 NCHW [N,3,S,S]", NULL, OPT_REQUIRED},
        {"out", OPT_STR, &out, 0, 0, NULL, "FILE", "output tensor file, replaced atomically", NULL, OPT_REQUIRED},
        {"train-mode", OPT_FLAG, &train, 0, 0, NULL, NULL,
         "BN uses batch statistics; Y also gets every '<bn>.running_mean' / '<bn>.running_var' after the update"},
        {"features", OPT_FLAG, &features, 0, 0, NULL, NULL, "also write 'features': the feature tap, NCHW"},
        train_cli_opt("threads", &threads, 0),
    };
    int rc = opts_parse(&doc, argc, argv, defs, sizeof defs / sizeof defs[0], NULL, 0, NULL, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    cored_set_threads(threads);

    cored_error err = {0};
    cored_model *m = NULL;
    float *x = NULL, *feat = NULL;
    cored_st_out *t = NULL;
    int n, size;
    const cored_path_use uses[] = {{weights, "--weights", CORED_PATH_INPUT}, {input, "--input", CORED_PATH_INPUT},
                                   {out, "--out", CORED_PATH_OUTPUT}};
    if ((rc = cored_paths_check(uses, 3, &err))) goto fail;
    if ((rc = cli_load_input(input, &x, &n, &size, &err))) goto fail;
    if ((rc = cored_model_create(&m, arch, size, n, CORED_BUILD_INFER, &err))) goto fail;
    if ((rc = cored_model_load(m, weights, &err))) goto fail;
    cored_nchw_to_nhwc(cored_model_input(m), x, n, 3, size, size);
    if ((rc = cored_model_forward(m, n, train ? CORED_FWD_BN_BATCH : CORED_FWD_EVAL, 0, &err)))
        goto fail;

    int np = cored_model_param_count(m), nt = 0;
    t = cored_calloc((size_t)np + 2, sizeof *t);
    if (!t) {
        rc = CORED_FAIL(&err, CORED_E_NOMEM, "cannot allocate the output list");
        goto fail;
    }
    t[nt++] = (cored_st_out){.name = "logits", .ndim = 2, .shape = {n, 2}, .data = cored_model_logits(m)};
    if (features) {
        int fh, fw, fc;
        const float *f = cored_model_features(m, &fh, &fw, &fc);
        feat = cored_alloc(sizeof(float) * (size_t)n * fh * fw * fc);
        if (!feat) {
            rc = CORED_FAIL(&err, CORED_E_NOMEM, "cannot allocate the features");
            goto fail;
        }
        cored_nhwc_to_nchw(feat, f, n, fc, fh, fw);
        t[nt++] = (cored_st_out){.name = "features", .ndim = 4, .shape = {n, fc, fh, fw}, .data = feat};
    }
    if (train)
        for (int i = 0; i < np; i++) {
            const cored_param *p = cored_model_param(m, i);
            if (p->kind != CORED_PARAM_BN_MEAN && p->kind != CORED_PARAM_BN_VAR) continue;
            t[nt++] = (cored_st_out){.name = p->name, .ndim = 1, .shape = {p->shape[0]},
                                     .data = cored_model_param_data(m, i)};
        }
    const char *meta[] = {"model", cored_model_arch(m), "mode", train ? "train" : "eval"};
    if ((rc = cored_st_write(out, t, nt, meta, 2, &err))) goto fail;
    cored_free(t);
    cored_free(feat);
    cored_free(x);
    cored_model_free(m);
    return 0;
fail:
    cli_print_error(&err);
    cored_free(t);
    cored_free(feat);
    cored_free(x);
    cored_model_free(m);
    return 1;
}
