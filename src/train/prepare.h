/*
 * Work done once per task, before or after its epochs: the teacher's pass over the
 * target's training set (logit cache and CoReD statistics) and EWC's Fisher.
 */
#ifndef CORED_PREPARE_H
#define CORED_PREPARE_H

#include "data/data.h"
#include "train/represent.h"
#include "train/train.h"

/* Flips NHWC images (n, size, size, 3) horizontally in place. */
void cored_flip_batch(float *x, int n, int size);

/* Teacher logits of every training sample, unflipped and flipped. In eval mode the
   teacher's output for an image does not depend on the rest of the batch, so during
   training only the CutMix-modified images need a teacher forward. */
typedef struct {
    float *logits;   /* [n][2 (flip)][2] */
    uint8_t *have;   /* [n] */
    int n;
} cored_teacher_cache;

void cored_teacher_cache_release(cored_teacher_cache *c);

/* One deterministic pass (no shuffle, no CutMix) of the teacher (eval mode) over ds: fills
   the cache (each image as is and flipped) and, when rep is not NULL, accumulates the
   CoReD teacher statistics over the un-flipped images and finishes
   them. lo: loader options to copy threads/pack/strict from. */
int cored_teacher_pass(cored_teacher_cache *cache, cored_rep_stats *rep, cored_model *teacher,
                       const cored_dataset *ds, const cored_loader_opts *lo,
                       cored_progress_fn progress, void *user, volatile sig_atomic_t *stop,
                       cored_error *err);

/* CoReD's teacher statistics under batch statistics: the teacher m (any build kind, for
   batches of `batch`) runs with BN batch statistics over ds in shuffled batches of `batch`
   images without augmentation, like the student's training forward; the cells come from
   the teacher's eval-mode logits in cache (cored_teacher_pass). rep must be empty; it is
   finished here. m's running statistics are left as they were. Under mpirun each rank runs
   its shard of every batch (BN statistics of the shard, or with sync of the whole batch, as
   the student's training forward has them) and the statistics are summed over the ranks. */
int cored_rep_batch_pass(cored_rep_stats *rep, cored_model *m, const cored_teacher_cache *cache,
                         const cored_dataset *ds, const cored_loader_opts *lo, int batch, int sync,
                         volatile sig_atomic_t *stop, cored_error *err);

/* Teacher logits (n, 2) of a training batch (n <= CORED_MAX_BATCH): from the cache, and
   one teacher forward for the images CutMix modified. */
int cored_teacher_batch_logits(float *out, const cored_teacher_cache *cache, cored_model *teacher,
                               const cored_batch *b, int size, cored_error *err);

/* Adds the diagonal empirical Fisher of model m (train build, used in eval mode) over at
   most max_samples images of ds (class-balanced, chosen from seed): the mean over images of
   the squared gradient of their cross-entropy. fisher has cored_model_weights' length. */
int cored_ewc_fisher(float *fisher, cored_model *m, const cored_dataset *ds, int max_samples,
                     uint64_t seed, const cored_loader_opts *lo, volatile sig_atomic_t *stop,
                     cored_error *err);

#endif
