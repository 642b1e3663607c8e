/*
 * Training configuration: the paper's defaults, method names, and the resolved
 * configuration as JSON (a run's config.json, which --resume reads back).
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/checkpoint.h"
#include "io/json.h"
#include "models/model.h"
#include "train.h"

const char *const cored_method_names[] = {"train", "tl", "dl", "tg", "lwf", "ewc", "replay", "joint", "cored", NULL};

int cored_method_parse(const char *s)
{
    for (int i = 0; i < CORED_METHOD_COUNT; i++)
        if (!strcmp(s, cored_method_names[i])) return i;
    return -1;
}

const char *cored_method_name(cored_method m)
{
    return (unsigned)m < CORED_METHOD_COUNT ? cored_method_names[m] : "?";
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

/* ------------------------------------------------------------------------- the table */

static const char *const rep_names[] = {"scalar", "vector", NULL};
static const char *const rep_estimate_names[] = {"plain", "unbiased", NULL};
static const char *const rep_teacher_names[] = {"student", "running", NULL};
static const char *const rep_norm_names[] = {"none", "batch", NULL};
static const char *const select_names[] = {"acc", "auc", NULL};
static const char *const cutmix_names[] = {"none", "opposite", "same", NULL};

#define F(field) offsetof(cored_train_cfg, field)
#define M(m) (1u << CORED_METHOD_##m)
enum { BOTH = CORED_CFG_TASK1 | CORED_CFG_STEP };

static const cored_cfg_field fields[] = {
    {"data", CORED_CFG_STR, F(data), 0, 0, NULL, NULL, NULL, BOTH | CORED_CFG_PATH, 0, "DIR",
     "data root in the official CoReD layout"},
    {"sources", CORED_CFG_TASKS, F(sources), 0, 0, NULL, NULL, NULL, CORED_CFG_STEP, 0, "A,B",
     "the tasks learned before, in order (the first is task 1)"},
    {"target", CORED_CFG_STR, F(target), 0, 0, NULL, NULL, NULL, BOTH, 0, "NAME", "the task to learn (a folder of DIR)"},
    {"model", CORED_CFG_STR, F(arch), 0, 0, NULL, NULL, "xception; a step: --from's", BOTH, 0, "NAME",
     "tiny | xception | efficientnet-b0"},
    {"size", CORED_CFG_INT, F(size), 0, 4096, NULL, "0", NULL, BOTH, 0, "PX",
     "input side in pixels; 0: --from's, else the size the data was made at (synth.json), else 128"},
    {"from", CORED_CFG_STR, F(from), 0, 0, NULL, NULL, NULL, CORED_CFG_STEP | CORED_CFG_PATH, 0, "CKPT",
     "the previous step's best checkpoint: the student's start and the frozen teacher"},
    {"init", CORED_CFG_STR, F(init), 0, 0, NULL, NULL, "PyTorch's initialisation", CORED_CFG_TASK1 | CORED_CFG_PATH,
     0, "FILE", "initial weights"},
    {"init_head", CORED_CFG_ENUM, F(init_head), 0, 0, cored_init_head_names, "keep", NULL, CORED_CFG_TASK1, 0, NULL,
     "--init's classifier: keep (a complete checkpoint) or reset (a backbone such as ImageNet weights: a new "
     "2-class classifier with PyTorch's default initialisation)"},
    {"method", CORED_CFG_ENUM, F(method), 0, 0, cored_method_names, "cored", NULL, CORED_CFG_STEP, 0, NULL,
     "continual method"},
    {"epochs", CORED_CFG_INT, F(epochs), 1, 100000, NULL, "100", NULL, BOTH, 0, "N", "epochs"},
    {"batch", CORED_CFG_INT, F(batch), 2, CORED_MAX_BATCH, NULL, "128", NULL, BOTH, 0, "N", "batch size"},
    {"optimizer", CORED_CFG_ENUM, F(optim.kind), 0, 0, cored_optim_names, "sgd", NULL, BOTH, 0, NULL, "optimiser"},
    {"lr", CORED_CFG_FLOAT, F(optim.lr), 0, 1e3, NULL, NULL, "0.05 with sgd, 0.001 with adam and adamw", BOTH, 0, "X",
     "learning rate (constant)"},
    {"momentum", CORED_CFG_FLOAT, F(optim.momentum), 0, 1, NULL, NULL, "0.1 with sgd, else 0", BOTH, 0, "X",
     "SGD momentum"},
    {"nesterov", CORED_CFG_BOOL, F(optim.nesterov), 0, 0, NULL, "false", NULL, BOTH, 0, NULL, "Nesterov momentum"},
    {"weight_decay", CORED_CFG_FLOAT, F(optim.weight_decay), 0, 10, NULL, NULL, "0; 0.01 with adamw", BOTH, 0, "X",
     "weight decay"},
    {"beta1", CORED_CFG_FLOAT, F(optim.beta1), 0, 0.999999, NULL, "0.9", NULL, BOTH, 0, "X", "Adam's beta1"},
    {"beta2", CORED_CFG_FLOAT, F(optim.beta2), 0, 0.999999, NULL, "0.999", NULL, BOTH, 0, "X", "Adam's beta2"},
    {"eps", CORED_CFG_FLOAT, F(optim.eps), 1e-30, 1, NULL, "1e-8", NULL, BOTH, 0, "X", "Adam's epsilon"},
    {"seed", CORED_CFG_U64, F(seed), 0, 0, NULL, "2020", NULL, BOTH, 0, "S",
     "random seed (initialisation, data order, augmentation)"},
    {"temperature", CORED_CFG_FLOAT, F(temperature), 1e-3, 1e3, NULL, "20", NULL, CORED_CFG_STEP, M(DL) | M(CORED),
     "T", "distillation temperature"},
    {"alpha", CORED_CFG_FLOAT, F(alpha), 0, 1, NULL, "0.5", NULL, CORED_CFG_STEP, M(DL) | M(CORED), "A",
     "distillation weight: (1 + alpha) CE + alpha T^2 KL"},
    {"freeze_bn", CORED_CFG_BOOL, F(freeze_bn), 0, 0, NULL, "false", NULL, CORED_CFG_STEP, 0, NULL,
     "train with BN in eval mode, as the official code effectively does"},
    {"rep", CORED_CFG_ENUM, F(rep), 0, 0, rep_names, "scalar", NULL, CORED_CFG_STEP, M(CORED), NULL,
     "representation statistic: the band's mean activation, or one per channel"},
    {"rep_estimate", CORED_CFG_ENUM, F(rep_unbiased), 0, 0, rep_estimate_names, "plain", NULL, CORED_CFG_STEP,
     M(CORED), NULL, "per-cell term: the squared difference, or minus the batch's sampling variance"},
    {"rep_teacher_bn", CORED_CFG_ENUM, F(rep_teacher_running), 0, 0, rep_teacher_names, "running", NULL,
     CORED_CFG_STEP, M(CORED), NULL,
     "teacher statistics under BN running statistics (official code) or the student's BN mode"},
    {"rep_norm", CORED_CFG_ENUM, F(rep_norm), 0, 0, rep_norm_names, "batch", NULL, CORED_CFG_STEP, M(CORED), NULL,
     "representation term: the paper's sum over cells (none), or each cell by its share of the batch in "
     "units of the teacher's variance of the statistic (batch)"},
    {"rep_weight", CORED_CFG_FLOAT, F(rep_weight), 0, 1e6, NULL, "0", NULL, CORED_CFG_STEP, M(CORED), "X",
     "factor of the representation term; 0: the norm's (1 with none, 0.1 with batch)"},
    {"lwf_temperature", CORED_CFG_FLOAT, F(lwf_temperature), 1e-3, 1e3, NULL, "2", NULL, CORED_CFG_STEP, M(LWF), "T",
     "LwF temperature"},
    {"lwf_lambda", CORED_CFG_FLOAT, F(lwf_lambda), 0, 1e6, NULL, "1", NULL, CORED_CFG_STEP, M(LWF), "X",
     "LwF distillation weight"},
    {"ewc_lambda", CORED_CFG_FLOAT, F(ewc_lambda), 0, 1e12, NULL, "100", NULL, CORED_CFG_STEP, M(EWC), "X",
     "EWC penalty weight"},
    {"ewc_samples", CORED_CFG_INT, F(ewc_samples), 2, 1000000, NULL, "200", NULL, CORED_CFG_STEP, M(EWC), "N",
     "images per task for EWC's Fisher"},
    {"replay_size", CORED_CFG_INT, F(replay_size), 2, 100000000, NULL, "200", NULL, CORED_CFG_STEP, M(REPLAY), "N",
     "images in the replay buffer"},
    {"select", CORED_CFG_ENUM, F(select_auc), 0, 0, select_names, "acc", NULL, BOTH, 0, NULL,
     "model selection: the epoch with the best sum of validation accuracy, or AUC, over the seen tasks"},
    {"cutmix", CORED_CFG_ENUM, F(cutmix), 0, 0, cutmix_names, "opposite", NULL, BOTH, 0, NULL,
     "CutMix: opposite-class (p 0.2, Beta(0.5, 0.5)) or same-class (p 0.5, Beta(1, 1))"},
    {"cutmix_p", CORED_CFG_FLOAT, F(cutmix_p), 0, 1, NULL, "0", NULL, BOTH, 0, "P", "CutMix probability, 0: the mode's"},
    {"cutmix_beta", CORED_CFG_FLOAT, F(cutmix_beta), 0, 1e3, NULL, "0", NULL, BOTH, 0, "A",
     "CutMix Beta(A, A) parameter, 0: the mode's"},
    {"flip", CORED_CFG_BOOL, F(flip), 0, 0, NULL, "true", NULL, BOTH, 0, NULL, "random horizontal flip"},
    {"max_per_class", CORED_CFG_INT, F(max_per_class), 0, 100000000, NULL, "0", NULL, BOTH, 0, "N",
     "cap on training images per class, 0: none"},
    {"pack", CORED_CFG_STR, F(pack), 0, 0, NULL, NULL, "DATA/.cored-pack-SIZE.bin when present", BOTH | CORED_CFG_PATH,
     0, "FILE", "pack of pre-resized images (cored pack); 'none' to decode"},
    {"strict", CORED_CFG_BOOL, F(strict), 0, 0, NULL, "false", NULL, BOTH, 0, NULL,
     "a corrupt image is an error, not a skipped file"},
    {"threads", CORED_CFG_INT, F(threads), 0, 1024, NULL, "0", "all cores", BOTH | CORED_CFG_RUNTIME, 0, "N",
     "compute threads (results do not depend on them)"},
    {"loader_threads", CORED_CFG_INT, F(loader_threads), 0, 1024, NULL, "0", "automatic", BOTH | CORED_CFG_RUNTIME,
     0, "N", "image decoding threads"},
    {"sync_bn", CORED_CFG_BOOL, F(sync_bn), 0, 0, NULL, "false", NULL, BOTH, 0, NULL,
     "under mpirun: BatchNorm statistics of the global batch (summed over the ranks), so that N ranks "
     "train as one process; without it each rank normalises by its own shard"},
    {"bucket_mb", CORED_CFG_FLOAT, F(bucket_mb), 0, 1024, NULL, "4", NULL, BOTH | CORED_CFG_RUNTIME, 0, "MB",
     "under mpirun: the gradients are summed in buckets of this size while the backward pass runs "
     "(results do not depend on it); 0: one sum after the backward pass"},
    {"deterministic", CORED_CFG_BOOL, F(deterministic), 0, 0, NULL, "false", NULL, BOTH, 0, NULL,
     "single-threaded BLAS calls (results never depend on --threads; kept for scripts)"},
    {"save_every", CORED_CFG_FLOAT, F(save_every), 0, 1e9, NULL, "300", NULL, BOTH, 0, "S",
     "seconds between mid-epoch checkpoints, 0: at epoch ends only"},
    {"out", CORED_CFG_STR, F(out), 0, 0, NULL, NULL, NULL, BOTH | CORED_CFG_NOSAVE | CORED_CFG_PATH, 0, "RUN",
     "run folder"},
    {"force", CORED_CFG_BOOL, F(force), 0, 0, NULL, "false", NULL, BOTH | CORED_CFG_NOSAVE, 0, NULL,
     "replace an existing run folder"},
    {"trace", CORED_CFG_STR, F(trace), 0, 0, NULL, NULL, NULL, BOTH | CORED_CFG_NOSAVE | CORED_CFG_PATH, 0, "FILE",
     "append one JSON line per step: loss terms, gradient norms per term, cell statistics (slower)"},
};
#undef F
#undef M
#define N_FIELDS ((int)(sizeof fields / sizeof fields[0]))
_Static_assert(sizeof fields / sizeof fields[0] <= 64, "cored_cfg_mask has 64 bits");

const cored_cfg_field *cored_cfg_fields(int *n)
{
    *n = N_FIELDS;
    return fields;
}

int cored_cfg_find(const char *name)
{
    for (int i = 0; i < N_FIELDS; i++) {
        const char *k = fields[i].key, *s = name;
        while (*k && (*k == *s || (*k == '_' && *s == '-'))) k++, s++;
        if (!*k && !*s) return i;
    }
    return -1;
}

int cored_cfg_acts(const cored_cfg_field *f, cored_method m)
{
    if (!(f->where & (m == CORED_METHOD_CE ? CORED_CFG_TASK1 : CORED_CFG_STEP))) return 0;
    return !f->methods || (f->methods & (1u << m));
}

static void *at(cored_train_cfg *c, int i) { return (char *)c + fields[i].offset; }
static const void *at_c(const cored_train_cfg *c, int i) { return (const char *)c + fields[i].offset; }

static int names_index(const char *const *names, const char *s)
{
    for (int k = 0; names[k]; k++)
        if (!strcmp(names[k], s)) return k;
    return -1;
}

static void names_join(char *buf, size_t n, const char *const *names)
{
    buf[0] = 0;
    for (int k = 0; names[k]; k++) {
        size_t u = strlen(buf);
        snprintf(buf + u, n - u, "%s%s", k ? ", " : "", names[k]);
    }
}

int cored_cfg_parse(cored_train_cfg *c, int i, const char *text, cored_error *err)
{
    const cored_cfg_field *f = &fields[i];
    char *end;
    errno = 0;
    switch (f->type) {
    case CORED_CFG_INT: {
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < f->lo || v > f->hi)
            return CORED_FAIL(err, CORED_E_ARG, "%s expects an integer in %g..%g, got '%s'", f->key, f->lo, f->hi, text);
        *(int *)at(c, i) = (int)v;
        return CORED_OK;
    }
    case CORED_CFG_U64: {
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || end == text || *end || text[0] == '-')
            return CORED_FAIL(err, CORED_E_ARG, "%s expects a non-negative integer, got '%s'", f->key, text);
        *(uint64_t *)at(c, i) = v;
        return CORED_OK;
    }
    case CORED_CFG_FLOAT: {
        double v = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(v) || v < f->lo || v > f->hi)
            return CORED_FAIL(err, CORED_E_ARG, "%s expects a number in %g..%g, got '%s'", f->key, f->lo, f->hi, text);
        *(float *)at(c, i) = (float)v;
        return CORED_OK;
    }
    case CORED_CFG_BOOL:
        if (strcmp(text, "true") && strcmp(text, "false"))
            return CORED_FAIL(err, CORED_E_ARG, "%s expects true or false, got '%s'", f->key, text);
        *(int *)at(c, i) = !strcmp(text, "true");
        return CORED_OK;
    case CORED_CFG_STR:
        if (!text[0]) return CORED_FAIL(err, CORED_E_ARG, "%s needs a non-empty value", f->key);
        *(const char **)at(c, i) = text;
        return CORED_OK;
    case CORED_CFG_ENUM: {
        int k = names_index(f->names, text);
        if (k < 0) {
            char list[256];
            names_join(list, sizeof list, f->names);
            return CORED_FAIL(err, CORED_E_ARG, "%s must be one of %s, got '%s'", f->key, list, text);
        }
        *(int *)at(c, i) = k;
        return CORED_OK;
    }
    case CORED_CFG_TASKS:
        return CORED_FAIL(err, CORED_E_ARG, "%s: a list of task names is set with cored_cfg_copy", f->key);
    }
    return CORED_FAIL(err, CORED_E_ARG, "%s: unknown type", f->key);
}

void cored_cfg_format(const cored_train_cfg *c, int i, char *buf, size_t n)
{
    const cored_cfg_field *f = &fields[i];
    const void *p = at_c(c, i);
    switch (f->type) {
    case CORED_CFG_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case CORED_CFG_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case CORED_CFG_FLOAT: snprintf(buf, n, "%g", *(const float *)p); break;
    case CORED_CFG_BOOL: snprintf(buf, n, "%s", *(const int *)p ? "true" : "false"); break;
    case CORED_CFG_STR: snprintf(buf, n, "%s", *(const char *const *)p ? *(const char *const *)p : ""); break;
    case CORED_CFG_ENUM: {
        int k = *(const int *)p, count = 0;
        while (f->names[count]) count++;
        snprintf(buf, n, "%s", k >= 0 && k < count ? f->names[k] : "?");
        break;
    }
    case CORED_CFG_TASKS:
        buf[0] = 0;
        for (int s = 0; s < c->n_sources; s++) {
            size_t u = strlen(buf);
            snprintf(buf + u, n - u, "%s%s", s ? "," : "", c->sources[s]);
        }
        break;
    }
}

void cored_cfg_copy(cored_train_cfg *dst, const cored_train_cfg *src, int i)
{
    switch (fields[i].type) {
    case CORED_CFG_U64: *(uint64_t *)at(dst, i) = *(const uint64_t *)at_c(src, i); break;
    case CORED_CFG_FLOAT: *(float *)at(dst, i) = *(const float *)at_c(src, i); break;
    case CORED_CFG_STR: *(const char **)at(dst, i) = *(const char *const *)at_c(src, i); break;
    case CORED_CFG_TASKS:
        dst->n_sources = src->n_sources;
        for (int s = 0; s < src->n_sources; s++) dst->sources[s] = src->sources[s];
        break;
    default: *(int *)at(dst, i) = *(const int *)at_c(src, i); break;
    }
}

void cored_train_defaults(cored_train_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < N_FIELDS; i++)
        if (fields[i].def) cored_cfg_parse(cfg, i, fields[i].def, NULL);
    cored_cfg_finish(cfg, 0);
}

/* ----------------------------------------------------------------------- presets */

const cored_cfg_preset_def cored_cfg_presets[] = {
    {"paper", "the paper's settings, its representation term included (--rep-norm none)",
     {{"optimizer", "sgd"}, {"lr", "0.05"}, {"momentum", "0.1"}, {"weight_decay", "0"}, {"batch", "128"},
      {"epochs", "100"}, {"temperature", "20"}, {"alpha", "0.5"}, {"cutmix", "opposite"}, {"select", "acc"},
      {"rep_norm", "none"}, {"rep_weight", "1"}}},
    {"quick", "short runs on small data, what make demo uses: the tiny model, Adam at lr 0.002, batch 32, 20 epochs",
     {{"model", "tiny"}, {"optimizer", "adam"}, {"lr", "0.002"}, {"batch", "32"}, {"epochs", "20"}}},
    {NULL, NULL, {{NULL, NULL}}},
};

int cored_cfg_preset(cored_train_cfg *cfg, const char *name, cored_cfg_mask *set, cored_error *err)
{
    for (const cored_cfg_preset_def *p = cored_cfg_presets; p->name; p++) {
        if (strcmp(p->name, name)) continue;
        for (const cored_cfg_setting *kv = p->settings; kv->key; kv++) {
            int i = cored_cfg_find(kv->key), rc = cored_cfg_parse(cfg, i, kv->value, err);
            if (rc) return rc;
            if (set) *set |= (cored_cfg_mask)1 << i;
        }
        return CORED_OK;
    }
    return CORED_FAIL(err, CORED_E_ARG, "unknown preset '%s' (paper, quick)", name);
}

void cored_cfg_finish(cored_train_cfg *cfg, cored_cfg_mask set)
{
    cored_optim_cfg o = cored_optim_defaults(cfg->optim.kind);
    if (!(set & ((cored_cfg_mask)1 << cored_cfg_find("lr")))) cfg->optim.lr = o.lr;
    if (!(set & ((cored_cfg_mask)1 << cored_cfg_find("momentum")))) cfg->optim.momentum = o.momentum;
    if (!(set & ((cored_cfg_mask)1 << cored_cfg_find("weight_decay")))) cfg->optim.weight_decay = o.weight_decay;
}

/* The size a data set was made at (its synth.json), 0 when it does not say. */
static int data_size(const char *data)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/synth.json", data);
    if (!cored_is_file(path)) return 0;
    cJSON *j = cored_json_load(path, 1 << 24, NULL);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "size");
    int size = cJSON_IsNumber(v) && v->valuedouble >= 16 && v->valuedouble <= 4096 ? (int)v->valuedouble : 0;
    cJSON_Delete(j);
    return size;
}

int cored_train_resolve_from(cored_train_cfg *c, const cored_st_file *from, int warn, cored_error *err)
{
    char ck_arch[64] = "", ck_tasks[4096] = "";
    int ck_size = 0, d_size = c->data ? data_size(c->data) : 0;
    if (from) {
        cored_checkpoint_info(from, ck_arch, sizeof ck_arch, &ck_size, ck_tasks, sizeof ck_tasks);
        int rc;
        if (!c->arch && !ck_arch[0]) {
            rc = CORED_FAIL(err, CORED_E_ARG, "%s does not say which model it holds", c->from);
            cored_error_hint(err, "pass --model tiny|xception|efficientnet-b0");
            return rc;
        }
        const cored_arch *arch = cored_arch_find(c->arch ? c->arch : ck_arch);
        if (!arch) return CORED_FAIL(err, CORED_E_ARG, "%s: unknown model '%s'", c->from, c->arch ? c->arch : ck_arch);
        c->arch = arch->name;
        char joined[4096];
        joined[0] = 0;
        for (int i = 0; i < c->n_sources; i++) {
            size_t u = strlen(joined);
            snprintf(joined + u, sizeof joined - u, "%s%s", i ? "," : "", c->sources[i]);
        }
        if (ck_tasks[0] && strcmp(joined, ck_tasks)) {
            rc = CORED_FAIL(err, CORED_E_ARG, "%s has learned the tasks %s, but the sources are %s", c->from, ck_tasks,
                            joined[0] ? joined : "none");
            cored_error_hint(err, "pass --sources %s (the earlier tasks, in order)", ck_tasks);
            return rc;
        }
    }
    if (!c->arch) c->arch = "xception";
    if (!c->size) c->size = ck_size ? ck_size : d_size ? d_size : 128;
    if (!warn) return CORED_OK;
    if (ck_size && c->size != ck_size)
        cored_log(CORED_LOG_WARN, "the input size %d differs from %d, the size %s was trained at", c->size, ck_size,
                  c->from);
    else if (d_size && c->size != d_size)
        cored_log(CORED_LOG_WARN, "the input size %d differs from %d, the size %s was made at (synth.json)", c->size,
                  d_size, c->data);
    return CORED_OK;
}

int cored_train_resolve(cored_train_cfg *c, cored_error *err)
{
    cored_st_file *from = NULL;
    if (c->method != CORED_METHOD_CE && c->from) {
        int rc = cored_st_open(&from, c->from, err);
        if (rc) return rc;
    }
    int rc = cored_train_resolve_from(c, from, 1, err);
    cored_st_close(from);
    return rc;
}

void cored_resolve_pack(char *buf, size_t n, const char *data, const char *pack, int size)
{
    if (pack && !strcmp(pack, "none")) {
        buf[0] = 0;
    } else if (!pack) {
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

/* The shortest decimal that reads back as the same float (0.05, not 0.05000000074505806). */
static double shortest(float f)
{
    char buf[32];
    for (int digits = 6; digits < 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if ((float)strtod(buf, NULL) == f) return strtod(buf, NULL);
    }
    snprintf(buf, sizeof buf, "%.9g", (double)f);
    return strtod(buf, NULL);
}

int cored_train_cfg_save(const cored_train_cfg *cfg, const char *path, cored_error *err)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "cored_version", CORED_VERSION);
    for (int i = 0; i < N_FIELDS; i++) {
        const cored_cfg_field *f = &fields[i];
        const void *p = at_c(cfg, i);
        if (f->where & CORED_CFG_NOSAVE) continue;
        switch (f->type) {
        case CORED_CFG_INT: cJSON_AddNumberToObject(j, f->key, *(const int *)p); break;
        case CORED_CFG_FLOAT: cJSON_AddNumberToObject(j, f->key, shortest(*(const float *)p)); break;
        case CORED_CFG_BOOL: cJSON_AddBoolToObject(j, f->key, *(const int *)p); break;
        case CORED_CFG_STR:
            if (*(const char *const *)p) cJSON_AddStringToObject(j, f->key, *(const char *const *)p);
            break;
        case CORED_CFG_U64: /* a string: JSON numbers lose 64-bit integers */
        case CORED_CFG_ENUM: {
            char buf[64];
            cored_cfg_format(cfg, i, buf, sizeof buf);
            cJSON_AddStringToObject(j, f->key, buf);
            break;
        }
        case CORED_CFG_TASKS: {
            cJSON *a = cJSON_AddArrayToObject(j, f->key);
            for (int s = 0; s < cfg->n_sources; s++) cJSON_AddItemToArray(a, cJSON_CreateString(cfg->sources[s]));
            break;
        }
        }
    }
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

/* One JSON value into row i: numbers and booleans as such, the rest as text. */
static int read_value(cored_train_cfg *c, int i, const cJSON *v, arena *a, const char *path, cored_error *err)
{
    const cored_cfg_field *f = &fields[i];
    char text[64];
    const char *s = NULL;
    switch (f->type) {
    case CORED_CFG_INT:
    case CORED_CFG_FLOAT:
        if (!cJSON_IsNumber(v)) return CORED_FAIL(err, CORED_E_FORMAT, "%s: '%s' must be a number", path, f->key);
        snprintf(text, sizeof text, "%.17g", v->valuedouble);
        s = text;
        break;
    case CORED_CFG_BOOL:
        if (!cJSON_IsBool(v)) return CORED_FAIL(err, CORED_E_FORMAT, "%s: '%s' must be true or false", path, f->key);
        s = cJSON_IsTrue(v) ? "true" : "false";
        break;
    case CORED_CFG_U64: /* a string, or a number where it is exact */
        if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9007199254740992.0) {
            snprintf(text, sizeof text, "%.0f", v->valuedouble);
            s = text;
            break;
        }
        /* fall through */
    case CORED_CFG_STR:
    case CORED_CFG_ENUM:
        if (!cJSON_IsString(v)) return CORED_FAIL(err, CORED_E_FORMAT, "%s: '%s' must be a string", path, f->key);
        if (!(s = keep(a, v->valuestring))) return CORED_FAIL(err, CORED_E_FORMAT, "%s: strings too long", path);
        break;
    case CORED_CFG_TASKS: {
        const cJSON *it;
        c->n_sources = 0;
        if (!cJSON_IsArray(v)) return CORED_FAIL(err, CORED_E_FORMAT, "%s: '%s' must be a list of names", path, f->key);
        cJSON_ArrayForEach(it, v)
        {
            if (!cJSON_IsString(it) || c->n_sources == CORED_MAX_TASKS - 1 || !(s = keep(a, it->valuestring)))
                return CORED_FAIL(err, CORED_E_FORMAT, "%s: '%s' must be a list of at most %d names", path, f->key,
                                  CORED_MAX_TASKS - 1);
            c->sources[c->n_sources++] = s;
        }
        return CORED_OK;
    }
    }
    int rc = cored_cfg_parse(c, i, s, err);
    if (rc) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: %s", path, msg);
    }
    return CORED_OK;
}

int cored_train_cfg_read(cored_train_cfg *cfg, cored_cfg_mask *set, char **strings, const char *path,
                         cored_error *err)
{
    int rc = CORED_OK;
    *strings = NULL;
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
    const cJSON *v;
    cJSON_ArrayForEach(v, j)
    {
        if (!strcmp(v->string, "cored_version")) continue;
        int i = cored_cfg_find(v->string);
        if (i < 0 || (fields[i].where & CORED_CFG_NOSAVE) || strchr(v->string, '-')) {
            rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: unknown setting '%s'", path, v->string);
            cored_error_hint(err, "the settings are the keys of a run's config.json; 'cored train --help' lists them "
                                  "as options");
            goto done;
        }
        if ((rc = read_value(cfg, i, v, &a, path, err))) goto done;
        if (set) *set |= (cored_cfg_mask)1 << i;
    }
    *strings = a.buf;
    a.buf = NULL;
done:
    cJSON_Delete(j);
    cored_free(a.buf);
    return rc;
}

int cored_train_cfg_load(cored_train_cfg *cfg, char **strings, const char *path, cored_error *err)
{
    cored_train_defaults(cfg);
    /* runs written before the option existed used the paper's sum */
    cfg->rep_norm = CORED_REP_NORM_NONE;
    cored_cfg_mask set = 0;
    int rc = cored_train_cfg_read(cfg, &set, strings, path, err);
    if (rc) return rc;
    cored_cfg_finish(cfg, set);
    if (!cfg->data || !cfg->arch) {
        cored_free(*strings);
        *strings = NULL;
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: 'data' and 'model' are required", path);
    }
    return CORED_OK;
}
