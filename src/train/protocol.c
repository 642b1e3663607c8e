/*
 * The continual protocol (protocol.h): orchestration of the training runs, evaluation of
 * every task after every step, and the report.
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "dist/dist.h"
#include "eval/evaluate.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "eval/videos.h"
#include "io/checkpoint.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "protocol.h"

static void announce(const cored_protocol_cfg *p, const char *what)
{
    if (!p->base.progress) return;
    cored_progress e = {.phase = CORED_PHASE_PREPARE, .what = what};
    p->base.progress(&e, p->base.progress_user);
}

int cored_protocol_save(const cored_protocol_cfg *p, cored_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/base.json", p->out);
    int rc = cored_train_cfg_save(&p->base, path, err);
    if (rc) return rc;
    cJSON *j = cJSON_CreateObject(), *t = cJSON_CreateArray(), *m = cJSON_CreateArray();
    for (int i = 0; i < p->n_tasks; i++) cJSON_AddItemToArray(t, cJSON_CreateString(p->tasks[i]));
    for (int i = 0; i < p->n_methods; i++) cJSON_AddItemToArray(m, cJSON_CreateString(cored_method_name(p->methods[i])));
    cJSON_AddItemToObject(j, "tasks", t);
    cJSON_AddItemToObject(j, "methods", m);
    cJSON_AddNumberToObject(j, "task1_epochs", p->task1_epochs);
    cJSON_AddStringToObject(j, "split", cored_split_name(p->split));
    snprintf(path, sizeof path, "%s/protocol.json", p->out);
    return cored_json_save(j, path, err);
}

int cored_protocol_load(cored_protocol_cfg *p, char **strings, const char *dir, cored_error *err)
{
    char path[4096];
    memset(p, 0, sizeof *p);
    snprintf(path, sizeof path, "%s/protocol.json", dir);
    cJSON *j = cored_json_load(path, (size_t)1 << 20, err);
    if (!j) return err ? err->code : CORED_E_FORMAT;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "tasks"), *m = cJSON_GetObjectItemCaseSensitive(j, "methods");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "task1_epochs"), *s = cJSON_GetObjectItemCaseSensitive(j, "split");
    /* Task names are kept in a block after the base configuration's strings. */
    size_t need = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, t) if (cJSON_IsString(it)) need += strlen(it->valuestring) + 1;
    char *names = cored_alloc(need + 1);
    int rc = names ? CORED_OK : CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
    size_t used = 0;
    cJSON_ArrayForEach(it, t)
    {
        if (rc || !cJSON_IsString(it) || p->n_tasks >= CORED_MAX_TASKS) continue;
        size_t l = strlen(it->valuestring) + 1;
        memcpy(names + used, it->valuestring, l);
        p->tasks[p->n_tasks++] = names + used;
        used += l;
    }
    cJSON_ArrayForEach(it, m)
    {
        int k = cJSON_IsString(it) ? cored_method_parse(it->valuestring) : -1;
        if (k < 0 && !rc) rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: unknown method", path);
        if (k >= 0 && p->n_methods < CORED_METHOD_COUNT) p->methods[p->n_methods++] = (cored_method)k;
    }
    p->task1_epochs = cJSON_IsNumber(e) ? (int)e->valuedouble : 0;
    p->split = cJSON_IsString(s) && !strcmp(s->valuestring, "val") ? CORED_SPLIT_VAL : CORED_SPLIT_TEST;
    cJSON_Delete(j);
    if (!rc && p->n_tasks < 2) rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: needs at least two tasks", path);
    char *base = NULL;
    if (!rc) {
        snprintf(path, sizeof path, "%s/base.json", dir);
        rc = cored_train_cfg_load(&p->base, &base, path, err);
    }
    if (rc) {
        cored_free(names);
        return rc;
    }
    strings[0] = base;
    strings[1] = names;
    p->out = dir;
    p->resume = 1;
    return CORED_OK;
}

/* ---------------------------------------------------------------- evaluation of a step */

/* all: every rank calls it (under mpirun they decide alike); else this process alone */
static int stopped_as(const cored_protocol_cfg *p, int all, cored_error *err)
{
    int stop = p->base.stop && *p->base.stop;
    if (all) cored_dist_max_i(&stop, 1);
    if (!stop) return 0;
    CORED_FAIL(err, CORED_E_STOPPED, "stopped; continue with --resume %s", p->out);
    return 1;
}

static int eval_step(const cored_protocol_cfg *p, const char *dir, cored_error *err)
{
    char json_path[4096], st_path[4096], ckpt[4096];
    if (cored_path_join(json_path, sizeof json_path, dir, "eval.json") ||
        cored_path_join(st_path, sizeof st_path, dir, "eval.safetensors") ||
        cored_path_join(ckpt, sizeof ckpt, dir, "best.safetensors"))
        return CORED_FAIL(err, CORED_E_ARG, "%s: path too long", dir);
    /* under mpirun every rank scores its slice of each split and rank 0 writes; rank 0's look
       at the folder decides for all */
    const int root = cored_dist_rank() == 0;
    int done = root && cored_is_file(json_path) && cored_is_file(st_path);
    cored_dist_bcast(&done, sizeof done, 0);
    if (done) return CORED_OK;
    const cored_train_cfg *b = &p->base;
    cored_model *m = NULL;
    float *scores[CORED_MAX_TASKS] = {0}, *flabels[CORED_MAX_TASKS] = {0};
    int *labels = NULL, *index = NULL, counts[CORED_MAX_TASKS] = {0};
    cored_st_out outs[2 * CORED_MAX_TASKS];
    char names[2 * CORED_MAX_TASKS][CORED_NAME_MAX + 16];
    cJSON *j = cJSON_CreateObject(), *tasks = cJSON_CreateObject();
    int rc = cored_model_create(&m, b->arch, b->size, b->batch, CORED_BUILD_INFER, err);
    if (!rc) rc = cored_model_load(m, ckpt, err);
    char pack[4096];
    cored_resolve_pack(pack, sizeof pack, b->data, b->pack, b->size);
    cored_loader_opts base = {.size = b->size, .threads = cored_loader_threads(b->loader_threads),
                              .strict = b->strict, .pack = pack[0] ? pack : NULL};
    for (int i = 0; i < p->n_tasks && !rc; i++) {
        cored_dataset *ds = NULL;
        cored_video_groups g = {0};
        cored_metrics res, vres;
        if (cored_dist_size() == 1 && stopped_as(p, 0, err)) { /* under mpirun: at the next step */
            rc = CORED_E_STOPPED;
            break;
        }
        rc = cored_dataset_open_scoring(&ds, b->data, p->tasks[i], p->split, err);
        int count = rc ? 0 : cored_dataset_count(ds), n = 0;
        if (!rc) {
            scores[i] = cored_alloc(sizeof(float) * (size_t)(count ? count : 1));
            flabels[i] = cored_alloc(sizeof(float) * (size_t)(count ? count : 1));
            labels = cored_realloc(labels, sizeof(int) * (size_t)(count ? count : 1));
            index = cored_realloc(index, sizeof(int) * (size_t)(count ? count : 1));
            if (!scores[i] || !flabels[i] || !labels || !index) rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
        }
        cored_loader_opts o = cored_eval_loader_opts(&base, b->batch);
        if (!rc) rc = cored_video_groups_build(&g, ds, err);
        if (!rc) rc = cored_eval_dataset(scores[i], labels, index, &n, m, ds, &o, err);
        if (!rc) rc = cored_metrics_compute(&res, scores[i], labels, n, err);
        /* frames in per-video folders: the video level too (mean p(fake) per folder) */
        if (!rc && g.n_folders) rc = cored_video_metrics(&vres, &g, scores[i], labels, index, n, NULL, NULL, NULL, err);
        cored_dataset_free(ds);
        if (rc) {
            cored_video_groups_release(&g);
            break;
        }
        counts[i] = n;
        for (int k = 0; k < n; k++) flabels[i][k] = (float)labels[k];
        cJSON *o2 = cJSON_CreateObject();
        cJSON_AddItemToObject(o2, "auc", cored_json_number(res.auc));
        cJSON_AddItemToObject(o2, "acc", cored_json_number(res.acc));
        cJSON_AddItemToObject(o2, "acc_real", cored_json_number(res.acc_real));
        cJSON_AddItemToObject(o2, "acc_fake", cored_json_number(res.acc_fake));
        cJSON_AddNumberToObject(o2, "n_real", res.n_real);
        cJSON_AddNumberToObject(o2, "n_fake", res.n_fake);
        cJSON_AddItemToObject(o2, "videos", g.n_folders ? cored_video_metrics_json(&vres, &g, n) : cJSON_CreateNull());
        cored_video_groups_release(&g);
        cJSON_AddItemToObject(tasks, p->tasks[i], o2);
    }
    if (!rc) {
        int k = 0;
        for (int i = 0; i < p->n_tasks; i++) {
            snprintf(names[k], sizeof names[k], "scores.%s", p->tasks[i]);
            outs[k] = (cored_st_out){.name = names[k], .ndim = 1, .shape = {counts[i]}, .data = scores[i]};
            k++;
            snprintf(names[k], sizeof names[k], "labels.%s", p->tasks[i]);
            outs[k] = (cored_st_out){.name = names[k], .ndim = 1, .shape = {counts[i]}, .data = flabels[i]};
            k++;
        }
        const char *meta[] = {"checkpoint", ckpt, "split", cored_split_name(p->split)};
        if (root) rc = cored_st_write(st_path, outs, k, meta, 2, err);
    }
    cJSON_AddStringToObject(j, "checkpoint", ckpt);
    cJSON_AddStringToObject(j, "split", cored_split_name(p->split));
    cJSON_AddItemToObject(j, "tasks", tasks);
    if (!rc && root)
        rc = cored_json_save(j, json_path, err);
    else
        cJSON_Delete(j);
    for (int i = 0; i < p->n_tasks; i++) cored_free(scores[i]), cored_free(flabels[i]);
    cored_free(labels);
    cored_free(index);
    cored_model_free(m);
    return rc;
}

/* ---------------------------------------------------------------- steps */

/* A completed step counts only if it was trained from the current previous model. */
static int summary_matches(const char *summary, const char *from)
{
    cJSON *j = cored_json_load(summary, (size_t)1 << 20, NULL);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "from_checksum");
    int ok = cJSON_IsString(v) && strtoull(v->valuestring, NULL, 16) == cored_file_checksum(from);
    cJSON_Delete(j);
    return ok;
}

static int run_step(const cored_protocol_cfg *p, cored_train_cfg *c, const char *dir, const char *what,
                    cored_error *err)
{
    char path[4096];
    /* under mpirun: rank 0 has finished writing the previous step (its summary, best and
       evaluation), so every rank reads the same files below; rank 0 alone writes */
    cored_dist_barrier();
    const int root = cored_dist_rank() == 0;
    if (stopped_as(p, 1, err)) return CORED_E_STOPPED;
    if (root) {
        cored_clean_stale_temps(dir, "eval.json");
        cored_clean_stale_temps(dir, "eval.safetensors");
    }
    snprintf(path, sizeof path, "%s/summary.json", dir);
    c->out = dir;
    c->force = p->force && !p->resume;
    c->resume = 0;
    if (cored_is_file(path) && summary_matches(path, c->from)) {
        announce(p, what);
        return eval_step(p, dir, err);
    } else if (cored_is_file(path)) {
        c->force = 1; /* trained from another teacher (an earlier, replaced run): redo */
    } else {
        snprintf(path, sizeof path, "%s/config.json", dir);
        c->resume = p->resume && cored_is_file(path);
    }
    announce(p, what);
    /* a step that trains again must be evaluated again */
    char ev[4096];
    if (root && !cored_path_join(ev, sizeof ev, dir, "eval.json")) remove(ev);
    if (root && !cored_path_join(ev, sizeof ev, dir, "eval.safetensors")) remove(ev);
    cored_train_result res;
    int rc = cored_train_run(c, &res, err);
    if (!rc) rc = eval_step(p, dir, err); /* the test scores, split across the ranks */
    return rc;
}

static int read_eval(const cored_protocol_cfg *p, const char *dir, cored_report *r, int m, int step,
                     cored_error *err)
{
    char path[4096];
    if (cored_path_join(path, sizeof path, dir, "eval.json")) return CORED_FAIL(err, CORED_E_ARG, "%s: path too long", dir);
    cJSON *j = cored_json_load(path, (size_t)1 << 20, err);
    if (!j) return err ? err->code : CORED_E_FORMAT;
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(j, "tasks");
    for (int t = 0; t < p->n_tasks; t++) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(tasks, p->tasks[t]);
        const cJSON *auc = cJSON_GetObjectItemCaseSensitive(o, "auc"), *acc = cJSON_GetObjectItemCaseSensitive(o, "acc");
        *cored_report_auc(r, m, step, t) = cJSON_IsNumber(auc) ? 100 * auc->valuedouble : NAN;
        *cored_report_acc(r, m, step, t) = cJSON_IsNumber(acc) ? 100 * acc->valuedouble : NAN;
        /* the video level: an object when the split has per-video folders (null, or absent in
           an evaluation written before cored knew videos, otherwise) */
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "videos");
        const cJSON *vauc = cJSON_GetObjectItemCaseSensitive(v, "auc"), *vacc = cJSON_GetObjectItemCaseSensitive(v, "acc");
        *cored_report_video_auc(r, m, step, t) = cJSON_IsNumber(vauc) ? 100 * vauc->valuedouble : NAN;
        *cored_report_video_acc(r, m, step, t) = cJSON_IsNumber(vacc) ? 100 * vacc->valuedouble : NAN;
        if (cJSON_IsObject(v)) r->videos[t] = 1;
    }
    cJSON_Delete(j);
    return CORED_OK;
}

static void step_dir(char *buf, size_t n, const cored_protocol_cfg *p, int m, int k)
{
    if (k == 0)
        snprintf(buf, n, "%s/1-%s", p->out, p->tasks[0]);
    else
        snprintf(buf, n, "%s/%s/%d-%s", p->out, cored_method_name(p->methods[m]), k + 1, p->tasks[k]);
}

static int build_report(const cored_protocol_cfg *p, char *summary, size_t n, cored_error *err)
{
    cored_report r;
    memset(&r, 0, sizeof r);
    r.n_tasks = p->n_tasks;
    r.n_methods = p->n_methods;
    for (int i = 0; i < p->n_tasks; i++) r.tasks[i] = p->tasks[i];
    for (int m = 0; m < p->n_methods; m++) r.methods[m] = cored_method_name(p->methods[m]);
    size_t cells = (size_t)r.n_methods * r.n_tasks * r.n_tasks;
    r.auc = cored_alloc(sizeof(double) * cells);
    r.acc = cored_alloc(sizeof(double) * cells);
    r.video_auc = cored_alloc(sizeof(double) * cells);
    r.video_acc = cored_alloc(sizeof(double) * cells);
    cored_st_file *finals[CORED_REPORT_MAX] = {0};
    float *scores[CORED_REPORT_MAX][CORED_REPORT_MAX] = {{0}};
    int rc = r.auc && r.acc && r.video_auc && r.video_acc ? CORED_OK : CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
    char dir[4096];
    for (int m = 0; m < p->n_methods && !rc; m++)
        for (int k = 0; k < p->n_tasks && !rc; k++) {
            step_dir(dir, sizeof dir, p, m, k);
            rc = read_eval(p, dir, &r, m, k, err);
        }
    for (int m = 0; m < p->n_methods && !rc; m++) {
        step_dir(dir, sizeof dir, p, m, p->n_tasks - 1);
        char path[4096];
        if (cored_path_join(path, sizeof path, dir, "eval.safetensors")) {
            rc = CORED_FAIL(err, CORED_E_ARG, "%s: path too long", dir);
            break;
        }
        if ((rc = cored_st_open(&finals[m], path, err))) break;
        for (int t = 0; t < p->n_tasks && !rc; t++) {
            char name[CORED_NAME_MAX + 16];
            snprintf(name, sizeof name, "scores.%s", p->tasks[t]);
            const cored_st_tensor *s = cored_st_find(finals[m], name);
            snprintf(name, sizeof name, "labels.%s", p->tasks[t]);
            const cored_st_tensor *l = cored_st_find(finals[m], name);
            if (!s || !l || s->numel != l->numel) {
                rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: scores of task %s are missing", path, p->tasks[t]);
                break;
            }
            float *sc = cored_alloc(sizeof(float) * (s->numel ? s->numel : 1));
            float *lf = cored_alloc(sizeof(float) * (s->numel ? s->numel : 1));
            int *li = cored_alloc(sizeof(int) * (s->numel ? s->numel : 1));
            scores[m][t] = sc;
            r.scores[m][t] = sc;
            r.labels[m][t] = li;
            if (!sc || !lf || !li) rc = CORED_FAIL(err, CORED_E_NOMEM, "out of memory");
            if (!rc) rc = cored_st_to_f32(finals[m], s, sc, s->numel, 0, err);
            if (!rc) rc = cored_st_to_f32(finals[m], l, lf, l->numel, 0, err);
            for (size_t q = 0; !rc && q < l->numel; q++) li[q] = (int)lf[q];
            cored_free(lf);
            r.counts[m][t] = (int)s->numel;
        }
    }
    char settings[2048];
    const cored_train_cfg *b = &p->base;
    snprintf(settings, sizeof settings,
             "Data `%s`, model `%s` at %d px, batch %d, %d epochs for task 1 and %d per continual step, "
             "%s lr %g momentum %g, seed %llu; KD T = %g, alpha = %g; %s CutMix; model selection by the "
             "sum of validation %s over the tasks seen; BN %s during continual steps. cored %s.",
             b->data, b->arch, b->size, b->batch, p->task1_epochs ? p->task1_epochs : b->epochs, b->epochs,
             cored_optim_kind_name(b->optim.kind), b->optim.lr, b->optim.momentum, (unsigned long long)b->seed,
             b->temperature, b->alpha,
             b->cutmix == CORED_CUTMIX_NONE ? "no" : b->cutmix == CORED_CUTMIX_SAME ? "same-class" : "opposite-class",
             b->select_auc ? "AUC" : "accuracy", b->freeze_bn ? "frozen (eval mode; task 1 trains them)" : "in train mode", CORED_VERSION);
    r.title = "cored continual protocol";
    r.settings = settings;
    r.split = cored_split_name(p->split);
    if (!rc) rc = cored_report_write(&r, p->out, err);
    if (!rc && summary) cored_report_summary_text(&r, summary, n);
    for (int m = 0; m < p->n_methods; m++) {
        cored_st_close(finals[m]);
        for (int t = 0; t < p->n_tasks; t++) cored_free(scores[m][t]), cored_free((void *)r.labels[m][t]);
    }
    cored_free(r.auc);
    cored_free(r.acc);
    cored_free(r.video_auc);
    cored_free(r.video_acc);
    return rc;
}

/* --force: the files of every step of an earlier run in this folder go (cored's own
   files only), so nothing of it can be mistaken for a completed step. */
static void forget_steps(const cored_protocol_cfg *p)
{
    static const char *files[] = {"config.json", "log.csv", "log.jsonl", "best.safetensors", "last.safetensors",
                                  "summary.json", "eval.json", "eval.safetensors"};
    char dir[4096], path[4096];
    for (int m = 0; m < p->n_methods; m++)
        for (int k = m ? 1 : 0; k < p->n_tasks; k++) {
            step_dir(dir, sizeof dir, p, m, k);
            for (size_t f = 0; f < sizeof files / sizeof files[0]; f++)
                if (!cored_path_join(path, sizeof path, dir, files[f])) remove(path);
        }
}

/* The protocol in its locked folder: a fresh start or a resume, every step, the report. */
static int protocol_steps(const cored_protocol_cfg *p, char *summary, size_t n, cored_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/protocol.json", p->out);
    int rc;
    const int root = cored_dist_rank() == 0;
    if (!p->resume && root) {
        if (cored_is_file(path) && !p->force) {
            rc = CORED_FAIL(err, CORED_E_ARG, "%s already holds a protocol run", p->out);
            cored_error_hint(err, "use --resume %s to continue it, --force to redo it, or another --out", p->out);
            return rc;
        }
        if ((rc = cored_protocol_save(p, err))) return rc;
        if (p->force) forget_steps(p);
    }
    const char *own[] = {"protocol.json", "base.json", "report.md", "report.csv", "report.json"};
    for (size_t i = 0; root && i < sizeof own / sizeof own[0]; i++) cored_clean_stale_temps(p->out, own[i]);
    cored_train_cfg c = p->base;
    char dir[4096], what[512];
    /* task 1 */
    c.method = CORED_METHOD_CE;
    c.n_sources = 0;
    c.target = p->tasks[0];
    c.from = NULL;
    c.freeze_bn = 0; /* task 1 learns its BN statistics; --freeze-bn is for continual steps */
    c.epochs = p->task1_epochs ? p->task1_epochs : p->base.epochs;
    step_dir(dir, sizeof dir, p, 0, 0);
    snprintf(what, sizeof what, "== task 1/%d: train %s", p->n_tasks, p->tasks[0]);
    if ((rc = run_step(p, &c, dir, what, err))) return rc;
    for (int m = 0; m < p->n_methods; m++) {
        char prev[4096];
        step_dir(prev, sizeof prev, p, m, 0);
        strncat(prev, "/best.safetensors", sizeof prev - strlen(prev) - 1);
        for (int k = 1; k < p->n_tasks; k++) {
            c = p->base;
            c.method = p->methods[m];
            c.n_sources = k;
            for (int s = 0; s < k; s++) c.sources[s] = p->tasks[s];
            c.target = p->tasks[k];
            c.from = prev;
            step_dir(dir, sizeof dir, p, m, k);
            snprintf(what, sizeof what, "== %s, step %d/%d: %s -> %s", cored_method_name(p->methods[m]), k + 1,
                     p->n_tasks, p->tasks[k - 1], p->tasks[k]);
            if ((rc = run_step(p, &c, dir, what, err))) return rc;
            if (cored_path_join(prev, sizeof prev, dir, "best.safetensors"))
                return CORED_FAIL(err, CORED_E_ARG, "%s: path too long", dir);
        }
    }
    cored_dist_barrier(); /* the last step's files */
    announce(p, "== report");
    return root ? build_report(p, summary, n, err) : CORED_OK;
}

int cored_protocol_run(const cored_protocol_cfg *given, char *summary, size_t n, cored_error *err)
{
    cored_protocol_cfg resolved = *given;
    const cored_protocol_cfg *p = &resolved;
    resolved.base.method = CORED_METHOD_CE;
    resolved.base.from = NULL;
    int rc = cored_train_resolve(&resolved.base, err);
    if (rc) return rc;
    if (p->n_tasks < 2 || p->n_tasks > CORED_MAX_TASKS || p->n_tasks > CORED_REPORT_MAX)
        return CORED_FAIL(err, CORED_E_ARG, "the protocol needs 2 to %d tasks", CORED_REPORT_MAX);
    if (p->n_methods < 1) return CORED_FAIL(err, CORED_E_ARG, "the protocol needs at least one method");
    for (int m = 0; m < p->n_methods; m++) {
        if (p->methods[m] == CORED_METHOD_CE)
            return CORED_FAIL(err, CORED_E_ARG, "'train' is task 1 itself, not a continual method");
        for (int k = 0; k < m; k++)
            if (p->methods[k] == p->methods[m])
                return CORED_FAIL(err, CORED_E_ARG, "method %s is listed twice", cored_method_name(p->methods[m]));
    }
    if ((rc = cored_check_task_names(p->tasks, p->n_tasks, err))) return rc;
    const char *own[] = {"protocol.json", "base.json", "report.md", "report.csv", "report.json"};
    char files[5][4096], pack[4096];
    cored_resolve_pack(pack, sizeof pack, p->base.data, p->base.pack, p->base.size);
    cored_path_use uses[4 + 5] = {{p->base.data, "--data", CORED_PATH_DATA}, {pack, "--pack", CORED_PATH_INPUT},
                                  {p->base.trace, "--trace", CORED_PATH_OUTPUT},
                                  {p->out, "--out", CORED_PATH_OUTPUT_DIR}};
    for (int i = 0; i < 5; i++) {
        if (cored_path_join(files[i], sizeof files[i], p->out, own[i]))
            return CORED_FAIL(err, CORED_E_ARG, "%s: path too long", p->out);
        uses[4 + i] = (cored_path_use){files[i], "protocol file", CORED_PATH_OUTPUT};
    }
    if ((rc = cored_paths_check(uses, 9, err))) return rc;
    if (p->resume && !cored_is_file(files[0]))
        return CORED_FAIL(err, CORED_E_ARG, "%s: no protocol run to resume (protocol.json is missing)", p->out);
    int lock = -1; /* under mpirun rank 0 holds the folder */
    if (cored_dist_rank() == 0 && ((rc = cored_mkdir_p(p->out, err)) || (rc = cored_dir_lock(p->out, &lock, err))))
        return rc;
    rc = protocol_steps(p, summary, n, err);
    cored_dir_unlock(lock);
    return rc;
}
