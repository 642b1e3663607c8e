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

/* A loader with options o over the images this rank handles: under mpirun its contiguous
   slice of ds, the shard cored_shard_range gives (images r*n/N .. (r+1)*n/N), whose first
   index in ds goes to *lo; in one process all of ds (*lo = 0). *l is NULL when the slice is
   empty. *slice holds the slice's data set (NULL in one process): the caller frees it after
   the loader. */
int cored_dist_loader(cored_loader **l, cored_dataset **slice, int *lo, const cored_dataset *ds,
                      const cored_loader_opts *o, cored_error *err);

/* cored_eval_scores over data set ds with loader options o (cored_eval_loader_opts). Under
   mpirun every rank calls it: each scores its slice (cored_dist_loader) and receives every
   rank's scores, labels and indices (into ds) in rank order, which are one process's. */
int cored_eval_dataset(float *scores, int *labels, int *index, int *n, cored_model *m, const cored_dataset *ds,
                       const cored_loader_opts *o, cored_error *err);

/* p(fake) of each row of logits (n, 2). */
void cored_p_fake(float *p, const float *logits, int n);

#endif
