/*
 * CoReD's representation statistics (docs/method.md).
 *
 * Cells: class (real 0, fake 1) x 5 confidence bands of the true-class softmax probability
 * p: (0.5,0.6], (0.6,0.7], (0.7,0.8], (0.8,0.9], (0.9,1.0]; p <= 0.5 is in no cell.
 * Statistic of an image: the tap-point map's global spatial max per channel, then (scalar
 * mode, the official code) the mean over channels; (vector mode) the per-channel vector.
 * A cell's statistic is the mean over its images. The paper's L_Rep (norm none) is the sum
 * over cells present on both sides of (mu_S - mu_T)^2 (squared L2 distance in vector mode),
 * unnormalised; the default (norm batch) weights each cell by its share of the batch and
 * measures the difference in units of the teacher's spread of the statistic.
 */
#ifndef CORED_REPRESENT_H
#define CORED_REPRESENT_H

#include <stddef.h>
#include <stdint.h>

#include "cored.h"

#define CORED_BANDS 5
#define CORED_CELLS (2 * CORED_BANDS)

typedef enum { CORED_REP_SCALAR, CORED_REP_VECTOR } cored_rep_mode;
typedef enum { CORED_REP_NORM_NONE, CORED_REP_NORM_BATCH } cored_rep_norm;

/* How cored_rep_loss weighs the cells (docs/method.md, "The representation loss"). */
typedef struct {
    cored_rep_norm norm;
    int unbiased;   /* minus each cell's sampling variance (cells of two images or more) */
    double weight;  /* lambda, the factor of the whole term */
    int dist;       /* data parallel: the batch is the union of every rank's shard (n images
                       here, maybe 0): the cells' counts, sums and variances are summed over
                       the ranks (src/dist), so every rank computes the global batch's loss */
} cored_rep_loss_cfg;

/* Band 0..4 of a true-class probability, -1 when p <= 0.5 (or NaN). Left-open,
   right-closed intervals, compared in float32: p = 0.6f is band 0, 1.0f band 4. */
int cored_band(float p);
/* Cell label*5 + band, or -1. */
int cored_cell(int label, float p_true);
/* Cells of a batch from its logits (n, 2): p = softmax(z)[label]. */
void cored_cells_from_logits(int *cells, const float *logits, const int *labels, int n);

typedef struct {
    cored_rep_mode mode;
    int dim;                   /* 1 (scalar) or the tap's channels (vector) */
    int present[CORED_CELLS];  /* cell has at least one image */
    double count[CORED_CELLS];
    double *sum;               /* [CORED_CELLS][dim] while accumulating */
    double *sumsq;             /* [dim] squares of the images' statistics, over every cell */
    float *mu;                 /* [CORED_CELLS][dim] after cored_rep_finish */
    float *var;                /* [dim] after cored_rep_finish: the sample variance of the
                                  statistic over every image in a cell (floored, see .c) */
} cored_rep_stats;

/* channels: of the tap. Allocates the sums. */
int cored_rep_init(cored_rep_stats *s, cored_rep_mode mode, int channels, cored_error *err);
void cored_rep_release(cored_rep_stats *s);
/* Adds a batch: features NHWC (n, hw, c), cells from cored_cells_from_logits. */
void cored_rep_accumulate(cored_rep_stats *s, const float *features, const int *cells, int n,
                          int hw, int c);
/* Per cell of a batch, the scalar statistic's mean over the cell's images (NaN where the
   cell is empty) and, when count is not NULL, the number of images: what cored_rep_accumulate
   adds in scalar mode, for one batch (the --trace diagnostics). */
void cored_rep_cell_scalars(float *mu, int *count, const float *features, const int *cells, int n, int hw, int c);
/* mu = sum / count for present cells; var from the sums over every cell. */
void cored_rep_finish(cored_rep_stats *s);

/* Floats of scratch cored_rep_loss needs for a batch of n with c channels. */
size_t cored_rep_ws_floats(int n, int c);
/* L_Rep of a student batch against the teacher's statistics. cells: the student's cells
   (from its no-grad eval-mode pass); features: its train-mode tap (n, hw, c).
   Plain (unbiased = 0, the paper's): sum over the cells present on both sides of
   (mu_S - mu_T)^2, mu_S the mean of the cell's k images in the batch. With norm batch,
   each cell's term is multiplied by k / n and divided by the teacher's var (per dimension;
   in vector mode also averaged over the dimensions rather than summed). The whole term is
   multiplied by the weight. Unbiased: the same
   minus each cell's sample variance of that mean, s^2 / k (per dimension), over the cells
   with k >= 2: the expectation of (mu_S - mu_T)^2 over batches is (E mu_S - mu_T)^2 +
   Var / k, and the plain loss's gradient mostly pushes the k images' statistics towards
   each other (the Var / k part) when cells hold few images; the unbiased one estimates
   (E mu_S - mu_T)^2 alone and may be negative.
   dfeat (n, hw, c), when not NULL, receives d L_Rep / d features (overwritten: nonzero only
   at each channel's spatial maximum, the first on ties). *used (may be NULL) receives the
   number of cells that contributed. */
double cored_rep_loss(float *dfeat, int *used, const cored_rep_stats *teacher, const int *cells,
                      const float *features, int n, int hw, int c, const cored_rep_loss_cfg *how, float *ws);

#endif
