/*
 * cored — Continual Representation using Distillation for fake-media detection.
 *
 * Public C API of libcored. Conventions that hold for every function below:
 *
 *  - Fallible functions return 0 (CORED_OK) on success and a negative cored_status on
 *    failure. When `err` is not NULL it is filled with a message that names the file,
 *    tensor or option at fault; outputs are left untouched unless a comment says otherwise.
 *  - The library never prints and never exits; diagnostics reach the caller through
 *    cored_error, and optional progress or warnings through cored_set_log().
 *  - Images are float32. Tensor files cored reads and writes (safetensors) are NCHW, as in
 *    PyTorch; the model's own buffers (cored_model_input, cored_model_features) and every
 *    activation inside the engine are NHWC.
 *  - Labels: 0 = real, 1 = fake. Scores are p(fake).
 */
#ifndef CORED_H
#define CORED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CORED_VERSION "0.1.0"

/* ---------------------------------------------------------------- status, errors */

typedef enum {
    CORED_OK = 0,
    CORED_E_ARG = -1,       /* invalid argument or option value */
    CORED_E_IO = -2,        /* open/read/write/fsync/rename failed */
    CORED_E_NOMEM = -3,     /* allocation failed */
    CORED_E_FORMAT = -4,    /* malformed file contents */
    CORED_E_SHAPE = -5,     /* tensor names or shapes do not fit */
    CORED_E_NONFINITE = -6, /* NaN or Inf where a finite value is required */
    CORED_E_INTERNAL = -7,  /* broken invariant inside cored (a bug) */
    CORED_E_STOPPED = -8,   /* stopped on request (signal) */
    CORED_E_BUSY = -9       /* a folder is in use by another run (its lock is held) */
} cored_status;

typedef struct {
    int code;            /* a cored_status */
    char msg[1024];      /* one line, names the file / tensor / option and the problem */
    char hint[256];      /* optional: what the user can do about it; "" when none */
    const char *where;   /* source file of cored that raised it */
    int line;
} cored_error;

/* Short English name of a status ("I/O error", ...). Never NULL. */
const char *cored_status_str(int status);

/* ---------------------------------------------------------------- runtime */

/* Threads used by cored's kernels and by BLAS. n <= 0 selects the number of online CPUs.
   Returns the number now in effect. Also applies cored_fp_mode_apply. */
int cored_set_threads(int n);
int cored_get_threads(void);
/* Subnormal floats (magnitude below 1.2e-38) are flushed to zero, as inputs and as results,
   on the calling thread and on every OpenMP thread (threads OpenMP starts later inherit it
   from the calling thread). An operation on a subnormal float takes a slow path in the CPU
   (a saturated EfficientNet gate filled a training step's gradients with them and made its
   BatchNorm passes 1.7x slower); the flushed values are far below anything a float32
   network's output depends on. cored_set_threads and cored_model_create call it; it changes
   the calling thread's MXCSR for good, so a program that needs subnormals elsewhere calls
   cored's functions from a thread of their own. */
void cored_fp_mode_apply(void);
/* Results never depend on the thread count: every reduction, BLAS products included, runs
   over partitions fixed by the shape. The deterministic flag is recorded for run
   configurations (`--deterministic`) and changes nothing else. */
void cored_set_deterministic(int on);
int cored_get_deterministic(void);

typedef enum { CORED_LOG_ERROR, CORED_LOG_WARN, CORED_LOG_INFO, CORED_LOG_DEBUG } cored_log_level;
typedef void (*cored_log_fn)(cored_log_level level, const char *msg, void *user);
/* Installs a sink for the library's warnings and notes (e.g. a skipped corrupt image).
   NULL (the default) drops them. */
void cored_set_log(cored_log_fn fn, void *user);

/* ---------------------------------------------------------------- models */

typedef enum {
    CORED_PARAM_WEIGHT,    /* conv / linear weight, PyTorch layout */
    CORED_PARAM_BIAS,      /* conv / linear bias */
    CORED_PARAM_BN_WEIGHT, /* batch-norm gamma */
    CORED_PARAM_BN_BIAS,   /* batch-norm beta */
    CORED_PARAM_BN_MEAN,   /* batch-norm running mean (buffer, not trained) */
    CORED_PARAM_BN_VAR     /* batch-norm running variance (buffer, not trained) */
} cored_param_kind;

#define CORED_NAME_MAX 96

typedef struct {
    char name[CORED_NAME_MAX]; /* PyTorch state_dict key, e.g. "block1.rep.0.pointwise.weight" */
    int ndim;
    int shape[4];              /* PyTorch shape (conv weights OIHW) */
    size_t numel;
    size_t offset;             /* into the parameter slab (trainable) or the buffer slab */
    cored_param_kind kind;
} cored_param;

/* Trainable kinds live in the parameter slab; running statistics in the buffer slab. */
int cored_param_trainable(cored_param_kind kind);

typedef enum {
    CORED_BUILD_TRAIN, /* parameters, gradients, activations kept for backward */
    CORED_BUILD_INFER  /* parameters and buffers only; activations reused (teacher, detect) */
} cored_build;

typedef struct cored_model cored_model;

/* Names of the architectures cored knows, NULL-terminated. */
const char *const *cored_arch_names(void);

/* Builds `arch` for square inputs of `size` pixels and batches of up to `max_batch`.
   Parameters are zero until cored_model_init_params() or a checkpoint load. */
int cored_model_create(cored_model **out, const char *arch, int size, int max_batch,
                       cored_build build, cored_error *err);
/* NULL-safe; frees every slab. */
void cored_model_free(cored_model *m);

const char *cored_model_arch(const cored_model *m);
int cored_model_size(const cored_model *m);
int cored_model_max_batch(const cored_model *m);
cored_build cored_model_build_kind(const cored_model *m);

/* The parameter table: every tensor of the state_dict, in a fixed order. */
int cored_model_param_count(const cored_model *m);
const cored_param *cored_model_param(const cored_model *m, int i);
int cored_model_param_find(const cored_model *m, const char *name); /* index or -1 */
/* Pointer to the data of parameter i (in the parameter or buffer slab); gradient pointer
   is NULL for buffers and in inference builds. */
float *cored_model_param_data(cored_model *m, int i);
float *cored_model_param_grad(cored_model *m, int i);

/* The slabs: trainable parameters, their gradients (NULL in inference builds) and the
   BN running statistics. */
float *cored_model_weights(cored_model *m, size_t *count);
float *cored_model_grads(cored_model *m, size_t *count);
float *cored_model_buffers(cored_model *m, size_t *count);

/* An inference build folds every BN into the convolution before it for eval-mode
   forwards; the folded weights are recomputed before the next forward after the
   parameters may have changed: after cored_model_copy_params, a checkpoint load, an
   init, or a call of one of the writable accessors above. A caller that writes through
   a pointer it obtained before a forward calls this before the next one. */
void cored_model_params_changed(cored_model *m);

/* Copies parameters and buffers from src (same arch and size; any build kind). */
int cored_model_copy_params(cored_model *dst, const cored_model *src, cored_error *err);

/* PyTorch-style default initialisation of the architecture (what its PyTorch twin's
   constructor does), from `seed`. */
void cored_model_init_params(cored_model *m, uint64_t seed);

/* The classifier: its module name ("last_linear", "_fc", "fc"), whose tensors are
   "<head>.weight" [2, C] and "<head>.bias" [2]; whether a tensor name is one of them. */
const char *cored_model_head(const cored_model *m);
int cored_model_param_is_head(const cored_model *m, const char *name);
/* Re-initialises the classifier alone, as PyTorch's nn.Linear does (weight and bias
   uniform in +-1/sqrt(C)); the values are those cored_model_init_params(m, seed) gives it. */
void cored_model_init_head(cored_model *m, uint64_t seed);

/* Input buffer of the model: NHWC float32 [max_batch, size, size, 3]. */
float *cored_model_input(cored_model *m);

typedef enum {
    CORED_FWD_EVAL = 0,       /* BN uses running statistics; no dropout */
    CORED_FWD_BN_BATCH = 1,   /* BN uses batch statistics and updates running statistics */
    CORED_FWD_STOCHASTIC = 2, /* dropout and drop-connect active (training) */
    CORED_FWD_BN_SYNC = 4     /* with BN_BATCH, under mpirun: the statistics of the global batch
                                 (sums over every rank; docs/distributed.md) */
} cored_fwd_flags;

/* Forward pass over the first n images of the input buffer. `seed` drives dropout and
   drop-connect when CORED_FWD_STOCHASTIC is set (ignored otherwise). */
int cored_model_forward(cored_model *m, int n, int flags, uint64_t seed, cored_error *err);
/* Logits [n, 2] of the last forward. */
const float *cored_model_logits(const cored_model *m);
/* Tap-point feature map of the last forward, NHWC [n, h, w, c]; dims written to *h, *w, *c. */
const float *cored_model_features(const cored_model *m, int *h, int *w, int *c);
const char *cored_model_tap_name(const cored_model *m);

/* Backward pass of the last forward (train builds only). dlogits [n,2] is the loss
   gradient at the logits; dfeatures (NHWC like the tap, may be NULL) is added at the tap.
   Parameter gradients accumulate (+=) into the gradient slab. Backward reuses the memory
   of activations it no longer needs, so each forward allows one backward; the features
   and logits stay readable. */
int cored_model_backward(cored_model *m, const float *dlogits, const float *dfeatures,
                         cored_error *err);
void cored_model_zero_grad(cored_model *m);

/* Multiply-adds of one image's forward pass (convolutions and linear layers). */
double cored_model_forward_macs(const cored_model *m);

/* Bytes held by the model's slabs (parameters, gradients, buffers, activations,
   workspace). */
size_t cored_model_bytes(const cored_model *m);

/* ---------------------------------------------------------------- detection */

/* A trained detector for embedding: the checkpoint's model (architecture and input size
   from its metadata) in an inference build. */
typedef struct cored_detector cored_detector;

int cored_detector_open(cored_detector **out, const char *checkpoint, cored_error *err);
void cored_detector_close(cored_detector *d); /* NULL-safe */
int cored_detector_size(const cored_detector *d);
/* p(fake) of an image file (JPEG or PNG; resized to the model's size with torchvision's
   bilinear resize and normalised as in training). */
int cored_detector_score_file(cored_detector *d, const char *path, float *p_fake, cored_error *err);
/* p(fake) of 8-bit RGB pixels (w x h, rows packed). */
int cored_detector_score_rgb(cored_detector *d, const uint8_t *rgb, int w, int h, float *p_fake,
                             cored_error *err);

/* ---------------------------------------------------------------- faces */

/* A trained face detector: SSD-MobileNetV1 trained on WIDER FACE (the weights of
   face-api.js, MIT, shipped in the npm package @vladmandic/face-api 1.7.15), run on
   cored's own engine. `make faces-model` fetches the package once (tools/fetch_faces.sh:
   pinned version, SHA-256 checked, cached under build/faces/cache) and converts it
   (tools/face_convert.py) to CORED_FACE_MODEL_DEFAULT; nothing is downloaded at run time.
   docs/faces.md has the network, the file format, parity with the package's own
   JavaScript, and recall, false positives and speed on dlib's annotated photographs.

   A detector holds its weights and working memory (about 60 MB) and is used by one
   thread at a time; each call runs on cored's threads (cored_set_threads). Detectors are
   independent: several threads may each use their own. */
typedef struct cored_face_detector cored_face_detector;

/* Where `make faces-model` writes the converted weights, relative to the repository. */
#define CORED_FACE_MODEL_DEFAULT "build/faces/ssd_mobilenetv1_face.safetensors"
/* face-api's default score threshold, the one docs/faces.md measures. */
#define CORED_FACE_MIN_SCORE 0.5f
/* Side of the square the network sees: every image is padded to a square (black at the
   right or bottom) and resized to it; faces below ~40 pixels of it are found less reliably
   (docs/faces.md, "Small faces"). */
#define CORED_FACE_INPUT_SIZE 512

typedef struct {
    float x0, y0;  /* top-left corner, pixels of the input image (0,0 = top-left pixel's corner) */
    float x1, y1;  /* bottom-right corner; 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h */
    float score;   /* confidence in (0, 1): the sigmoid of the face class's logit */
} cored_face;

/* Loads the converted weights (safetensors written by tools/face_convert.py). Refused,
   naming the file: a file that is missing or unreadable (CORED_E_IO), not a cored face
   detector (its metadata's "format": CORED_E_FORMAT), a tensor missing, extra or of the
   wrong shape (CORED_E_SHAPE), a non-finite value (CORED_E_NONFINITE), a negative batch
   norm variance or anchors that are not the SSD's (CORED_E_FORMAT); for a missing or
   foreign file the error's hint says how to make the right one. *out is NULL on failure. */
int cored_face_detector_open(cored_face_detector **out, const char *weights_path, cored_error *err);
void cored_face_detector_free(cored_face_detector *d); /* NULL-safe */

/* Finds the faces in an 8-bit RGB image of w x h pixels whose rows start `stride` bytes
   apart (stride >= 3 * w): the boxes scoring above min_score (in [0, 1); 0.5 is face-api's
   default) after non-maximum suppression at IoU 0.5, in decreasing score order. At most
   `max` are written to out; *n receives how many were written (0 when the image has no
   face). Refused (CORED_E_ARG): NULL pointers, w or h < 1, w * h above 64 Mpx, stride <
   3 * w, min_score outside [0, 1), max < 0. Deterministic: the same pixels give the same
   faces for any thread count. */
int cored_faces_detect(cored_face_detector *d, const uint8_t *rgb, int w, int h, int stride,
                       float min_score, cored_face *out, int max, int *n, cored_error *err);

/* The square a face is cropped to, as FaceForensics++ crops: side = margin x the box's
   longer side, centred on the box, shifted to lie inside the w x h image where it fits
   (larger than the image, it stays centred and overhangs). box: x0, y0, x1, y1 in pixels
   (x1 - x0 == y1 - y0 >= 1). */
void cored_face_square(const cored_face *f, float margin, int w, int h, int box[4]);
/* That square of rgb (w x h, stride bytes per row), black where it overhangs, resized to
   size x size with the training resize (PIL's bilinear) into out (size*size*3 bytes). */
int cored_face_crop(uint8_t *out, int size, const uint8_t *rgb, int w, int h, int stride, const cored_face *f,
                    float margin, cored_error *err);

#ifdef __cplusplus
}
#endif
#endif
