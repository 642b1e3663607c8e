/*
 * The data path of cored: image-folder data sets in the official CoReD layout, robust
 * JPEG/PNG decoding, the torchvision-equivalent transform (PIL bilinear resize, flip,
 * (x/255 - 0.5)/0.5), CoReD's CutMix, a threaded prefetching loader and a packed cache of
 * pre-resized pixels. docs/data.md describes the layout, the choices and the pack format.
 *
 * Conventions: labels 0 = real, 1 = fake; images leave the loader as NHWC float32
 * [n, size, size, 3] in [-1, 1]; every random decision is a pure function of
 * (seed, epoch, sample or batch index), never of the thread count. Fallible functions
 * return 0 or a negative cored_status and fill err; outputs are untouched on failure.
 */
#ifndef CORED_DATA_H
#define CORED_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* ---------------------------------------------------------------- data sets */

typedef enum {
    CORED_SPLIT_TRAIN,
    CORED_SPLIT_VAL,
    CORED_SPLIT_TEST,
    /* DATA/TransferLearning/<task>/train when it exists, else DATA/<task>/train */
    CORED_SPLIT_TRANSFER
} cored_split;

/* The splits' names by value: "train", "val", "test", "transfer" (NULL-terminated). */
extern const char *const cored_split_names[];
const char *cored_split_name(cored_split split);

/* An indexed list of (path, label) samples. Samples of an opened split are sorted by
   path (bytewise), so the order is the same on every machine. */
typedef struct cored_dataset cored_dataset;

/* Indexes root/<task>/<split>/{real|0_real|0, fake|1_fake|1}/... (any depth of
   sub-folders; .png .jpg .jpeg in any case; hidden entries skipped). Fails with a message
   naming the expected path when root, the task, the split or a class folder is missing or
   not a folder, when a class has no images, or when two spellings of one class exist. */
int cored_dataset_open(cored_dataset **out, const char *root, const char *task, cored_split split,
                       cored_error *err);
/* The same for scoring a split (eval, the protocol's evaluations): a class folder that is
   missing or holds no images is a warning, since the metrics of one class are defined (AUC
   n/a); a split without any image is still an error. */
int cored_dataset_open_scoring(cored_dataset **out, const char *root, const char *task, cored_split split,
                               cored_error *err);
/* Union of parts in order (joint training); the parts may be freed afterwards. */
int cored_dataset_concat(cored_dataset **out, cored_dataset *const *parts, int n, cored_error *err);
/* The samples indices[0..n) of ds, in that order; an index out of range is CORED_E_ARG. */
int cored_dataset_subset(cored_dataset **out, const cored_dataset *ds, const int *indices, int n,
                         cored_error *err);
/* At most max_per_class samples of each class, chosen by a permutation that is a pure
   function of (seed, label); the kept samples stay in ds's order. */
int cored_dataset_cap_per_class(cored_dataset **out, const cored_dataset *ds, int max_per_class,
                                uint64_t seed, cored_error *err);
int cored_dataset_count(const cored_dataset *ds);
int cored_dataset_label(const cored_dataset *ds, int i); /* 0 real, 1 fake */
const char *cored_dataset_path(const cored_dataset *ds, int i);
/* The path relative to the data root it was found under ("DeepFake/train/real/a.png"). */
const char *cored_dataset_relpath(const cored_dataset *ds, int i);
int cored_dataset_class_count(const cored_dataset *ds, int label);
/* e.g. "DATA/DeepFake/val", for messages. */
const char *cored_dataset_describe(const cored_dataset *ds);
void cored_dataset_free(cored_dataset *ds);

/* One finding of a data-set scan. */
typedef enum { CORED_PROBLEM_ERROR, CORED_PROBLEM_WARNING } cored_problem_kind;
typedef void (*cored_problem_fn)(cored_problem_kind kind, const char *msg, void *user);

/* Like cored_dataset_open, but reports every problem of the split through fn (not only
   the first) and returns the number of errors; *out (may be NULL) receives the data set
   when there were none. */
int cored_dataset_scan(cored_dataset **out, const char *root, const char *task, cored_split split,
                       cored_problem_fn fn, void *user);

/* Task folders under root (every visible folder but TransferLearning), sorted.
   *names is one allocation holding the array and the strings, NULL-terminated (cored_free
   it). A folder that cannot be listed (also part-way) is CORED_E_IO naming it. */
int cored_data_list_tasks(char ***names, int *n, const char *root, cored_error *err);

/* Most task names one --tasks list may hold. */
#define CORED_DATA_MAX_TASKS 1024

/* Splits a comma-separated list of task names ("A,B") into *names, laid out as by
   cored_data_list_tasks (one allocation, NULL-terminated, cored_free it). CORED_E_ARG,
   naming the problem, for an empty list or name, a name that is not a plain folder name
   ('/', ".", ".."), a name given twice, or more than CORED_DATA_MAX_TASKS names; nothing is
   truncated. */
int cored_data_parse_tasks(char ***names, int *n, const char *list, cored_error *err);

/* Where the transfer split (CORED_SPLIT_TRANSFER) of a task comes from. */
typedef enum {
    CORED_TRANSFER_NONE,     /* no root/TransferLearning/<task>: root/<task>/train is used */
    CORED_TRANSFER_NO_TRAIN, /* root/TransferLearning/<task> is a folder without train/:
                                root/<task>/train is used (worth a warning) */
    CORED_TRANSFER_SUBSET    /* root/TransferLearning/<task>/train is a folder */
} cored_transfer_source;

/* The one rule for CORED_SPLIT_TRANSFER, shared by the index and
   the commands: *src says which case applies and dir (n bytes) receives the folder the
   split reads (the subset, or root/<task>/train). Fails with CORED_E_IO naming the path
   when root/TransferLearning, root/TransferLearning/<task> or its train/ exists but is
   not a folder (or cannot be examined): that is a broken layout, never a silent fallback.
   CORED_E_ARG when the path does not fit in n. */
int cored_data_transfer_dir(cored_transfer_source *src, char *dir, size_t n, const char *root,
                            const char *task, cored_error *err);

/* ---------------------------------------------------------------- decoding */

#define CORED_MAX_PIXELS_DEFAULT (64u << 20) /* 64 Mpx: larger images are refused */
#define CORED_MAX_FILE_BYTES ((size_t)256 << 20)
/* Largest model input side (loader, pack, cored_image_load, cored pack --size). */
#define CORED_MAX_MODEL_SIDE 4096

/* An 8-bit RGB image, rows packed (stride w*3). Its buffers only grow, so one image object
   reused for many decodes stops allocating once it has seen the largest picture. `scratch`
   holds the decoders' per-image rows (PNG row pointers, one JPEG row). */
typedef struct {
    uint8_t *px;
    int w, h;
    size_t cap;
    uint8_t *scratch;
    size_t scratch_cap;
} cored_image;

void cored_image_release(cored_image *img); /* frees px and scratch; the struct may be reused */

/* Decodes a JPEG (baseline, progressive, grayscale, RGB, CMYK/YCCK with Adobe inverted
   values) or PNG (any bit depth and colour type; alpha dropped, 16-bit reduced to the high
   byte, palette expanded) held in memory, recognised by content, not by name. EXIF
   orientation is ignored (as PIL's loader used by torchvision's ImageFolder). Images with
   more than max_pixels pixels (0 = CORED_MAX_PIXELS_DEFAULT) are refused before any pixel
   memory is allocated; truncated data is an error. `name` is used in messages. */
int cored_image_decode(cored_image *img, const uint8_t *data, size_t len, const char *name,
                       size_t max_pixels, cored_error *err);

/* ---------------------------------------------------------------- transforms */

/* Scratch of the resize (coefficients, the intermediate image); grows only. */
typedef struct {
    int32_t *coef;
    int *bounds;
    double *pre;
    uint8_t *tmp;
    size_t coef_cap, bounds_cap, pre_cap, tmp_cap;
} cored_resizer;

void cored_resizer_release(cored_resizer *rz);

/* Bilinear resize of 8-bit RGB (sw x sh) to (dw x dh), bit-exact with PIL's
   Image.resize(..., BILINEAR) (Pillow Resample.c: triangle filter whose support is scaled
   by the downscale factor, 22-bit fixed-point weights, horizontal pass first), which is
   what torchvision's Resize((h, w)) does on PIL images. dst is dw*dh*3 bytes. */
int cored_resize_rgb8(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh,
                      cored_resizer *rz, cored_error *err);

/* (v/255 - 0.5)/0.5 in float32, as torchvision's ToTensor + Normalize(0.5, 0.5). */
void cored_normalize_lut(float lut[256]);

/* Grow-only decode buffers are freed after an image that left them larger than this
   (a 16 Mpx PNG needs 64 MiB of pixels alone), so one unusually large image does not pin
   its memory for the rest of the run. */
#define CORED_DECODER_KEEP_BYTES ((size_t)64 << 20)

/* The decode scratch of one thread: the file's bytes, the decoded image and the resize
   scratch, all grow-only. Reused for every image, it stops allocating once it has seen the
   largest image, as long as its buffers stay within keep_bytes; after an image (decoded or
   not) that left them larger, they are freed. libjpeg and libpng allocate and free their
   own working memory for each image. A zeroed struct is a valid empty decoder. */
typedef struct {
    uint8_t *file;
    size_t file_cap;
    cored_image img;
    cored_resizer rz;
    size_t keep_bytes; /* 0 = CORED_DECODER_KEEP_BYTES */
} cored_decoder;

void cored_decoder_init(cored_decoder *d);
void cored_decoder_release(cored_decoder *d); /* frees every buffer; NULL-safe, reusable */
size_t cored_decoder_bytes(const cored_decoder *d); /* bytes its buffers hold now */

/* Reads, decodes and resizes one file to size x size RGB8 (dst: size*size*3 bytes,
   1 <= size <= CORED_MAX_MODEL_SIDE). Errors name the file:
     CORED_E_FORMAT  the file is not a usable image: undecodable, truncated, too large, or not
                     a regular file (a FIFO or device is refused without being read);
     CORED_E_IO      it could not be read (open, stat or read failed, it shrank while being
                     read); I/O errors are retried once after 10 ms before being returned;
     CORED_E_NOMEM   out of memory.
   Callers treat only CORED_E_FORMAT as "this image is bad". */
int cored_decoder_read_rgb8(cored_decoder *d, uint8_t *dst, int size, const char *path, cored_error *err);

/* The same with the buffers passed one by one (`file` grows, *file_cap its size); they are
   freed when together they exceed CORED_DECODER_KEEP_BYTES. Prefer cored_decoder. */
int cored_image_read_rgb8(uint8_t *dst, int size, const char *path, uint8_t **file, size_t *file_cap,
                          cored_image *img, cored_resizer *rz, cored_error *err);

/* One image, deterministic transform (resize + normalise), for detection and tests.
   out: [size, size, 3] NHWC float32 in [-1, 1]. */
int cored_image_load(float *out, const char *path, int size, cored_error *err);

/* ---------------------------------------------------------------- CutMix */

typedef enum { CORED_CUTMIX_NONE, CORED_CUTMIX_OPPOSITE, CORED_CUTMIX_SAME } cored_cutmix_mode;

/* One batch's CutMix decision. */
typedef struct {
    int fired;        /* r > 1 - p and at least one sample marked */
    int x0, x1, y0, y1; /* the shared box, [x0, x1) x [y0, y1), clipped */
    double lambda;
} cored_cutmix_box;

/* Draws the decision for a batch of n samples with labels[] from rng: r ~ U(0,1); if
   r > 1 - p: permutation perm (written to partner[]), marked[i] = 1 where
   labels[partner[i]] differs (OPPOSITE) or equals (SAME) labels[i] (i != partner[i] for
   SAME), lambda ~ Beta(beta, beta), cut = int(size*sqrt(1 - lambda)), centre uniform in
   {0..size-1}^2. partner and marked are [n]; scratch is [n]. */
void cored_cutmix_draw(cored_cutmix_box *box, int *partner, uint8_t *marked, uint32_t *scratch,
                       const int *labels, int n, int size, cored_cutmix_mode mode, float p,
                       float beta, cored_rng *rng);

/* Writes sample i of a batch as normalised floats: pixels of src[i] (flipped horizontally
   when flip[i]), with the CutMix box taken from src[partner[i]] (with its flip) when
   box->fired and marked[i]. out: [size, size, 3]. */
void cored_compose_sample(float *out, int i, const uint8_t *const *src, const uint8_t *flip,
                          const int *partner, const uint8_t *marked, const cored_cutmix_box *box,
                          int size, const float lut[256]);

/* ---------------------------------------------------------------- packed cache */

/* A pack: pre-resized uint8 RGB pixels of many source images, their labels, paths
   (relative to the data root) and the (size, mtime) of each source when it was packed.
   Format in docs/data.md; every field is validated when opened. */
typedef struct cored_pack cored_pack;

#define CORED_PACK_VERSION 1
/* Revision of the pixel pipeline (decoders + resize) whose output a pack stores, kept in
   the pack header. Bump it whenever a change to src/data/image.c or resize.c changes any
   decoded or resized pixel: packs of another revision are refused by cored_pack_match and
   rebuilt, not reused, by cored_pack_build. */
#define CORED_PACK_PIPELINE 1
/* Most entries a pack may hold (the reader refuses larger counts before allocating). */
#define CORED_PACK_MAX_COUNT (1 << 28)

/* Default location of the pack of a data root for one image size:
   <root>/.cored-pack-<size>.bin */
void cored_pack_default_path(char *buf, size_t n, const char *root, int size);

typedef struct {
    int images, reused, decoded, bad;
    uint64_t bytes;
} cored_pack_stats;

/* Writes (atomically) a pack of every sample of ds at `size` px. Entries of an existing
   pack at `reuse` (may be NULL or missing) whose source has the same size and mtime are
   copied instead of decoded. Images that cannot be decoded are stored as bad entries (the
   loader skips them like corrupt files), or fail the build when strict. */
int cored_pack_build(const char *path, const cored_dataset *ds, int size, int threads,
                     const char *reuse, int strict, cored_pack_stats *stats, cored_error *err);

/* Memory-maps and validates a pack file (a FIFO or other non-regular file is refused
   without being read). The mapping is read-only and shared with the file: if another
   program truncates the file while it is mapped, reading the lost pages raises SIGBUS
   (cored pack never does this: it writes a new file and renames it over the old one). */
int cored_pack_open(cored_pack **out, const char *path, cored_error *err);
/* Validates a pack held in memory (buf must outlive the pack); what the fuzzer calls. */
int cored_pack_parse(cored_pack **out, const uint8_t *buf, size_t len, const char *name,
                     cored_error *err);
void cored_pack_free(cored_pack *p);

int cored_pack_size(const cored_pack *p);
int cored_pack_pipeline(const cored_pack *p); /* CORED_PACK_PIPELINE of the cored that wrote it */
int cored_pack_count(const cored_pack *p);
int cored_pack_label(const cored_pack *p, int i);
int cored_pack_is_bad(const cored_pack *p, int i);
const char *cored_pack_relpath(const cored_pack *p, int i, size_t *len);
const uint8_t *cored_pack_pixels(const cored_pack *p, int i); /* size*size*3 bytes */
/* Checks entry i's pixels against its stored checksum (CORED_E_FORMAT when they differ). */
int cored_pack_verify_entry(const cored_pack *p, int i, cored_error *err);
/* Entry index of a relative path, or -1. */
int cored_pack_find(const cored_pack *p, const char *relpath);

/* entry[i] = pack entry of sample i of ds. Refuses (CORED_E_ARG with a hint to rebuild)
   when the pack's size is not `size`, it was written by another pixel pipeline
   (CORED_PACK_PIPELINE), a sample is missing from the pack or has another label, or its
   source file changed (size or mtime) since it was packed. */
int cored_pack_match(int *entry, const cored_pack *p, const cored_dataset *ds, int size,
                     cored_error *err);

/* Rewrites the header checksum of a pack image held in memory (tests and the fuzzer use it
   to reach the checks behind the checksum). 0, or -1 when the sections do not fit. */
int cored_pack_fix_checksum(uint8_t *buf, size_t len);

/* 64-bit checksum of a byte range (four multiply-rotate lanes; corruption detection, not
   cryptography). */
uint64_t cored_checksum64(const void *data, size_t len, uint64_t seed);

/* ---------------------------------------------------------------- loader */

#define CORED_MAX_LOADER_BATCH 65536

typedef struct {
    int batch;            /* images per batch (1..CORED_MAX_LOADER_BATCH); the last
                             partial batch is kept */
    int size;             /* output side in px (model input, 1..CORED_MAX_MODEL_SIDE) */
    int threads;          /* decode worker threads (0 = cored_get_threads()) */
    int ring;             /* prefetched batches in flight (0 = 4); batch memory:
                             ring*min(batch, count)*size*size*(3 floats + 3 bytes), plus
                             each thread's cored_decoder (docs/data.md, Loader) */
    uint64_t seed;
    int shuffle;          /* permutation per epoch = f(seed, epoch) */
    int flip;             /* horizontal flip p = 0.5 per sample = f(seed, epoch, sample) */
    cored_cutmix_mode cutmix; /* OPPOSITE: p = 0.2, Beta(0.5, 0.5); SAME: p = 0.5, Beta(1, 1) */
    float cutmix_p, cutmix_beta; /* 0 = the mode's default */
    int strict;           /* a corrupt image is an error instead of a skipped sample */
    const char *pack;     /* optional: path of a pack to read pixels from instead of decoding */
    int shard_rank, shard_count; /* data parallel (count > 1): this process receives only its
                             shard of every batch, kept positions shard_rank*k/count ..
                             (shard_rank+1)*k/count of the k images of the whole batch, each
                             image flipped and CutMixed exactly as the whole batch would have
                             it (a partner outside the shard is decoded too) */
} cored_loader_opts;

typedef struct {
    float *x;             /* NHWC float32 [n, size, size, 3], normalised (x/255-0.5)/0.5 */
    int *labels;          /* [n] */
    int *index;           /* [n] sample indices into the dataset */
    int n;
    int global_n;         /* images of the whole batch (n without sharding); a shard may be
                             empty (n = 0) when the batch has fewer images than shards */
    int epoch, batch_index;
    int cutmix;           /* 1 when CutMix modified this batch */
    const uint8_t *flipped; /* [n] 1 where the image was flipped horizontally */
    const uint8_t *mixed;   /* [n] 1 where CutMix pasted a partner's box into the image;
                               all zero when cutmix == 0 (the trainer relies on it) */
} cored_batch;

typedef struct cored_loader cored_loader;

/* Starts the worker threads (idle until cored_loader_start), with every signal blocked in
   them (signals go to the caller's threads). ds must outlive the loader. With opts->pack
   the pack is opened and matched against ds (see cored_pack_match). */
int cored_loader_create(cored_loader **out, const cored_dataset *ds, const cored_loader_opts *o,
                        cored_error *err);
int cored_loader_batches(const cored_loader *l); /* per epoch: ceil(count / batch) */
/* Starts (or restarts) epoch `epoch` at batch first_batch: the batches that follow are
   identical to those an uninterrupted epoch gives from that point (resume). Every batch
   obtained before must have been released. */
int cored_loader_start(cored_loader *l, int epoch, int first_batch, cored_error *err);
/* 1 = *b holds the next batch (in order), 0 = end of the epoch, < 0 = error. Images that
   cannot be decoded (CORED_E_FORMAT) are skipped for the rest of the run (the batch is
   shorter) unless opts.strict; a batch whose every image was skipped is not returned; an
   epoch started at batch 0 in which no image decodes is an error (a resumed epoch whose
   remaining images are all bad simply ends). A file that cannot be read (CORED_E_IO,
   after one retry) or memory running out is an error naming the file, never a skip, and
   every later call returns it until the next cored_loader_start. Asking for batch k while
   batch k - ring is still held is CORED_E_ARG (release batches in the order received). */
int cored_loader_next(cored_loader *l, cored_batch **b, cored_error *err);
/* Gives the buffer back to the ring (NULL is ignored). */
void cored_loader_release(cored_loader *l, cored_batch *b);
/* Distinct corrupt files skipped so far. */
int cored_loader_skipped(const cored_loader *l);
/* Stops the workers (also mid-epoch) and frees everything; NULL-safe. */
void cored_loader_free(cored_loader *l);

/* Loader throughput: opens root/<task>/train, runs the loader (flip + OPPOSITE CutMix,
   shuffle) for about `seconds` after one warm-up batch and reports images per second.
   pack may be NULL (decode the files). */
int cored_bench_loader(const char *data_root, const char *task, const char *pack, int threads,
                       int batch, int size, double seconds, double *images_per_s, cored_error *err);

#endif
