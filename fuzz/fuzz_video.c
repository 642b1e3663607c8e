/*
 * libFuzzer target: the video path on arbitrary bytes — FFmpeg's probing and demuxing
 * behind cored's custom I/O, the header checks, the choice of stream, sampling by count
 * (seeking, then decoding forward only) and by rate, the conversion to RGB and the
 * rotation. Any crash, leak, sanitizer report or hang is a bug (FFmpeg itself is not
 * instrumented: what it does wrong shows only through what it hands back).
 * Seeds: fuzz/corpus/video/ (tiny videos of many containers and codecs, a rotated MP4, a
 * file without video, written by tools/make_video_corpus.sh).
 */
#include <stddef.h>
#include <stdint.h>

#include "media/video.h"

/* A small frame limit keeps each input fast under the sanitizers (the logic is the same
   as with the default). */
#define FUZZ_MAX_PIXELS (1u << 16)

unsigned fuzz_video_sink; /* the pixels are read, so a bad pointer shows */

static void drain(cored_video *v, cored_video_sampling how)
{
    cored_error err;
    cored_video_frame f;
    if (cored_video_start(v, &how, &err) != CORED_OK) return;
    while (cored_video_next(v, &f, &err) == 1) fuzz_video_sink += f.px[0] + f.px[(size_t)f.w * f.h * 3 - 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cored_video_options opts = {.max_pixels = FUZZ_MAX_PIXELS};
    cored_video *v;
    cored_error err;
    if (cored_video_open_memory(&v, data, size, "fuzz.mp4", &opts, &err) != CORED_OK) return 0;
    drain(v, (cored_video_sampling){.count = 4});
    drain(v, (cored_video_sampling){.count = 3, .sequential = 1});
    drain(v, (cored_video_sampling){.fps = 7.5, .max_frames = 5});
    cored_video_close(v);
    return 0;
}
