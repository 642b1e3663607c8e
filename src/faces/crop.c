/*
 * The face crop of FaceForensics++'s practice: the detector's box enlarged around its
 * centre to a square, then resized to the model's input (cored_face_crop in cored.h).
 */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "data/data.h"

void cored_face_square(const cored_face *f, float margin, int w, int h, int box[4])
{
    double cx = 0.5 * ((double)f->x0 + f->x1), cy = 0.5 * ((double)f->y0 + f->y1);
    double side = fmax((double)f->x1 - f->x0, (double)f->y1 - f->y0) * margin;
    int s = (int)lround(side);
    if (s < 1) s = 1;
    int x0 = (int)lround(cx - 0.5 * s), y0 = (int)lround(cy - 0.5 * s);
    /* inside the image where the square fits: shifted, not cut */
    if (s <= w) x0 = x0 < 0 ? 0 : x0 + s > w ? w - s : x0;
    if (s <= h) y0 = y0 < 0 ? 0 : y0 + s > h ? h - s : y0;
    box[0] = x0, box[1] = y0, box[2] = x0 + s, box[3] = y0 + s;
}

int cored_face_crop(uint8_t *out, int size, const uint8_t *rgb, int w, int h, int stride, const cored_face *f,
                    float margin, cored_error *err)
{
    if (!out || !rgb || !f || size < 1 || w < 1 || h < 1 || stride < 3 * w || !(margin > 0) || margin > 100)
        return CORED_FAIL(err, CORED_E_ARG, "cored_face_crop: bad arguments");
    int b[4];
    cored_face_square(f, margin, w, h, b);
    const int s = b[2] - b[0];
    uint8_t *sq = cored_alloc((size_t)s * s * 3);
    if (!sq) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate a %dx%d face crop", s, s);
    /* where the square leaves the image (larger than it), black */
    for (int y = 0; y < s; y++) {
        uint8_t *row = sq + (size_t)y * s * 3;
        int sy = b[1] + y;
        if (sy < 0 || sy >= h) {
            memset(row, 0, (size_t)s * 3);
            continue;
        }
        int lo = b[0] < 0 ? -b[0] : 0, hi = b[2] > w ? w - b[0] : s;
        if (lo > 0) memset(row, 0, (size_t)lo * 3);
        if (hi < s) memset(row + (size_t)hi * 3, 0, (size_t)(s - hi) * 3);
        if (hi > lo) memcpy(row + (size_t)lo * 3, rgb + (size_t)sy * stride + (size_t)(b[0] + lo) * 3, (size_t)(hi - lo) * 3);
    }
    cored_resizer rz = {0};
    int rc = cored_resize_rgb8(out, size, size, sq, s, s, &rz, err);
    cored_resizer_release(&rz);
    cored_free(sq);
    return rc;
}
