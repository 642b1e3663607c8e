/*
 * The forgery simulator of cored: turns a folder of real photographs into a continual
 * fake-detection benchmark in the official CoReD layout, one task per forgery family.
 * docs/synth.md describes every family, its parameters and its analogy to FaceForensics++
 * and GAN data; this header is the contract.
 *
 * Pipeline of one image: a source photograph -> a random square crop resized to size x size
 * with flip and mild photometric jitter (the "base"; a real image is a base) -> for a fake,
 * one family's manipulation of the base. Reals and fakes share every step but the last, so
 * the only difference a detector can learn is the manipulation.
 *
 * Conventions: images are 8-bit RGB, rows packed (stride size*3); every random decision
 * is drawn from a cored_rng that the caller derives from (seed, what it is about), so the
 * output is a pure function of the seed and the inputs, never of the thread count.
 * Fallible functions return 0 or a negative cored_status and fill err.
 */
#ifndef CORED_SYNTH_H
#define CORED_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "data/data.h"

/* ---------------------------------------------------------------- families */

typedef enum {
    CORED_FAMILY_BLEND,    /* region of another photo, colour-matched, soft-mask blended (DF/FS) */
    CORED_FAMILY_WARP,     /* smooth local displacement, bilinear resampling (F2F) */
    CORED_FAMILY_TEXTURE,  /* region re-rendered: smooth shading x a fixed synthetic texture (NT) */
    CORED_FAMILY_UPSAMPLE, /* transposed-conv up-sampling fingerprint of a fixed "generator" (GANs) */
    CORED_FAMILY_RELIGHT,  /* region relit: smooth gain and colour-cast field, fresh sensor noise */
    CORED_FAMILY_RETOUCH,  /* beauty filter: bilateral smoothing, then sharpened edges */
    CORED_FAMILY_INPAINT,  /* a face part erased, filled by a membrane with borrowed detail */
    CORED_FAMILY_RESAMPLE, /* region rendered at a lower resolution, resized back, sharpened */
    CORED_FAMILY_COUNT
} cored_family;

/* Task folder name of a family ("Blend", ...); never contains '_'. */
const char *cored_family_name(cored_family f);
/* What the family stands for, e.g. "DeepFakes / FaceSwap (blending boundary)". */
const char *cored_family_analogy(cored_family f);
/* Family of a name (case-insensitive), or -1. */
int cored_family_parse(const char *name);

/* Sides supported by the simulator: multiples of 8 in this range. */
#define CORED_SYNTH_MIN_SIZE 32
#define CORED_SYNTH_MAX_SIZE 512

/* Fixed per-task state that every fake of a task shares, drawn from (seed, family):
   the transposed-convolution kernels of the Upsample "generators" and the texture tile of
   the Texture "renderer". */
#define CORED_SYNTH_GENERATORS 3
#define CORED_SYNTH_TILE 64
typedef struct {
    cored_family family;
    /* Upsample: per generator, stages (1: x2, 2: x4) and per stage and channel a 4x4
       perturbation of the bilinear transposed-conv kernel, [gen][stage][channel][4][4]. */
    int stages[CORED_SYNTH_GENERATORS];
    float kernel[CORED_SYNTH_GENERATORS][2][3][16];
    /* Texture: a toroidal unit-variance tile, [CORED_SYNTH_TILE]^2. */
    float tile[CORED_SYNTH_TILE * CORED_SYNTH_TILE];
} cored_family_state;

void cored_family_init(cored_family_state *st, cored_family f, uint64_t seed);

/* Grow-only float scratch of one worker. */
typedef struct {
    float *buf;
    size_t cap;
} cored_synth_scratch;

void cored_synth_scratch_release(cored_synth_scratch *s);

/* Separable Gaussian blur (radius ceil(3 sigma), mirrored borders) of an interleaved RGB
   float image size x size; tmp holds size*size*3 floats; dst may not alias src or tmp. */
void cored_synth_blur(float *dst, const float *src, float *tmp, int size, float sigma);

/* What one fake was made with, for tests and the contact sheet. */
typedef struct {
    float cx, cy, ax, ay, angle; /* the manipulated ellipse (px); ax = 0 for Upsample (global) */
    int generator;               /* Upsample: which generator */
    float strength;              /* the family's main parameter (docs/synth.md) */
} cored_fake_info;

/* Makes a fake of `base` (size x size RGB8) with family st->family into out (may not alias
   base). donor: another base crop of a different source (Blend needs it; ignored by the
   others). mask (optional, size*size floats) receives the weight with which each pixel was
   manipulated (0 = untouched; 1 everywhere for Upsample). size: a multiple of 8 within
   [CORED_SYNTH_MIN_SIZE, CORED_SYNTH_MAX_SIZE]. */
int cored_family_apply(uint8_t *out, float *mask, cored_fake_info *info, const uint8_t *base,
                       const uint8_t *donor, int size, const cored_family_state *st, cored_rng *rng,
                       cored_synth_scratch *s, cored_error *err);

/* ---------------------------------------------------------------- real sources */

/* The real photographs: every .png/.jpg/.jpeg under a folder (any depth, hidden entries
   skipped), decoded once and kept reduced in memory. */
typedef struct cored_sources cored_sources;

typedef struct {
    int found;      /* image files seen */
    int too_small;  /* skipped: shorter side below min_side */
    int duplicates; /* skipped: the same bytes as an earlier file (path order) */
    int bad;        /* skipped: could not be read or decoded */
} cored_sources_stats;

/* Loads every image under dir in bytewise path order. Images whose shorter side is below
   min_side are skipped, and so are exact duplicates (same bytes) of an earlier file and
   files that cannot be decoded (each reported through cored_log as a warning); larger
   images are reduced (PIL bilinear) so that the shorter side is at most max_side. Fails
   when dir is missing or not a folder, or when nothing usable is left. */
int cored_sources_load(cored_sources **out, cored_sources_stats *stats, const char *dir, int min_side,
                       int max_side, int threads, cored_error *err);
int cored_sources_count(const cored_sources *s);
/* Path relative to the folder given to cored_sources_load. */
const char *cored_sources_relpath(const cored_sources *s, int i);
/* Size of the original image file in pixels. */
void cored_sources_dims(const cored_sources *s, int i, int *w, int *h);
void cored_sources_free(cored_sources *s);

/* A base image from source i: a square crop of side U[0.5, 1] x the shorter side at a
   uniform position, resized to size x size (PIL bilinear), mirrored with p = 0.5, then
   brightness/contrast/saturation jitter and, with p = 0.25, a mild Gaussian blur. */
int cored_sources_crop(uint8_t *out, const cored_sources *s, int i, int size, cored_rng *rng,
                       cored_resizer *rz, cored_synth_scratch *scratch, cored_error *err);

/* ---------------------------------------------------------------- data set */

typedef enum { CORED_SYNTH_TRAIN, CORED_SYNTH_VAL, CORED_SYNTH_TEST } cored_synth_split;

/* Which split each source belongs to: a permutation drawn from the seed; 70 % train, 15 %
   val, 15 % test, at least 2 sources per split (so at least 6 sources). split[n]. */
int cored_synth_assign_splits(int *split, int n, uint64_t seed, cored_error *err);

typedef struct {
    const char *out;            /* DATA folder to create (NULL: only the sheet) */
    const char *real;           /* folder of real photographs */
    const cored_family *tasks;  /* families, in the order given */
    int ntasks;
    uint64_t seed;
    int size;                   /* image side in px (multiple of 8, 32..512) */
    int per_class;              /* train images per class and task */
    int eval_per_class;         /* val and test images per class and task */
    int transfer_per_class;     /* TransferLearning/<Task>/train images per class (0: none) */
    int threads;                /* 0: cored_get_threads() */
    int force;                  /* replace an existing data set written by cored synth */
    float plant;                /* 0..1: in every task after the first, this fraction of the train
                                   real images (and of the TransferLearning subset's) carries the
                                   previous task's manipulation and stays labelled real */
    const char *sheet;          /* optional PNG contact sheet */
    int sheet_rows;             /* examples on the sheet (0: 4) */
    /* Progress (may be NULL): called from the calling thread after each chunk of images;
       `what` is "<split>/<class>", e.g. "train/fake". */
    void (*progress)(void *user, const char *task, const char *what, int done, int total);
    void *user;
} cored_synth_opts;

typedef struct {
    cored_sources_stats sources;
    int nsources;
    int split_sources[3];       /* distinct sources per split */
    long images;                /* PNG files written (TransferLearning copies included) */
    long planted;               /* train real images carrying the previous task's manipulation */
    double seconds;
} cored_synth_report;

/* Writes the data set:
     out/<Task>/{train,val,test}/{real,fake}/s<NNN>/<index>.png   (NNN: source id)
     out/TransferLearning/<Task>/train/{real,fake}/...             (the first transfer_per_class
                                                                    train images, copied)
     out/synth.json                                                (settings, sources, splits)
   Every split holds per_class (train) or eval_per_class (val, test) images of each class,
   made from that split's sources only, each source used equally often by both classes.
   With plant > 0, every task after the first has round(plant T) of the first T train real
   images and round(plant (N - T)) of the others made with the previous task's family (same
   per-task state), still labelled real; synth.json records the fraction and, per task, the
   indices. Val, test and fake images are the same as without planting.
   The set is built in "<out>.synth-tmp" and renamed to out when complete, so a folder named
   out is always a whole data set. An existing out is refused unless force, and even then
   unless it holds synth.json (it was written by cored synth) or is empty. */
int cored_synth_run(const cored_synth_opts *o, cored_synth_report *rep, cored_error *err);

/* The contact sheet: `rows` examples, each a real base image and, per family, the fake and
   the magnified absolute difference. Sources are the test split's. */
int cored_synth_sheet(const char *path, const cored_sources *src, const int *split,
                      const cored_family *fams, int nfams, int size, int rows, uint64_t seed,
                      cored_error *err);

/* ---------------------------------------------------------------- PNG */

/* Writes 8-bit RGB (w x h, rows packed) as a PNG (zlib level 6, no time stamp), so equal
   pixels give equal bytes. */
int cored_png_write(const char *path, const uint8_t *rgb, int w, int h, cored_error *err);

#endif
