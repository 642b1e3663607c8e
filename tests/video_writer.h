/*
 * Test videos encoded with libavcodec and libavformat, shared by tests/test_media_video.c
 * and tests/tool_video.c (the videos of tests/cli_faces.py): frames painted as RGB by a
 * callback, converted to YUV 4:2:0 (BT.601; limited range, full range for MJPEG), encoded
 * and muxed.
 */
#ifndef CORED_TESTS_VIDEO_WRITER_H
#define CORED_TESTS_VIDEO_WRITER_H

#include <stdint.h>

typedef struct {
    const char *format;   /* muxer ("mp4", "matroska", "avi", "mjpeg") */
    const char *codec;    /* encoder ("mpeg4", "libx264", "mjpeg") */
    int w, h;             /* even */
    int fps, frames, gop, bframes;
    int rotation;         /* clockwise degrees stored as a display matrix */
    int faststart;
    int claim_w, claim_h; /* > 0: the frame size the container's header claims */
} test_video_spec;

/* Paints frame k as RGB8 (w x h, rows packed). */
typedef void (*test_video_paint_fn)(uint8_t *rgb, int w, int h, int k, void *user);

/* 0 on success; -1 when the encoder is missing; 1 when writing failed. */
int test_video_write(const char *path, const test_video_spec *s, test_video_paint_fn paint, void *user);

/* One second of silence (PCM) in Matroska: a file with no video stream. 0 on success. */
int test_audio_write(const char *path);

#endif
