/*
 * CoReD representation statistics and loss; see represent.h. The student's cell means
 * come from the same batched train-mode forward that gives the logits (docs/method.md),
 * so the loss has a gradient through the tap features: for a cell with k images,
 * d L / d F[i, argmax, ch] = 2 (mu_S - mu_T) / k (unbiased: minus 2 (x_i - mu_S) / (k (k - 1))
 * for the image's statistic x_i), divided by C in scalar mode (the mean over channels), and
 * times the cell's factor (weight, and with norm batch k / (n var), / dim in vector mode).
 */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "dist/dist.h"
#include "represent.h"

int cored_band(float p)
{
    if (!(p > 0.5f)) return -1;
    if (p <= 0.6f) return 0;
    if (p <= 0.7f) return 1;
    if (p <= 0.8f) return 2;
    if (p <= 0.9f) return 3;
    return 4;
}

int cored_cell(int label, float p_true)
{
    int b = cored_band(p_true);
    return b < 0 ? -1 : label * CORED_BANDS + b;
}

void cored_cells_from_logits(int *cells, const float *logits, const int *labels, int n)
{
    for (int i = 0; i < n; i++) {
        const float *z = logits + 2 * (size_t)i;
        /* softmax of two logits: p_y = 1 / (1 + exp(z_other - z_y)) */
        int y = labels[i];
        float d = z[1 - y] - z[y];
        float p = 1.0f / (1.0f + expf(d));
        cells[i] = cored_cell(y, p);
    }
}

int cored_rep_init(cored_rep_stats *s, cored_rep_mode mode, int channels, cored_error *err)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->dim = mode == CORED_REP_SCALAR ? 1 : channels;
    s->sum = cored_calloc((size_t)CORED_CELLS * s->dim, sizeof(double));
    s->sumsq = cored_calloc((size_t)s->dim, sizeof(double));
    s->mu = cored_calloc((size_t)CORED_CELLS * s->dim, sizeof(float));
    s->var = cored_calloc((size_t)s->dim, sizeof(float));
    if (!s->sum || !s->sumsq || !s->mu || !s->var) {
        cored_rep_release(s);
        return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate representation statistics");
    }
    return CORED_OK;
}

void cored_rep_release(cored_rep_stats *s)
{
    cored_free(s->sum);
    cored_free(s->sumsq);
    cored_free(s->mu);
    cored_free(s->var);
    s->sum = s->sumsq = NULL;
    s->mu = s->var = NULL;
}

/* Mean over channels of an image's channel maxima v (c). */
static double stat_scalar(const float *v, int c)
{
    double s = 0;
    for (int ch = 0; ch < c; ch++) s += v[ch];
    return s / c;
}

/* The spatial maximum of channel ch of one image's map f (hw, c). */
static float spatial_max(const float *f, int hw, int c, int ch)
{
    float v = f[ch];
    for (int p = 1; p < hw; p++)
        if (f[(size_t)p * c + ch] > v) v = f[(size_t)p * c + ch];
    return v;
}

/* The scalar statistic of one image's map f (hw, c): the mean over channels of their
   spatial maxima (the same sum, in the same order, as stat_scalar). */
static double image_scalar(const float *f, int hw, int c)
{
    double m = 0;
    for (int ch = 0; ch < c; ch++) m += spatial_max(f, hw, c, ch);
    return m / c;
}

/* Per-channel spatial maximum of one image's map (hw, c) into v (c); argmax (c, may be
   NULL) receives the first position of each maximum. */
static void channel_max(float *v, int *argmax, const float *f, int hw, int c)
{
    for (int ch = 0; ch < c; ch++) {
        v[ch] = f[ch];
        if (argmax) argmax[ch] = 0;
    }
    for (int p = 1; p < hw; p++) {
        const float *row = f + (size_t)p * c;
        for (int ch = 0; ch < c; ch++)
            if (row[ch] > v[ch]) {
                v[ch] = row[ch];
                if (argmax) argmax[ch] = p;
            }
    }
}

void cored_rep_accumulate(cored_rep_stats *s, const float *features, const int *cells, int n,
                          int hw, int c)
{
    for (int i = 0; i < n; i++) {
        int cell = cells[i];
        if (cell < 0) continue;
        double *acc = s->sum + (size_t)cell * s->dim;
        const float *f = features + (size_t)i * hw * c;
        if (s->mode == CORED_REP_SCALAR) {
            double x = image_scalar(f, hw, c);
            acc[0] += x;
            s->sumsq[0] += x * x;
        } else {
            for (int ch = 0; ch < c; ch++) {
                float v = spatial_max(f, hw, c, ch);
                acc[ch] += v;
                s->sumsq[ch] += (double)v * v;
            }
        }
        s->count[cell] += 1;
        s->present[cell] = 1;
    }
}

void cored_rep_cell_scalars(float *mu, int *count, const float *features, const int *cells, int n, int hw, int c)
{
    double sum[CORED_CELLS] = {0};
    int cnt[CORED_CELLS] = {0};
    for (int i = 0; i < n; i++) {
        if (cells[i] < 0) continue;
        sum[cells[i]] += image_scalar(features + (size_t)i * hw * c, hw, c);
        cnt[cells[i]]++;
    }
    for (int k = 0; k < CORED_CELLS; k++) {
        mu[k] = cnt[k] ? (float)(sum[k] / cnt[k]) : NAN;
        if (count) count[k] = cnt[k];
    }
}

/* The variance's floors: a statistic that barely varies over the target's images (a dead
   channel in vector mode, a teacher whose tap hardly depends on the image, a single image
   in the cells) must not turn the normalised term into a division by (nearly) zero. Per
   dimension, the variance is at least VAR_FLOOR_SQ times the statistic's mean square (a
   standard deviation of 10 % of its RMS value) and VAR_FLOOR_REL times the mean variance
   over the dimensions. */
#define VAR_FLOOR_SQ 1e-2
#define VAR_FLOOR_REL 1e-3
#define VAR_FLOOR_ABS 1e-12

void cored_rep_finish(cored_rep_stats *s)
{
    double total = 0, mean_var = 0;
    for (int k = 0; k < CORED_CELLS; k++) total += s->count[k];
    for (int k = 0; k < CORED_CELLS; k++)
        for (int d = 0; d < s->dim; d++)
            s->mu[(size_t)k * s->dim + d] =
                s->present[k] ? (float)(s->sum[(size_t)k * s->dim + d] / s->count[k]) : 0.0f;
    for (int d = 0; d < s->dim; d++) {
        double sum = 0;
        for (int k = 0; k < CORED_CELLS; k++) sum += s->sum[(size_t)k * s->dim + d];
        double v = total > 1 ? (s->sumsq[d] - sum * sum / total) / (total - 1) : 0;
        s->var[d] = (float)(v > 0 ? v : 0);
        mean_var += s->var[d] / s->dim;
    }
    for (int d = 0; d < s->dim; d++) {
        double sq = total > 0 ? s->sumsq[d] / total : 0, floor = VAR_FLOOR_REL * mean_var;
        if (VAR_FLOOR_SQ * sq > floor) floor = VAR_FLOOR_SQ * sq;
        floor += VAR_FLOOR_ABS;
        if (s->var[d] < floor) s->var[d] = (float)floor;
    }
}

size_t cored_rep_ws_floats(int n, int c)
{
    /* per image: channel maxima (c floats) and their positions (c ints); the student's cell
       means; per image its statistic (dim <= c doubles, at an even offset) */
    return 2 * (size_t)n * c + (size_t)CORED_CELLS * c + 2 * (size_t)n * c +
           2 * (1 + (size_t)CORED_CELLS * (1 + (size_t)c) + 1);
}

double cored_rep_loss(float *dfeat, int *used, const cored_rep_stats *teacher, const int *cells,
                      const float *features, int n, int hw, int c, const cored_rep_loss_cfg *how, float *ws)
{
    const int dim = teacher->dim, unbiased = how->unbiased, batch = how->norm == CORED_REP_NORM_BATCH;
    float *vmax = ws;
    int *amax = (int *)(ws + (size_t)n * c);
    float *mu = ws + 2 * (size_t)n * c; /* [CORED_CELLS][dim] student means */
    double *x = (double *)(mu + (size_t)CORED_CELLS * c); /* [n][dim] the images' statistics */
    /* [CORED_CELLS counts, CORED_CELLS x dim sums, n]: summed over the ranks when how->dist */
    double *red = x + (size_t)n * c;
    int count[CORED_CELLS] = {0};
    for (int i = 0; i < n; i++) {
        float *v = vmax + (size_t)i * c;
        channel_max(v, amax + (size_t)i * c, features + (size_t)i * hw * c, hw, c);
        if (dim == 1) x[i] = stat_scalar(v, c);
        else
            for (int d = 0; d < dim; d++) x[(size_t)i * dim + d] = v[d];
        if (cells[i] >= 0) count[cells[i]]++;
    }
#define STAT(i, d) x[(size_t)(i) * dim + (d)]
    const int min_count = unbiased ? 2 : 1;
    memset(mu, 0, sizeof(float) * CORED_CELLS * (size_t)dim);
    double *sums = red + CORED_CELLS;
    const size_t nred = CORED_CELLS + (size_t)CORED_CELLS * dim + 1;
    memset(red, 0, sizeof(double) * nred);
    for (int k = 0; k < CORED_CELLS; k++) {
        red[k] = count[k];
        if (!teacher->present[k]) continue;
        for (int d = 0; d < dim; d++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                if (cells[i] == k) s += STAT(i, d);
            sums[(size_t)k * dim + d] = s;
        }
    }
    red[nred - 1] = n;
    if (how->dist) cored_dist_sum_d(red, nred);
    const double n_all = red[nred - 1];
    for (int k = 0; k < CORED_CELLS; k++) {
        count[k] = (int)red[k];
        if (count[k] < min_count || !teacher->present[k]) continue;
        for (int d = 0; d < dim; d++) mu[(size_t)k * dim + d] = (float)(sums[(size_t)k * dim + d] / count[k]);
    }
    /* the unbiased estimate's sample variances, per cell and dimension (summed over ranks) */
    double *vars = sums;
    if (unbiased) {
        memset(vars, 0, sizeof(double) * (size_t)CORED_CELLS * dim);
        for (int k = 0; k < CORED_CELLS; k++) {
            if (count[k] < min_count || !teacher->present[k]) continue;
            const float *ms = mu + (size_t)k * dim;
            for (int d = 0; d < dim; d++) {
                double v = 0;
                for (int i = 0; i < n; i++)
                    if (cells[i] == k) v += (STAT(i, d) - ms[d]) * (STAT(i, d) - ms[d]);
                vars[(size_t)k * dim + d] = v;
            }
        }
        if (how->dist) cored_dist_sum_d(vars, (size_t)CORED_CELLS * dim);
    }
    double loss = 0;
    int n_used = 0;
    if (dfeat) memset(dfeat, 0, sizeof(float) * (size_t)n * hw * c);
    for (int k = 0; k < CORED_CELLS; k++) {
        if (count[k] < min_count || !teacher->present[k]) continue;
        n_used++;
        const int q = count[k];
        const float *mt = teacher->mu + (size_t)k * dim, *ms = mu + (size_t)k * dim;
        /* the cell's factor of dimension d */
#define FACTOR(d) (how->weight * (batch ? (double)q / (n_all * dim * teacher->var[d]) : 1.0))
        for (int d = 0; d < dim; d++) {
            double diff = (double)ms[d] - mt[d], term = diff * diff;
            if (unbiased) /* minus the sample variance of the mean */
                term -= vars[(size_t)k * dim + d] / ((double)q * (q - 1));
            loss += FACTOR(d) * term;
        }
        if (!dfeat) continue;
        for (int i = 0; i < n; i++) {
            if (cells[i] != k) continue;
            float *g = dfeat + (size_t)i * hw * c;
            const int *am = amax + (size_t)i * c;
            double gs = 0;
            if (dim == 1) {
                gs = 2.0 * ((double)ms[0] - mt[0]) / q;
                if (unbiased) gs -= 2.0 * (STAT(i, 0) - ms[0]) / ((double)q * (q - 1));
                gs *= FACTOR(0);
            }
            for (int ch = 0; ch < c; ch++) {
                double grad = gs / c;
                if (dim > 1) {
                    grad = 2.0 * ((double)ms[ch] - mt[ch]) / q;
                    if (unbiased) grad -= 2.0 * (STAT(i, ch) - ms[ch]) / ((double)q * (q - 1));
                    grad *= FACTOR(ch);
                }
                g[(size_t)am[ch] * c + ch] = (float)grad;
            }
        }
    }
#undef FACTOR
#undef STAT
    if (used) *used = n_used;
    return loss;
}
