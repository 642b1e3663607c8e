/*
 * Detection metrics: ROC-AUC with mid-rank ties (the Mann-Whitney statistic, as
 * sklearn.metrics.roc_auc_score), the ROC curve, accuracy at a threshold; and the
 * continual-learning summaries of a task x task AUC matrix.
 */
#ifndef CORED_METRICS_H
#define CORED_METRICS_H

#include <stddef.h>

#include "cored.h"

typedef struct {
    int n, n_real, n_fake;
    double auc;        /* in [0, 1]; NaN when one class is absent ("n/a") */
    double acc;        /* accuracy of p(fake) > 0.5 */
    double acc_real;   /* accuracy on the real images (NaN when none) */
    double acc_fake;
} cored_metrics;

/* ROC-AUC of scores (p(fake)) against labels (0 real, 1 fake) in O(n log n); tied scores
   get their mid-rank. NaN when one class is absent (or its sort buffer cannot be
   allocated; cored_metrics_compute tells the two apart). */
double cored_auc(const float *scores, const int *labels, int n);

/* AUC, accuracy at 0.5 (p(fake) > 0.5 is "fake") and per-class accuracy. */
int cored_metrics_compute(cored_metrics *m, const float *scores, const int *labels, int n,
                          cored_error *err);

/* ROC curve: *npts points (fpr[i], tpr[i]) from (0,0) to (1,1), one per distinct score,
   thresholds decreasing. fpr/tpr are allocated (cored_free). */
int cored_roc_curve(double **fpr, double **tpr, int *npts, const float *scores, const int *labels,
                    int n, cored_error *err);

/* Task matrix R (rows: after step i = 0..n-1, columns: task j = 0..n-1), row-major, in %.
   mean_seen[i] = mean of R[i][0..i]. NaN entries are skipped in the means. */
void cored_matrix_mean_seen(double *mean_seen, const double *r, int n);
/* BWT = 1/(n-1) * sum_{j<n-1} (R[n-1][j] - R[j][j])   (Lopez-Paz & Ranzato, 2017). */
double cored_matrix_bwt(const double *r, int n);
/* Forgetting = 1/(n-1) * sum_{j<n-1} (max_{j<=l<n-1} R[l][j] - R[n-1][j])
   (Chaudhry et al., 2018). NaN when n < 2. */
double cored_matrix_forgetting(const double *r, int n);

#endif
