/*
 * cored init: writes freshly initialised weights of a model (the initialisation its
 * PyTorch twin's constructor uses), so forward/grad/train can start without a download.
 */
#include <stdio.h>

#include "cli.h"
#include "opts.h"
#include "train_cli.h"
#include "core/core.h"
#include "io/checkpoint.h"

static const cli_doc doc = {
    "init", "--model NAME --seed S --out W.safetensors [--size PX]",
    "Writes freshly initialised weights of a model, the initialisation its PyTorch twin's\n"
    "constructor uses: tiny and efficientnet-b0 take PyTorch's module defaults, xception draws\n"
    "conv weights from N(0, sqrt(2/(k*k*out))). The same seed gives the same weights.",
    "cored init --model tiny --seed 1 --out tiny.safetensors\n"
    "cored init --model xception --seed 2020 --out xception.safetensors --size 299\n"
    "cored init --model efficientnet-b0 --seed 7 --out b0.safetensors"};

int cmd_init(int argc, char **argv)
{
    const char *arch = NULL, *out = NULL;
    uint64_t seed = 0;
    int size = 128;
    const opt_def defs[] = {
        train_cli_opt("model", &arch, OPT_REQUIRED),
        {"seed", OPT_U64, &seed, 0, 0, NULL, "S", "random seed: the same seed, the same weights", NULL, OPT_REQUIRED},
        {"out", OPT_STR, &out, 0, 0, NULL, "FILE", "output checkpoint, replaced atomically", NULL, OPT_REQUIRED},
        {"size", OPT_INT, &size, 16, 4096, NULL, "PX", "input size recorded in the metadata"},
    };
    int rc = opts_parse(&doc, argc, argv, defs, sizeof defs / sizeof defs[0], NULL, 0, NULL, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    cored_error err = {0};
    cored_model *m = NULL;
    rc = cored_model_create(&m, arch, size, 1, CORED_BUILD_INFER, &err);
    if (rc == CORED_OK) {
        cored_model_init_params(m, seed);
        char seed_s[32];
        snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seed);
        const char *meta[] = {"seed", seed_s, "init", "pytorch-default"};
        rc = cored_model_save(m, out, meta, 2, NULL, &err);
    }
    cored_model_free(m);
    if (rc) {
        cli_print_error(&err);
        return 1;
    }
    return 0;
}
