/*
 * Losses on logits (N, K).
 *  - softmax cross-entropy, mean over the batch (F.cross_entropy, reduction "mean");
 *  - knowledge distillation in Hinton's form, alpha*T^2*KL(p_t || p_s) with p = softmax(z/T),
 *    averaged over the batch (F.kl_div(log p_s, p_t, reduction="batchmean") * alpha*T^2).
 *    The official CoReD code puts alpha*T^2 inside the KL target, which adds the constant
 *    alpha*T^2*ln(alpha*T^2) to the value but leaves the gradient unchanged; we report the
 *    standard value (docs/method.md).
 * Values are accumulated in double; gradients are written (=), scaled by `weight`.
 */
#include <math.h>

#include "ops.h"

void cored_softmax(float *p, const float *logits, int n, int k)
{
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        float *pi = p + (size_t)i * k;
        double m = z[0], s = 0;
        for (int j = 1; j < k; j++) m = z[j] > m ? z[j] : m;
        for (int j = 0; j < k; j++) s += exp((double)z[j] - m);
        for (int j = 0; j < k; j++) pi[j] = (float)(exp((double)z[j] - m) / s);
    }
}

/* log-softmax of row z (k <= 64) into out, in double. */
static void log_softmax(double *out, const float *z, int k, double inv_t)
{
    double m = z[0] * inv_t, s = 0;
    for (int j = 1; j < k; j++) m = z[j] * inv_t > m ? z[j] * inv_t : m;
    for (int j = 0; j < k; j++) s += exp(z[j] * inv_t - m);
    double lse = m + log(s);
    for (int j = 0; j < k; j++) out[j] = z[j] * inv_t - lse;
}

double cored_softmax_ce(float *dlogits, const float *logits, const int *labels, int n, int k,
                        float weight)
{
    double total = 0, ls[64];
    for (int i = 0; i < n; i++) {
        log_softmax(ls, logits + (size_t)i * k, k, 1.0);
        total -= ls[labels[i]];
        if (dlogits)
            for (int j = 0; j < k; j++)
                dlogits[(size_t)i * k + j] =
                    (float)(weight * (exp(ls[j]) - (j == labels[i] ? 1.0 : 0.0)) / n);
    }
    return total / n;
}

double cored_kd_loss(float *dlogits, const float *student, const float *teacher, int n, int k,
                     float temperature, float alpha, float weight)
{
    double total = 0, ls[64], lt[64];
    double inv_t = 1.0 / temperature, c = (double)alpha * temperature * temperature;
    for (int i = 0; i < n; i++) {
        log_softmax(ls, student + (size_t)i * k, k, inv_t);
        log_softmax(lt, teacher + (size_t)i * k, k, inv_t);
        double kl = 0;
        for (int j = 0; j < k; j++) kl += exp(lt[j]) * (lt[j] - ls[j]);
        total += kl;
        /* d/dz_s of alpha*T^2*KL/n = alpha*T*(p_s - p_t)/n */
        if (dlogits)
            for (int j = 0; j < k; j++)
                dlogits[(size_t)i * k + j] =
                    (float)(weight * alpha * temperature * (exp(ls[j]) - exp(lt[j])) / n);
    }
    return c * total / n;
}
