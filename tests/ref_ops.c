/*
 * Naive reference ops in double precision: direct loops straight from the definitions
 * (PyTorch conv2d, batch_norm, max_pool2d, linear, cross_entropy, kl_div), no tricks.
 */
#include "ref_ops.h"

#include <math.h>
#include <string.h>

void ref_conv_forward(double *y, const double *x, const double *w, const double *b,
                      const cored_conv_shape *s)
{
    int cg = s->cin / s->groups, og = s->cout / s->groups;
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int co = 0; co < s->cout; co++) {
                    int g = co / og;
                    double acc = b ? b[co] : 0.0;
                    for (int ci = 0; ci < cg; ci++)
                        for (int kh = 0; kh < s->kh; kh++)
                            for (int kw = 0; kw < s->kw; kw++) {
                                int ih = oh * s->stride - s->pad_t + kh;
                                int iw = ow * s->stride - s->pad_l + kw;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                                acc += x[(((size_t)n * s->h + ih) * s->w + iw) * s->cin + g * cg + ci] *
                                       w[(((size_t)co * cg + ci) * s->kh + kh) * s->kw + kw];
                            }
                    y[(((size_t)n * s->oh + oh) * s->ow + ow) * s->cout + co] = acc;
                }
}

void ref_conv_backward(double *dx, double *dw, double *db, const double *dy, const double *x,
                       const double *w, const cored_conv_shape *s)
{
    int cg = s->cin / s->groups, og = s->cout / s->groups;
    if (dx) memset(dx, 0, sizeof(double) * (size_t)s->n * s->h * s->w * s->cin);
    if (dw) memset(dw, 0, sizeof(double) * (size_t)s->cout * cg * s->kh * s->kw);
    if (db) memset(db, 0, sizeof(double) * (size_t)s->cout);
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int co = 0; co < s->cout; co++) {
                    int g = co / og;
                    double g_ = dy[(((size_t)n * s->oh + oh) * s->ow + ow) * s->cout + co];
                    if (db) db[co] += g_;
                    for (int ci = 0; ci < cg; ci++)
                        for (int kh = 0; kh < s->kh; kh++)
                            for (int kw = 0; kw < s->kw; kw++) {
                                int ih = oh * s->stride - s->pad_t + kh;
                                int iw = ow * s->stride - s->pad_l + kw;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                                size_t xi = (((size_t)n * s->h + ih) * s->w + iw) * s->cin + g * cg + ci;
                                size_t wi = (((size_t)co * cg + ci) * s->kh + kh) * s->kw + kw;
                                if (dx) dx[xi] += g_ * w[wi];
                                if (dw) dw[wi] += g_ * x[xi];
                            }
                }
}

void ref_bn_forward(double *y, const double *x, const double *gamma, const double *beta,
                    const double *run_mean, const double *run_var, int rows, int c, double eps,
                    int train, double momentum, double *new_run_mean, double *new_run_var)
{
    for (int j = 0; j < c; j++) {
        double m, v;
        if (train) {
            m = 0, v = 0;
            for (int i = 0; i < rows; i++) m += x[(size_t)i * c + j];
            m /= rows;
            for (int i = 0; i < rows; i++) v += (x[(size_t)i * c + j] - m) * (x[(size_t)i * c + j] - m);
            v /= rows;
            if (new_run_mean) new_run_mean[j] = (1 - momentum) * run_mean[j] + momentum * m;
            if (new_run_var) new_run_var[j] = (1 - momentum) * run_var[j] + momentum * v * rows / (rows - 1);
        } else {
            m = run_mean[j];
            v = run_var[j];
        }
        for (int i = 0; i < rows; i++)
            y[(size_t)i * c + j] = (x[(size_t)i * c + j] - m) / sqrt(v + eps) * gamma[j] + beta[j];
    }
}

void ref_bn_backward(double *dx, double *dgamma, double *dbeta, const double *dy, const double *x,
                     const double *gamma, const double *run_mean, const double *run_var, int rows,
                     int c, double eps, int train)
{
    for (int j = 0; j < c; j++) {
        double m = 0, v = 0;
        if (train) {
            for (int i = 0; i < rows; i++) m += x[(size_t)i * c + j];
            m /= rows;
            for (int i = 0; i < rows; i++) v += (x[(size_t)i * c + j] - m) * (x[(size_t)i * c + j] - m);
            v /= rows;
        } else {
            m = run_mean[j];
            v = run_var[j];
        }
        double is = 1.0 / sqrt(v + eps), sdy = 0, sdyx = 0;
        for (int i = 0; i < rows; i++) {
            double xh = (x[(size_t)i * c + j] - m) * is;
            sdy += dy[(size_t)i * c + j];
            sdyx += dy[(size_t)i * c + j] * xh;
        }
        dgamma[j] = sdyx;
        dbeta[j] = sdy;
        for (int i = 0; i < rows; i++) {
            double xh = (x[(size_t)i * c + j] - m) * is, g = dy[(size_t)i * c + j];
            dx[(size_t)i * c + j] = train ? gamma[j] * is * (g - sdy / rows - xh * sdyx / rows)
                                          : gamma[j] * is * g;
        }
    }
}

void ref_relu_forward(double *y, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
}
void ref_relu_backward(double *dx, const double *dy, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : 0;
}
void ref_silu_forward(double *y, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] / (1 + exp(-x[i]));
}
void ref_silu_backward(double *dx, const double *dy, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double s = 1 / (1 + exp(-x[i]));
        dx[i] = dy[i] * (s + x[i] * s * (1 - s));
    }
}
void ref_sigmoid_forward(double *y, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = 1 / (1 + exp(-x[i]));
}
void ref_sigmoid_backward(double *dx, const double *dy, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double s = 1 / (1 + exp(-x[i]));
        dx[i] = dy[i] * s * (1 - s);
    }
}

/* index of the window maximum (first one on ties), -1 if the window is all padding */
static long window_argmax(const double *x, const cored_pool_shape *s, int n, int oh, int ow, int c)
{
    long best = -1;
    double bv = -INFINITY;
    for (int kh = 0; kh < s->k; kh++)
        for (int kw = 0; kw < s->k; kw++) {
            int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
            long idx = (((long)n * s->h + ih) * s->w + iw) * s->c + c;
            if (best < 0 || x[idx] > bv) {
                bv = x[idx];
                best = idx;
            }
        }
    return best;
}

void ref_maxpool_forward(double *y, const double *x, const cored_pool_shape *s)
{
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int c = 0; c < s->c; c++)
                    y[(((size_t)n * s->oh + oh) * s->ow + ow) * s->c + c] =
                        x[window_argmax(x, s, n, oh, ow, c)];
}

void ref_maxpool_backward(double *dx, const double *dy, const double *x, const cored_pool_shape *s)
{
    memset(dx, 0, sizeof(double) * (size_t)s->n * s->h * s->w * s->c);
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int c = 0; c < s->c; c++)
                    dx[window_argmax(x, s, n, oh, ow, c)] +=
                        dy[(((size_t)n * s->oh + oh) * s->ow + ow) * s->c + c];
}

void ref_gap_forward(double *y, const double *x, int n, int hw, int c)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c; j++) {
            double s = 0;
            for (int p = 0; p < hw; p++) s += x[((size_t)i * hw + p) * c + j];
            y[(size_t)i * c + j] = s / hw;
        }
}

void ref_gap_backward(double *dx, const double *dy, int n, int hw, int c)
{
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++)
            for (int j = 0; j < c; j++) dx[((size_t)i * hw + p) * c + j] = dy[(size_t)i * c + j] / hw;
}

void ref_linear_forward(double *y, const double *x, const double *w, const double *b, int n,
                        int in, int out)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0;
            for (int k = 0; k < in; k++) s += x[(size_t)i * in + k] * w[(size_t)o * in + k];
            y[(size_t)i * out + o] = s;
        }
}

void ref_linear_backward(double *dx, double *dw, double *db, const double *dy, const double *x,
                         const double *w, int n, int in, int out)
{
    memset(dx, 0, sizeof(double) * (size_t)n * in);
    memset(dw, 0, sizeof(double) * (size_t)out * in);
    memset(db, 0, sizeof(double) * (size_t)out);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double g = dy[(size_t)i * out + o];
            db[o] += g;
            for (int k = 0; k < in; k++) {
                dx[(size_t)i * in + k] += g * w[(size_t)o * in + k];
                dw[(size_t)o * in + k] += g * x[(size_t)i * in + k];
            }
        }
}

void ref_chscale_forward(double *y, const double *x, const double *s, int n, int hw, int c)
{
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++)
            for (int j = 0; j < c; j++)
                y[((size_t)i * hw + p) * c + j] = x[((size_t)i * hw + p) * c + j] * s[(size_t)i * c + j];
}

void ref_chscale_backward(double *dx, double *ds, const double *dy, const double *x,
                          const double *s, int n, int hw, int c)
{
    memset(ds, 0, sizeof(double) * (size_t)n * c);
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++)
            for (int j = 0; j < c; j++) {
                size_t o = ((size_t)i * hw + p) * c + j;
                dx[o] = dy[o] * s[(size_t)i * c + j];
                ds[(size_t)i * c + j] += dy[o] * x[o];
            }
}

static void ref_softmax_row(double *p, const double *z, int k, double t)
{
    double m = z[0] / t, s = 0;
    for (int j = 1; j < k; j++) m = fmax(m, z[j] / t);
    for (int j = 0; j < k; j++) s += exp(z[j] / t - m);
    for (int j = 0; j < k; j++) p[j] = exp(z[j] / t - m) / s;
}

double ref_softmax_ce(double *dlogits, const double *logits, const int *labels, int n, int k)
{
    double loss = 0, p[64];
    for (int i = 0; i < n; i++) {
        ref_softmax_row(p, logits + (size_t)i * k, k, 1.0);
        loss -= log(p[labels[i]]);
        for (int j = 0; j < k; j++) dlogits[(size_t)i * k + j] = (p[j] - (j == labels[i])) / n;
    }
    return loss / n;
}

double ref_kd_loss(double *dlogits, const double *s, const double *t, int n, int k, double temp,
                   double alpha)
{
    double loss = 0, ps[64], pt[64];
    for (int i = 0; i < n; i++) {
        ref_softmax_row(ps, s + (size_t)i * k, k, temp);
        ref_softmax_row(pt, t + (size_t)i * k, k, temp);
        for (int j = 0; j < k; j++) {
            loss += pt[j] * (log(pt[j]) - log(ps[j]));
            dlogits[(size_t)i * k + j] = alpha * temp * (ps[j] - pt[j]) / n;
        }
    }
    return alpha * temp * temp * loss / n;
}
