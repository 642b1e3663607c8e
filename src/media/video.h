/*
 * Video input of cored, with FFmpeg's libraries (libavformat, libavcodec, libswscale,
 * libavutil): any container and codec the installed FFmpeg reads; frames sampled evenly by
 * count or by rate; each returned as 8-bit RGB, rows packed (stride w*3, as cored_image),
 * with the stream's rotation metadata applied. docs/media.md describes the choices and the
 * limits.
 *
 *     cored_video *v;
 *     cored_error err;
 *     if (cored_video_open(&v, path, NULL, &err)) fail(err.msg);      // names the file and the cause
 *     cored_video_sampling how = {.count = 32};                       // or {.fps = 1.0}
 *     if (cored_video_start(v, &how, &err)) fail(err.msg);
 *     cored_video_frame f;
 *     int rc;
 *     while ((rc = cored_video_next(v, &f, &err)) == 1)
 *         use(f.px, f.w, f.h, f.index, f.time);                        // f.px owned by v
 *     if (rc < 0) fail(err.msg);
 *     if (cored_video_get_stats(v)->damaged) ...                     // already warned about
 *     cored_video_close(v);
 *
 * Sampling seeks: before a target frame it seeks to the nearest keyframe at or before it
 * (av_seek_frame, AVSEEK_FLAG_BACKWARD) and decodes forward to the target's time stamp,
 * whenever that keyframe lies ahead of what is already decoded; otherwise, and in
 * containers that cannot seek (or seek wrongly: the first frame after a seek lies past the
 * target), it decodes forward. The frames are the same either way (tested).
 *
 * Which frames. N is the frame count (the header's, else duration x fps; when the file
 * tells neither, cored_video_start counts the video packets first, reading without
 * decoding). By count (k = min(count, N) frames): target i is frame floor((i + 1/2) N / k),
 * the middle of the i-th of k equal parts, so k >= N gives every frame. By rate: targets at
 * the times j / fps (j = 0, 1, ...) before the end, each mapped to the frame shown then
 * (frame floor(t x video fps)); a rate at or above the video's gives every frame. A target
 * is answered by the first frame whose time stamp is at least the target's time minus half
 * a frame period; a frame is returned once, even if it answers several targets (variable
 * frame rate). frame.index = round(time x fps): the frame number at the nominal rate, exact
 * for constant-rate video. Time stamps are seconds from the first frame of the stream.
 *
 * Bad input. Errors (CORED_E_FORMAT unless said) name the file and the cause: not a
 * regular file (FIFOs and devices are refused before FFmpeg reads a byte), an empty file,
 * a text file, content FFmpeg cannot read (FFmpeg's own reason appended, e.g. an MP4 whose
 * index is missing because the file was cut), no video stream (what the file holds
 * instead: "1 audio stream"), a codec this FFmpeg cannot decode, a frame size above the
 * limit (checked on the container's header before find_stream_info and before any frame
 * is decoded; the decoders are given the same limit); read errors are CORED_E_IO. A file
 * that is truncated or damaged part-way is not an error: the frames decoded up to the
 * damage are returned, the rest are not, stats.damaged is set and one CORED_LOG_WARN
 * message names the file, where decoding stopped and why. Packets the decoder refuses are
 * skipped and counted (stats.bad_packets; 64 in a row end the run as damaged); frames it
 * marks corrupt are never returned. Nothing hangs: reads, packets and decoded frames are
 * bounded by budgets derived from the file's size and the number of targets; past a
 * budget the run stops as damaged. FFmpeg reads only the given file or
 * memory (custom I/O; every nested open -- playlists, concat lists, external references --
 * is refused) and its log goes to cored_log at CORED_LOG_DEBUG, never to stderr.
 *
 * Threads: one cored_video belongs to one thread at a time; several may run in parallel.
 */
#ifndef CORED_MEDIA_VIDEO_H
#define CORED_MEDIA_VIDEO_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* Frames above this many pixels, or with a side above CORED_VIDEO_MAX_SIDE, are refused
   (the default of cored_video_options.max_pixels: the images' limit, 64 Mpx). */
#define CORED_VIDEO_MAX_PIXELS_DEFAULT ((size_t)64 << 20)
#define CORED_VIDEO_MAX_SIDE 16384

typedef struct cored_video cored_video;

typedef struct {
    size_t max_pixels;   /* 0: CORED_VIDEO_MAX_PIXELS_DEFAULT */
    int threads;         /* decoder threads; 0 or 1: one (callers run videos in parallel) */
} cored_video_options;

/* Where info.frame_count comes from. */
typedef enum {
    CORED_VIDEO_COUNT_UNKNOWN,  /* not known yet: cored_video_start counts the packets */
    CORED_VIDEO_COUNT_HEADER,   /* the container's frame count */
    CORED_VIDEO_COUNT_DURATION, /* round(duration x fps) */
    CORED_VIDEO_COUNT_COUNTED   /* video packets counted by cored_video_start */
} cored_video_count_source;

typedef struct {
    int width, height;             /* frames as returned: rotation applied (0 when the header
                                      does not tell; each frame carries its own size) */
    int coded_width, coded_height; /* as stored */
    int rotation;                  /* clockwise degrees applied to every frame: 0, 90, 180, 270 */
    double fps;                    /* nominal (average) frame rate; 25 when the file tells none */
    int fps_guessed;               /* 1 when fps is that guess */
    double duration;               /* seconds of the video stream; 0 when unknown */
    int64_t frame_count;           /* estimate, see count_source; 0 when unknown */
    cored_video_count_source count_source;
    int still_image;               /* read by an image demuxer (a JPEG, PNG... as one frame) */
    char container[64];            /* FFmpeg's demuxer, e.g. "mov,mp4,m4a,3gp,3g2,mj2" */
    char codec[32];                /* e.g. "h264" */
} cored_video_info;

typedef struct {
    int count;       /* > 0: this many frames, evenly spread (see above) */
    double fps;      /* > 0: frames at this rate instead (exactly one of count, fps) */
    int max_frames;  /* by rate: at most this many frames; 0: no limit */
    int sequential;  /* 1: never seek, decode from the start (for tests and odd files) */
} cored_video_sampling;

typedef struct {
    uint8_t *px;     /* w*h*3 RGB; from cored_video_next owned by the video, valid until the
                        next call of next, start or close */
    int w, h;
    int64_t index;   /* frame number: round(time x info.fps) */
    double time;     /* presentation time stamp, seconds from the stream's first frame */
    int target;      /* which target (0-based) this frame answers */
} cored_video_frame;

typedef struct {
    int64_t targets;     /* frames planned by the last start (INT64_MAX: by rate, end unknown) */
    int64_t returned;    /* frames returned since the last start */
    int64_t packets;     /* packets read since the last start (all streams) */
    int64_t decoded;     /* frames decoded since the last start, returned or not */
    int64_t seeks;       /* seeks since the last start */
    int64_t reopened;    /* times the file was opened again (counting, fallback, restart) */
    int sequential;      /* 1 when the last start decoded forward only (asked, or fallen back) */
    int damaged;         /* 1 when the file ended early or holds damaged data (warned) */
    double damaged_at;   /* time of the last good frame before the damage, seconds */
    int64_t bad_packets; /* packets skipped as corrupt or undecodable */
} cored_video_stats;

/* Routes FFmpeg's log to cored_log (CORED_LOG_DEBUG) instead of stderr. Called by the
   opens; idempotent and thread-safe. Call it first when using FFmpeg before opening. */
void cored_video_init(void);

/* Opens a video file (opts may be NULL). Reads the container's header, picks the video
   stream (cover pictures are not videos) and prepares its decoder; no frame is decoded
   except what FFmpeg needs to learn the stream's parameters. */
int cored_video_open(cored_video **out, const char *path, const cored_video_options *opts, cored_error *err);
/* The same on bytes in memory (not copied: they must outlive the video); `name` is used in
   messages and, as FFmpeg does with file names, for probing by extension. */
int cored_video_open_memory(cored_video **out, const uint8_t *data, size_t len, const char *name,
                            const cored_video_options *opts, cored_error *err);
void cored_video_close(cored_video *v); /* NULL-safe */

/* Parameters of the opened stream. frame_count and duration may be updated by
   cored_video_start (counting). Valid until close. */
const cored_video_info *cored_video_get_info(const cored_video *v);
const cored_video_stats *cored_video_get_stats(const cored_video *v);

/* Plans a sampling run; may be called again at any time to sample anew (the file is then
   reopened). CORED_E_ARG for a plan that is not exactly one of count > 0 or fps > 0. */
int cored_video_start(cored_video *v, const cored_video_sampling *how, cored_error *err);
/* The next sampled frame in time order: 1 with *frame filled, 0 when there are no more
   (all targets answered, or the file ended or broke: see stats.damaged), < 0 on error. */
int cored_video_next(cored_video *v, cored_video_frame *frame, cored_error *err);

/* Every sampled frame of a file at once, copied: out->frames[0..out->n), each px its own
   allocation. info, when not NULL, receives the stream's parameters. Memory is n x w x h x 3
   bytes: for long videos by rate, use the iterator or max_frames. */
typedef struct {
    cored_video_frame *frames;
    int n;
    int damaged; /* the file ended early or holds damaged data (warned via cored_log) */
} cored_video_frames;

int cored_video_read(const char *path, const cored_video_sampling *how, const cored_video_options *opts,
                     cored_video_frames *out, cored_video_info *info, cored_error *err);
void cored_video_frames_release(cored_video_frames *f);

#endif
