/*
 * Naive double-precision reference implementations of every op: the oracles for the
 * optimised float kernels, and themselves checked by finite differences. Layouts as in
 * src/ops/ops.h (NHWC activations, PyTorch OIHW weights). Gradients here are plain
 * (overwritten, never accumulated).
 */
#ifndef CORED_TEST_REF_OPS_H
#define CORED_TEST_REF_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "ops/ops.h"

void ref_conv_forward(double *y, const double *x, const double *w, const double *b,
                      const cored_conv_shape *s);
void ref_conv_backward(double *dx, double *dw, double *db, const double *dy, const double *x,
                       const double *w, const cored_conv_shape *s);

/* train: batch statistics (biased var); also returns the running-stat update */
void ref_bn_forward(double *y, const double *x, const double *gamma, const double *beta,
                    const double *run_mean, const double *run_var, int rows, int c, double eps,
                    int train, double momentum, double *new_run_mean, double *new_run_var);
void ref_bn_backward(double *dx, double *dgamma, double *dbeta, const double *dy, const double *x,
                     const double *gamma, const double *run_mean, const double *run_var, int rows,
                     int c, double eps, int train);

void ref_relu_forward(double *y, const double *x, size_t n);
void ref_relu_backward(double *dx, const double *dy, const double *x, size_t n);
void ref_silu_forward(double *y, const double *x, size_t n);
void ref_silu_backward(double *dx, const double *dy, const double *x, size_t n);
void ref_sigmoid_forward(double *y, const double *x, size_t n);
void ref_sigmoid_backward(double *dx, const double *dy, const double *x, size_t n);

void ref_maxpool_forward(double *y, const double *x, const cored_pool_shape *s);
void ref_maxpool_backward(double *dx, const double *dy, const double *x, const cored_pool_shape *s);
void ref_gap_forward(double *y, const double *x, int n, int hw, int c);
void ref_gap_backward(double *dx, const double *dy, int n, int hw, int c);

void ref_linear_forward(double *y, const double *x, const double *w, const double *b, int n,
                        int in, int out);
void ref_linear_backward(double *dx, double *dw, double *db, const double *dy, const double *x,
                         const double *w, int n, int in, int out);

void ref_chscale_forward(double *y, const double *x, const double *s, int n, int hw, int c);
void ref_chscale_backward(double *dx, double *ds, const double *dy, const double *x,
                          const double *s, int n, int hw, int c);

double ref_softmax_ce(double *dlogits, const double *logits, const int *labels, int n, int k);
double ref_kd_loss(double *dlogits, const double *s, const double *t, int n, int k, double temp,
                   double alpha);

#endif
