/*
 * Training configuration: the paper's defaults, method names, and the resolved
 * configuration as JSON (a run's config.json, which --resume reads back).
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/json.h"
#include "train.h"

static const char *method_names[CORED_METHOD_COUNT] = {"train", "tl",  "dl",     "tg",   "lwf",
                                                       "ewc",   "replay", "joint", "cored"};

int cored_method_parse(const char *s)
{
    for (int i = 0; i < CORED_METHOD_COUNT; i++)
        if (!strcmp(s, method_names[i])) return i;
    return -1;
}

const char *cored_method_name(cored_method m)
{
    return (unsigned)m < CORED_METHOD_COUNT ? method_names[m] : "?";
}

int cored_method_uses_teacher(cored_method m)
{
    return m == CORED_METHOD_DL || m == CORED_METHOD_TG || m == CORED_METHOD_LWF ||
           m == CORED_METHOD_CORED;
}

int cored_method_uses_old_data(cored_method m)
{
    return m == CORED_METHOD_EWC || m == CORED_METHOD_REPLAY || m == CORED_METHOD_JOINT;
}

void cored_train_defaults(cored_train_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->arch = "xception";
    cfg->size = 128;
    cfg->epochs = 100;
    cfg->batch = 128;
    cfg->optim = cored_optim_defaults(CORED_OPT_SGD);
    cfg->seed = 2020;
    cfg->method = CORED_METHOD_CE;
    cfg->temperature = 20.0f;
    cfg->alpha = 0.5f;
    cfg->rep = CORED_REP_SCALAR;
    cfg->rep_teacher_running = 1;
    cfg->rep_norm = CORED_REP_NORM_BATCH;
    cfg->cutmix = CORED_CUTMIX_OPPOSITE;
    cfg->flip = 1;
    cfg->lwf_temperature = 2.0f;
    cfg->lwf_lambda = 1.0f;
    cfg->ewc_lambda = 100.0f;
    cfg->ewc_samples = 200;
    cfg->replay_size = 200;
    cfg->save_every = 300.0;
}

void cored_resolve_pack(char *buf, size_t n, const char *data, const char *pack, int size)
{
    if (!pack) {
        cored_pack_default_path(buf, n, data, size);
        if (!cored_is_file(buf)) buf[0] = 0;
    } else {
        snprintf(buf, n, "%s", pack);
    }
}

int cored_loader_threads(int requested)
{
    if (requested > 0) return requested;
    int threads = cored_get_threads();
    return threads > 2 ? threads / 2 : 1;
}

uint64_t cored_file_checksum(const char *path)
{
    unsigned char *buf = NULL;
    size_t len;
    if (!path || cored_read_file(path, (size_t)8 << 30, &buf, &len, NULL)) return 0;
    uint64_t h = cored_checksum64(buf, len, 0);
    cored_free(buf);
    return h;
}

static const char *cutmix_name(cored_cutmix_mode m)
{
    return m == CORED_CUTMIX_NONE ? "none" : m == CORED_CUTMIX_SAME ? "same" : "opposite";
}

int cored_train_cfg_save(const cored_train_cfg *cfg, const char *path, cored_error *err)
{
    cJSON *j = cJSON_CreateObject(), *src = cJSON_CreateArray();
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)cfg->seed);
    cJSON_AddStringToObject(j, "cored_version", CORED_VERSION);
    cJSON_AddStringToObject(j, "data", cfg->data);
    for (int i = 0; i < cfg->n_sources; i++) cJSON_AddItemToArray(src, cJSON_CreateString(cfg->sources[i]));
    cJSON_AddItemToObject(j, "sources", src);
    if (cfg->target) cJSON_AddStringToObject(j, "target", cfg->target);
    if (cfg->pack) cJSON_AddStringToObject(j, "pack", cfg->pack);
    cJSON_AddNumberToObject(j, "max_per_class", cfg->max_per_class);
    cJSON_AddNumberToObject(j, "loader_threads", cfg->loader_threads);
    cJSON_AddBoolToObject(j, "strict", cfg->strict);
    cJSON_AddStringToObject(j, "model", cfg->arch);
    cJSON_AddNumberToObject(j, "size", cfg->size);
    if (cfg->from) cJSON_AddStringToObject(j, "from", cfg->from);
    if (cfg->init) cJSON_AddStringToObject(j, "init", cfg->init);
    cJSON_AddStringToObject(j, "init_head", cored_init_head_name(cfg->init_head));
    cJSON_AddNumberToObject(j, "epochs", cfg->epochs);
    cJSON_AddNumberToObject(j, "batch", cfg->batch);
    cJSON_AddStringToObject(j, "optimizer", cored_optim_kind_name(cfg->optim.kind));
    cJSON_AddNumberToObject(j, "lr", cfg->optim.lr);
    cJSON_AddNumberToObject(j, "momentum", cfg->optim.momentum);
    cJSON_AddBoolToObject(j, "nesterov", cfg->optim.nesterov);
    cJSON_AddNumberToObject(j, "weight_decay", cfg->optim.weight_decay);
    cJSON_AddNumberToObject(j, "beta1", cfg->optim.beta1);
    cJSON_AddNumberToObject(j, "beta2", cfg->optim.beta2);
    cJSON_AddNumberToObject(j, "eps", cfg->optim.eps);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddStringToObject(j, "method", cored_method_name(cfg->method));
    cJSON_AddNumberToObject(j, "temperature", cfg->temperature);
    cJSON_AddNumberToObject(j, "alpha", cfg->alpha);
    cJSON_AddBoolToObject(j, "freeze_bn", cfg->freeze_bn);
    cJSON_AddStringToObject(j, "rep", cfg->rep == CORED_REP_VECTOR ? "vector" : "scalar");
    cJSON_AddStringToObject(j, "rep_estimate", cfg->rep_unbiased ? "unbiased" : "plain");
    cJSON_AddStringToObject(j, "rep_teacher_bn", cfg->rep_teacher_running ? "running" : "student");
    cJSON_AddStringToObject(j, "rep_norm", cfg->rep_norm == CORED_REP_NORM_BATCH ? "batch" : "none");
    cJSON_AddNumberToObject(j, "rep_weight", cfg->rep_weight);
    cJSON_AddStringToObject(j, "select", cfg->select_auc ? "auc" : "acc");
    cJSON_AddStringToObject(j, "cutmix", cutmix_name(cfg->cutmix));
    cJSON_AddNumberToObject(j, "cutmix_p", cfg->cutmix_p);
    cJSON_AddNumberToObject(j, "cutmix_beta", cfg->cutmix_beta);
    cJSON_AddBoolToObject(j, "flip", cfg->flip);
    cJSON_AddNumberToObject(j, "lwf_temperature", cfg->lwf_temperature);
    cJSON_AddNumberToObject(j, "lwf_lambda", cfg->lwf_lambda);
    cJSON_AddNumberToObject(j, "ewc_lambda", cfg->ewc_lambda);
    cJSON_AddNumberToObject(j, "ewc_samples", cfg->ewc_samples);
    cJSON_AddNumberToObject(j, "replay_size", cfg->replay_size);
    cJSON_AddNumberToObject(j, "threads", cfg->threads);
    cJSON_AddBoolToObject(j, "deterministic", cfg->deterministic);
    cJSON_AddNumberToObject(j, "save_every", cfg->save_every);
    return cored_json_save(j, path, err);
}

/* A string arena: every string of a loaded configuration in one block. */
typedef struct {
    char *buf;
    size_t used, cap;
} arena;

static const char *keep(arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    if (a->used + n > a->cap) return NULL;
    char *d = a->buf + a->used;
    memcpy(d, s, n);
    a->used += n;
    return d;
}

int cored_train_cfg_load(cored_train_cfg *cfg, char **strings, const char *path, cored_error *err)
{
    int rc = CORED_OK;
    cJSON *j = cored_json_load(path, 1 << 20, err);
    if (!j) return err ? err->code : CORED_E_FORMAT;
    arena a = {cored_alloc(1 << 20), 0, 1 << 20};
    if (!cJSON_IsObject(j)) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    if (!a.buf) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate", path);
        goto done;
    }
    cored_train_defaults(cfg);
    const char *bad_number = NULL;
#define STR(key, field)                                                                    \
    do {                                                                                   \
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);                          \
        if (cJSON_IsString(v)) cfg->field = keep(&a, v->valuestring);                        \
    } while (0)
#define NUM(key, field, type)                                                              \
    do {                                                                                   \
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);                          \
        if (cJSON_IsNumber(v) && fabs(v->valuedouble) < 1e9) cfg->field = (type)v->valuedouble; \
        else if (v) bad_number = key;                                                       \
    } while (0)
#define BOOL(key, field)                                                                   \
    do {                                                                                   \
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);                          \
        if (cJSON_IsBool(v)) cfg->field = cJSON_IsTrue(v);                                  \
    } while (0)
    STR("data", data);
    STR("target", target);
    STR("pack", pack);
    STR("model", arch);
    STR("from", from);
    STR("init", init);
    NUM("max_per_class", max_per_class, int);
    NUM("loader_threads", loader_threads, int);
    BOOL("strict", strict);
    NUM("size", size, int);
    NUM("epochs", epochs, int);
    NUM("batch", batch, int);
    NUM("lr", optim.lr, float);
    NUM("momentum", optim.momentum, float);
    BOOL("nesterov", optim.nesterov);
    NUM("weight_decay", optim.weight_decay, float);
    NUM("beta1", optim.beta1, float);
    NUM("beta2", optim.beta2, float);
    NUM("eps", optim.eps, float);
    NUM("temperature", temperature, float);
    NUM("alpha", alpha, float);
    BOOL("freeze_bn", freeze_bn);
    NUM("rep_weight", rep_weight, float);
    NUM("cutmix_p", cutmix_p, float);
    NUM("cutmix_beta", cutmix_beta, float);
    BOOL("flip", flip);
    NUM("lwf_temperature", lwf_temperature, float);
    NUM("lwf_lambda", lwf_lambda, float);
    NUM("ewc_lambda", ewc_lambda, float);
    NUM("ewc_samples", ewc_samples, int);
    NUM("replay_size", replay_size, int);
    NUM("threads", threads, int);
    BOOL("deterministic", deterministic);
    NUM("save_every", save_every, float);
#undef STR
#undef NUM
#undef BOOL
    if (bad_number) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: '%s' must be a number", path, bad_number);
        goto done;
    }
    const cJSON *v;
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(j, "optimizer"))) {
        int k = cored_optim_kind_parse(v->valuestring);
        if (k < 0) {
            rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: unknown optimizer '%s'", path, v->valuestring);
            goto done;
        }
        cfg->optim.kind = (cored_opt_kind)k;
    }
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(j, "seed")))
        cfg->seed = strtoull(v->valuestring, NULL, 10);
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(j, "method"))) {
        int k = cored_method_parse(v->valuestring);
        if (k < 0) {
            rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: unknown method '%s'", path, v->valuestring);
            goto done;
        }
        cfg->method = (cored_method)k;
    }
    static const struct {
        const char *key, *a, *b, *c;
    } choices[] = {{"rep", "scalar", "vector", NULL},
                   {"select", "acc", "auc", NULL},
                   {"cutmix", "opposite", "same", "none"},
                   {"rep_estimate", "plain", "unbiased", NULL},
                   {"rep_teacher_bn", "student", "running", NULL},
                   {"rep_norm", "none", "batch", NULL}};
    /* runs written before the option existed used the paper's sum */
    if (!cJSON_GetObjectItemCaseSensitive(j, "rep_norm")) cfg->rep_norm = CORED_REP_NORM_NONE;
    for (size_t q = 0; q < sizeof choices / sizeof choices[0]; q++) {
        v = cJSON_GetObjectItemCaseSensitive(j, choices[q].key);
        if (!v) continue;
        const char *x = cJSON_IsString(v) ? v->valuestring : "";
        int idx = !strcmp(x, choices[q].a) ? 0 : !strcmp(x, choices[q].b) ? 1
                  : (choices[q].c && !strcmp(x, choices[q].c)) ? 2 : -1;
        if (idx < 0) {
            rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: unknown %s '%s'", path, choices[q].key, x);
            goto done;
        }
        if (q == 0) cfg->rep = idx ? CORED_REP_VECTOR : CORED_REP_SCALAR;
        if (q == 1) cfg->select_auc = idx;
        if (q == 2) cfg->cutmix = idx == 0 ? CORED_CUTMIX_OPPOSITE : idx == 1 ? CORED_CUTMIX_SAME : CORED_CUTMIX_NONE;
        if (q == 3) cfg->rep_unbiased = idx;
        if (q == 4) cfg->rep_teacher_running = idx;
        if (q == 5) cfg->rep_norm = (cored_rep_norm)idx;
    }
    /* init_head: "keep" (also when absent, runs written before the option) or "reset" */
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "init_head"))) {
        int k = cored_init_head_parse(cJSON_IsString(v) ? v->valuestring : "");
        if (k < 0) {
            rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: unknown init_head '%s'", path,
                            cJSON_IsString(v) ? v->valuestring : "");
            goto done;
        }
        cfg->init_head = (cored_init_head)k;
    }
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "sources"), *it;
    cfg->n_sources = 0;
    cJSON_ArrayForEach(it, src)
    {
        if (cfg->n_sources < CORED_MAX_TASKS && cJSON_IsString(it))
            cfg->sources[cfg->n_sources++] = keep(&a, it->valuestring);
    }
    if (!cfg->data || !cfg->arch) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: 'data' and 'model' are required", path);
        goto done;
    }
    *strings = a.buf;
    a.buf = NULL;
done:
    cJSON_Delete(j);
    cored_free(a.buf);
    return rc;
}
