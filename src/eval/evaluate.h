/*
 * Scoring a data set with a model: p(fake) of every image, in the data set's order, with
 * the deterministic transform (resize + normalise; no flip, no CutMix).
 */
#ifndef CORED_EVALUATE_H
#define CORED_EVALUATE_H

#include "cored.h"
#include "data/data.h"
#include "eval/metrics.h"

/* Loader options for evaluation derived from `base` (threads, pack, strict): batch,
   no shuffle, no flip, no CutMix. */
cored_loader_opts cored_eval_loader_opts(const cored_loader_opts *base, int batch);

/* Runs m (eval mode) over every batch of loader l (created with cored_eval_loader_opts)
   and writes p(fake), the label and the sample index of every decoded image; *n receives
   their number (images that failed to decode are skipped by the loader). The arrays need
   room for the data set's count. */
int cored_eval_scores(float *scores, int *labels, int *index, int *n, cored_model *m,
                      cored_loader *l, cored_error *err);

/* Data parallel (more than one rank): this rank's contiguous slice [*lo, *lo + n) of ds, the
   shard cored_shard_range gives (images r*n/N .. (r+1)*n/N), as a data set in *out (NULL
   when the slice is empty). */
int cored_dist_slice(cored_dataset **out, int *lo, const cored_dataset *ds, cored_error *err);

/* cored_eval_scores over data set ds with loader options o (cored_eval_loader_opts). Under
   mpirun every rank calls it: each scores its slice (cored_dist_slice) and receives every
   rank's scores, labels and indices (into ds) in rank order, which are one process's. */
int cored_eval_dataset(float *scores, int *labels, int *index, int *n, cored_model *m, const cored_dataset *ds,
                       const cored_loader_opts *o, cored_error *err);

/* p(fake) of each row of logits (n, 2). */
void cored_p_fake(float *p, const float *logits, int n);

#endif
