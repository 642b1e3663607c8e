/*
 * libFuzzer target: the image ingest path on arbitrary bytes — content sniffing, JPEG and
 * PNG decoding (every colour type, truncation, bombs) and the PIL-exact resize to two
 * model sizes. Any crash, leak, sanitizer report or hang is a bug.
 * Seeds: fuzz/corpus/image/ (small JPEGs and PNGs of each flavour, one PNG without IEND).
 */
#include <stddef.h>
#include <stdint.h>

#include "data/data.h"

/* Small limits keep each run fast under the sanitizers (the limit logic is the same as
   with the default): a 9 x 60000 image alone costs seconds of resize at -O1 + ASan. */
#define FUZZ_MAX_PIXELS (1u << 18)
#define FUZZ_MAX_RESIZE_PIXELS (1u << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[128 * 128 * 3];
    cored_image img = {0};
    cored_resizer rz = {0};
    cored_error err;
    if (cored_image_decode(&img, data, size, "fuzz", FUZZ_MAX_PIXELS, &err) == CORED_OK &&
        (size_t)img.w * (size_t)img.h <= FUZZ_MAX_RESIZE_PIXELS) {
        cored_resize_rgb8(out, 128, 128, img.px, img.w, img.h, &rz, &err);
        cored_resize_rgb8(out, 17, 5, img.px, img.w, img.h, &rz, &err);
    }
    cored_image_release(&img);
    cored_resizer_release(&rz);
    return 0;
}
