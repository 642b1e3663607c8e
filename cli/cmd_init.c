/*
 * cored init: writes freshly initialised weights of a model (the initialisation its
 * PyTorch twin's constructor uses), so forward/grad/train can start without a download.
 */
#include <stdio.h>

#include "cli.h"
#include "core/core.h"
#include "io/checkpoint.h"

static void usage(void)
{
    printf("usage: cored init --model NAME --seed S --out W.safetensors [--size PX]\n\n"
           "  --model NAME   tiny | xception | efficientnet-b0 (required)\n"
           "  --seed S       random seed (required; same seed, same weights)\n"
           "  --out FILE     output checkpoint (required; replaced atomically)\n"
           "  --size PX      input size recorded in the metadata (default 128)\n\n"
           "Initialisation as the PyTorch twins' constructors: tiny and efficientnet-b0 use\n"
           "PyTorch's module defaults; xception draws conv weights from N(0, sqrt(2/(k*k*out))).\n");
}

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"seed", required_argument, 0, 's'},
        {"out", required_argument, 0, 'o'},   {"size", required_argument, 0, 'z'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *arch = NULL, *out = NULL;
    uint64_t seed = 0;
    int have_seed = 0, size = 128, c;
    while ((c = cli_getopt("init", argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'm': arch = optarg; break;
        case 'o': out = optarg; break;
        case 's':
            if (cli_u64("init", "seed", optarg, &seed)) return EXIT_USAGE;
            have_seed = 1;
            break;
        case 'z':
            if (cli_int("init", "size", optarg, 16, 4096, &size)) return EXIT_USAGE;
            break;
        case 'h': usage(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind < argc) return cli_usage_error("init", "unexpected argument '%s'", argv[optind]);
    if (!arch || !out || !have_seed) return cli_usage_error("init", "--model, --seed and --out are required");
    cored_error err = {0};
    cored_model *m = NULL;
    int rc = cored_model_create(&m, arch, size, 1, CORED_BUILD_INFER, &err);
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
