/*
 * The video of the face pipeline's benchmark (tools/bench_faces.py, make bench-faces):
 *
 *   bench_video PHOTO OUT.mp4 [W H FRAMES FPS]      (default 1280 720 75 25)
 *
 * H.264 (libx264, tests/video_writer.c's settings: preset veryfast, CRF 12, GOP 12, two
 * B-frames) in MP4, W x H, FRAMES frames at FPS: a window of the photograph (JPEG or PNG)
 * with the video's aspect ratio, 0.8 of the largest that fits, panned from the photo's
 * top-left to its bottom-right corner and resized to W x H (PIL's bilinear), so the faces
 * in it move as in a hand-held shot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/log.h>

#include "core/core.h"
#include "data/data.h"
#include "../tests/video_writer.h"

typedef struct {
    const cored_image *img;
    int frames, win_w, win_h;
    uint8_t *win;
    cored_resizer rz;
    int failed;
} pan;

static void paint(uint8_t *rgb, int w, int h, int k, void *user)
{
    pan *p = user;
    double t = p->frames > 1 ? (double)k / (p->frames - 1) : 0;
    int x0 = (int)(t * (p->img->w - p->win_w)), y0 = (int)(t * (p->img->h - p->win_h));
    for (int y = 0; y < p->win_h; y++)
        memcpy(p->win + (size_t)y * p->win_w * 3, p->img->px + ((size_t)(y0 + y) * p->img->w + x0) * 3,
               (size_t)p->win_w * 3);
    cored_error err;
    if (cored_resize_rgb8(rgb, w, h, p->win, p->win_w, p->win_h, &p->rz, &err)) {
        fprintf(stderr, "bench_video: %s\n", err.msg);
        p->failed = 1;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 7) {
        fprintf(stderr, "usage: bench_video PHOTO OUT.mp4 [W H FRAMES FPS]\n");
        return 2;
    }
    int w = argc == 7 ? atoi(argv[3]) : 1280, h = argc == 7 ? atoi(argv[4]) : 720;
    int frames = argc == 7 ? atoi(argv[5]) : 75, fps = argc == 7 ? atoi(argv[6]) : 25;
    if (w < 16 || h < 16 || w > 8192 || h > 8192 || (w | h) & 1 || frames < 1 || fps < 1) {
        fprintf(stderr, "bench_video: W and H even in 16..8192, FRAMES and FPS positive\n");
        return 2;
    }
    av_log_set_level(AV_LOG_ERROR); /* libx264's statistics are not wanted here */
    cored_error err = {0};
    uint8_t *data = NULL;
    size_t len = 0;
    cored_image img = {0};
    if (cored_read_file(argv[1], CORED_MAX_FILE_BYTES, &data, &len, &err) ||
        cored_image_decode(&img, data, len, argv[1], 0, &err)) {
        fprintf(stderr, "bench_video: %s\n", err.msg);
        return 1;
    }
    pan p = {.img = &img, .frames = frames};
    /* the largest window of aspect w:h inside the photo, times 0.8 */
    double s = (double)img.w / w < (double)img.h / h ? (double)img.w / w : (double)img.h / h;
    p.win_w = (int)(0.8 * s * w), p.win_h = (int)(0.8 * s * h);
    p.win = malloc((size_t)p.win_w * p.win_h * 3);
    test_video_spec spec = {.format = "mp4", .codec = "libx264", .w = w, .h = h, .fps = fps, .frames = frames,
                            .gop = 12, .bframes = 2};
    int rc = p.win && p.win_w > 0 && p.win_h > 0 ? test_video_write(argv[2], &spec, paint, &p) : 1;
    if (rc < 0) fprintf(stderr, "bench_video: this FFmpeg has no libx264 encoder\n");
    else if (rc || p.failed) fprintf(stderr, "bench_video: cannot write %s\n", argv[2]);
    else
        fprintf(stderr, "bench_video: %s: %dx%d H.264, %d frames at %d fps, a %dx%d window of %s (%dx%d) panned\n",
                argv[2], w, h, frames, fps, p.win_w, p.win_h, argv[1], img.w, img.h);
    free(p.win);
    cored_free(data);
    cored_image_release(&img);
    cored_resizer_release(&p.rz);
    return rc || p.failed ? 1 : 0;
}
