/*
 * cored bench: training-step and inference speed of a model on random data.
 * Training step = train-mode forward (dropout on) + cross-entropy + backward + SGD step.
 * Each measurement is the median over repetitions after warm-up; every repetition runs
 * enough steps to last about --min-time seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "core/core.h"
#include "models/model.h"
#include "ops/ops.h"
#include "train/optim.h"

static void usage(void)
{
    printf("usage: cored bench --model NAME [options]\n\n"
           "  --model NAME     tiny | xception | efficientnet-b0 (required)\n"
           "  --batch N        batch size (default 32)\n"
           "  --size PX        input size (default 128)\n"
           "  --threads N      threads (default: all cores)\n"
           "  --reps N         timed repetitions, median reported (default 5)\n"
           "  --warmup N       untimed steps first (default 2)\n"
           "  --min-time S     seconds per repetition at least (default 0.5)\n"
           "  --only WHAT      train | infer | infer1 (default: all three)\n"
           "  --profile        per-op-kind share of the training step\n"
           "  --json           one JSON object on stdout instead of the table\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int reps, warmup;
    double min_time;
} bench_cfg;

typedef int (*step_fn)(void *ctx, cored_error *err);

/* Median seconds per call of fn. */
static int measure(step_fn fn, void *ctx, const bench_cfg *b, double *median, cored_error *err)
{
    int rc;
    double t0 = cored_now();
    for (int i = 0; i < b->warmup; i++)
        if ((rc = fn(ctx, err))) return rc;
    double per = b->warmup ? (cored_now() - t0) / b->warmup : 0;
    int inner = per > 0 ? (int)(b->min_time / per) + 1 : 1;
    double *times = malloc(sizeof(double) * (size_t)b->reps);
    if (!times) return CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
    for (int r = 0; r < b->reps; r++) {
        double s = cored_now();
        for (int i = 0; i < inner; i++)
            if ((rc = fn(ctx, err))) {
                free(times);
                return rc;
            }
        times[r] = (cored_now() - s) / inner;
    }
    qsort(times, (size_t)b->reps, sizeof(double), cmp_double);
    *median = times[b->reps / 2];
    free(times);
    return CORED_OK;
}

typedef struct {
    cored_model *m;
    cored_optim *opt;
    int n, *labels;
    float *dlogits;
    uint64_t step;
} train_ctx;

static int train_step(void *p, cored_error *err)
{
    train_ctx *t = p;
    int rc = cored_model_forward(t->m, t->n, CORED_FWD_BN_BATCH | CORED_FWD_STOCHASTIC, t->step++, err);
    if (rc) return rc;
    cored_softmax_ce(t->dlogits, cored_model_logits(t->m), t->labels, t->n, 2, 1.0f);
    cored_model_zero_grad(t->m);
    if ((rc = cored_model_backward(t->m, t->dlogits, NULL, err))) return rc;
    cored_optim_step(t->opt, cored_model_weights(t->m, NULL), cored_model_grads(t->m, NULL));
    return CORED_OK;
}

static int infer_step(void *p, cored_error *err)
{
    train_ctx *t = p;
    return cored_model_forward(t->m, t->n, CORED_FWD_EVAL, 0, err);
}

static void fill_random(cored_model *m, int n, int size, uint64_t seed)
{
    cored_rng r;
    cored_rng_seed(&r, seed, 3);
    float *x = cored_model_input(m);
    for (size_t i = 0; i < (size_t)n * size * size * 3; i++) x[i] = 2.0f * cored_rng_uniform(&r) - 1.0f;
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"batch", required_argument, 0, 'b'},
        {"size", required_argument, 0, 'z'},    {"threads", required_argument, 0, 'j'},
        {"reps", required_argument, 0, 'r'},    {"warmup", required_argument, 0, 'w'},
        {"min-time", required_argument, 0, 't'}, {"only", required_argument, 0, 'o'},
        {"profile", no_argument, 0, 'p'},       {"json", no_argument, 0, 'J'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *arch = NULL, *only = NULL;
    int batch = 32, size = 128, threads = 0, profile = 0, json = 0, c;
    bench_cfg b = {.reps = 5, .warmup = 2, .min_time = 0.5};
    float min_time = 0.5f;
    while ((c = cli_getopt("bench", argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'm': arch = optarg; break;
        case 'b':
            if (cli_int("bench", "batch", optarg, 1, 4096, &batch)) return EXIT_USAGE;
            break;
        case 'z':
            if (cli_int("bench", "size", optarg, 16, 4096, &size)) return EXIT_USAGE;
            break;
        case 'j':
            if (cli_int("bench", "threads", optarg, 1, 1024, &threads)) return EXIT_USAGE;
            break;
        case 'r':
            if (cli_int("bench", "reps", optarg, 1, 1000, &b.reps)) return EXIT_USAGE;
            break;
        case 'w':
            if (cli_int("bench", "warmup", optarg, 0, 1000, &b.warmup)) return EXIT_USAGE;
            break;
        case 't':
            if (cli_float("bench", "min-time", optarg, 0, 3600, &min_time)) return EXIT_USAGE;
            b.min_time = min_time;
            break;
        case 'o':
            if (strcmp(optarg, "train") && strcmp(optarg, "infer") && strcmp(optarg, "infer1"))
                return cli_usage_error("bench", "--only must be train, infer or infer1, got '%s'", optarg);
            only = optarg;
            break;
        case 'p': profile = 1; break;
        case 'J': json = 1; break;
        case 'h': usage(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind < argc) return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
    if (!arch) return cli_usage_error("bench", "--model is required");
    threads = cored_set_threads(threads);

    cored_error err = {0};
    train_ctx t = {0};
    double train_s = 0, infer_s = 0, infer1_s = 0, macs = 0;
    long rss_train = -1;
    double prof_f[LAYER_KIND_COUNT] = {0}, prof_b[LAYER_KIND_COUNT] = {0};
    int rc = CORED_OK;
    if (!json)
        fprintf(stderr, "bench: model %s, batch %d, %d px, %d threads, %d reps after %d warm-up\n",
                arch, batch, size, threads, b.reps, b.warmup);

    if (!only || !strcmp(only, "train")) {
        if ((rc = cored_model_create(&t.m, arch, size, batch, CORED_BUILD_TRAIN, &err))) goto fail;
        cored_model_init_params(t.m, 1);
        macs = cored_model_forward_macs(t.m);
        size_t nw;
        cored_model_weights(t.m, &nw);
        cored_optim_cfg cfg = cored_optim_defaults(CORED_OPT_SGD);
        cfg.lr = 1e-4f; /* keep random-data training numerically tame over many steps */
        if ((rc = cored_optim_create(&t.opt, &cfg, nw, &err))) goto fail;
        t.n = batch;
        t.labels = malloc(sizeof(int) * (size_t)batch);
        t.dlogits = malloc(sizeof(float) * 2 * (size_t)batch);
        if (!t.labels || !t.dlogits) {
            rc = CORED_FAIL(&err, CORED_E_NOMEM, "out of memory");
            goto fail;
        }
        for (int i = 0; i < batch; i++) t.labels[i] = i & 1;
        fill_random(t.m, batch, size, 7);
        if ((rc = measure(train_step, &t, &b, &train_s, &err))) goto fail;
        if (profile) {
            cored_model_set_profile(t.m, 1);
            for (int i = 0; i < b.reps; i++)
                if ((rc = train_step(&t, &err))) goto fail;
            memcpy(prof_f, t.m->prof_fwd, sizeof prof_f);
            memcpy(prof_b, t.m->prof_bwd, sizeof prof_b);
        }
        rss_train = peak_rss_kib();
        cored_model_free(t.m), t.m = NULL;
        cored_optim_free(t.opt), t.opt = NULL;
    }
    for (int pass = 0; pass < 2; pass++) {
        const char *what = pass == 0 ? "infer" : "infer1";
        if (only && strcmp(only, what)) continue;
        int nb = pass == 0 ? batch : 1;
        if ((rc = cored_model_create(&t.m, arch, size, nb, CORED_BUILD_INFER, &err))) goto fail;
        cored_model_init_params(t.m, 1);
        macs = cored_model_forward_macs(t.m);
        t.n = nb;
        fill_random(t.m, nb, size, 7);
        if ((rc = measure(infer_step, &t, &b, pass == 0 ? &infer_s : &infer1_s, &err))) goto fail;
        cored_model_free(t.m), t.m = NULL;
    }

    double tr = train_s > 0 ? batch / train_s : 0, inf = infer_s > 0 ? batch / infer_s : 0;
    double inf1 = infer1_s > 0 ? 1.0 / infer1_s : 0;
    /* a training step costs about three forward passes (forward, input and weight grads) */
    double gflops_train = tr * 3 * 2 * macs * 1e-9, gflops_inf = inf * 2 * macs * 1e-9;
    if (json) {
        printf("{\"model\":\"%s\",\"batch\":%d,\"size\":%d,\"threads\":%d,\"reps\":%d,"
               "\"train_img_s\":%.3f,\"infer_img_s\":%.3f,\"infer1_img_s\":%.3f,"
               "\"forward_gmacs_per_image\":%.4f,\"train_gflops\":%.2f,\"infer_gflops\":%.2f,"
               "\"train_peak_rss_mib\":%.1f",
               arch, batch, size, threads, b.reps, tr, inf, inf1, macs * 1e-9, gflops_train,
               gflops_inf, rss_train > 0 ? rss_train / 1024.0 : 0.0);
        if (profile) {
            printf(",\"profile\":{");
            int first = 1;
            for (int k = 0; k < LAYER_KIND_COUNT; k++) {
                if (prof_f[k] + prof_b[k] <= 0) continue;
                printf("%s\"%s\":{\"forward_s\":%.4f,\"backward_s\":%.4f}", first ? "" : ",",
                       cored_layer_kind_name((cored_layer_kind)k), prof_f[k] / b.reps, prof_b[k] / b.reps);
                first = 0;
            }
            printf("}");
        }
        printf("}\n");
    } else {
        printf("model %s  batch %d  %d px  %d threads  (%.3f GMAC/image forward)\n", arch, batch,
               size, threads, macs * 1e-9);
        if (train_s > 0)
            printf("  train step       %9.2f img/s  (%.1f GFLOP/s, peak RSS %.0f MiB)\n", tr,
                   gflops_train, rss_train / 1024.0);
        if (infer_s > 0) printf("  inference b%-4d  %9.2f img/s  (%.1f GFLOP/s)\n", batch, inf, gflops_inf);
        if (infer1_s > 0) printf("  inference b1     %9.2f img/s\n", inf1);
        if (profile) {
            double total = 0;
            for (int k = 0; k < LAYER_KIND_COUNT; k++) total += prof_f[k] + prof_b[k];
            printf("  training-step profile (per step):\n");
            for (int k = 0; k < LAYER_KIND_COUNT; k++) {
                double s = prof_f[k] + prof_b[k];
                if (s <= 0) continue;
                printf("    %-12s fwd %8.2f ms  bwd %8.2f ms  %5.1f%%\n",
                       cored_layer_kind_name((cored_layer_kind)k), 1e3 * prof_f[k] / b.reps,
                       1e3 * prof_b[k] / b.reps, 100 * s / total);
            }
        }
    }
    free(t.labels);
    free(t.dlogits);
    return 0;
fail:
    cli_print_error(&err);
    cored_model_free(t.m);
    cored_optim_free(t.opt);
    free(t.labels);
    free(t.dlogits);
    return 1;
}
