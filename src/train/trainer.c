/*
 * One training run: task 1 or one continual step (train.h). The loop per batch:
 *   1. CoReD only: the student's cells (class x confidence band) from a no-grad eval-mode
 *      pass (an inference build holding a copy of the student's weights);
 *   2. methods with a teacher: its logits, cached per image and flip, recomputed only for
 *      images CutMix modified (prepare.c);
 *   3. the student's training forward (BN batch statistics unless --freeze-bn) giving the
 *      logits and the tap features; the method's loss and its gradients (methods.c);
 *   4. backward, the weight-space regularisers (TG, EWC), the non-finite guard, SGD.
 * After every epoch: accuracy and AUC on the val split of every seen task, selection by
 * their sum (strictly greater wins, so ties keep the earlier epoch), logs, checkpoints.
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
#include "eval/evaluate.h"
#include "io/checkpoint.h"
#include "io/json.h"
#include "models/model.h"
#include "ops/ops.h"
#include "trainer.h"

/* ---------------------------------------------------------------- set-up */

int cored_check_task_names(const char *const *tasks, int n, cored_error *err)
{
    for (int i = 0; i < n; i++) {
        const char *a = tasks[i];
        if (!a || !a[0] || strchr(a, '_') || strchr(a, '/') || strchr(a, ','))
            return CORED_FAIL(err, CORED_E_ARG,
                              "task name '%s': names must be non-empty without '_', '/' or ',' "
                              "(the official layout joins task names with '_')", a ? a : "");
        for (int k = 0; k < i; k++)
            if (!strcmp(a, tasks[k])) return CORED_FAIL(err, CORED_E_ARG, "task '%s' is listed twice", a);
    }
    return CORED_OK;
}

static int check_cfg(const cored_train_cfg *c, cored_error *err)
{
    if (!c->data || !c->target || !c->out)
        return CORED_FAIL(err, CORED_E_ARG, "data root, target task and output folder are required");
    if (c->epochs < 1 || c->epochs > 100000) return CORED_FAIL(err, CORED_E_ARG, "epochs must be 1..100000");
    if (c->batch < 2 || c->batch > CORED_MAX_BATCH)
        return CORED_FAIL(err, CORED_E_ARG, "batch must be 2..%d", CORED_MAX_BATCH);
    if ((unsigned)c->method >= CORED_METHOD_COUNT) return CORED_FAIL(err, CORED_E_ARG, "unknown method");
    if (c->method == CORED_METHOD_CE && c->n_sources)
        return CORED_FAIL(err, CORED_E_ARG, "task 1 (cross-entropy) takes no source tasks; use a continual method");
    if (c->method == CORED_METHOD_CE && c->freeze_bn)
        return CORED_FAIL(err, CORED_E_ARG, "--freeze-bn applies to continual steps only: task 1 learns its "
                                            "BatchNorm statistics");
    if (c->init_head == CORED_INIT_HEAD_RESET && !(c->method == CORED_METHOD_CE && c->init))
        return CORED_FAIL(err, CORED_E_ARG, "--init-head reset applies to --init weights of task 1");
    if (c->method != CORED_METHOD_CE && (!c->from || c->n_sources < 1))
        return CORED_FAIL(err, CORED_E_ARG, "method '%s' is a continual step: it needs --from and --sources",
                          cored_method_name(c->method));
    if (c->n_sources >= CORED_MAX_TASKS) return CORED_FAIL(err, CORED_E_ARG, "at most %d tasks", CORED_MAX_TASKS);
    const char *tasks[CORED_MAX_TASKS];
    for (int i = 0; i < c->n_sources; i++) tasks[i] = c->sources[i];
    tasks[c->n_sources] = c->target;
    int rc = cored_check_task_names(tasks, c->n_sources + 1, err);
    if (rc) return rc;
    if (!(c->temperature > 0) || !(c->alpha >= 0 && c->alpha <= 1) || !(c->lwf_temperature > 0) ||
        !(c->ewc_lambda >= 0) || c->replay_size < 2 || c->ewc_samples < 2)
        return CORED_FAIL(err, CORED_E_ARG, "invalid method settings (T, alpha, LwF T, EWC lambda/samples, replay size)");
    return CORED_OK;
}

/* The training set that task `k` of the sequence (0 = task 1) was trained on. */
static int task_train_set(cored_dataset **out, const cored_train_cfg *c, const char *task, int k,
                          cored_error *err)
{
    return cored_dataset_open(out, c->data, task, k == 0 ? CORED_SPLIT_TRAIN : CORED_SPLIT_TRANSFER, err);
}

static int concat_free(cored_dataset **out, cored_dataset **parts, int n, cored_error *err)
{
    int rc = cored_dataset_concat(out, parts, n, err);
    for (int i = 0; i < n; i++) cored_dataset_free(parts[i]);
    return rc;
}

static int setup_datasets(cored_trainer *t, cored_error *err)
{
    const cored_train_cfg *c = t->cfg;
    cored_dataset *parts[CORED_MAX_TASKS + 1] = {0}, *target = NULL;
    int rc = c->method == CORED_METHOD_CE
                 ? cored_dataset_open(&target, c->data, c->target, CORED_SPLIT_TRAIN, err)
                 : cored_dataset_open(&target, c->data, c->target, CORED_SPLIT_TRANSFER, err);
    if (rc) return rc;
    if (c->max_per_class > 0) {
        cored_dataset *capped = NULL;
        rc = cored_dataset_cap_per_class(&capped, target, c->max_per_class, c->seed, err);
        cored_dataset_free(target);
        if (rc) return rc;
        target = capped;
    }
    int np = 0;
    if (c->method == CORED_METHOD_JOINT || c->method == CORED_METHOD_REPLAY) {
        /* replay: a class-balanced sample of every earlier task, replay_size images in all */
        int per_class = c->replay_size / (2 * c->n_sources);
        if (per_class < 1) per_class = 1;
        for (int s = 0; s < c->n_sources && !rc; s++) {
            cored_dataset *d = NULL;
            rc = task_train_set(&d, c, c->sources[s], s, err);
            if (!rc && c->method == CORED_METHOD_REPLAY) {
                rc = cored_dataset_cap_per_class(&parts[np], d, per_class, cored_hash64(c->seed, (uint64_t)s), err);
                cored_dataset_free(d);
            } else if (!rc) {
                parts[np] = d;
            }
            if (!rc) np++;
        }
        parts[np++] = target;
        target = NULL;
        if (rc) {
            for (int i = 0; i < np; i++) cored_dataset_free(parts[i]);
            return rc;
        }
        if ((rc = concat_free(&t->train, parts, np, err))) return rc;
    } else {
        t->train = target;
    }
    t->max_val = 0;
    for (int i = 0; i < t->n_tasks; i++) {
        if ((rc = cored_dataset_open(&t->val[i], c->data, t->tasks[i], CORED_SPLIT_VAL, err))) return rc;
        int n = cored_dataset_count(t->val[i]);
        if (n > t->max_val) t->max_val = n;
    }
    return CORED_OK;
}

static int setup_models(cored_trainer *t, cored_error *err)
{
    const cored_train_cfg *c = t->cfg;
    const int B = c->batch;
    int rc;
    if ((rc = cored_model_create(&t->student, c->arch, c->size, B, CORED_BUILD_TRAIN, err))) return rc;
    if ((rc = cored_model_create(&t->eval, c->arch, c->size, B, CORED_BUILD_INFER, err))) return rc;
    if (cored_method_uses_teacher(c->method) &&
        (rc = cored_model_create(&t->teacher, c->arch, c->size, B, CORED_BUILD_INFER, err)))
        return rc;
    if (c->method == CORED_METHOD_CE) {
        if (c->init)
            rc = cored_model_load_init(t->student, c->init, c->init_head, c->seed, err);
        else
            cored_model_init_params(t->student, c->seed);
    } else {
        rc = cored_model_load_file(t->student, t->from, err);
        if (!rc && t->teacher) rc = cored_model_copy_params(t->teacher, t->student, err);
        t->from_checksum = cored_checksum64(t->from->buf, t->from->len, 0);
    }
    if (rc) return rc;
    if ((rc = cored_step_init(&t->step, c, t->student, t->eval, t->teacher, err))) return rc;
    t->tlogits = cored_alloc(sizeof(float) * 2 * B);
    t->scores = cored_alloc(sizeof(float) * (t->max_val ? t->max_val : 1));
    t->labels = cored_alloc(sizeof(int) * (t->max_val ? t->max_val : 1));
    if (!t->tlogits || !t->scores || !t->labels)
        return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the training buffers");
    return CORED_OK;
}

static void report_prepare(const cored_trainer *t, const char *what)
{
    if (!t->cfg->progress) return;
    cored_progress p = {.phase = CORED_PHASE_PREPARE, .what = what};
    t->cfg->progress(&p, t->cfg->progress_user);
}

/* Teacher pass (logit cache, CoReD statistics) and the EWC Fisher of the earlier tasks. */
static int prepare(cored_trainer *t, int resumed, cored_error *err)
{
    const cored_train_cfg *c = t->cfg;
    int rc;
    if (t->teacher) {
        report_prepare(t, "teacher pass over the training set");
        cored_rep_stats *rep = t->step.have_rep && !resumed ? &t->step.rep : NULL;
        /* the statistics under the BN mode the student trains in */
        int batch_stats = rep && !c->freeze_bn && !c->rep_teacher_running;
        rc = cored_teacher_pass(&t->cache, batch_stats ? NULL : rep, t->teacher, t->train, &t->lo, c->progress,
                                c->progress_user, c->stop, err);
        if (!rc && batch_stats) {
            report_prepare(t, "teacher statistics under batch statistics");
            rc = cored_rep_batch_pass(rep, t->teacher, &t->cache, t->train, &t->lo, c->batch, c->sync_bn, c->stop,
                                      err);
        }
        if (rc) return rc;
        if (rep) {
            int present = 0;
            for (int k = 0; k < CORED_CELLS; k++) present += rep->present[k];
            if (!present)
                cored_log(CORED_LOG_WARN, "the teacher puts no training image above p = 0.5: "
                                          "the representation loss will be zero");
        }
    }
    if (c->method == CORED_METHOD_EWC && !resumed) {
        rc = cored_trainer_load_fisher(t, c->from, err);
        if (rc < 0) return rc;
        if (rc == 0) { /* the checkpoint carries none: Fisher of each earlier task now */
            for (int s = 0; s < c->n_sources; s++) {
                cored_dataset *d = NULL;
                char what[256];
                snprintf(what, sizeof what, "EWC Fisher of %s", c->sources[s]);
                report_prepare(t, what);
                if ((rc = task_train_set(&d, c, c->sources[s], s, err))) return rc;
                rc = cored_ewc_fisher(t->step.fisher, t->student, d, c->ewc_samples, c->seed, &t->lo, c->stop, err);
                cored_dataset_free(d);
                if (rc) return rc;
            }
        }
    }
    return CORED_OK;
}

/* ---------------------------------------------------------------- one batch */

static int train_batch(cored_trainer *t, const cored_batch *b, cored_loss_terms *terms, int *correct,
                       cored_error *err)
{
    const cored_train_cfg *c = t->cfg;
    int rc;
    if (t->teacher && b->n > 0 && (rc = cored_teacher_batch_logits(t->tlogits, &t->cache, t->teacher, b, c->size, err)))
        return rc;
    uint64_t seed = cored_hash64(c->seed, ((uint64_t)t->run.epoch << 32) | (uint64_t)b->batch_index);
    cored_step_batch sb = {.x = b->x, .labels = b->labels, .n = b->n, .teacher_logits = t->teacher ? t->tlogits : NULL,
                           .seed = seed, .epoch = t->run.epoch, .index = b->batch_index, .global_n = b->global_n};
    return cored_train_step(&t->step, &sb, terms, correct, err);
}

/* One line of the --trace file. */
static int write_trace(cored_trainer *t, FILE *f, int batch, const cored_loss_terms *lt, cored_error *err)
{
    const cored_step_trace *tr = &t->trace;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "method", cored_method_name(t->cfg->method));
    cJSON_AddStringToObject(j, "task", t->cfg->target);
    cJSON_AddNumberToObject(j, "epoch", t->run.epoch + 1);
    cJSON_AddNumberToObject(j, "step", batch + 1);
    const char *names[] = {"ce", "kd", "rep", "reg", "total", "dlogit_ce", "dlogit_kd", "tap_rep", "w_logit",
                           "w_rep", "w_total"};
    const double v[] = {lt->ce, lt->kd, lt->rep, lt->reg, lt->total, tr->dlogit_ce, tr->dlogit_kd, tr->tap_rep,
                        tr->w_logit, tr->w_rep, tr->w_total};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) cJSON_AddItemToObject(j, names[i], cored_json_number(v[i]));
    cJSON_AddNumberToObject(j, "cells_used", lt->rep_cells);
    cJSON *count = cJSON_AddArrayToObject(j, "count"), *mt = cJSON_AddArrayToObject(j, "mu_t"),
          *ms = cJSON_AddArrayToObject(j, "mu_s"), *me = cJSON_AddArrayToObject(j, "mu_s_eval");
    for (int k = 0; k < CORED_CELLS; k++) {
        cJSON_AddItemToArray(count, cJSON_CreateNumber(tr->count[k]));
        cJSON_AddItemToArray(mt, cored_json_number(tr->mu_t[k]));
        cJSON_AddItemToArray(ms, cored_json_number(tr->mu_s[k]));
        cJSON_AddItemToArray(me, cored_json_number(tr->mu_s_eval[k]));
    }
    char *line = cored_json_line(j);
    cJSON_Delete(j);
    if (!line) return CORED_FAIL(err, CORED_E_NOMEM, "cannot format the trace line");
    int rc = cored_fwrite_all(f, line, strlen(line), t->cfg->trace, err);
    cored_free(line);
    return rc;
}

/* ---------------------------------------------------------------- validation, logs */

static int validate(cored_trainer *t, double *acc, double *auc, cored_error *err)
{
    int rc = cored_model_copy_params(t->eval, t->student, err);
    for (int i = 0; i < t->n_tasks && !rc; i++) {
        cored_loader_opts o = cored_eval_loader_opts(&t->lo, t->cfg->batch);
        int n = 0;
        cored_metrics m;
        rc = cored_eval_dataset(t->scores, t->labels, NULL, &n, t->eval, t->val[i], &o, err);
        if (!rc) rc = cored_metrics_compute(&m, t->scores, t->labels, n, err);
        if (!rc) {
            acc[i] = m.acc;
            auc[i] = m.auc;
        }
    }
    return rc;
}

static int write_text(FILE *f, const char *path, void *user, cored_error *err)
{
    return cored_fwrite_all(f, user, strlen(user), path, err);
}

static int write_log_headers(cored_trainer *t, cored_error *err)
{
    cored_sb line = {0};
    cored_sb_printf(&line, "epoch,loss,ce,kd,rep,reg,train_acc");
    for (int i = 0; i < t->n_tasks; i++) {
        cored_sb_printf(&line, ",");
        cored_sb_csv(&line, "val_acc_%s", t->tasks[i]);
        cored_sb_printf(&line, ",");
        cored_sb_csv(&line, "val_auc_%s", t->tasks[i]);
    }
    cored_sb_printf(&line, ",images_per_s,seconds,selected\n");
    int rc = line.oom ? CORED_FAIL(err, CORED_E_NOMEM, "cannot format the log header")
                      : cored_write_atomic(t->path_csv, write_text, line.s, err);
    if (!rc) rc = cored_write_atomic(t->path_jsonl, write_text, "", err);
    cored_sb_release(&line);
    return rc;
}

static double per_image(const cored_epoch_acc *a, double sum) { return sum / (a->images > 0 ? a->images : 1); }

static int write_log_line(cored_trainer *t, const double *acc, const double *auc, int selected,
                          cored_error *err)
{
    const cored_epoch_acc *a = &t->run.acc;
    double ips = a->seconds > 0 ? a->images / a->seconds : 0;
    cored_sb line = {0};
    cored_sb_printf(&line, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f", t->run.epoch + 1, per_image(a, a->loss), per_image(a, a->ce),
                    per_image(a, a->kd), per_image(a, a->rep), per_image(a, a->reg), per_image(a, a->correct));
    for (int i = 0; i < t->n_tasks; i++) cored_sb_printf(&line, ",%.6f,%.6f", acc[i], auc[i]);
    cored_sb_printf(&line, ",%.2f,%.3f,%d\n", ips, a->seconds, selected);
    int rc = line.oom ? CORED_FAIL(err, CORED_E_NOMEM, "cannot format the log line")
                      : cored_append_file(t->path_csv, line.s, line.len, err);
    cored_sb_release(&line);
    if (rc) return rc;
    cJSON *j = cJSON_CreateObject(), *val = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "epoch", t->run.epoch + 1);
    cJSON_AddItemToObject(j, "loss", cored_json_number(per_image(a, a->loss)));
    cJSON_AddItemToObject(j, "ce", cored_json_number(per_image(a, a->ce)));
    cJSON_AddItemToObject(j, "kd", cored_json_number(per_image(a, a->kd)));
    cJSON_AddItemToObject(j, "rep", cored_json_number(per_image(a, a->rep)));
    cJSON_AddItemToObject(j, "reg", cored_json_number(per_image(a, a->reg)));
    cJSON_AddItemToObject(j, "train_acc", cored_json_number(per_image(a, a->correct)));
    for (int i = 0; i < t->n_tasks; i++) {
        cJSON *v = cJSON_CreateObject();
        cJSON_AddItemToObject(v, "acc", cored_json_number(acc[i]));
        cJSON_AddItemToObject(v, "auc", cored_json_number(auc[i]));
        cJSON_AddItemToObject(val, t->tasks[i], v);
    }
    cJSON_AddItemToObject(j, "val", val);
    cJSON_AddNumberToObject(j, "images_per_s", ips);
    cJSON_AddNumberToObject(j, "seconds", a->seconds);
    cJSON_AddBoolToObject(j, "selected", selected);
    char *s2 = cored_json_line(j);
    cJSON_Delete(j);
    rc = s2 ? cored_append_file(t->path_jsonl, s2, strlen(s2), err)
            : CORED_FAIL(err, CORED_E_NOMEM, "cannot format the log line");
    cored_free(s2);
    return rc;
}

static int write_summary(cored_trainer *t, double seconds, cored_error *err);

/* ---------------------------------------------------------------- data parallel */

/* Steps between two checks that every rank holds the same weights and running statistics
   (CORED_DIST_CHECK=K in the environment; default 50; the tests use 1). */
static int dist_check_every(void)
{
    static int every = 0;
    if (!every) {
        const char *e = getenv("CORED_DIST_CHECK");
        every = e && atoi(e) > 0 ? atoi(e) : 50;
    }
    return every;
}

/* Under mpirun: the checksum of the student's weights and buffers on every rank against
   rank 0's; CORED_E_INTERNAL naming the rank when they differ (a bug of cored: the ranks
   apply the same update to the same weights). */
static int dist_check(cored_trainer *t, const char *when, cored_error *err)
{
    if (cored_dist_size() < 2) return CORED_OK;
    size_t nw, nb;
    const float *w = cored_model_weights(t->student, &nw), *b = cored_model_buffers(t->student, &nb);
    uint64_t mine = cored_checksum64(b, sizeof(float) * nb, cored_checksum64(w, sizeof(float) * nw, 0)), root = mine;
    cored_dist_bcast(&root, sizeof root, 0);
    int bad = mine != root ? cored_dist_rank() + 1 : 0;
    cored_dist_max_i(&bad, 1);
    if (!bad) return CORED_OK;
    return CORED_FAIL(err, CORED_E_INTERNAL,
                      "the weights of rank %d differ from rank 0's %s (epoch %d, batch %d; checksum %016llx here, "
                      "%016llx on rank 0)", bad - 1, when[0] ? when : "after a step", t->run.epoch + 1,
                      t->run.next_batch, (unsigned long long)mine, (unsigned long long)root);
}

/* ---------------------------------------------------------------- the run */

/* Progress of the epoch so far (running means of the loss terms). */
static cored_progress progress_of(const cored_trainer *t, cored_phase phase, int batch, int batches)
{
    const cored_train_cfg *c = t->cfg;
    const cored_epoch_acc *a = &t->run.acc;
    double per_batch = a->batches ? a->seconds / a->batches : 0;
    double left = (double)(batches - batch) + (double)(c->epochs - t->run.epoch - 1) * batches;
    return (cored_progress){.phase = phase, .epoch = t->run.epoch, .epochs = c->epochs, .batch = batch,
                            .batches = batches, .images_per_s = a->seconds > 0 ? a->images / a->seconds : 0,
                            .elapsed = cored_now() - t->t_start, .eta = per_batch * left,
                            .loss = per_image(a, a->loss), .ce = per_image(a, a->ce), .kd = per_image(a, a->kd),
                            .rep = per_image(a, a->rep), .reg = per_image(a, a->reg),
                            .ce_weight = cored_method_ce_weight(c), .train_acc = per_image(a, a->correct)};
}

static void report_batch(cored_trainer *t, int batch, int batches)
{
    if (!t->cfg->progress) return;
    cored_progress p = progress_of(t, CORED_PHASE_BATCH, batch, batches);
    t->cfg->progress(&p, t->cfg->progress_user);
}

static void trainer_free(cored_trainer *t)
{
    cored_loader_free(t->train_loader);
    cored_dataset_free(t->train);
    for (int i = 0; i < t->n_tasks; i++) cored_dataset_free(t->val[i]);
    cored_model_free(t->student);
    cored_model_free(t->eval);
    cored_model_free(t->teacher);
    cored_step_release(&t->step);
    cored_teacher_cache_release(&t->cache);
    cored_free(t->tlogits);
    cored_free(t->scores);
    cored_free(t->labels);
}

/* The run folder: its paths, the rule of cored_paths_check over what the run reads and
   writes, the folder's lock (into *lock, held for the run's life), then a fresh start
   (refused over an earlier run unless --force, whose files then go) or a resume. */
static int prepare_folder(cored_trainer *t, const char *pack, int *lock, cored_error *err)
{
    const cored_train_cfg *c = t->cfg;
    const char *names[] = {"config.json", "log.csv", "log.jsonl", "best.safetensors",
                           "last.safetensors", "summary.json"};
    char *paths[] = {t->path_config, t->path_csv, t->path_jsonl, t->path_best, t->path_last, t->path_summary};
    cored_path_use uses[6 + 6] = {
        {c->data, "--data", CORED_PATH_DATA}, {c->from, "--from", CORED_PATH_INPUT},
        {c->init, "--init", CORED_PATH_INPUT}, {pack, "--pack", CORED_PATH_INPUT},
        {c->trace, "--trace", CORED_PATH_OUTPUT}, {c->out, "--out", CORED_PATH_OUTPUT_DIR}};
    for (int i = 0; i < 6; i++) {
        int w = snprintf(paths[i], 4096, "%s/%s", c->out, names[i]);
        if (w < 0 || w >= 4096) return CORED_FAIL(err, CORED_E_ARG, "output path too long: %s", c->out);
        uses[6 + i] = (cored_path_use){paths[i], "run file", CORED_PATH_OUTPUT};
    }
    int rc = cored_paths_check(uses, 12, err);
    if (rc) return rc;
    if (cored_dist_rank() != 0) /* under mpirun rank 0 owns the folder; the others only read */
        return c->resume && !cored_is_file(t->path_config)
                   ? CORED_FAIL(err, CORED_E_ARG, "%s: no run to resume (config.json is missing)", c->out)
                   : CORED_OK;
    if (c->resume) {
        if (!cored_is_file(t->path_config))
            return CORED_FAIL(err, CORED_E_ARG, "%s: no run to resume (config.json is missing)", c->out);
        if ((rc = cored_dir_lock(c->out, lock, err))) return rc;
        for (int i = 0; i < 6; i++) cored_clean_stale_temps(c->out, names[i]);
        return CORED_OK;
    }
    if ((rc = cored_mkdir_p(c->out, err)) || (rc = cored_dir_lock(c->out, lock, err))) return rc;
    int exists = 0;
    for (int i = 0; i < 6; i++) exists |= cored_is_file(paths[i]);
    if (exists && !c->force) {
        rc = CORED_FAIL(err, CORED_E_ARG, "%s already holds a run", c->out);
        cored_error_hint(err, "use --resume %s to continue it, --force to replace it, or another --out", c->out);
        return rc;
    }
    if (exists)
        for (int i = 0; i < 6; i++) remove(paths[i]);
    return CORED_OK;
}

int cored_train_run(const cored_train_cfg *given, cored_train_result *res, cored_error *err)
{
    cored_trainer t;
    memset(&t, 0, sizeof t);
    memset(res, 0, sizeof *res);
    res->best_epoch = -1;
    cored_train_cfg resolved = *given;
    const cored_train_cfg *cfg = &resolved;
    t.cfg = cfg;
    t.run.best_epoch = -1;
    t.run.best_score = -INFINITY;
    t.t_start = cored_now();
    FILE *trace = NULL;
    int lock = -1;
    int rc = check_cfg(cfg, err);
    if (rc) return rc;
    if (cfg->method != CORED_METHOD_CE && (rc = cored_st_open(&t.from, cfg->from, err))) return rc;
    if ((rc = cored_train_resolve_from(&resolved, t.from, !(given->arch && given->size), err))) goto done;
    for (int i = 0; i < cfg->n_sources; i++) t.tasks[t.n_tasks++] = cfg->sources[i];
    t.tasks[t.n_tasks++] = cfg->target;
    char pack[4096];
    cored_resolve_pack(pack, sizeof pack, cfg->data, cfg->pack, cfg->size);
    if ((rc = prepare_folder(&t, pack, &lock, err))) goto done;
    cored_dist_barrier(); /* rank 0 has cleared or locked the folder */
    if (cfg->resume && cored_is_file(t.path_summary)) {
        res->epochs_done = cfg->epochs;
        goto done; /* already complete */
    }
    cored_set_threads(cfg->threads);
    cored_set_deterministic(cfg->deterministic);
    t.lo = (cored_loader_opts){.batch = cfg->batch, .size = cfg->size, .seed = cfg->seed,
                               .threads = cored_loader_threads(cfg->loader_threads),
                               .shuffle = 1, .flip = cfg->flip, .cutmix = cfg->cutmix,
                               .cutmix_p = cfg->cutmix_p, .cutmix_beta = cfg->cutmix_beta,
                               .strict = cfg->strict, .pack = pack[0] ? pack : NULL};
    /* the training loader of a data-parallel run gives this rank its shard of each batch
       (the teacher pass, Fisher and validation loaders copy t.lo without it: they split
       their data set into contiguous slices per rank themselves, cored_dist_loader) */
    cored_loader_opts train_lo = t.lo;
    if (cored_dist_size() > 1) train_lo.shard_rank = cored_dist_rank(), train_lo.shard_count = cored_dist_size();
    if ((rc = setup_datasets(&t, err)) || (rc = setup_models(&t, err))) goto done;
    cored_st_close(t.from);
    t.from = NULL;
    const int root = cored_dist_rank() == 0;
    int resumed = cfg->resume && cored_is_file(t.path_last);
    if (resumed) {
        if ((rc = cored_trainer_restore(&t, err))) goto done;
        if (root && ((rc = cored_trainer_trim_logs(&t, t.run.epoch, err)) || (rc = cored_trainer_check_best(&t, err))))
            goto done;
    } else if (root) {
        if ((rc = cored_train_cfg_save(cfg, t.path_config, err)) || (rc = write_log_headers(&t, err))) goto done;
    }
    if ((rc = dist_check(&t, "at the start", err))) goto done;
    if ((rc = prepare(&t, resumed, err))) {
        if (rc == CORED_E_STOPPED) cored_error_hint(err, "start again with --resume %s", cfg->out);
        goto done;
    }
    if ((rc = cored_loader_create(&t.train_loader, t.train, &train_lo, err))) goto done;
    if (cfg->trace) {
        if (cored_dist_size() > 1) {
            rc = CORED_FAIL(err, CORED_E_ARG, "--trace is not available under mpirun (run it in one process)");
            goto done;
        }
        if (!(trace = fopen(cfg->trace, "ab"))) {
            rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot open the trace file: %s", cfg->trace, strerror(errno));
            goto done;
        }
        t.step.trace = &t.trace;
    }
    const int batches = cored_loader_batches(t.train_loader);
    double acc[CORED_MAX_TASKS + 1], auc[CORED_MAX_TASKS + 1];
    t.last_save = cored_now();
    while (t.run.epoch < cfg->epochs) {
        if ((rc = cored_loader_start(t.train_loader, t.run.epoch, t.run.next_batch, err))) goto done;
        cored_batch *b;
        while ((rc = cored_loader_next(t.train_loader, &b, err)) == 1) {
            double t0 = cored_now();
            cored_loss_terms terms;
            int correct = 0;
            rc = train_batch(&t, b, &terms, &correct, err);
            int bi = b->batch_index, n = b->n;
            cored_loader_release(t.train_loader, b);
            if (!rc && trace) rc = write_trace(&t, trace, bi, &terms, err);
            if (rc) goto done;
            /* the batch's sums over every rank, and whether any rank was asked to stop */
            double sums[8] = {terms.total * n, terms.ce * n, terms.kd * n, terms.rep * n, terms.reg * n, n, correct,
                              cfg->stop && *cfg->stop};
            cored_dist_sum_d(sums, 8);
            t.run.acc.loss += sums[0], t.run.acc.ce += sums[1], t.run.acc.kd += sums[2];
            t.run.acc.rep += sums[3], t.run.acc.reg += sums[4];
            t.run.acc.images += sums[5], t.run.acc.correct += sums[6];
            t.run.acc.seconds += cored_now() - t0;
            t.run.acc.batches++;
            t.run.next_batch = bi + 1;
            report_batch(&t, bi + 1, batches);
            if (++t.steps % dist_check_every() == 0 && (rc = dist_check(&t, "", err))) goto done;
            int stop = sums[7] > 0;
            if (stop || (cfg->save_every > 0 && cored_now() - t.last_save >= cfg->save_every)) {
                if ((rc = cored_trainer_save(&t, 0, err))) goto done;
                t.last_save = cored_now();
                if (stop) {
                    rc = CORED_FAIL(err, CORED_E_STOPPED, "stopped at epoch %d, batch %d; resume with --resume %s",
                                    t.run.epoch + 1, bi + 1, cfg->out);
                    goto done;
                }
            }
        }
        if (rc < 0) goto done;
        if ((rc = validate(&t, acc, auc, err))) goto done;
        double score = 0;
        for (int i = 0; i < t.n_tasks; i++) {
            double v = cfg->select_auc ? auc[i] : acc[i];
            score += isnan(v) ? 0 : v;
        }
        /* strictly better, up to rounding of the sum: ties keep the earlier epoch */
        int selected = t.run.best_epoch < 0 || score > t.run.best_score + 1e-12 * (1 + fabs(t.run.best_score));
        if (selected) {
            t.run.best_score = score;
            t.run.best_epoch = t.run.epoch;
        }
        if (root && (rc = write_log_line(&t, acc, auc, selected, err))) goto done;
        if (cfg->progress) {
            cored_progress p = progress_of(&t, CORED_PHASE_EPOCH, batches, batches);
            p.n_tasks = t.n_tasks, p.tasks = t.tasks, p.val_acc = acc, p.val_auc = auc, p.selected = selected;
            cfg->progress(&p, cfg->progress_user);
        }
        t.run.epoch++;
        t.run.next_batch = 0;
        memset(&t.run.acc, 0, sizeof t.run.acc);
        /* last first: it records the selection, and a resume rewrites best from it if the
           process dies between the two writes */
        if ((rc = cored_trainer_save(&t, 0, err))) goto done;
        if (selected && (rc = cored_trainer_save(&t, 1, err))) goto done;
        t.last_save = cored_now();
        int stop_flag = cfg->stop && *cfg->stop;
        cored_dist_max_i(&stop_flag, 1);
        if (stop_flag) {
            rc = CORED_FAIL(err, CORED_E_STOPPED, "stopped after epoch %d; resume with --resume %s", t.run.epoch,
                            cfg->out);
            goto done;
        }
    }
    if (cfg->method == CORED_METHOD_EWC) {
        /* The next step's penalty needs this task's Fisher, at the selected weights. */
        report_prepare(&t, "EWC Fisher of the target");
        cored_dist_barrier(); /* rank 0 has written best */
        if ((rc = cored_model_load(t.student, t.path_best, err))) goto done;
        rc = cored_ewc_fisher(t.step.fisher, t.student, t.train, cfg->ewc_samples, cfg->seed, &t.lo, cfg->stop, err);
        if (!rc) rc = cored_trainer_save(&t, 1, err);
        if (rc) goto done;
    }
    res->best_epoch = t.run.best_epoch;
    res->best_score = t.run.best_score;
    res->epochs_done = t.run.epoch;
    res->seconds = cored_now() - t.t_start;
    if (root) rc = write_summary(&t, res->seconds, err);
    if (!rc && (rc = dist_check(&t, "at the end", err))) goto done;
done:
    if (trace && fclose(trace) != 0 && !rc)
        rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot write the trace file: %s", cfg->trace, strerror(errno));
    cored_st_close(t.from);
    trainer_free(&t);
    cored_dir_unlock(lock);
    return rc;
}

int cored_train_resume(const char *dir, const cored_train_cfg *how, cored_train_result *res, cored_error *err)
{
    char path[4096], *strings = NULL;
    if (cored_path_join(path, sizeof path, dir, "config.json"))
        return CORED_FAIL(err, CORED_E_ARG, "%s: path too long", dir);
    if (!cored_is_file(path)) return CORED_FAIL(err, CORED_E_ARG, "%s: no run to resume (config.json is missing)", dir);
    cored_train_cfg cfg;
    int rc = cored_train_cfg_load(&cfg, &strings, path, err);
    if (rc) return rc;
    if (how->threads >= 0) cfg.threads = how->threads;
    if (how->loader_threads >= 0) cfg.loader_threads = how->loader_threads;
    cfg.progress = how->progress;
    cfg.progress_user = how->progress_user;
    cfg.stop = how->stop;
    cfg.out = dir;
    cfg.resume = 1;
    rc = cored_train_run(&cfg, res, err);
    cored_free(strings);
    return rc;
}

static int write_summary(cored_trainer *t, double seconds, cored_error *err)
{
    cJSON *j = cJSON_CreateObject(), *tasks = cJSON_CreateArray();
    char sum[32];
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)t->from_checksum);
    for (int i = 0; i < t->n_tasks; i++) cJSON_AddItemToArray(tasks, cJSON_CreateString(t->tasks[i]));
    cJSON_AddStringToObject(j, "method", cored_method_name(t->cfg->method));
    cJSON_AddItemToObject(j, "tasks", tasks);
    cJSON_AddStringToObject(j, "from_checksum", sum);
    cJSON_AddNumberToObject(j, "epochs", t->run.epoch);
    cJSON_AddNumberToObject(j, "best_epoch", t->run.best_epoch + 1);
    cJSON_AddItemToObject(j, "best_score", cored_json_number(t->run.best_score));
    cJSON_AddStringToObject(j, "select", t->cfg->select_auc ? "auc" : "acc");
    cJSON_AddNumberToObject(j, "seconds", seconds);
    cJSON_AddNumberToObject(j, "skipped_images", cored_loader_skipped(t->train_loader));
    if (cored_dist_size() > 1) { /* rank 0's view of the collectives (docs/distributed.md) */
        cored_dist_stats st = cored_dist_counters();
        cJSON *d = cJSON_AddObjectToObject(j, "distributed");
        cJSON_AddNumberToObject(d, "ranks", cored_dist_size());
        cJSON_AddBoolToObject(d, "sync_bn", t->cfg->sync_bn);
        cJSON_AddNumberToObject(d, "steps", (double)t->steps);
        cJSON_AddNumberToObject(d, "collective_seconds", st.seconds);
        cJSON_AddNumberToObject(d, "collective_bytes", (double)st.bytes);
        cJSON_AddNumberToObject(d, "collective_calls", (double)st.calls);
        cJSON_AddNumberToObject(d, "gradient_bytes_started_during_backward", (double)st.early_bytes);
    }
    return cored_json_save(j, t->path_summary, err);
}
