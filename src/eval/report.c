/*
 * The protocol report (report.h): Markdown for people, CSV and JSON for programs, PNG
 * plots. Definitions written into the report:
 *   R[i][j]    test AUC (%) on task j after training step i (upper triangle: not yet seen)
 *   mean seen  (1/(i+1)) sum_{j<=i} R[i][j]
 *   BWT        1/(N-1) sum_{j<N-1} (R[N-1][j] - R[j][j])                (Lopez-Paz & Ranzato 2017)
 *   forgetting 1/(N-1) sum_{j<N-1} (max_{j<=l<N-1} R[l][j] - R[N-1][j])  (Chaudhry et al. 2018)
 * and, for tasks whose split has per-video folders, V[i][j], the same with the video AUC (a
 * video's score: the mean p(fake) of its frames), with its own means, BWT and forgetting
 * (over the tasks that have videos; "n/a" where one is missing).
 */
#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "io/json.h"
#include "metrics.h"
#include "report.h"

static void cell(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "n/a");
    else
        snprintf(buf, n, "%.2f", v);
}

static int write_text_cb(FILE *f, const char *path, void *user, cored_error *err)
{
    const cored_sb *t = user;
    return cored_fwrite_all(f, t->s, t->len, path, err);
}

static int save_text(cored_sb *t, const char *dir, const char *name, cored_error *err)
{
    char path[4096];
    int rc;
    if (cored_path_join(path, sizeof path, dir, name))
        rc = CORED_FAIL(err, CORED_E_ARG, "%s: path too long", dir);
    else if (t->oom || !t->s)
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: out of memory", path);
    else
        rc = cored_write_atomic(path, write_text_cb, t, err);
    cored_sb_release(t);
    return rc;
}

/* R of method m as an n x n matrix. */
static void matrix(double *out, const cored_report *r, int m)
{
    for (int i = 0; i < r->n_tasks; i++)
        for (int j = 0; j < r->n_tasks; j++) out[i * r->n_tasks + j] = *cored_report_auc(r, m, i, j);
}

/* V of method m, the video AUC matrix (NaN for tasks without per-video folders). */
static void video_matrix(double *out, const cored_report *r, int m)
{
    for (int i = 0; i < r->n_tasks; i++)
        for (int j = 0; j < r->n_tasks; j++) out[i * r->n_tasks + j] = *cored_report_video_auc(r, m, i, j);
}

/* R (video 0) or V (video 1). */
static void level_matrix(double *out, const cored_report *r, int m, int video)
{
    if (video)
        video_matrix(out, r, m);
    else
        matrix(out, r, m);
}

/* How many tasks have per-video folders. */
static int video_tasks(const cored_report *r)
{
    int k = 0;
    for (int j = 0; j < r->n_tasks; j++) k += r->videos[j] != 0;
    return k;
}

/* "A, B" (the tasks with per-video folders when with = 1, the others when 0). */
static void task_list(cored_sb *t, const cored_report *r, int with)
{
    for (int j = 0, k = 0; j < r->n_tasks; j++)
        if (!r->videos[j] == !with) cored_sb_printf(t, "%s%s", k++ ? ", " : "", r->tasks[j]);
}

/* The summary's column for step i: "after i:TASK", the step's number and the task it
   trained, so that the column does not read like the AUC on that task. */
static void step_header(char *h, size_t n, const cored_report *r, int i)
{
    snprintf(h, n, "after %d:%s", i + 1, r->tasks[i]);
}

/* One summary table (frame level, video 0, or video level, video 1) into buf + *k. */
static void summary_table(const cored_report *r, int video, char *buf, size_t n, size_t *kp)
{
    const int N = r->n_tasks, max_w = 24;
    double R[CORED_REPORT_MAX * CORED_REPORT_MAX], mean[CORED_REPORT_MAX];
    int w[CORED_REPORT_MAX];
    size_t k = *kp;
    if (k < n)
        k += (size_t)snprintf(buf + k, n - k, "mean test %sAUC %% over the tasks seen so far, after each step\n%-10s",
                              video ? "video " : "", "method");
    for (int i = 0; i < N && k < n; i++) {
        char h[64];
        step_header(h, sizeof h, r, i);
        w[i] = (int)strlen(h) < 9 ? 9 : (int)strlen(h) > max_w ? max_w : (int)strlen(h);
        k += (size_t)snprintf(buf + k, n - k, " %*.*s", w[i], w[i], h);
    }
    if (k < n) k += (size_t)snprintf(buf + k, n - k, " %8s %8s\n", "BWT", "forget");
    for (int m = 0; m < r->n_methods && k < n; m++) {
        level_matrix(R, r, m, video);
        cored_matrix_mean_seen(mean, R, N);
        k += (size_t)snprintf(buf + k, n - k, "%-10s", r->methods[m]);
        for (int i = 0; i < N && k < n; i++) {
            char c[16];
            cell(c, sizeof c, mean[i]);
            k += (size_t)snprintf(buf + k, n - k, " %*s", w[i], c);
        }
        char b[16], f[16];
        cell(b, sizeof b, cored_matrix_bwt(R, N));
        cell(f, sizeof f, cored_matrix_forgetting(R, N));
        if (k < n) k += (size_t)snprintf(buf + k, n - k, " %8s %8s\n", b, f);
    }
    *kp = k;
}

void cored_report_summary_text(const cored_report *r, char *buf, size_t n)
{
    size_t k = 0;
    if (n) buf[0] = '\0';
    summary_table(r, 0, buf, n, &k);
    if (video_tasks(r)) {
        if (k < n) k += (size_t)snprintf(buf + k, n - k, "\n");
        summary_table(r, 1, buf, n, &k);
        if (k < n) k += (size_t)snprintf(buf + k, n - k, "(video AUC: the mean p(fake) of each per-video folder's "
                                                         "frames, AUC over videos%s)\n",
                                         video_tasks(r) < r->n_tasks ? "; n/a: tasks without per-video folders" : "");
    } else if (k < n) {
        k += (size_t)snprintf(buf + k, n - k, "(frame AUC only: no task's %s split has per-video folders)\n", r->split);
    }
}

/* A file name inside a Markdown link: spaces and parentheses percent-encoded. */
static void link_name(cored_sb *t, const char *name)
{
    for (const char *c = name; *c; c++) {
        if (*c == ' ' || *c == '(' || *c == ')' || *c == '%')
            cored_sb_printf(t, "%%%02X", (unsigned char)*c);
        else
            cored_sb_printf(t, "%c", *c);
    }
}

/* The summary table in Markdown, frame level (video 0) or video level (video 1). */
static void md_summary(cored_sb *t, const cored_report *r, int video)
{
    const int N = r->n_tasks;
    double R[CORED_REPORT_MAX * CORED_REPORT_MAX], mean[CORED_REPORT_MAX];
    char c[32];
    cored_sb_printf(t, "| method |");
    for (int i = 0; i < N; i++) cored_sb_printf(t, " after step %d (%s) |", i + 1, r->tasks[i]);
    cored_sb_printf(t, " BWT | forgetting |\n|---|");
    for (int i = 0; i < N + 2; i++) cored_sb_printf(t, "---:|");
    cored_sb_printf(t, "\n");
    for (int m = 0; m < r->n_methods; m++) {
        level_matrix(R, r, m, video);
        cored_matrix_mean_seen(mean, R, N);
        cored_sb_printf(t, "| %s |", r->methods[m]);
        for (int i = 0; i < N; i++) {
            cell(c, sizeof c, mean[i]);
            cored_sb_printf(t, " %s |", c);
        }
        cell(c, sizeof c, cored_matrix_bwt(R, N));
        cored_sb_printf(t, " %s |", c);
        cell(c, sizeof c, cored_matrix_forgetting(R, N));
        cored_sb_printf(t, " %s |\n", c);
    }
}

/* The step x task matrix of method m in Markdown (diagonal bold, not yet trained in italics). */
static void md_matrix(cored_sb *t, const cored_report *r, int m, int video)
{
    const int N = r->n_tasks;
    double R[CORED_REPORT_MAX * CORED_REPORT_MAX], mean[CORED_REPORT_MAX];
    char c[32];
    level_matrix(R, r, m, video);
    cored_matrix_mean_seen(mean, R, N);
    cored_sb_printf(t, "| after step \\ test %sAUC %% | ", video ? "video " : "");
    for (int j = 0; j < N; j++) cored_sb_printf(t, "%s | ", r->tasks[j]);
    cored_sb_printf(t, "mean seen |\n|---|");
    for (int j = 0; j <= N; j++) cored_sb_printf(t, "---:|");
    cored_sb_printf(t, "\n");
    for (int i = 0; i < N; i++) {
        cored_sb_printf(t, "| %d: %s |", i + 1, r->tasks[i]);
        for (int j = 0; j < N; j++) {
            cell(c, sizeof c, R[i * N + j]);
            cored_sb_printf(t, j == i ? " **%s** |" : j > i ? " *%s* |" : " %s |", c);
        }
        cell(c, sizeof c, mean[i]);
        cored_sb_printf(t, " %s |\n", c);
    }
    char b[16], f[16];
    cell(b, sizeof b, cored_matrix_bwt(R, N));
    cell(f, sizeof f, cored_matrix_forgetting(R, N));
    cored_sb_printf(t, "\n%sBWT %s, forgetting %s.\n\n", video ? "Per video: " : "", b, f);
}

static void markdown(cored_sb *t, const cored_report *r)
{
    const int N = r->n_tasks, nv = video_tasks(r);
    cored_sb_printf(t, "# %s\n\n%s\n\n", r->title, r->settings ? r->settings : "");
    cored_sb_printf(t, "Task order: ");
    for (int i = 0; i < N; i++) cored_sb_printf(t, "%s%d. %s", i ? " → " : "", i + 1, r->tasks[i]);
    cored_sb_printf(t, ". Every model is evaluated on the **%s** split of **every** task after every step.\n\n", r->split);
    if (!nv)
        cored_sb_printf(t, "Frame AUC only: no task's %s split has per-video folders "
                           "(`<class>/<video>/<frame>.png`), so there is no video level.\n\n", r->split);
    cored_sb_printf(t, "## Summary: mean test AUC %% over the tasks seen so far, after each step\n\n"
                       "Column \"after step k (T)\": the mean over tasks 1..k of the test AUC after step k, "
                       "which trained task T.%s\n\n", nv ? " AUC per frame (image)." : "");
    md_summary(t, r, 0);
    cored_sb_printf(t, "\n![mean AUC per step](plots/mean_auc.png)\n\n");
    if (nv) {
        cored_sb_printf(t, "## Summary per video: mean test video AUC %% over the tasks seen so far, after each "
                           "step\n\nA video's score is the mean p(fake) of its frames (the images of one per-video "
                           "folder); the video AUC is the AUC over videos. Tasks with per-video folders: ");
        task_list(t, r, 1);
        if (nv < N) {
            cored_sb_printf(t, "; without (frame AUC only, n/a here): ");
            task_list(t, r, 0);
        }
        cored_sb_printf(t, ".\n\n");
        md_summary(t, r, 1);
        cored_sb_printf(t, "\n![mean video AUC per step](plots/mean_video_auc.png)\n\n");
    }
    cored_sb_printf(t, "## Definitions\n\n"
           "- R[i][j]: ROC-AUC (%%, ties by mid-rank, score p(fake)) on the %s split of task j after "
           "training step i. The upper triangle (j > i) shows tasks not trained yet.\n"
           "- Mean seen after step i: (1/(i+1)) Σ_{j≤i} R[i][j].\n"
           "- BWT = 1/(N−1) Σ_{j<N−1} (R[N−1][j] − R[j][j]) — negative means forgetting "
           "(Lopez-Paz & Ranzato, 2017).\n"
           "- Forgetting = 1/(N−1) Σ_{j<N−1} (max_{j≤l<N−1} R[l][j] − R[N−1][j]) — the drop from "
           "each task's best to its final AUC (Chaudhry et al., 2018).\n",
        r->split);
    if (nv)
        cored_sb_printf(t, "- V[i][j]: the video AUC, the same with one score per video (the mean p(fake) of its "
                           "frames) instead of one per frame; its means, BWT and forgetting as R's (n/a where a "
                           "task has no per-video folders).\n");
    cored_sb_printf(t, "\n");
    for (int m = 0; m < r->n_methods; m++) {
        cored_sb_printf(t, "## %s\n\n", r->methods[m]);
        md_matrix(t, r, m, 0);
        cored_sb_printf(t, "![AUC matrix of %s](plots/auc_%s.png)\n\n", r->methods[m], r->methods[m]);
        if (nv) {
            md_matrix(t, r, m, 1);
            cored_sb_printf(t, "![video AUC matrix of %s](plots/video_auc_%s.png)\n\n", r->methods[m], r->methods[m]);
        }
    }
    cored_sb_printf(t, "## ROC curves of the final models\n\n");
    for (int j = 0; j < N; j++) {
        cored_sb_printf(t, "![ROC on %s](plots/roc_", r->tasks[j]);
        link_name(t, r->tasks[j]);
        cored_sb_printf(t, ".png)\n");
    }
}

static void csv(cored_sb *t, const cored_report *r)
{
    /* the video columns only when some task has per-video folders: the file of a run
       without videos stays as it was */
    const int nv = video_tasks(r);
    cored_sb_printf(t, "method,step,trained_task,task,auc,acc%s\n", nv ? ",video_auc,video_acc" : "");
    for (int m = 0; m < r->n_methods; m++)
        for (int i = 0; i < r->n_tasks; i++)
            for (int j = 0; j < r->n_tasks; j++) {
                char a[32], b[32];
                cell(a, sizeof a, *cored_report_auc(r, m, i, j));
                cell(b, sizeof b, *cored_report_acc(r, m, i, j));
                cored_sb_csv(t, "%s", r->methods[m]);
                cored_sb_printf(t, ",%d,", i + 1);
                cored_sb_csv(t, "%s", r->tasks[i]);
                cored_sb_printf(t, ",");
                cored_sb_csv(t, "%s", r->tasks[j]);
                cored_sb_printf(t, ",%s,%s", a, b);
                if (nv) {
                    cell(a, sizeof a, *cored_report_video_auc(r, m, i, j));
                    cell(b, sizeof b, *cored_report_video_acc(r, m, i, j));
                    cored_sb_printf(t, ",%s,%s", a, b);
                }
                cored_sb_printf(t, "\n");
            }
}

static int json(cored_sb *t, const cored_report *r)
{
    const int N = r->n_tasks;
    double R[CORED_REPORT_MAX * CORED_REPORT_MAX], mean[CORED_REPORT_MAX];
    cJSON *j = cJSON_CreateObject(), *tasks = cJSON_CreateArray(), *methods = cJSON_CreateObject();
    for (int i = 0; i < N; i++) cJSON_AddItemToArray(tasks, cJSON_CreateString(r->tasks[i]));
    cJSON_AddItemToObject(j, "tasks", tasks);
    cJSON_AddStringToObject(j, "split", r->split);
    cJSON_AddStringToObject(j, "auc_unit", "percent");
    /* what each method's arrays hold, indexed from 0: step i trained tasks[i] */
    cJSON *d = cJSON_AddObjectToObject(j, "definitions");
    cJSON_AddStringToObject(d, "auc", "auc[i][j]: test AUC % on tasks[j] after step i+1, which trained tasks[i] "
                                      "(j > i: a task not trained yet)");
    cJSON_AddStringToObject(d, "acc", "acc[i][j]: test accuracy % on tasks[j] after step i+1");
    cJSON_AddStringToObject(d, "mean_seen_auc", "mean_seen_auc[i]: mean AUC after step i+1, the mean of auc[i][0..i] "
                                                "(the tasks seen so far), not the AUC on tasks[i]");
    cJSON_AddStringToObject(d, "bwt", "mean over j < N-1 of auc[N-1][j] - auc[j][j]");
    cJSON_AddStringToObject(d, "forgetting", "mean over j < N-1 of max_{j<=l<N-1} auc[l][j] - auc[N-1][j]");
    const int nv = video_tasks(r);
    /* the tasks whose split has per-video folders; the video keys below only when there are */
    cJSON *vt = cJSON_AddArrayToObject(j, "video_tasks");
    for (int i = 0; i < N; i++)
        if (r->videos[i]) cJSON_AddItemToArray(vt, cJSON_CreateString(r->tasks[i]));
    if (nv) {
        cJSON_AddStringToObject(d, "video_auc", "video_auc[i][j]: test video AUC % on tasks[j] after step i+1: one "
                                                "score per video, the mean p(fake) of its frames (null: tasks[j] has "
                                                "no per-video folders)");
        cJSON_AddStringToObject(d, "video_acc", "video_acc[i][j]: test accuracy % over videos (mean p(fake) > 0.5)");
        cJSON_AddStringToObject(d, "mean_seen_video_auc", "mean of video_auc[i][0..i] over the tasks with videos");
        cJSON_AddStringToObject(d, "video_bwt", "bwt of video_auc");
        cJSON_AddStringToObject(d, "video_forgetting", "forgetting of video_auc");
    }
    for (int m = 0; m < r->n_methods; m++) {
        cJSON *o = cJSON_CreateObject(), *auc = cJSON_CreateArray(), *acc = cJSON_CreateArray(),
              *ms = cJSON_CreateArray();
        matrix(R, r, m);
        cored_matrix_mean_seen(mean, R, N);
        for (int i = 0; i < N; i++) {
            cJSON *ra = cJSON_CreateArray(), *rc = cJSON_CreateArray();
            for (int k = 0; k < N; k++) {
                cJSON_AddItemToArray(ra, cored_json_number(R[i * N + k]));
                cJSON_AddItemToArray(rc, cored_json_number(*cored_report_acc(r, m, i, k)));
            }
            cJSON_AddItemToArray(auc, ra);
            cJSON_AddItemToArray(acc, rc);
            cJSON_AddItemToArray(ms, cored_json_number(mean[i]));
        }
        cJSON_AddItemToObject(o, "auc", auc);
        cJSON_AddItemToObject(o, "acc", acc);
        cJSON_AddItemToObject(o, "mean_seen_auc", ms);
        cJSON_AddItemToObject(o, "bwt", cored_json_number(cored_matrix_bwt(R, N)));
        cJSON_AddItemToObject(o, "forgetting", cored_json_number(cored_matrix_forgetting(R, N)));
        if (nv) {
            cJSON *vauc = cJSON_CreateArray(), *vacc = cJSON_CreateArray(), *vms = cJSON_CreateArray();
            video_matrix(R, r, m);
            cored_matrix_mean_seen(mean, R, N);
            for (int i = 0; i < N; i++) {
                cJSON *ra = cJSON_CreateArray(), *rc = cJSON_CreateArray();
                for (int k = 0; k < N; k++) {
                    cJSON_AddItemToArray(ra, cored_json_number(R[i * N + k]));
                    cJSON_AddItemToArray(rc, cored_json_number(*cored_report_video_acc(r, m, i, k)));
                }
                cJSON_AddItemToArray(vauc, ra);
                cJSON_AddItemToArray(vacc, rc);
                cJSON_AddItemToArray(vms, cored_json_number(mean[i]));
            }
            cJSON_AddItemToObject(o, "video_auc", vauc);
            cJSON_AddItemToObject(o, "video_acc", vacc);
            cJSON_AddItemToObject(o, "mean_seen_video_auc", vms);
            cJSON_AddItemToObject(o, "video_bwt", cored_json_number(cored_matrix_bwt(R, N)));
            cJSON_AddItemToObject(o, "video_forgetting", cored_json_number(cored_matrix_forgetting(R, N)));
        }
        cJSON_AddItemToObject(methods, r->methods[m], o);
    }
    cJSON_AddItemToObject(j, "methods", methods);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    if (!s) return -1;
    cored_sb_printf(t, "%s\n", s);
    cJSON_free(s);
    return 0;
}

static int plots(const cored_report *r, const char *dir, cored_error *err)
{
    const int N = r->n_tasks, M = r->n_methods;
    char path[4096], title[256];
    double R[CORED_REPORT_MAX * CORED_REPORT_MAX], y[CORED_REPORT_MAX * CORED_REPORT_MAX];
    const char *xl[CORED_REPORT_MAX];
    char xlab[CORED_REPORT_MAX][64];
    int rc;
    for (int m = 0; m < M; m++) {
        matrix(R, r, m);
        cored_matrix_mean_seen(y + m * N, R, N);
        snprintf(path, sizeof path, "%s/plots/auc_%s.png", dir, r->methods[m]);
        snprintf(title, sizeof title, "%s: test AUC %% after each step", r->methods[m]);
        if ((rc = cored_plot_heatmap(path, title, R, N, r->tasks, err))) return rc;
    }
    for (int i = 0; i < N; i++) {
        snprintf(xlab[i], sizeof xlab[i], "%d: %s", i + 1, r->tasks[i]);
        xl[i] = xlab[i];
    }
    snprintf(path, sizeof path, "%s/plots/mean_auc.png", dir);
    if ((rc = cored_plot_lines(path, "mean test AUC over the tasks seen so far, after each step", y, M, N, r->methods, xl,
                               "mean test AUC %", err)))
        return rc;
    if (video_tasks(r)) { /* the same per video, next to them */
        for (int m = 0; m < M; m++) {
            video_matrix(R, r, m);
            cored_matrix_mean_seen(y + m * N, R, N);
            snprintf(path, sizeof path, "%s/plots/video_auc_%s.png", dir, r->methods[m]);
            snprintf(title, sizeof title, "%s: test video AUC %% after each step", r->methods[m]);
            if ((rc = cored_plot_heatmap(path, title, R, N, r->tasks, err))) return rc;
        }
        snprintf(path, sizeof path, "%s/plots/mean_video_auc.png", dir);
        if ((rc = cored_plot_lines(path, "mean test video AUC over the tasks seen so far, after each step", y, M, N,
                                   r->methods, xl, "mean test video AUC %", err)))
            return rc;
    }
    for (int j = 0; j < N; j++) {
        double *fpr[CORED_REPORT_MAX] = {0}, *tpr[CORED_REPORT_MAX] = {0}, auc[CORED_REPORT_MAX];
        int npts[CORED_REPORT_MAX] = {0};
        rc = CORED_OK;
        for (int m = 0; m < M && !rc; m++) {
            auc[m] = *cored_report_auc(r, m, N - 1, j);
            if (r->counts[m][j])
                rc = cored_roc_curve(&fpr[m], &tpr[m], &npts[m], r->scores[m][j], r->labels[m][j], r->counts[m][j], err);
        }
        snprintf(path, sizeof path, "%s/plots/roc_%s.png", dir, r->tasks[j]);
        snprintf(title, sizeof title, "ROC on %s (%s split), final models", r->tasks[j], r->split);
        if (!rc)
            rc = cored_plot_roc(path, title, (const double *const *)fpr, (const double *const *)tpr, npts, auc, M,
                                r->methods, err);
        for (int m = 0; m < M; m++) cored_free(fpr[m]), cored_free(tpr[m]);
        if (rc) return rc;
    }
    return CORED_OK;
}

int cored_report_write(const cored_report *r, const char *dir, cored_error *err)
{
    char pdir[4096];
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    int rc = cored_mkdir_p(pdir, err);
    if (rc) return rc;
    cored_sb t = {0};
    markdown(&t, r);
    if ((rc = save_text(&t, dir, "report.md", err))) return rc;
    csv(&t, r);
    if ((rc = save_text(&t, dir, "report.csv", err))) return rc;
    if (json(&t, r)) t.oom = 1;
    if ((rc = save_text(&t, dir, "report.json", err))) return rc;
    return plots(r, dir, err);
}
