/*
 * Checkpoints of a training run. Both files hold the model (PyTorch names) and, as
 * "cored." tensors, the CoReD teacher statistics and the EWC Fisher (per parameter, so
 * they do not depend on slab layout). last.safetensors adds the optimiser state and, in
 * metadata "cored.state", the position (epoch, next batch), the selection so far and the
 * epoch's running sums, written with 17 significant digits so a resumed run continues
 * bit-exactly, and the seconds the run has taken so far. Metadata "epoch" is the selected
 * epoch in best and the number of completed epochs in last. Writes are atomic; nothing
 * non-finite is written (the safetensors writer refuses it).
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "dist/dist.h"
#include "io/checkpoint.h"
#include "trainer.h"

/* Per-parameter views of a slab parallel to the weights: "<prefix><param name>". */
typedef struct {
    cored_st_out *t;
    int n, cap;
    char *names;
    size_t names_used, names_cap;
} extras;

static int extras_add(extras *e, const char *name, int ndim, const int64_t *shape, const float *data)
{
    if (e->n == e->cap) return -1;
    size_t len = strlen(name) + 1;
    if (e->names_used + len > e->names_cap) return -1;
    char *dst = e->names + e->names_used;
    memcpy(dst, name, len);
    e->names_used += len;
    cored_st_out *o = &e->t[e->n++];
    memset(o, 0, sizeof *o);
    o->name = dst;
    o->ndim = ndim;
    for (int d = 0; d < ndim; d++) o->shape[d] = shape[d];
    o->data = data;
    return 0;
}

static int extras_slab(extras *e, cored_model *m, const char *prefix, const float *slab)
{
    for (int i = 0; i < cored_model_param_count(m); i++) {
        const cored_param *p = cored_model_param(m, i);
        if (!cored_param_trainable(p->kind)) continue;
        char name[CORED_NAME_MAX + 32];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        int64_t shape[4];
        for (int d = 0; d < p->ndim; d++) shape[d] = p->shape[d];
        if (extras_add(e, name, p->ndim, shape, slab + p->offset)) return -1;
    }
    return 0;
}

static void fmt17(char *buf, size_t n, double v) { snprintf(buf, n, "%.17g", v); }

char *cored_run_state_json(const cored_run_state *s)
{
    cJSON *j = cJSON_CreateObject(), *acc = cJSON_CreateArray();
    char b[64];
    cJSON_AddNumberToObject(j, "epoch", s->epoch);
    cJSON_AddNumberToObject(j, "next_batch", s->next_batch);
    cJSON_AddNumberToObject(j, "best_epoch", s->best_epoch);
    fmt17(b, sizeof b, s->best_score);
    cJSON_AddStringToObject(j, "best_score", b);
    snprintf(b, sizeof b, "%llu", (unsigned long long)s->optim_steps);
    cJSON_AddStringToObject(j, "optim_steps", b);
    snprintf(b, sizeof b, "%016llx", (unsigned long long)s->from_checksum);
    cJSON_AddStringToObject(j, "from_checksum", b);
    const double v[] = {s->acc.loss, s->acc.ce, s->acc.kd, s->acc.rep, s->acc.reg,
                        s->acc.images, s->acc.correct, s->acc.seconds, s->acc.batches};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        fmt17(b, sizeof b, v[i]);
        cJSON_AddItemToArray(acc, cJSON_CreateString(b));
    }
    cJSON_AddItemToObject(j, "acc", acc);
    fmt17(b, sizeof b, s->seconds);
    cJSON_AddStringToObject(j, "seconds", b);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return text;
}

int cored_run_state_parse(cored_run_state *s, const char *json, const char *path, cored_error *err)
{
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    if (!j) return CORED_FAIL(err, CORED_E_FORMAT, "%s: no run state in the metadata; not a cored 'last' checkpoint", path);
    const cJSON *v;
#define GETNUM(key) ((v = cJSON_GetObjectItemCaseSensitive(j, key)) && cJSON_IsNumber(v) ? v->valuedouble : -1)
#define GETSTR(key) ((v = cJSON_GetObjectItemCaseSensitive(j, key)) && cJSON_IsString(v) ? v->valuestring : "")
    s->epoch = (int)GETNUM("epoch");
    s->next_batch = (int)GETNUM("next_batch");
    s->best_epoch = (int)GETNUM("best_epoch");
    s->best_score = strtod(GETSTR("best_score"), NULL);
    s->optim_steps = strtoull(GETSTR("optim_steps"), NULL, 10);
    s->seconds = strtod(GETSTR("seconds"), NULL);
    s->from_checksum = strtoull(GETSTR("from_checksum"), NULL, 16);
#undef GETNUM
#undef GETSTR
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(j, "acc"), *it;
    double a[9] = {0};
    int n = 0;
    cJSON_ArrayForEach(it, acc)
    {
        if (n < 9 && cJSON_IsString(it)) a[n] = strtod(it->valuestring, NULL);
        n++;
    }
    cJSON_Delete(j);
    if (n != 9 || s->epoch < 0 || s->next_batch < 0)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: malformed run state", path);
    s->acc = (cored_epoch_acc){a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], (int)a[8]};
    return CORED_OK;
}

int cored_trainer_save(cored_trainer *t, int best, cored_error *err)
{
    if (cored_dist_rank() != 0) return CORED_OK; /* under mpirun, rank 0 writes the run */
    const cored_train_cfg *cfg = t->cfg;
    cored_model *m = t->student;
    int np = cored_model_param_count(m);
    extras e = {0};
    e.cap = 3 * np + 4;
    e.t = cored_calloc((size_t)e.cap, sizeof *e.t);
    e.names_cap = (size_t)e.cap * (CORED_NAME_MAX + 32);
    e.names = cored_alloc(e.names_cap);
    char *state = NULL, epoch[16], score[64], seed[32];
    cored_sb tasks = {0};
    int rc = CORED_OK;
    if (!e.t || !e.names) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the checkpoint list");
        goto done;
    }
    float counts[CORED_CELLS];
    int64_t shape_mu[2] = {CORED_CELLS, t->step.have_rep ? t->step.rep.dim : 0}, shape_c[1] = {CORED_CELLS};
    int64_t shape_var[1] = {t->step.have_rep ? t->step.rep.dim : 0};
    if (t->step.have_rep) {
        for (int k = 0; k < CORED_CELLS; k++) counts[k] = (float)t->step.rep.count[k];
        extras_add(&e, "cored.rep.mu", 2, shape_mu, t->step.rep.mu);
        extras_add(&e, "cored.rep.count", 1, shape_c, counts);
        extras_add(&e, "cored.rep.var", 1, shape_var, t->step.rep.var);
    }
    if (t->step.fisher && extras_slab(&e, m, "cored.ewc.fisher.", t->step.fisher)) goto overflow;
    if (!best) {
        if (t->step.opt->m && extras_slab(&e, m, "cored.optim.m.", t->step.opt->m)) goto overflow;
        if (t->step.opt->v && extras_slab(&e, m, "cored.optim.v.", t->step.opt->v)) goto overflow;
    }
    for (int i = 0; i < t->n_tasks; i++) cored_sb_printf(&tasks, "%s%s", i ? "," : "", t->tasks[i]);
    if (tasks.oom) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "cannot format the task list");
        goto done;
    }
    /* best: the selected epoch; last: the epochs completed (t->run.epoch is the next one) */
    snprintf(epoch, sizeof epoch, "%d", best ? t->run.best_epoch + 1 : t->run.epoch);
    snprintf(score, sizeof score, "%.6f", t->run.best_score);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)cfg->seed);
    const char *meta[16];
    int k = 0;
    meta[k++] = "tasks", meta[k++] = tasks.s;
    meta[k++] = "method", meta[k++] = cored_method_name(cfg->method);
    meta[k++] = "seed", meta[k++] = seed;
    meta[k++] = "epoch", meta[k++] = epoch;
    meta[k++] = "kind", meta[k++] = best ? "best" : "last";
    meta[k++] = "select", meta[k++] = cfg->select_auc ? "auc" : "acc";
    if (best) {
        meta[k++] = "score", meta[k++] = score;
    } else {
        t->run.optim_steps = t->step.opt->steps;
        t->run.from_checksum = t->from_checksum;
        cored_run_state now = t->run;
        now.seconds = cored_now() - t->t_start;
        state = cored_run_state_json(&now);
        if (!state) {
            rc = CORED_FAIL(err, CORED_E_NOMEM, "cannot format the run state");
            goto done;
        }
        meta[k++] = "cored.state", meta[k++] = state;
    }
    cored_extra_tensors ex = {e.t, e.n};
    rc = cored_model_save(m, best ? t->path_best : t->path_last, meta, k / 2, &ex, err);
    goto done;
overflow:
    rc = CORED_FAIL(err, CORED_E_INTERNAL, "checkpoint tensor list overflow");
done:
    cored_sb_release(&tasks);
    cJSON_free(state);
    cored_free(e.t);
    cored_free(e.names);
    return rc;
}

int cored_trainer_load_fisher(cored_trainer *t, const char *path, cored_error *err)
{
    cored_st_file *f = NULL;
    int rc = cored_st_open(&f, path, err);
    if (rc) return rc;
    rc = cored_checkpoint_load_slab(t->step.fisher, f, t->student, "cored.ewc.fisher.", 0, err);
    cored_st_close(f);
    return rc;
}

static int load_rep(cored_trainer *t, const cored_st_file *f, cored_error *err)
{
    const cored_st_tensor *mu = cored_st_find(f, "cored.rep.mu"), *cnt = cored_st_find(f, "cored.rep.count");
    if (!mu || !cnt) return CORED_FAIL(err, CORED_E_FORMAT, "%s: the CoReD statistics are missing", f->path);
    if (mu->numel != (size_t)CORED_CELLS * t->step.rep.dim || cnt->numel != CORED_CELLS)
        return CORED_FAIL(err, CORED_E_SHAPE, "%s: the CoReD statistics have another shape", f->path);
    /* written since --rep-norm exists; runs from before it use the paper's sum (norm none) */
    const cored_st_tensor *var = cored_st_find(f, "cored.rep.var");
    if (var && var->numel != (size_t)t->step.rep.dim)
        return CORED_FAIL(err, CORED_E_SHAPE, "%s: the CoReD statistics have another shape", f->path);
    if (!var && t->cfg->rep_norm == CORED_REP_NORM_BATCH)
        return CORED_FAIL(err, CORED_E_FORMAT, "%s: the CoReD statistics lack their variance (cored.rep.var), "
                          "which --rep-norm batch needs", f->path);
    float c[CORED_CELLS];
    int rc = cored_st_to_f32(f, mu, t->step.rep.mu, mu->numel, 0, err);
    if (!rc) rc = cored_st_to_f32(f, cnt, c, CORED_CELLS, 0, err);
    if (!rc && var) rc = cored_st_to_f32(f, var, t->step.rep.var, var->numel, 0, err);
    for (int k = 0; !rc && k < CORED_CELLS; k++) {
        t->step.rep.count[k] = c[k];
        t->step.rep.present[k] = c[k] > 0;
    }
    return rc;
}

int cored_trainer_restore(cored_trainer *t, cored_error *err)
{
    cored_st_file *f = NULL;
    int rc = cored_st_open(&f, t->path_last, err);
    if (rc) return rc;
    cored_run_state st;
    if ((rc = cored_run_state_parse(&st, cored_st_meta(f, "cored.state"), t->path_last, err))) goto done;
    if (st.from_checksum != t->from_checksum) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: the teacher checkpoint %s changed since this run started; cannot resume",
                        t->path_last, t->cfg->from ? t->cfg->from : "(none)");
        goto done;
    }
    if ((rc = cored_model_load_file(t->student, f, err))) goto done;
    if (t->step.opt->m && (rc = cored_checkpoint_load_slab(t->step.opt->m, f, t->student, "cored.optim.m.", 1, err)) < 0) goto done;
    if (t->step.opt->v && (rc = cored_checkpoint_load_slab(t->step.opt->v, f, t->student, "cored.optim.v.", 1, err)) < 0) goto done;
    if (t->step.fisher && (rc = cored_checkpoint_load_slab(t->step.fisher, f, t->student, "cored.ewc.fisher.", 1, err)) < 0) goto done;
    if (t->step.have_rep && (rc = load_rep(t, f, err))) goto done;
    t->run = st;
    t->step.opt->steps = st.optim_steps;
    t->t_start -= st.seconds; /* the run's seconds count its earlier sessions */
    rc = CORED_OK;
done:
    cored_st_close(f);
    return rc;
}

/* Rewrites a log file keeping its header (when `header`) and the first `keep` data lines. */
static int trim_file(const char *path, int header, int keep, cored_error *err)
{
    unsigned char *text = NULL;
    size_t len;
    if (!cored_is_file(path)) return CORED_OK;
    int rc = cored_read_file(path, (size_t)1 << 30, &text, &len, err);
    if (rc) return rc;
    size_t pos = 0;
    int lines = 0, want = keep + (header ? 1 : 0);
    while (pos < len && lines < want) {
        const unsigned char *nl = memchr(text + pos, '\n', len - pos);
        if (!nl) break;
        pos = (size_t)(nl - text) + 1;
        lines++;
    }
    cored_free(text);
    if (truncate(path, (off_t)pos) != 0)
        return CORED_FAIL(err, CORED_E_IO, "%s: cannot truncate the log: %s", path, strerror(errno));
    return CORED_OK;
}

int cored_trainer_trim_logs(cored_trainer *t, int epochs, cored_error *err)
{
    int rc = trim_file(t->path_csv, 1, epochs, err);
    if (!rc) rc = trim_file(t->path_jsonl, 0, epochs, err);
    return rc;
}

int cored_trainer_check_best(cored_trainer *t, cored_error *err)
{
    if (t->run.best_epoch < 0) return CORED_OK;
    char want[16];
    snprintf(want, sizeof want, "%d", t->run.best_epoch + 1);
    cored_st_file *f = NULL;
    int ok = 0;
    if (cored_is_file(t->path_best) && cored_st_open(&f, t->path_best, NULL) == CORED_OK) {
        const char *ep = cored_st_meta(f, "epoch");
        ok = ep && !strcmp(ep, want);
    }
    cored_st_close(f);
    if (ok) return CORED_OK;
    /* the restored weights are the end of the selected epoch: write best from them */
    if (t->run.best_epoch == t->run.epoch - 1 && t->run.next_batch == 0) return cored_trainer_save(t, 1, err);
    return CORED_FAIL(err, CORED_E_FORMAT, "%s does not hold the selected epoch %d; the run folder is inconsistent",
                      t->path_best, t->run.best_epoch + 1);
}
