/*
 * Video-level metrics. FaceForensics++ reports AUC per frame and per video: a video's
 * score is the mean p(fake) of its frames. In a data set, frames sit in per-video folders,
 * the layout `cored faces` writes:
 *
 *   DATA/<task>/<split>/<class>/<video>/<frame>.png      (deeper folders belong to <video>)
 *
 * The video of an image is the first folder below its class folder; real/x and fake/x are
 * two videos. An image that sits directly in its class folder belongs to no folder: when a
 * split has per-video folders, each such image counts as a video of one frame (and is
 * counted as "loose"); when it has none, there are no video metrics, only frame ones.
 */
#ifndef CORED_EVAL_VIDEOS_H
#define CORED_EVAL_VIDEOS_H

#include "cored.h"
#include "data/data.h"
#include "eval/metrics.h"

typedef struct {
    int n_samples;
    int *video;      /* [n_samples]: the video of each sample of the data set, 0..n_videos-1 */
    int n_videos;    /* videos, loose images included (each its own) */
    int n_folders;   /* videos that are folders: 0 = the split has no per-video folders */
    int n_loose;     /* images directly in a class folder */
    char **name;     /* [n_videos]: "<class>/<video>" (class folder as spelled), or the loose
                        image's "<class>/<file>" */
} cored_video_groups;

/* Groups the samples of ds (opened on one split: cored_dataset_open / _open_scoring) by
   video. Fails (CORED_E_INTERNAL) for a sample whose path is not below the split folder
   (a concatenated or subset data set), CORED_E_NOMEM when out of memory. */
int cored_video_groups_build(cored_video_groups *g, const cored_dataset *ds, cored_error *err);
void cored_video_groups_release(cored_video_groups *g); /* NULL-safe; the struct may be reused */

/* Video-level metrics from frame scores: scores/labels of n scored frames whose sample
   indices in the data set are index[0..n) (cored_eval_scores' outputs; frames that failed
   to decode are simply absent). Each video with at least one scored frame gets the mean of
   its frames' p(fake) and its class's label; *out holds the metrics over those videos
   (AUC, accuracy at 0.5, per class; n counts videos). video_scores/video_labels, when not
   NULL, receive the per-video values (room for g->n_videos; videos without a scored frame
   get a NaN score), *n_scored the number of videos with a score. A video whose frames carry
   both labels is CORED_E_ARG (not possible for an opened split). */
int cored_video_metrics(cored_metrics *out, const cored_video_groups *g, const float *scores,
                        const int *labels, const int *index, int n, float *video_scores,
                        int *video_labels, int *n_scored, cored_error *err);

/* The video metrics as a JSON object (eval --json, the protocol's eval.json):
   {"auc", "acc", "acc_real", "acc_fake", "n_real", "n_fake" (videos scored per class),
   "frames" (frames scored), "loose_images" (g->n_loose)}; NaN values are null. */
struct cJSON *cored_video_metrics_json(const cored_metrics *m, const cored_video_groups *g, int frames);

#endif
