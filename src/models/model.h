/*
 * Model machinery shared by the architectures.
 *
 * An architecture is a builder function that walks a static table of block specs and
 * appends layers (conv, BN, activation, pool, ...) with explicit input indices, and
 * registers every parameter under its PyTorch state_dict name. The layer list is then
 * walked forward in order and backward in reverse by exec.c; there is no general
 * autodiff graph. A static memory plan (plan.c) places every activation and every
 * activation gradient in one arena according to when it is live, so the training step
 * allocates nothing and the inference build reuses memory aggressively.
 */
#ifndef CORED_MODEL_H
#define CORED_MODEL_H

#include "core/core.h"
#include "ops/ops.h"

typedef enum {
    LAYER_INPUT,
    LAYER_CONV,
    LAYER_BN,
    LAYER_RELU,
    LAYER_SILU,
    LAYER_SIGMOID,
    LAYER_MAXPOOL,
    LAYER_GAP,
    LAYER_LINEAR,
    LAYER_DROPOUT,
    LAYER_DROPCONNECT,
    LAYER_ADD,
    LAYER_CHSCALE,
    LAYER_KIND_COUNT
} cored_layer_kind;

typedef struct {
    cored_layer_kind kind;
    char name[CORED_NAME_MAX]; /* module name ("block1.rep.1"), "" for unnamed layers */
    int in[2];                 /* producer layers; -1 when unused */
    int h, w, c;               /* output shape per image, NHWC */
    int p_w, p_b;              /* params: conv/linear weight, bias; BN gamma, beta (-1 none) */
    int p_mean, p_var;         /* BN running statistics (-1 none) */
    union {
        cored_conv_shape conv; /* n is set per call */
        struct { float eps, momentum; } bn;
        cored_pool_shape pool;
        struct { float p; } drop;
        struct { int in, out; } linear;
    } u;
    /* filled by the planner (floats, relative to the arena / aux slab) */
    size_t out_off, grad_off, aux_off;
    size_t aux_floats;         /* aux size for max_batch */
    size_t ws_floats;          /* workspace for max_batch */
    int n_consumers;
    int keep;                  /* output must survive the whole step (tap, logits, input) */
    /* Fusion (set by the planner): a BN whose only consumer is a ReLU/SiLU computes that
       activation in its own pass. The BN holds the activation layer's index and writes
       its output there; the activation layer holds the BN's index and runs nothing.
       -1 when not fused. */
    int fuse_with;
    /* Folding (inference builds, set by the planner): a convolution whose only consumer is
       a BN holds the BN's index, the BN the convolution's; -1 otherwise. An eval-mode
       forward of an inference build then runs the convolution with the BN folded into its
       weights and bias (folded slab, at fw_off / fb_off) and writes the BN's output (or
       its fused activation's) directly; the BN runs nothing. */
    int fold;
    size_t fw_off, fb_off;
} cored_layer;

/* Profile slots: one per layer kind, convolutions split by path (dense k x k, 1 x 1,
   depthwise). */
enum { CORED_PROF_CONV1X1 = LAYER_KIND_COUNT, CORED_PROF_DWCONV, CORED_PROF_SLOTS };

typedef struct cored_arch cored_arch;
struct cored_arch {
    const char *name;
    int (*build)(cored_model *m, cored_error *err);
    void (*init)(cored_model *m, uint64_t seed); /* NULL: PyTorch module defaults */
    const char *tap;        /* layer name of the feature tap */
    const char *head;       /* module name of the classifier (its params are "<head>.*") */
    int min_size;
};

struct cored_model {
    const cored_arch *arch;
    int size, max_batch;
    cored_build build;

    cored_param *params;
    int n_params, cap_params;
    size_t n_weights, n_buffers; /* floats in the parameter and buffer slabs */

    cored_layer *layers;
    int n_layers, cap_layers;
    int tap, logits;

    float *weights;  /* trainable parameters */
    float *grads;    /* their gradients (train build) */
    float *buffers;  /* BN running statistics */
    float *arena;    /* activations and activation gradients, planned */
    float *aux;      /* BN mean/invstd, max-pool argmax, dropout masks */
    float *ws;       /* workspace shared by the layers */
    float *scratch;  /* gradient of a second consumer before it is added */
    float *folded;   /* inference build: weights and biases of the folded convolutions */
    size_t n_folded;
    int fold_dirty;  /* parameters may have changed since the last fold */
    size_t n_arena, n_aux, n_ws, n_scratch;

    int n_cur;       /* batch of the last forward, 0 before any */
    int last_flags;
    int backward_ready;  /* a forward ran and no backward since */
    unsigned char *grad_written; /* per layer, during backward */
    int build_failed;            /* first error while building (a cored_status), 0 if none */

    /* seconds per profile slot (cored_prof_slot) accumulated while profiling is on */
    double prof_fwd[CORED_PROF_SLOTS], prof_bwd[CORED_PROF_SLOTS];
    int profile;

    int first_image;      /* cored_model_set_first_image */
    void (*grad_ready)(void *user, size_t from); /* cored_model_set_grad_ready */
    void *grad_ready_user;
    size_t *grads_final;  /* per layer: gradients from this offset on are final once the
                             backward has passed the layer */
};

/* ---------------------------------------------------------------- building */

/* Each returns the new layer's index (or -1 after a failure, recorded in m). */
int cored_add_input(cored_model *m, int size);
int cored_add_conv(cored_model *m, const char *name, int in, int cout, int k, int stride,
                   int pad_t, int pad_l, int pad_b, int pad_r, int groups, int bias);
int cored_add_bn(cored_model *m, const char *name, int in, float eps, float momentum);
int cored_add_act(cored_model *m, cored_layer_kind kind, int in);
int cored_add_maxpool(cored_model *m, int in, int k, int stride, int pad);
int cored_add_gap(cored_model *m, int in);
int cored_add_linear(cored_model *m, const char *name, int in, int out);
int cored_add_dropout(cored_model *m, int in, float p);
int cored_add_dropconnect(cored_model *m, int in, float p);
int cored_add_add(cored_model *m, int a, int b);
int cored_add_chscale(cored_model *m, int x, int s);
/* Gives an existing layer a name (for the tap). */
void cored_layer_set_name(cored_model *m, int layer, const char *name);
int cored_layer_find(const cored_model *m, const char *name);

/* Recomputes the folded weights of an inference build from the parameters (plan.c). */
void cored_model_refold(cored_model *m);

/* Plans memory and allocates every slab. */
int cored_model_plan(cored_model *m, cored_error *err);

/* Shape of a layer's output for n images. */
static inline size_t cored_layer_numel(const cored_layer *l, int n)
{
    return (size_t)n * l->h * l->w * l->c;
}

/* ---------------------------------------------------------------- architectures */

extern const cored_arch cored_arch_tiny;
extern const cored_arch cored_arch_xception;
extern const cored_arch cored_arch_efficientnet_b0;

const cored_arch *cored_arch_find(const char *name);

/* PyTorch default initialisation of one parameter (kaiming_uniform(a=sqrt(5)) for
   weights, U(+-1/sqrt(fan_in)) for biases, ones/zeros for BN). */
void cored_init_param_default(cored_model *m, int i, cored_rng *r);

/* A kink decision of the last forward: a ReLU's output (mask = y > 0) or a max pool's
   argmax (flat h*W+w index in the input plane), NHWC [n, h, w, c] of the layer's output. */
typedef struct {
    cored_layer_kind kind;  /* LAYER_RELU or LAYER_MAXPOOL */
    int n, h, w, c;
    const float *y;         /* ReLU output */
    const int32_t *argmax;  /* max-pool argmax */
} cored_kink;

/* The kink decisions of the last forward in execution order (ReLUs and max pools
   numbered separately, as the PyTorch twins consume them). Writes at most `cap` into
   `out` and returns how many there are. Valid until the next backward or forward. */
int cored_model_kinks(const cored_model *m, cored_kink *out, int cap);

/* Profile: slot of a layer, name of a slot, and switching it on (which clears it). */
int cored_prof_slot(const cored_layer *l);
const char *cored_prof_slot_name(int slot);
const char *cored_layer_kind_name(cored_layer_kind k);
void cored_model_set_profile(cored_model *m, int on);
/* Sets every BN's running statistics to those of the n images in the input (one training-
   mode forward with momentum 1), as a trained model's would roughly be: an eval-mode
   forward of these images then normalises like the training forward. For benchmarks. */
int cored_model_calibrate_bn(cored_model *m, int n, cored_error *err);

/* A rank of an MPI job with no image in this step's shard joins the collectives of the
   synchronised BatchNorm (CORED_FWD_BN_SYNC) of a training forward (backward 0) or of its
   backward (1) with empty sums; its running statistics move like the other ranks'. */
void cored_model_bn_sync_idle(cored_model *m, int backward);

/* Data-parallel runs: the position in the whole batch of image 0 of the next forwards (the
   first image of this rank's shard; 0, the default, otherwise). Dropout and drop-connect
   draw per image from it, so an image's draws do not depend on the number of ranks. */
void cored_model_set_first_image(cored_model *m, int first);

/* Calls fn(user, from) during every backward each time the gradients from element `from`
   to the end of the gradient slab are final: after each layer, with `from` falling, and
   with 0 at the end (the data-parallel trainer starts reducing them; fn NULL: none). */
void cored_model_set_grad_ready(cored_model *m, void (*fn)(void *user, size_t from), void *user);

#endif
