/*
 * Test videos for tests/cli_faces.py, encoded with tests/video_writer.c:
 *
 *   tool_video photo PHOTO OUT FRAMES W H [posterize]   a W x H window panned across a
 *       photograph (JPEG or PNG) from its top-left to its bottom-right corner over FRAMES
 *       frames at 10 fps, so the faces in it move; `posterize` keeps 3 bits per channel (a
 *       visible artefact for a "fake"). The container follows OUT's extension (MPEG-4 part 2
 *       in MP4, MJPEG in AVI, or else Matroska).
 *   tool_video blank OUT FRAMES                         a 160 x 120 grey gradient: no face
 *   tool_video audio OUT                                one second of silence, no video
 *   tool_video huge OUT                                 a Matroska header claiming
 *                                                       100000 x 100000 frames
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "data/data.h"
#include "video_writer.h"

typedef struct {
    const cored_image *img;
    int frames, posterize;
} pan;

static void paint_pan(uint8_t *rgb, int w, int h, int k, void *user)
{
    const pan *p = user;
    double t = p->frames > 1 ? (double)k / (p->frames - 1) : 0;
    int x0 = (int)(t * (p->img->w - w)), y0 = (int)(t * (p->img->h - h));
    for (int y = 0; y < h; y++) {
        memcpy(rgb + (size_t)y * w * 3, p->img->px + ((size_t)(y0 + y) * p->img->w + x0) * 3, (size_t)w * 3);
        if (p->posterize)
            for (int x = 0; x < w * 3; x++) rgb[(size_t)y * w * 3 + x] &= 0xE0;
    }
}

static void paint_blank(uint8_t *rgb, int w, int h, int k, void *user)
{
    (void)user;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = rgb + ((size_t)y * w + x) * 3;
            q[0] = (uint8_t)(x + k), q[1] = (uint8_t)y, q[2] = 128;
        }
}

static void spec_for(const char *out, test_video_spec *s)
{
    const char *dot = strrchr(out, '.');
    if (dot && !strcmp(dot, ".mp4"))
        s->format = "mp4", s->codec = "mpeg4";
    else if (dot && !strcmp(dot, ".avi"))
        s->format = "avi", s->codec = "mjpeg";
    else
        s->format = "matroska", s->codec = "mpeg4";
}

int main(int argc, char **argv)
{
    if (argc >= 7 && !strcmp(argv[1], "photo")) {
        cored_error err = {0};
        uint8_t *data = NULL;
        size_t len = 0;
        cored_image img = {0};
        if (cored_read_file(argv[2], CORED_MAX_FILE_BYTES, &data, &len, &err) ||
            cored_image_decode(&img, data, len, argv[2], 0, &err)) {
            fprintf(stderr, "tool_video: %s\n", err.msg);
            return 1;
        }
        pan p = {&img, atoi(argv[4]), argc > 7 && !strcmp(argv[7], "posterize")};
        int w = atoi(argv[5]), h = atoi(argv[6]);
        w = (w < img.w ? w : img.w) & ~1;
        h = (h < img.h ? h : img.h) & ~1;
        test_video_spec s = {0};
        spec_for(argv[3], &s);
        s.w = w, s.h = h, s.fps = 10, s.frames = p.frames, s.gop = 10;
        int rc = test_video_write(argv[3], &s, paint_pan, &p);
        cored_free(data);
        cored_image_release(&img);
        if (rc) fprintf(stderr, "tool_video: cannot write %s\n", argv[3]);
        return rc ? 1 : 0;
    }
    if (argc == 4 && !strcmp(argv[1], "blank")) {
        test_video_spec s = {0};
        spec_for(argv[2], &s);
        s.w = 160, s.h = 120, s.fps = 10, s.frames = atoi(argv[3]), s.gop = 10;
        return test_video_write(argv[2], &s, paint_blank, NULL) ? 1 : 0;
    }
    if (argc == 3 && !strcmp(argv[1], "audio")) return test_audio_write(argv[2]) ? 1 : 0;
    if (argc == 3 && !strcmp(argv[1], "huge")) {
        test_video_spec s = {"matroska", "mjpeg", 160, 120, 10, 3, 1, 0, 0, 0, 100000, 100000};
        return test_video_write(argv[2], &s, paint_blank, NULL) ? 1 : 0;
    }
    fprintf(stderr, "usage: tool_video photo PHOTO OUT FRAMES W H [posterize] | blank OUT FRAMES | audio OUT | huge OUT\n");
    return 2;
}
