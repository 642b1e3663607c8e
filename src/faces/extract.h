/*
 * From media files to faces: which files are photos or videos, the faces of each sampled
 * frame (the largest face followed from frame to frame by a simple IoU tracker, or every
 * face), and the square face crops written as one folder per video. Used by `cored faces`
 * and `cored detect`; docs/faces.md ("From videos and photos to face crops") describes the
 * choices.
 */
#ifndef CORED_FACES_EXTRACT_H
#define CORED_FACES_EXTRACT_H

#include <stdint.h>

#include "core/core.h"
#include "media/video.h"

typedef enum { CORED_MEDIA_OTHER, CORED_MEDIA_IMAGE, CORED_MEDIA_VIDEO } cored_media_kind;

/* By the file name's extension, in any case: .png .jpg .jpeg are photos; .mp4 .m4v .mov .avi
   .mkv .webm .mpg .mpeg .ts .mts .flv .wmv .3gp .ogv .y4m are videos. */
cored_media_kind cored_media_kind_of(const char *name);

/* Keeps one identity through a video: the largest face of the first frame with faces, then
   in each frame the face overlapping the last one kept most (IoU >= 0.1), else the one whose
   centre is nearest to its centre (within one side of the last box); when faces are found
   but none of them matches in 3 sampled frames in a row, the track restarts on the largest.
   Frames without faces leave the track as it was. A zeroed struct starts a track. */
typedef struct {
    int active, lost;
    cored_face last;
} cored_face_track;

/* Index in faces[0..n) of the face to keep, or -1 (no face, or none matching the track). */
int cored_face_track_pick(cored_face_track *t, const cored_face *faces, int n);

/* One sampled frame (or photo) and the faces kept in it (best first; one when tracking). */
typedef struct {
    const uint8_t *px; /* RGB8, rows packed */
    int w, h;
    int64_t index;     /* frame number (0 for a photo) */
    double time;       /* seconds (0 for a photo) */
    const cored_face *faces;
    int n_faces;       /* 0: no face kept in this frame */
    int n_found;       /* faces the detector found (before tracking) */
} cored_face_frame;

/* Called for every sampled frame, faces or not; a non-zero return stops the scan with it. */
typedef int (*cored_face_frame_fn)(const cored_face_frame *f, void *user, cored_error *err);

#define CORED_FACES_MAX_PER_FRAME 64

typedef struct {
    cored_video_sampling how; /* frames of a video */
    float min_score;          /* detector threshold (CORED_FACE_MIN_SCORE) */
    int all_faces;            /* 1: every face of every frame; 0: one tracked face */
} cored_face_scan_opts;

typedef struct {
    int frames;              /* frames sampled (1 for a photo) */
    int frames_without_face; /* frames with no face kept */
    int faces;               /* faces kept in all */
    int damaged;             /* the video ended early or broke (warned by the video reader) */
} cored_face_scan_stats;

/* Samples a video, detects the faces of each frame and calls fn. Errors name the file
   (cored_video_open's: not a video, no video stream, too large...). */
int cored_faces_scan_video(cored_face_detector *det, const char *path, const cored_face_scan_opts *o,
                           cored_face_frame_fn fn, void *user, cored_face_scan_stats *st, cored_error *err);
/* The same for a photo (JPEG or PNG; one frame, index 0, time 0). */
int cored_faces_scan_image(cored_face_detector *det, const char *path, const cored_face_scan_opts *o,
                           cored_face_frame_fn fn, void *user, cored_face_scan_stats *st, cored_error *err);

/* Face crops of one video or photo into a folder, written completely or not at all:
   the crops go to a hidden temporary folder beside `dir` (".<name>.cored-part", removed
   first if an interrupted run left it) which is renamed to `dir` once every crop is
   written, so a folder that exists is complete. Crops: `<frame>.png` (frame number, 6
   digits), with all_faces `<frame>_<k>.png` (k = 0 for the best face). For a photo
   (`as_file` = 1) the crops are files instead: `<dir>.png` (with all_faces
   `<dir>_<k>.png`), each written under a temporary name and renamed. index, when not NULL,
   receives one JSON line per crop: source, crop (its path), frame, time, box (x0, y0, x1,
   y1 in the source's pixels), score. With no face at all nothing is written. */
typedef struct {
    cored_face_scan_opts scan;
    float margin; /* box x margin, as a square (1.3) */
    int size;     /* crop side in pixels (256) */
} cored_face_extract_opts;

int cored_faces_extract(cored_face_detector *det, const char *src, cored_media_kind kind, const char *dir,
                        const cored_face_extract_opts *o, cored_sb *index, cored_face_scan_stats *st,
                        cored_error *err);

#endif
