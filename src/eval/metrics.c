/*
 * ROC-AUC by ranks: sort the scores, give tied scores the mean of their ranks, and
 * AUC = (sum of the fake images' ranks - n_f (n_f + 1) / 2) / (n_f * n_r), which equals
 * sklearn's roc_auc_score (trapezoidal area under the ROC curve) with ties. The sort is
 * a stable index sort on the scores, O(n log n).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "metrics.h"

/* Merge sort of indices by score (ascending); stable. */
static void sort_idx(int *idx, int *tmp, const float *s, int n)
{
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = s[idx[b]] < s[idx[a]] ? idx[b++] : idx[a++];
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, sizeof(int) * (size_t)n);
    }
}

double cored_auc(const float *scores, const int *labels, int n)
{
    long n_fake = 0;
    for (int i = 0; i < n; i++) n_fake += labels[i] == 1;
    long n_real = n - n_fake;
    if (n_fake == 0 || n_real == 0) return NAN;
    int *idx = cored_alloc(sizeof(int) * 2 * (size_t)n);
    if (!idx) return NAN;
    int *tmp = idx + n;
    for (int i = 0; i < n; i++) idx[i] = i;
    sort_idx(idx, tmp, scores, n);
    double rank_sum = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && scores[idx[j + 1]] == scores[idx[i]]) j++;
        double mid_rank = 0.5 * (i + j) + 1.0; /* ranks are 1-based */
        for (int k = i; k <= j; k++)
            if (labels[idx[k]] == 1) rank_sum += mid_rank;
        i = j + 1;
    }
    cored_free(idx);
    return (rank_sum - 0.5 * (double)n_fake * (n_fake + 1)) / ((double)n_fake * n_real);
}

int cored_metrics_compute(cored_metrics *m, const float *scores, const int *labels, int n,
                          cored_error *err)
{
    memset(m, 0, sizeof *m);
    m->n = n;
    long ok_r = 0, ok_f = 0;
    for (int i = 0; i < n; i++) {
        if (labels[i] != 0 && labels[i] != 1)
            return CORED_FAIL(err, CORED_E_ARG, "label %d of sample %d is neither 0 nor 1", labels[i], i);
        int pred = scores[i] > 0.5f;
        if (labels[i]) m->n_fake++, ok_f += pred == 1;
        else m->n_real++, ok_r += pred == 0;
    }
    m->acc = n ? (double)(ok_r + ok_f) / n : NAN;
    m->acc_real = m->n_real ? (double)ok_r / m->n_real : NAN;
    m->acc_fake = m->n_fake ? (double)ok_f / m->n_fake : NAN;
    m->auc = n ? cored_auc(scores, labels, n) : NAN;
    if (isnan(m->auc) && m->n_real && m->n_fake)
        return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the AUC's sort buffer for %d scores", n);
    return CORED_OK;
}

int cored_roc_curve(double **fpr, double **tpr, int *npts, const float *scores, const int *labels,
                    int n, cored_error *err)
{
    int *idx = cored_alloc(sizeof(int) * (size_t)(n ? n : 1));
    int *tmp = cored_alloc(sizeof(int) * (size_t)(n ? n : 1));
    double *f = cored_alloc(sizeof(double) * (size_t)(n + 2)), *t = cored_alloc(sizeof(double) * (size_t)(n + 2));
    if (!idx || !tmp || !f || !t) {
        cored_free(idx), cored_free(tmp), cored_free(f), cored_free(t);
        return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the ROC curve of %d scores", n);
    }
    long n_fake = 0;
    for (int i = 0; i < n; i++) n_fake += labels[i] == 1;
    long n_real = n - n_fake;
    for (int i = 0; i < n; i++) idx[i] = i;
    sort_idx(idx, tmp, scores, n);
    int k = 0;
    long tp = 0, fp = 0;
    f[k] = 0, t[k] = 0, k++;
    for (int i = n - 1; i >= 0;) {
        int j = i;
        while (j - 1 >= 0 && scores[idx[j - 1]] == scores[idx[i]]) j--;
        for (int q = j; q <= i; q++) labels[idx[q]] == 1 ? tp++ : fp++;
        f[k] = n_real ? (double)fp / n_real : 0;
        t[k] = n_fake ? (double)tp / n_fake : 0;
        k++;
        i = j - 1;
    }
    cored_free(idx);
    cored_free(tmp);
    *fpr = f;
    *tpr = t;
    *npts = k;
    return CORED_OK;
}

void cored_matrix_mean_seen(double *mean_seen, const double *r, int n)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        int c = 0;
        for (int j = 0; j <= i; j++)
            if (!isnan(r[i * n + j])) s += r[i * n + j], c++;
        mean_seen[i] = c ? s / c : NAN;
    }
}

double cored_matrix_bwt(const double *r, int n)
{
    if (n < 2) return NAN;
    double s = 0;
    for (int j = 0; j < n - 1; j++) s += r[(n - 1) * n + j] - r[j * n + j];
    return s / (n - 1);
}

double cored_matrix_forgetting(const double *r, int n)
{
    if (n < 2) return NAN;
    double s = 0;
    for (int j = 0; j < n - 1; j++) {
        double best = r[j * n + j];
        for (int l = j + 1; l < n - 1; l++)
            if (r[l * n + j] > best) best = r[l * n + j];
        s += best - r[(n - 1) * n + j];
    }
    return s / (n - 1);
}
