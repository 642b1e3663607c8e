/*
 * Video decoding (src/media/video.c) on small videos this test encodes itself with
 * libavcodec and libavformat: MPEG-4 with B-frames in MP4, H.264 in Matroska (when this
 * FFmpeg has libx264), MJPEG in AVI and as a raw stream (no duration, no count), MP4s with
 * rotation metadata. Every frame carries its number as a row of black and white blocks and
 * a red block in its top-left corner, so the test reads back which frame it got and which
 * way up. Checked: the sampled frames are the planned ones (index and time), by count and
 * by rate; seeking decodes a fraction of the frames and gives the same pixels as decoding
 * forward; rotation (size swapped, pattern turned); truncated files (the frames before the
 * cut, one warning); and every bad input refused with a message naming the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>

#include "harness.h"
#include "video_writer.h"
#include "media/video.h"

#define W 160
#define H 96
#define B 16 /* block side */

/* ---------------------------------------------------------------- captured warnings */

static char warnings[8192];
static int n_warnings;

/* CORED_TEST_VERBOSE=1 prints every message, FFmpeg's included. */
static void sink(cored_log_level level, const char *msg, void *user)
{
    (void)user;
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("CORED_TEST_VERBOSE") && atoi(getenv("CORED_TEST_VERBOSE")) > 0;
    if (verbose) fprintf(stderr, "    log %d: %s\n", (int)level, msg);
    if (level > CORED_LOG_WARN) return;
    n_warnings++;
    size_t len = strlen(warnings);
    snprintf(warnings + len, sizeof warnings - len, "%s\n", msg);
}

static void clear_warnings(void)
{
    warnings[0] = 0;
    n_warnings = 0;
}

/* ---------------------------------------------------------------- writing test videos */

typedef struct {
    const char *format;   /* muxer */
    const char *codec;    /* encoder */
    int fps, frames, gop, bframes;
    int rotation;         /* clockwise degrees stored as a display matrix */
    int faststart;
    int claim_w, claim_h; /* > 0: the frame size the container's header claims */
} vspec;

/* Frame k: grey, a red block at the top left, bit b of k as block b of the row y = 3B. */
static void paint(uint8_t *rgb, int w, int h, int k, void *user)
{
    (void)user;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int r = 128, g = 128, bl = 128;
            if (x < B && y < B) r = 255, g = 0, bl = 0;
            int bit = x / B - 1;
            if (y >= 3 * B && y < 4 * B && bit >= 0 && bit < 8) r = g = bl = (k >> bit) & 1 ? 255 : 0;
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)r, p[1] = (uint8_t)g, p[2] = (uint8_t)bl;
        }
}

/* 0 on success; -1 when the encoder is missing (the caller skips), else fails the test. */
static int write_video(const char *path, const vspec *s)
{
    test_video_spec t = {s->format, s->codec, W, H, s->fps, s->frames, s->gop, s->bframes,
                         s->rotation, s->faststart, s->claim_w, s->claim_h};
    int rc = test_video_write(path, &t, paint, NULL);
    if (rc < 0) return -1;
    CHECK_MSG(rc == 0, "writing %s (%s in %s)", path, s->codec, s->format);
    return rc ? 1 : 0;
}

static char *tpath(const char *name)
{
    static char paths[32][300];
    static int next;
    char *p = paths[next++ % 32];
    snprintf(p, 300, "%s/%s", test_tmpdir(), name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc(*n ? *n : 1);
    if (fread(d, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return d;
}

/* The first `fraction` of src written to dst. (Paths from tpath live for 32 calls.) */
static void truncate_copy(const char *src, const char *dst, double fraction)
{
    size_t n = 0;
    uint8_t *d = read_bytes(src, &n);
    CHECK(d && n > 0);
    if (d) write_bytes(dst, d, (size_t)(n * fraction));
    free(d);
}

/* ---------------------------------------------------------------- reading the pattern */

/* Where the coded pixel (x, y) is in a frame rotated clockwise by rot. */
static void rotated(int x, int y, int rot, int *ox, int *oy)
{
    switch (rot) {
    case 90: *ox = H - 1 - y, *oy = x; break;
    case 180: *ox = W - 1 - x, *oy = H - 1 - y; break;
    case 270: *ox = y, *oy = W - 1 - x; break;
    default: *ox = x, *oy = y;
    }
}

static const uint8_t *at(const cored_video_frame *f, int x, int y, int rot)
{
    int ox, oy;
    rotated(x, y, rot, &ox, &oy);
    return f->px + ((size_t)oy * f->w + ox) * 3;
}

/* The frame number painted into f, or -1 when the pattern is not there (wrong way up,
   colours off). */
static int code_of(const cored_video_frame *f, int rot)
{
    int sw = rot == 90 || rot == 270 ? H : W, sh = rot == 90 || rot == 270 ? W : H;
    if (f->w != sw || f->h != sh) return -1;
    const uint8_t *m = at(f, B / 2, B / 2, rot);
    if (getenv("CORED_TEST_VERBOSE")) {
        const uint8_t *q = at(f, 2 * B + B / 2, 3 * B + B / 2, rot), *g = at(f, W - B / 2, H - B / 2, rot);
        fprintf(stderr, "    marker %d,%d,%d bit 1: %d,%d,%d background %d,%d,%d\n", m[0], m[1], m[2], q[0], q[1], q[2], g[0], g[1], g[2]);
    }
    if (!(m[0] > 170 && m[1] < 80 && m[2] < 80)) return -1;
    int k = 0;
    for (int b = 0; b < 8; b++) {
        const uint8_t *p = at(f, (b + 1) * B + B / 2, 3 * B + B / 2, rot);
        int l = (p[0] + p[1] + p[2]) / 3;
        if (l > 200) k |= 1 << b;
        else if (l > 55) return -1;
    }
    const uint8_t *g = at(f, W - B / 2, H - B / 2, rot); /* background */
    if (abs(g[0] - 128) > 24 || abs(g[1] - 128) > 24 || abs(g[2] - 128) > 24) return -1;
    return k;
}

typedef struct {
    int n;
    int64_t index[300];
    double time[300];
    int code[300];
    uint8_t *px[300];
    int damaged;
    cored_video_stats stats;
} sampled;

static void sampled_free(sampled *s)
{
    for (int i = 0; i < s->n; i++) free(s->px[i]);
    s->n = 0;
}

/* Samples an opened video; returns 0 or the error of next. */
static int sample(cored_video *v, cored_video_sampling how, sampled *s, cored_error *err)
{
    memset(s, 0, sizeof *s);
    int rc = cored_video_start(v, &how, err);
    if (rc) return rc;
    int rot = cored_video_get_info(v)->rotation;
    cored_video_frame f;
    while ((rc = cored_video_next(v, &f, err)) == 1 && s->n < 300) {
        s->index[s->n] = f.index;
        s->time[s->n] = f.time;
        s->code[s->n] = code_of(&f, rot);
        s->px[s->n] = malloc((size_t)f.w * f.h * 3);
        memcpy(s->px[s->n], f.px, (size_t)f.w * f.h * 3);
        s->n++;
    }
    s->stats = *cored_video_get_stats(v);
    s->damaged = s->stats.damaged;
    return rc < 0 ? rc : 0;
}

/* Every frame k answers: index want[k], time want[k] / fps, its pattern says want[k]. */
static void check_frames(const char *what, const sampled *s, const int64_t *want, int n, double fps)
{
    CHECK_MSG(s->n == n, "%s: %d frames, want %d", what, s->n, n);
    for (int i = 0; i < s->n && i < n; i++) {
        CHECK_MSG(s->index[i] == want[i], "%s: frame %d has index %lld, want %lld", what, i, (long long)s->index[i],
                  (long long)want[i]);
        CHECK_MSG(fabs(s->time[i] - (double)want[i] / fps) < 1e-3, "%s: frame %d at %.4f s, want %.4f", what, i,
                  s->time[i], (double)want[i] / fps);
        CHECK_MSG(s->code[i] == want[i], "%s: frame %d shows frame %d, want %lld", what, i, s->code[i],
                  (long long)want[i]);
    }
}

static void even(int64_t *want, int k, int64_t n)
{
    for (int i = 0; i < k; i++) want[i] = (int64_t)floor((i + 0.5) * (double)n / k);
}

/* ---------------------------------------------------------------- tests */

static void test_mp4_seek_and_sequential(void)
{
    const char *p = tpath("clip.mp4");
    vspec s = {"mp4", "mpeg4", 25, 200, 10, 2, 0, 0, 0, 0};
    if (write_video(p, &s)) return;
    clear_warnings();
    cored_video *v;
    cored_error err;
    CHECK_MSG(cored_video_open(&v, p, NULL, &err) == 0, "%s", err.msg);
    if (!v) return;
    const cored_video_info *in = cored_video_get_info(v);
    CHECK(in->width == W && in->height == H && in->coded_width == W && in->rotation == 0);
    CHECK_MSG(fabs(in->fps - 25) < 1e-9 && !in->fps_guessed, "fps %g", in->fps);
    CHECK_MSG(in->frame_count == 200 && in->count_source == CORED_VIDEO_COUNT_HEADER, "count %lld",
              (long long)in->frame_count);
    CHECK_MSG(fabs(in->duration - 8.0) < 0.05, "duration %g", in->duration);
    CHECK(strstr(in->container, "mp4") && strcmp(in->codec, "mpeg4") == 0 && !in->still_image);

    int64_t want[32];
    even(want, 8, 200);
    sampled a, b;
    CHECK_MSG(sample(v, (cored_video_sampling){.count = 8}, &a, &err) == 0, "%s", err.msg);
    check_frames("mp4 by seeking", &a, want, 8, 25);
    CHECK_MSG(a.stats.seeks >= 4 && !a.stats.sequential, "seeks %lld", (long long)a.stats.seeks);
    CHECK_MSG(a.stats.packets < 100 && a.stats.decoded < 60, "seeking read %lld packets and decoded %lld frames of 200",
              (long long)a.stats.packets, (long long)a.stats.decoded);

    /* decoding forward gives the same frames, pixel for pixel */
    CHECK_MSG(sample(v, (cored_video_sampling){.count = 8, .sequential = 1}, &b, &err) == 0, "%s", err.msg);
    check_frames("mp4 sequential", &b, want, 8, 25);
    CHECK(b.stats.seeks == 0 && b.stats.sequential && b.stats.reopened == 1);
    CHECK_MSG(b.stats.packets >= want[7], "sequential read %lld packets", (long long)b.stats.packets);
    if (getenv("CORED_TEST_VERBOSE"))
        fprintf(stderr, "    seeking: %lld packets, %lld frames decoded; forward: %lld packets, %lld frames\n",
                (long long)a.stats.packets, (long long)a.stats.decoded, (long long)b.stats.packets,
                (long long)b.stats.decoded);
    int same = a.n == b.n;
    for (int i = 0; same && i < a.n; i++) same = !memcmp(a.px[i], b.px[i], (size_t)W * H * 3);
    CHECK_MSG(same, "seeking and decoding forward give the same pixels");
    sampled_free(&a);
    sampled_free(&b);

    /* more frames than the video has: every frame once, in order */
    CHECK_MSG(sample(v, (cored_video_sampling){.count = 1000}, &a, &err) == 0, "%s", err.msg);
    int64_t all[200];
    for (int i = 0; i < 200; i++) all[i] = i;
    check_frames("mp4 every frame", &a, all, 200, 25);
    sampled_free(&a);

    /* by rate: 2 frames per second of a 25 fps video */
    CHECK_MSG(sample(v, (cored_video_sampling){.fps = 2}, &a, &err) == 0, "%s", err.msg);
    int64_t r2[16];
    for (int j = 0; j < 16; j++) r2[j] = (int64_t)floor(j * 12.5);
    check_frames("mp4 at 2 fps", &a, r2, 16, 25);
    sampled_free(&a);
    CHECK_MSG(sample(v, (cored_video_sampling){.fps = 2, .max_frames = 3}, &a, &err) == 0, "%s", err.msg);
    check_frames("mp4 at 2 fps, 3 at most", &a, r2, 3, 25);
    sampled_free(&a);
    cored_video_close(v);
    CHECK_MSG(n_warnings == 0, "no warning for a good video: %s", warnings);
}

static void test_h264_mkv(void)
{
    const char *p = tpath("clip.mkv");
    vspec s = {"matroska", "libx264", 25, 100, 12, 3, 0, 0, 0, 0};
    int w = write_video(p, &s);
    if (w < 0) {
        fprintf(stderr, "  (no libx264 encoder in this FFmpeg: H.264 not tested)\n");
        return;
    }
    if (w) return;
    clear_warnings();
    cored_video *v;
    cored_error err;
    CHECK_MSG(cored_video_open(&v, p, NULL, &err) == 0, "%s", err.msg);
    if (!v) return;
    const cored_video_info *in = cored_video_get_info(v);
    CHECK_MSG(strcmp(in->codec, "h264") == 0 && in->frame_count == 100 &&
                  in->count_source == CORED_VIDEO_COUNT_DURATION,
              "%s, %lld frames", in->codec, (long long)in->frame_count);
    sampled a, b;
    int64_t want[8];
    for (int j = 0; j < 8; j++) want[j] = (int64_t)floor(j * 12.5);
    CHECK_MSG(sample(v, (cored_video_sampling){.fps = 2}, &a, &err) == 0, "%s", err.msg);
    check_frames("h264 at 2 fps", &a, want, 8, 25);
    sampled_free(&a);
    /* targets far apart: seeks (the cues are read at the first seek) */
    even(want, 3, 100);
    CHECK_MSG(sample(v, (cored_video_sampling){.count = 3}, &a, &err) == 0, "%s", err.msg);
    check_frames("h264, 3 frames", &a, want, 3, 25);
    CHECK_MSG(a.stats.seeks >= 2 && a.stats.decoded < 60, "h264: %lld seeks, %lld decoded", (long long)a.stats.seeks,
              (long long)a.stats.decoded);
    CHECK_MSG(sample(v, (cored_video_sampling){.count = 3, .sequential = 1}, &b, &err) == 0, "%s", err.msg);
    check_frames("h264, 3 frames, sequential", &b, want, 3, 25);
    int same = a.n == b.n;
    for (int i = 0; same && i < a.n; i++) same = !memcmp(a.px[i], b.px[i], (size_t)W * H * 3);
    CHECK_MSG(same, "h264: seeking and decoding forward give the same pixels");
    sampled_free(&a);
    sampled_free(&b);
    cored_video_close(v);
    CHECK_MSG(n_warnings == 0, "no warning for a good video: %s", warnings);
}

static void test_avi_mjpeg_and_memory(void)
{
    const char *p = tpath("clip.avi");
    vspec s = {"avi", "mjpeg", 10, 30, 1, 0, 0, 0, 0, 0};
    if (write_video(p, &s)) return;
    clear_warnings();
    cored_video *v;
    cored_error err;
    CHECK_MSG(cored_video_open(&v, p, NULL, &err) == 0, "%s", err.msg);
    if (!v) return;
    CHECK(cored_video_get_info(v)->frame_count == 30 && fabs(cored_video_get_info(v)->fps - 10) < 1e-9);
    sampled a, m;
    int64_t want[8];
    for (int j = 0; j < 6; j++) want[j] = 5 * j;
    CHECK_MSG(sample(v, (cored_video_sampling){.fps = 2}, &a, &err) == 0, "%s", err.msg);
    check_frames("avi at 2 fps", &a, want, 6, 10);
    cored_video_close(v);

    /* the same bytes from memory */
    size_t n = 0;
    uint8_t *d = read_bytes(p, &n);
    CHECK_MSG(cored_video_open_memory(&v, d, n, "clip.avi", NULL, &err) == 0, "%s", err.msg);
    if (v) {
        CHECK_MSG(sample(v, (cored_video_sampling){.fps = 2}, &m, &err) == 0, "%s", err.msg);
        check_frames("avi from memory", &m, want, 6, 10);
        int same = a.n == m.n;
        for (int i = 0; same && i < a.n; i++) same = !memcmp(a.px[i], m.px[i], (size_t)W * H * 3);
        CHECK_MSG(same, "memory and file give the same pixels");
        sampled_free(&m);
        cored_video_close(v);
    }
    free(d);
    sampled_free(&a);

    /* all at once */
    cored_video_frames fr;
    cored_video_info info;
    CHECK_MSG(cored_video_read(p, &(cored_video_sampling){.count = 3}, NULL, &fr, &info, &err) == 0, "%s", err.msg);
    CHECK(fr.n == 3 && !fr.damaged && info.frame_count == 30);
    for (int i = 0; i < fr.n; i++)
        CHECK_MSG(fr.frames[i].index == 5 + 10 * i && code_of(&fr.frames[i], 0) == 5 + 10 * i && fr.frames[i].target == i,
                  "cored_video_read frame %d: index %lld", i, (long long)fr.frames[i].index);
    cored_video_frames_release(&fr);
    CHECK_MSG(n_warnings == 0, "no warning for a good video: %s", warnings);
}

/* A raw MJPEG stream: no duration, no frame count in any header. */
static void test_raw_stream_counted(void)
{
    const char *p = tpath("clip.mjpeg");
    vspec s = {"mjpeg", "mjpeg", 25, 20, 1, 0, 0, 0, 0, 0};
    if (write_video(p, &s)) return;
    clear_warnings();
    cored_video *v;
    cored_error err;
    CHECK_MSG(cored_video_open(&v, p, NULL, &err) == 0, "%s", err.msg);
    if (!v) return;
    CHECK_MSG(cored_video_get_info(v)->count_source == CORED_VIDEO_COUNT_UNKNOWN, "count source %d",
              cored_video_get_info(v)->count_source);
    sampled a;
    int64_t want[4];
    even(want, 4, 20);
    CHECK_MSG(sample(v, (cored_video_sampling){.count = 4}, &a, &err) == 0, "%s", err.msg);
    const cored_video_info *in = cored_video_get_info(v);
    CHECK_MSG(in->frame_count == 20 && in->count_source == CORED_VIDEO_COUNT_COUNTED, "counted %lld",
              (long long)in->frame_count);
    check_frames("raw mjpeg", &a, want, 4, in->fps);
    sampled_free(&a);
    cored_video_close(v);
    CHECK_MSG(n_warnings == 0, "no warning for a good video: %s", warnings);
}

static void test_rotation(void)
{
    static const int rots[3] = {90, 180, 270};
    for (int r = 0; r < 3; r++) {
        char name[64];
        snprintf(name, sizeof name, "rot%d.mp4", rots[r]);
        const char *p = tpath(name);
        vspec s = {"mp4", "mpeg4", 25, 10, 5, 0, rots[r], 0, 0, 0};
        if (write_video(p, &s)) return;
        cored_video *v;
        cored_error err;
        CHECK_MSG(cored_video_open(&v, p, NULL, &err) == 0, "%s", err.msg);
        if (!v) continue;
        const cored_video_info *in = cored_video_get_info(v);
        int swap = rots[r] != 180;
        CHECK_MSG(in->rotation == rots[r], "rotation %d, want %d", in->rotation, rots[r]);
        CHECK_MSG(in->width == (swap ? H : W) && in->height == (swap ? W : H) && in->coded_width == W,
                  "rotated %d: %dx%d", rots[r], in->width, in->height);
        sampled a;
        int64_t want[2];
        even(want, 2, 10);
        CHECK_MSG(sample(v, (cored_video_sampling){.count = 2}, &a, &err) == 0, "%s", err.msg);
        char what[64];
        snprintf(what, sizeof what, "rotated %d", rots[r]);
        check_frames(what, &a, want, 2, 25);
        sampled_free(&a);
        cored_video_close(v);
    }
}

static void check_fails(const char *path, int code, const char *needle, const char *needle2)
{
    cored_video *v = (cored_video *)1;
    cored_error err;
    memset(&err, 0, sizeof err);
    int rc = cored_video_open(&v, path, NULL, &err);
    CHECK_MSG(rc == code, "%s: status %d, want %d (%s)", path, rc, code, err.msg);
    CHECK(v == NULL);
    if (rc == 0) {
        cored_video_close(v);
        return;
    }
    CHECK_MSG(strstr(err.msg, path) != NULL, "the message names the file: %s", err.msg);
    CHECK_MSG(!needle || strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
    CHECK_MSG(!needle2 || strstr(err.msg, needle2) || strstr(err.hint, needle2), "message '%s' (hint '%s') lacks '%s'",
              err.msg, err.hint, needle2);
}

static void test_bad_inputs(void)
{
    clear_warnings();
    const char *p = tpath("empty.mp4");
    write_bytes(p, "", 0);
    check_fails(p, CORED_E_FORMAT, "empty file (0 bytes)", NULL);

    p = tpath("notes.mp4");
    const char *text = "These are my notes, not a video.\nLine two.\n";
    write_bytes(p, text, strlen(text));
    check_fails(p, CORED_E_FORMAT, "not a video", "text");

    p = tpath("random.mp4");
    uint8_t junk[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 24);
    write_bytes(p, junk, sizeof junk);
    check_fails(p, CORED_E_FORMAT, "not a video", NULL);

    check_fails(tpath("missing.mp4"), CORED_E_IO, "cannot open", NULL);
    check_fails(test_tmpdir(), CORED_E_FORMAT, "a folder", NULL);
    p = tpath("pipe.mp4");
    if (mkfifo(p, 0600) == 0) check_fails(p, CORED_E_FORMAT, "a FIFO", NULL);

    /* audio only, in a video container: Matroska with one PCM stream */
    p = tpath("audio.mkv");
    int ok = test_audio_write(p) == 0;
    CHECK_MSG(ok, "writing an audio-only file");
    check_fails(p, CORED_E_FORMAT, "no video stream", "1 audio stream");

    /* a header claiming 100000 x 100000 frames (the packets are of a small MJPEG) */
    p = tpath("huge.mkv");
    vspec s = {"matroska", "mjpeg", 10, 3, 1, 0, 0, 0, 100000, 100000};
    if (!write_video(p, &s)) check_fails(p, CORED_E_FORMAT, "100000x100000", "above the limit");
    /* and one just above a limit given by the caller */
    p = tpath("small.avi");
    vspec s2 = {"avi", "mjpeg", 10, 3, 1, 0, 0, 0, 0, 0};
    if (!write_video(p, &s2)) {
        cored_video *v;
        cored_error err;
        cored_video_options o = {.max_pixels = W * H - 1};
        CHECK(cored_video_open(&v, p, &o, &err) == CORED_E_FORMAT && strstr(err.msg, "160x96"));
        o.max_pixels = W * H;
        CHECK_MSG(cored_video_open(&v, p, &o, &err) == 0, "%s", err.msg);
        cored_video_close(v);
    }

    /* a concat list naming a real video: FFmpeg must not open it */
    p = tpath("list.mp4");
    char list[600];
    snprintf(list, sizeof list, "ffconcat version 1.0\nfile '%s'\n", tpath("small.avi"));
    write_bytes(p, list, strlen(list));
    check_fails(p, CORED_E_FORMAT, NULL, NULL);
    p = tpath("list.ffconcat");
    snprintf(list, sizeof list, "ffconcat version 1.0\nfile small.avi\n");
    write_bytes(p, list, strlen(list));
    check_fails(p, CORED_E_FORMAT, NULL, NULL);
    p = tpath("list.m3u8");
    snprintf(list, sizeof list, "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\nsmall.avi\n#EXT-X-ENDLIST\n");
    write_bytes(p, list, strlen(list));
    check_fails(p, CORED_E_FORMAT, "refers to other files", NULL);
    CHECK_MSG(n_warnings == 0, "bad files are errors, not warnings: %s", warnings);

    /* API misuse */
    cored_video *v;
    cored_error err;
    if (cored_video_open(&v, tpath("small.avi"), NULL, &err) == 0) {
        cored_video_frame f;
        CHECK(cored_video_next(v, &f, &err) == CORED_E_ARG);
        CHECK(cored_video_start(v, &(cored_video_sampling){.count = 2, .fps = 1}, &err) == CORED_E_ARG);
        CHECK(cored_video_start(v, &(cored_video_sampling){0}, &err) == CORED_E_ARG);
        CHECK(cored_video_start(v, &(cored_video_sampling){.fps = NAN}, &err) == CORED_E_ARG);
        CHECK(cored_video_start(v, &(cored_video_sampling){.count = -1}, &err) == CORED_E_ARG);
        cored_video_close(v);
    }
    CHECK(cored_video_open_memory(&v, (const uint8_t *)"", 0, "mem.mp4", NULL, &err) == CORED_E_FORMAT &&
          strstr(err.msg, "mem.mp4: empty file"));
}

/* A file cut at `fraction`: decoding every frame gives the frames before the cut (m of
   them, each the right one); sampling, by seeking or forward, gives exactly the targets
   among those, and one warning naming the file. */
static void check_truncated(const char *full, const char *cut, double fraction, int count, int64_t nframes)
{
    truncate_copy(full, cut, fraction);
    cored_video *v;
    cored_error err;
    CHECK_MSG(cored_video_open(&v, cut, NULL, &err) == 0, "%s", err.msg);
    if (!v) return;
    sampled a;
    clear_warnings();
    CHECK_MSG(sample(v, (cored_video_sampling){.count = 10000}, &a, &err) == 0, "%s", err.msg);
    int m = a.n;
    CHECK_MSG(m >= 3 && m < nframes && a.damaged, "%s: %d of %lld frames before the cut", cut, m, (long long)nframes);
    for (int i = 0; i < a.n; i++) CHECK_MSG(a.index[i] == i && a.code[i] == i, "%s: frame %d shows %d", cut, i, a.code[i]);
    CHECK_MSG(n_warnings == 1, "%s: one warning: %s", cut, warnings);
    sampled_free(&a);
    int64_t want[64];
    even(want, count, nframes);
    int kept = 0;
    while (kept < count && want[kept] < m) kept++;
    for (int seq = 0; seq < 2; seq++) {
        clear_warnings();
        CHECK_MSG(sample(v, (cored_video_sampling){.count = count, .sequential = seq}, &a, &err) == 0, "%s", err.msg);
        CHECK_MSG(a.n == kept, "%s: %d frames kept of %d, want %d", cut, a.n, count, kept);
        for (int i = 0; i < a.n; i++)
            CHECK_MSG(a.index[i] == want[i] && a.code[i] == want[i], "%s: frame %d is %lld showing %d, want %lld", cut,
                      i, (long long)a.index[i], a.code[i], (long long)want[i]);
        CHECK_MSG(a.damaged, "%s: marked damaged", cut);
        CHECK_MSG(n_warnings == 1 && strstr(warnings, cut) && strstr(warnings, "truncated"),
                  "%s: one warning naming the file: %s", cut, warnings);
        sampled_free(&a);
    }
    cored_video_close(v);
}

static void test_truncated(void)
{
    const char *avi = tpath("long.avi");
    vspec s = {"avi", "mjpeg", 10, 40, 1, 0, 0, 0, 0, 0};
    if (!write_video(avi, &s)) check_truncated(avi, tpath("cut.avi"), 0.55, 20, 40);

    const char *mp4 = tpath("fast.mp4");
    vspec f = {"mp4", "mpeg4", 25, 100, 10, 2, 0, 1, 0, 0};
    if (!write_video(mp4, &f)) check_truncated(mp4, tpath("cut-fast.mp4"), 0.6, 20, 100);

    /* an MP4 with its index at the end, cut: nothing to read, and the message says why */
    const char *slow = tpath("slow.mp4");
    vspec sl = {"mp4", "mpeg4", 25, 50, 10, 0, 0, 0, 0, 0};
    if (!write_video(slow, &sl)) {
        const char *cut = tpath("cut-slow.mp4");
        truncate_copy(slow, cut, 0.5);
        check_fails(cut, CORED_E_FORMAT, "moov atom not found", "cut short");
    }

    /* Cut anywhere: an error naming the file, or the right frames (never others) */
    char files[3][300];
    snprintf(files[0], 300, "%s", avi);
    snprintf(files[1], 300, "%s", mp4);
    snprintf(files[2], 300, "%s", slow);
    int opened = 0, frames = 0;
    for (int k = 0; k < 3; k++)
        for (int i = 1; i < 64; i++) {
            const char *cut = tpath("cut-anywhere");
            truncate_copy(files[k], cut, i / 64.0);
            cored_video *v;
            cored_error err;
            clear_warnings();
            int rc = cored_video_open(&v, cut, NULL, &err);
            if (rc) {
                CHECK_MSG(rc == CORED_E_FORMAT && strstr(err.msg, cut), "%s at %d/64: %s", files[k], i, err.msg);
                continue;
            }
            sampled a;
            for (int seq = 0; seq < 2; seq++) {
                rc = sample(v, (cored_video_sampling){.count = 7, .sequential = seq}, &a, &err);
                CHECK_MSG(rc == 0 || (rc == CORED_E_FORMAT && strstr(err.msg, cut)), "%s at %d/64: %s", files[k], i,
                          err.msg);
                for (int j = 0; j < a.n; j++)
                    CHECK_MSG(a.code[j] == a.index[j], "%s at %d/64: frame %lld shows %d", files[k], i,
                              (long long)a.index[j], a.code[j]);
                frames += a.n;
                sampled_free(&a);
            }
            opened++;
            cored_video_close(v);
        }
    CHECK_MSG(opened > 60 && frames > 300, "cut anywhere: %d of 189 files opened, %d frames checked", opened, frames);
    if (getenv("CORED_TEST_VERBOSE")) fprintf(stderr, "    cut anywhere: %d of 189 opened, %d frames\n", opened, frames);
}

/* The k-th allocation of cored failing, for every k: an out-of-memory error or success,
   never a leak (main counts allocations and frees) or a crash. */
static void test_alloc_failures(void)
{
    const char *p = tpath("alloc.avi");
    vspec s = {"avi", "mjpeg", 10, 6, 1, 0, 90, 0, 0, 0};
    if (write_video(p, &s)) return;
    int failed = 0, k;
    for (k = 1; k < 200; k++) {
        cored_video_frames fr;
        cored_error err;
        cored_alloc_fail_at((uint64_t)k);
        int rc = cored_video_read(p, &(cored_video_sampling){.count = 3}, NULL, &fr, NULL, &err);
        cored_alloc_fail_at(0);
        CHECK_MSG(rc == 0 || rc == CORED_E_NOMEM, "allocation %d failing: %s", k, err.msg);
        if (rc == 0) {
            CHECK(fr.n == 3);
            cored_video_frames_release(&fr);
            break;
        }
        failed++;
    }
    CHECK_MSG(failed >= 3 && k < 200, "%d allocations failed in turn before a read went through", failed);
}

int main(void)
{
    cored_video_init();
    cored_set_log(sink, NULL);
    cored_alloc_stats before = cored_alloc_counts();
    RUN(test_mp4_seek_and_sequential);
    RUN(test_h264_mkv);
    RUN(test_avi_mjpeg_and_memory);
    RUN(test_raw_stream_counted);
    RUN(test_rotation);
    RUN(test_bad_inputs);
    RUN(test_truncated);
    RUN(test_alloc_failures);
    cored_alloc_stats after = cored_alloc_counts();
    CHECK_MSG(after.allocs - before.allocs == after.frees - before.frees, "every allocation freed (%llu vs %llu)",
              (unsigned long long)(after.allocs - before.allocs), (unsigned long long)(after.frees - before.frees));
    return test_finish();
}
