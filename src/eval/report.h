/*
 * The protocol report: per method the task x task AUC matrix (rows: after step i; columns:
 * task j, upper triangle included), mean AUC over seen tasks per step, BWT and forgetting;
 * a summary table laid out like the paper's (methods x steps); as Markdown, CSV and JSON,
 * with PNG plots (AUC heat maps, mean AUC per step, ROC curves of the final models). Tasks
 * whose split has per-video folders also get the same at the video level (video AUC: the
 * mean p(fake) of each video's frames, AUC over videos) next to the frame level.
 */
#ifndef CORED_REPORT_H
#define CORED_REPORT_H

#include "cored.h"

#define CORED_REPORT_MAX 32

typedef struct {
    int n_tasks, n_methods;
    const char *tasks[CORED_REPORT_MAX];
    const char *methods[CORED_REPORT_MAX];
    /* [method][step][task], in %, NaN when missing or undefined (one class) */
    double *auc, *acc;
    /* the same per video, NaN where a task's split has no per-video folders */
    double *video_auc, *video_acc;
    int videos[CORED_REPORT_MAX]; /* 1: task j's split has per-video folders */
    /* scores of each method's final model on each task's split: [method][task] */
    const float *scores[CORED_REPORT_MAX][CORED_REPORT_MAX];
    const int *labels[CORED_REPORT_MAX][CORED_REPORT_MAX];
    int counts[CORED_REPORT_MAX][CORED_REPORT_MAX];
    const char *title;        /* first line of the Markdown report */
    const char *settings;     /* a Markdown paragraph describing the run */
    const char *split;        /* "test" */
} cored_report;

static inline double *cored_report_auc(const cored_report *r, int m, int step, int task)
{
    return &r->auc[((size_t)m * r->n_tasks + step) * r->n_tasks + task];
}
static inline double *cored_report_acc(const cored_report *r, int m, int step, int task)
{
    return &r->acc[((size_t)m * r->n_tasks + step) * r->n_tasks + task];
}

static inline double *cored_report_video_auc(const cored_report *r, int m, int step, int task)
{
    return &r->video_auc[((size_t)m * r->n_tasks + step) * r->n_tasks + task];
}
static inline double *cored_report_video_acc(const cored_report *r, int m, int step, int task)
{
    return &r->video_acc[((size_t)m * r->n_tasks + step) * r->n_tasks + task];
}

/* Writes dir/report.md, report.csv, report.json and the PNG plots in dir/plots. */
int cored_report_write(const cored_report *r, const char *dir, cored_error *err);
/* The paper-style summary table (methods x steps; column "after k:TASK" = the mean AUC over
   tasks 1..k after step k, which trained TASK), as text for a terminal, into buf. */
void cored_report_summary_text(const cored_report *r, char *buf, size_t n);

/* Plots (plot.c), PNG through cairo. */
int cored_plot_heatmap(const char *path, const char *title, const double *m, int n,
                       const char *const *labels, cored_error *err);
int cored_plot_lines(const char *path, const char *title, const double *y, int n_series, int n_points,
                     const char *const *series, const char *const *xlabels, const char *ylabel,
                     cored_error *err);
int cored_plot_roc(const char *path, const char *title, const double *const *fpr,
                   const double *const *tpr, const int *npts, const double *auc, int n_series,
                   const char *const *series, cored_error *err);

#endif
