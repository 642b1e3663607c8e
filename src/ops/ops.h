/*
 * Kernels of the engine: CPU, float32, activations NHWC, weights in PyTorch layouts.
 *
 * Conventions for every op below:
 *  - Arguments: outputs first, then inputs, then parameters, then a shape struct, then
 *    the workspace. Ops never allocate, never do I/O and touch no globals; scratch memory
 *    comes in through `ws`, sized by the op's *_ws_floats() function.
 *  - Whatever backward needs (BN mean and inverse std, max-pool argmax, dropout mask) is
 *    an explicit output of forward.
 *
 *  THE GRADIENT RULE: parameter gradients ACCUMULATE (+=); input gradients are
 *  OVERWRITTEN (=). A NULL gradient pointer means "not needed" and is skipped.
 *
 *  - Kernels parallelise with OpenMP over fixed partitions whose number does not depend
 *    on the thread count, so results are the same for any number of threads (BLAS
 *    aside).
 */
#ifndef CORED_OPS_H
#define CORED_OPS_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- GEMM (row-major) */

/* C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, through CBLAS. */
void cored_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* ---------------------------------------------------------------- convolution */

typedef struct {
    int n, h, w, cin;               /* input  (N, H, W, Cin) */
    int cout, kh, kw, stride;       /* weight (Cout, Cin/groups, KH, KW), PyTorch OIHW */
    int pad_t, pad_l, pad_b, pad_r; /* zero padding; asymmetric allowed (TF "same") */
    int groups;
    int oh, ow;                     /* output (N, OH, OW, Cout), set by cored_conv_shape_init */
} cored_conv_shape;

/* Computes oh/ow; returns 0, or -1 when the shape is invalid (empty output, channels not
   divisible by groups, ...). */
int cored_conv_shape_init(cored_conv_shape *s);
/* Workspace (floats) needed by forward and backward for batches up to s->n. */
size_t cored_conv_ws_floats(const cored_conv_shape *s);

void cored_conv_forward(float *y,                 /* (N, OH, OW, Cout) */
                        const float *x,           /* (N, H, W, Cin) */
                        const float *w,           /* (Cout, Cin/g, KH, KW) */
                        const float *b,           /* (Cout) or NULL */
                        const cored_conv_shape *s, float *ws);
void cored_conv_backward(float *dx,               /* (N, H, W, Cin) or NULL */
                         float *dw,               /* (Cout, Cin/g, KH, KW) or NULL, += */
                         float *db,               /* (Cout) or NULL, += */
                         const float *dy,         /* (N, OH, OW, Cout) */
                         const float *x, const float *w, const cored_conv_shape *s, float *ws);

/* ---------------------------------------------------------------- batch norm */

/* Activation fused after batch norm (y = act(BN(x)) in the same pass over memory). */
typedef enum { CORED_ACT_NONE, CORED_ACT_RELU, CORED_ACT_SILU } cored_act;

/* Convolution with its output pass finishing y = act(conv(x, w) + b) (the folded
   convolution + BN + activation of an inference build); act NONE is cored_conv_forward.
   The depthwise path applies the activation to each output row while it is in cache, the
   others in the pass that adds the bias. */
void cored_conv_forward_act(float *y, const float *x, const float *w, const float *b,
                            cored_act act, const cored_conv_shape *s, float *ws);

typedef struct {
    int rows;        /* N*H*W: every position of every image */
    int c;           /* channels (innermost) */
    float eps;       /* PyTorch default 1e-5 */
    float momentum;  /* PyTorch convention: running = (1-m)*running + m*batch; default 0.1 */
    cored_act act;   /* fused activation; CORED_ACT_NONE (0) for plain BN */
    int sync;        /* training: statistics (and backward's sums) over every rank of the MPI
                        job (src/dist); every rank must call with the same c, rows may differ,
                        rows 0 on a rank with no image (x, y, dy, dx unused there) */
} cored_bn_shape;

size_t cored_bn_ws_floats(const cored_bn_shape *s);

/* Training: batch statistics (biased variance for normalising), running statistics
   updated with the unbiased variance, as torch.nn.BatchNorm2d; y = act(BN(x)).
   mean/invstd (C) are saved for backward. run_mean/run_var may be NULL (not updated). */
void cored_bn_forward_train(float *y, float *mean, float *invstd, float *run_mean,
                            float *run_var, const float *x, const float *gamma,
                            const float *beta, const cored_bn_shape *s, float *ws);
/* Evaluation: running statistics. Also writes mean/invstd (from the running statistics)
   so that backward works the same way in both modes. */
void cored_bn_forward_eval(float *y, float *mean, float *invstd, const float *x,
                           const float *gamma, const float *beta, const float *run_mean,
                           const float *run_var, const cored_bn_shape *s);
/* Backward of the training form (statistics depend on x). dy is the gradient of the
   output y = act(BN(x)); y is read for a fused ReLU (may be NULL otherwise), beta for a
   fused SiLU (z is recomputed from x). */
void cored_bn_backward_train(float *dx, float *dgamma, float *dbeta, const float *dy,
                             const float *x, const float *y, const float *mean,
                             const float *invstd, const float *gamma, const float *beta,
                             const cored_bn_shape *s, float *ws);
/* Backward of the evaluation form (statistics are constants). */
void cored_bn_backward_eval(float *dx, float *dgamma, float *dbeta, const float *dy,
                            const float *x, const float *y, const float *mean,
                            const float *invstd, const float *gamma, const float *beta,
                            const cored_bn_shape *s, float *ws);

/* ---------------------------------------------------------------- activations */

void cored_relu_forward(float *y, const float *x, size_t n);
void cored_relu_backward(float *dx, const float *dy, const float *y, size_t n); /* y: output */
/* min(max(x, 0), 6) (MobileNet's ReLU6, as tf.clipByValue(x, 0, 6)); inference only. NaN
   gives 0 (the comparisons are false), as the kernels never enable FP traps. */
void cored_relu6_forward(float *y, const float *x, size_t n);
void cored_silu_forward(float *y, const float *x, size_t n);                  /* x*sigmoid(x) */
void cored_silu_backward(float *dx, const float *dy, const float *x, size_t n);
void cored_sigmoid_forward(float *y, const float *x, size_t n);
void cored_sigmoid_backward(float *dx, const float *dy, const float *y, size_t n);

/* ---------------------------------------------------------------- pooling */

typedef struct {
    int n, h, w, c;      /* input (N, H, W, C) */
    int k, stride, pad;  /* square window; padding is -inf (PyTorch MaxPool2d) */
    int oh, ow;          /* set by cored_pool_shape_init (floor mode) */
} cored_pool_shape;

int cored_pool_shape_init(cored_pool_shape *s);
/* argmax (N, OH, OW, C) holds the flat input index (h*W + w) of each maximum; the first
   maximum wins on ties, as in PyTorch. */
void cored_maxpool_forward(float *y, int32_t *argmax, const float *x, const cored_pool_shape *s);
void cored_maxpool_backward(float *dx, const float *dy, const int32_t *argmax,
                            const cored_pool_shape *s);

/* Global average pool: x (N, HW, C) -> y (N, C). */
void cored_gap_forward(float *y, const float *x, int n, int hw, int c);
void cored_gap_backward(float *dx, const float *dy, int n, int hw, int c);
/* The same, added to dx (dx +=): for a layer whose input already holds another
   consumer's gradient. */
void cored_gap_backward_acc(float *dx, const float *dy, int n, int hw, int c);

/* ---------------------------------------------------------------- linear */

/* y (N, O) = x (N, I) * w^T + b, w (O, I) as torch.nn.Linear. */
void cored_linear_forward(float *y, const float *x, const float *w, const float *b, int n,
                          int in, int out);
void cored_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, int n, int in, int out);

/* ---------------------------------------------------------------- element-wise */

/* y = x and y = 0 over n floats, the threads sharing the work (large copies are bound by
   memory bandwidth, which one core does not saturate). */
void cored_copy(float *y, const float *x, size_t n);
void cored_zero(float *y, size_t n);
void cored_add_forward(float *y, const float *a, const float *b, size_t n);
/* y += x (gradients of a tensor with several consumers). */
void cored_acc(float *y, const float *x, size_t n);
/* Both inputs receive dy. */
void cored_add_backward(float *da, float *db, const float *dy, size_t n);

/* Per-image, per-channel scale (squeeze-excitation): y (N,HW,C) = x (N,HW,C) * s (N,C). */
void cored_chscale_forward(float *y, const float *x, const float *s, int n, int hw, int c);
void cored_chscale_backward(float *dx, float *ds, const float *dy, const float *x,
                            const float *s, int n, int hw, int c);

/* Inverted dropout with drop probability p over n images of per values: mask = 0 or
   1/(1-p), y = x * mask. Image i's mask is drawn from (seed, stream, first + i): the same
   image of a batch gets the same mask whichever shard of the batch it is computed in
   (first: the batch position of image 0; data-parallel runs), and whatever the threads. */
void cored_dropout_forward(float *y, float *mask, const float *x, int n, size_t per, int first,
                           float p, uint64_t seed, uint64_t stream);
void cored_dropout_backward(float *dx, const float *dy, const float *mask, size_t n);

/* Drop-connect (stochastic depth) as EfficientNet-PyTorch's drop_connect: per image,
   keep with probability 1-p and scale by 1/(1-p). scale (N) is the saved per-image
   factor; x and y are (N, per). Drawn per image from (seed, stream, first + i), as dropout. */
void cored_dropconnect_forward(float *y, float *scale, const float *x, int n, size_t per, int first,
                               float p, uint64_t seed, uint64_t stream);
void cored_dropconnect_backward(float *dx, const float *dy, const float *scale, int n,
                                size_t per);

/* ---------------------------------------------------------------- losses */

/* Mean softmax cross-entropy over n rows of k logits. Returns the loss; writes
   dlogits = weight * d(loss)/d(logits) when dlogits is not NULL. Labels in [0, k). */
double cored_softmax_ce(float *dlogits, const float *logits, const int *labels, int n, int k,
                        float weight);

/* Knowledge distillation: alpha * T^2 * (1/n) * sum_i KL(softmax(t_i/T) || softmax(s_i/T)).
   Returns the loss; writes weight * d(loss)/d(student logits) when dlogits != NULL. */
double cored_kd_loss(float *dlogits, const float *student, const float *teacher, int n, int k,
                     float temperature, float alpha, float weight);

/* Softmax of each row (n, k) into p. k <= 64 for all the losses above. */
void cored_softmax(float *p, const float *logits, int n, int k);

/* ---------------------------------------------------------------- layouts */

/* (N, C, H, W) <-> (N, H, W, C). */
void cored_nchw_to_nhwc(float *dst, const float *src, int n, int c, int h, int w);
void cored_nhwc_to_nchw(float *dst, const float *src, int n, int c, int h, int w);

#endif
