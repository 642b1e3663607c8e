/*
 * cored forward: runs a model on a tensor file, for comparison with PyTorch.
 * X holds `input` (float32 NCHW [N,3,S,S]); Y receives `logits` [N,2], with --features
 * the tap (NCHW), and with --train-mode the updated BN running statistics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_tensors.h"
#include "core/core.h"
#include "io/checkpoint.h"
#include "ops/ops.h"

static void usage(void)
{
    printf("usage: cored forward --model NAME --weights W.safetensors --input X.safetensors\n"
           "                     --out Y.safetensors [--train-mode] [--features] [--threads N]\n\n"
           "Runs the model on X's tensor 'input' (float32 NCHW [N,3,S,S], any square S the\n"
           "model accepts) and writes 'logits' [N,2] to Y.\n\n"
           "  --model NAME      tiny | xception | efficientnet-b0 (required)\n"
           "  --weights FILE    safetensors with PyTorch state_dict names (required)\n"
           "  --input FILE      tensor file with 'input' (required)\n"
           "  --out FILE        output tensor file (required; replaced atomically)\n"
           "  --train-mode      BN uses batch statistics; Y also gets every\n"
           "                    '<bn>.running_mean' / '<bn>.running_var' after the update\n"
           "                    (default: eval mode, running statistics)\n"
           "  --features        also write 'features': the feature tap, NCHW\n"
           "  --threads N       threads (default: all cores)\n\n"
           "Deterministic: dropout and drop-connect are never applied, in either mode.\n");
}

int cmd_forward(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"weights", required_argument, 0, 'w'},
        {"input", required_argument, 0, 'i'}, {"out", required_argument, 0, 'o'},
        {"train-mode", no_argument, 0, 't'},  {"features", no_argument, 0, 'f'},
        {"threads", required_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *arch = NULL, *weights = NULL, *input = NULL, *out = NULL;
    int train = 0, features = 0, threads = 0, c;
    while ((c = cli_getopt("forward", argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'm': arch = optarg; break;
        case 'w': weights = optarg; break;
        case 'i': input = optarg; break;
        case 'o': out = optarg; break;
        case 't': train = 1; break;
        case 'f': features = 1; break;
        case 'j':
            if (cli_int("forward", "threads", optarg, 1, 1024, &threads)) return EXIT_USAGE;
            break;
        case 'h': usage(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind < argc) return cli_usage_error("forward", "unexpected argument '%s'", argv[optind]);
    if (!arch || !weights || !input || !out)
        return cli_usage_error("forward", "--model, --weights, --input and --out are required");
    cored_set_threads(threads);

    cored_error err = {0};
    cored_model *m = NULL;
    float *x = NULL, *feat = NULL;
    cored_st_out *t = NULL;
    int n, size, rc;
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
