/*
 * cored eval: AUC, accuracy, per-class accuracy and image counts of a checkpoint on the
 * test (or val/train) split of each task.
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/core.h"
#include "data/data.h"
#include "eval/evaluate.h"
#include "eval/metrics.h"
#include "eval/videos.h"
#include "io/checkpoint.h"
#include "io/json.h"
#include "opts.h"
#include "train/train.h"

static const cli_doc doc = {
    "eval", "--model CKPT --data DIR --tasks A[,B...] [options]",
    "Scores every image of DIR/<task>/<split> with p(fake) (deterministic transform: resize\n"
    "and normalise) and reports, per task: ROC-AUC (mid-rank ties; n/a when a class is\n"
    "absent), accuracy at p(fake) > 0.5, accuracy on real and on fake images, and counts.\n"
    "When frames sit in per-video folders (<split>/<class>/<video>/<frame>.png, as cored\n"
    "faces writes them), also per video: a video's score is the mean p(fake) of its frames,\n"
    "and the same metrics are computed over videos (video AUC next to frame AUC).",
    "cored eval --model run/best.safetensors --data data --tasks Blend,Warp\n"
    "cored eval --model run/best.safetensors --data data --tasks Blend --split val --json -\n"
    "cored eval --model xception.safetensors --data ffpp --tasks DeepFakes --size 299 --json eval.json\n"
    "cored eval --model run/best.safetensors --data ffpp --tasks DeepFakes --scores scores.csv"};

static void fmt_pct(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "n/a");
    else
        snprintf(buf, n, "%.2f", 100 * v);
}

static int write_text(FILE *f, const char *path, void *user, cored_error *err)
{
    const cored_sb *t = user;
    return cored_fwrite_all(f, t->s, t->len, path, err);
}

static void add_json(cJSON *o, const char *k, double v) { cJSON_AddItemToObject(o, k, cored_json_number(v)); }

/* The video metrics of one task: has = 0 when its split has no per-video folders. */
typedef struct {
    int has, frames, loose;
    cored_metrics m;
} video_res;

static int write_json(const char *path, const char *ckpt, const char *split, const char *const *tasks,
                      const cored_metrics *res, const video_res *vres, int n, cored_error *err)
{
    cJSON *j = cJSON_CreateObject(), *t = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", ckpt);
    cJSON_AddStringToObject(j, "split", split);
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        add_json(o, "auc", res[i].auc);
        add_json(o, "acc", res[i].acc);
        add_json(o, "acc_real", res[i].acc_real);
        add_json(o, "acc_fake", res[i].acc_fake);
        cJSON_AddNumberToObject(o, "n_real", res[i].n_real);
        cJSON_AddNumberToObject(o, "n_fake", res[i].n_fake);
        /* per-video folders: the metrics over videos; else null (frame metrics only) */
        cored_video_groups g = {.n_loose = vres[i].loose};
        cJSON_AddItemToObject(o, "videos", vres[i].has ? cored_video_metrics_json(&vres[i].m, &g, vres[i].frames)
                                                       : cJSON_CreateNull());
        cJSON_AddItemToObject(t, tasks[i], o);
    }
    cJSON_AddItemToObject(j, "tasks", t);
    if (strcmp(path, "-")) return cored_json_save(j, path, err);
    char *s = cored_json_line(j);
    cJSON_Delete(j);
    if (!s) return CORED_FAIL(err, CORED_E_NOMEM, "cannot format JSON");
    fputs(s, stdout);
    cored_free(s);
    return CORED_OK;
}

int cmd_eval(int argc, char **argv)
{
    const char *ckpt = NULL, *data = NULL, *tasks_arg = NULL, *json = NULL, *arch = NULL, *pack = NULL,
               *scores_out = NULL;
    int split = 2, batch = 64, threads = 0, size = 0, loader_threads = 0, strict = 0;
    opt_def defs[] = {
        {"model", OPT_STR, &ckpt, 0, 0, NULL, "CKPT", "checkpoint (safetensors)", NULL, OPT_REQUIRED},
        {"data", OPT_STR, &data, 0, 0, NULL, "DIR", "data root", NULL, OPT_REQUIRED},
        {"tasks", OPT_STR, &tasks_arg, 0, 0, NULL, "A,B", "tasks to evaluate", NULL, OPT_REQUIRED},
        {"split", OPT_CHOICE, &split, 0, 0, cored_split_names, NULL, "split"},
        {"arch", OPT_STR, &arch, 0, 0, NULL, "NAME", "architecture when CKPT's metadata lacks it", "CKPT's"},
        {"size", OPT_INT, &size, 16, 4096, NULL, "PX", "input size", "CKPT's, else 128"},
        {"batch", OPT_INT, &batch, 1, 4096, NULL, "N", "batch size"},
        {"threads", OPT_INT, &threads, 0, 1024, NULL, "N", "compute threads", "all cores"},
        {"loader-threads", OPT_INT, &loader_threads, 0, 1024, NULL, "N", "image decoding threads", "automatic"},
        {"pack", OPT_STR, &pack, 0, 0, NULL, "FILE", "pack of pre-resized images, 'none' to decode",
         "DATA/.cored-pack-SIZE.bin when present"},
        {"strict", OPT_FLAG, &strict, 0, 0, NULL, NULL, "an unreadable image is an error, not a skipped file"},
        {"json", OPT_STR, &json, 0, 0, NULL, "FILE",
         "also write the results as JSON; '-': to standard output, the table then to standard error"},
        {"scores", OPT_STR, &scores_out, 0, 0, NULL, "FILE",
         "also write every image's p(fake) as CSV: task,path,label,p_fake,video (video: its per-video "
         "folder, <class>/<video>; empty without per-video folders)"},
    };
    int nd = sizeof defs / sizeof defs[0];
    int rc = opts_parse(&doc, argc, argv, defs, nd, NULL, 0, NULL, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    char list[4096];
    const char *tasks[CORED_MAX_TASKS];
    snprintf(list, sizeof list, "%s", tasks_arg);
    int n_tasks = opts_split(list, tasks, CORED_MAX_TASKS);
    if (n_tasks < 1) return cli_usage_error("eval", "--tasks needs 1 to %d names", CORED_MAX_TASKS);
    threads = cored_set_threads(threads);
    cli_install_logger(0);

    cored_error err = {0};
    cored_model *m = NULL;
    char ck_arch[64];
    int ck_size = 0;
    float *scores = NULL;
    int *labels = NULL, *index = NULL;
    cored_metrics res[CORED_MAX_TASKS];
    video_res vres[CORED_MAX_TASKS];
    cored_sb csv = {0};
    memset(vres, 0, sizeof vres);
    if (scores_out) cored_sb_printf(&csv, "task,path,label,p_fake,video\n");
    if ((rc = cored_checkpoint_peek(ckpt, ck_arch, sizeof ck_arch, &ck_size, &err))) goto fail;
    if (!arch && !ck_arch[0]) {
        rc = CORED_FAIL(&err, CORED_E_ARG, "%s does not say which model it holds", ckpt);
        cored_error_hint(&err, "pass --arch tiny|xception|efficientnet-b0");
        goto fail;
    }
    if (size && ck_size && size != ck_size)
        fprintf(stderr, "cored: warning: the input size %d differs from %d, the size %s was trained at\n", size,
                ck_size, ckpt);
    size = size ? size : ck_size ? ck_size : 128;
    char packbuf[4096];
    cored_resolve_pack(packbuf, sizeof packbuf, data, pack, size);
    const cored_path_use uses[] = {{ckpt, "--model", CORED_PATH_INPUT}, {data, "--data", CORED_PATH_DATA},
                                   {packbuf, "--pack", CORED_PATH_INPUT},
                                   {json && strcmp(json, "-") ? json : NULL, "--json", CORED_PATH_OUTPUT},
                                   {scores_out, "--scores", CORED_PATH_OUTPUT}};
    if ((rc = cored_paths_check(uses, 5, &err))) goto fail;
    if ((rc = cored_model_create(&m, arch ? arch : ck_arch, size, batch, CORED_BUILD_INFER, &err))) goto fail;
    if ((rc = cored_model_load(m, ckpt, &err))) goto fail;
    cored_loader_opts base = {.size = size, .threads = cored_loader_threads(loader_threads), .strict = strict,
                              .pack = packbuf[0] ? packbuf : NULL};
    for (int i = 0; i < n_tasks; i++) {
        cored_dataset *ds = NULL;
        cored_loader *l = NULL;
        cored_video_groups g = {0};
        if ((rc = cored_dataset_open_scoring(&ds, data, tasks[i], (cored_split)split, &err))) goto fail;
        int count = cored_dataset_count(ds), n = 0;
        cored_free(scores);
        cored_free(labels);
        cored_free(index);
        scores = cored_alloc(sizeof(float) * (size_t)count);
        labels = cored_alloc(sizeof(int) * (size_t)count);
        index = cored_alloc(sizeof(int) * (size_t)count);
        cored_loader_opts o = cored_eval_loader_opts(&base, batch);
        if (!scores || !labels || !index)
            rc = CORED_FAIL(&err, CORED_E_NOMEM, "cannot allocate scores for %d images", count);
        if (!rc) rc = cored_video_groups_build(&g, ds, &err);
        if (!rc) rc = cored_loader_create(&l, ds, &o, &err);
        if (!rc) rc = cored_eval_scores(scores, labels, index, &n, m, l, &err);
        if (!rc) rc = cored_metrics_compute(&res[i], scores, labels, n, &err);
        if (!rc && g.n_folders) {
            vres[i].has = 1, vres[i].frames = n, vres[i].loose = g.n_loose;
            rc = cored_video_metrics(&vres[i].m, &g, scores, labels, index, n, NULL, NULL, NULL, &err);
        }
        if (!rc && cored_loader_skipped(l))
            fprintf(stderr, "cored: warning: %s: %d unreadable image(s) skipped\n", tasks[i], cored_loader_skipped(l));
        if (!rc && g.n_folders && g.n_loose)
            fprintf(stderr, "cored: warning: %s: %d image(s) sit directly in a class folder, not in a per-video "
                    "folder: each counts as a video of one frame\n", tasks[i], g.n_loose);
        for (int k = 0; !rc && scores_out && k < n; k++) {
            cored_sb_csv(&csv, "%s", tasks[i]);
            cored_sb_printf(&csv, ",");
            cored_sb_csv(&csv, "%s", cored_dataset_path(ds, index[k]));
            cored_sb_printf(&csv, ",%d,%.9g,", labels[k], scores[k]);
            if (g.n_folders) cored_sb_csv(&csv, "%s", g.name[g.video[index[k]]]);
            cored_sb_printf(&csv, "\n");
        }
        cored_video_groups_release(&g);
        cored_loader_free(l);
        cored_dataset_free(ds);
        if (rc) goto fail;
    }
    /* with --json - standard output holds the JSON alone; the table goes to standard error */
    FILE *table = json && !strcmp(json, "-") ? stderr : stdout;
    fprintf(table, "%s on the %s split\n", ckpt, cored_split_name((cored_split)split));
    int any_videos = 0, all_videos = 1;
    for (int i = 0; i < n_tasks; i++) any_videos |= vres[i].has, all_videos &= vres[i].has;
    fprintf(table, "%-20s %8s %8s %9s %9s %7s %7s", "task", "AUC %", "acc %", "real %", "fake %", "real", "fake");
    if (any_videos) fprintf(table, " %12s %10s %12s", "video AUC %", "video acc %", "videos r/f");
    fprintf(table, "\n");
    for (int i = 0; i < n_tasks; i++) {
        char a[16], b[16], c[16], d[16];
        fmt_pct(a, sizeof a, res[i].auc), fmt_pct(b, sizeof b, res[i].acc);
        fmt_pct(c, sizeof c, res[i].acc_real), fmt_pct(d, sizeof d, res[i].acc_fake);
        fprintf(table, "%-20s %8s %8s %9s %9s %7d %7d", tasks[i], a, b, c, d, res[i].n_real, res[i].n_fake);
        if (any_videos && vres[i].has) {
            char va[16], vb[16], vn[32];
            fmt_pct(va, sizeof va, vres[i].m.auc), fmt_pct(vb, sizeof vb, vres[i].m.acc);
            snprintf(vn, sizeof vn, "%d/%d", vres[i].m.n_real, vres[i].m.n_fake);
            fprintf(table, " %12s %10s %12s", va, vb, vn);
        } else if (any_videos) {
            fprintf(table, " %12s %10s %12s", "-", "-", "-");
        }
        fprintf(table, "\n");
    }
    /* say what the columns are, and where there is no video level */
    if (any_videos)
        fprintf(table, "AUC, acc, real, fake: per frame (image); video: the mean p(fake) of each per-video folder's "
                       "frames, over videos\n");
    if (!all_videos) {
        fprintf(table, "no per-video folders (<split>/<class>/<video>/<frame>) in ");
        for (int i = 0, k = 0; i < n_tasks; i++)
            if (!vres[i].has) fprintf(table, "%s%s", k++ ? ", " : "", tasks[i]);
        fprintf(table, ": frame AUC only\n");
    }
    if (json && (rc = write_json(json, ckpt, cored_split_name((cored_split)split), tasks, res, vres, n_tasks, &err)))
        goto fail;
    if (scores_out) {
        if (csv.oom || !csv.s)
            rc = CORED_FAIL(&err, CORED_E_NOMEM, "%s: out of memory", scores_out);
        else
            rc = cored_write_atomic(scores_out, write_text, &csv, &err);
        if (rc) goto fail;
    }
    cored_sb_release(&csv);
    cored_free(index);
    cored_free(scores);
    cored_free(labels);
    cored_model_free(m);
    return 0;
fail:
    cli_print_error(&err);
    cored_sb_release(&csv);
    cored_free(index);
    cored_free(scores);
    cored_free(labels);
    cored_model_free(m);
    return 1;
}
