/*
 * The embedding API for detection (cored.h): a checkpoint's model in an inference build,
 * scoring one image at a time with the training pipeline's deterministic transform.
 */
#include <string.h>

#include "core/core.h"
#include "data/data.h"
#include "eval/evaluate.h"
#include "io/checkpoint.h"

struct cored_detector {
    cored_model *m;
    int size;
    cored_image img;
    cored_resizer rz;
    uint8_t *rgb;   /* size*size*3 */
    uint8_t *file;  /* grow-only buffer of the file being decoded */
    size_t file_cap;
    float lut[256];
};

int cored_detector_open(cored_detector **out, const char *checkpoint, cored_error *err)
{
    *out = NULL;
    char arch[64];
    int size = 0;
    int rc = cored_checkpoint_peek(checkpoint, arch, sizeof arch, &size, err);
    if (rc) return rc;
    if (!arch[0]) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: the metadata does not say which model it holds", checkpoint);
        cored_error_hint(err, "convert PyTorch checkpoints with tools/pth2safetensors.py");
        return rc;
    }
    cored_detector *d = cored_calloc(1, sizeof *d);
    if (!d) return CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate a detector");
    d->size = size ? size : 128;
    d->rgb = cored_alloc((size_t)d->size * d->size * 3);
    cored_normalize_lut(d->lut);
    if (!d->rgb) rc = CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate a detector");
    if (!rc) rc = cored_model_create(&d->m, arch, d->size, 1, CORED_BUILD_INFER, err);
    if (!rc) rc = cored_model_load(d->m, checkpoint, err);
    if (rc) {
        cored_detector_close(d);
        return rc;
    }
    *out = d;
    return CORED_OK;
}

void cored_detector_close(cored_detector *d)
{
    if (!d) return;
    cored_model_free(d->m);
    cored_image_release(&d->img);
    cored_resizer_release(&d->rz);
    cored_free(d->rgb);
    cored_free(d->file);
    cored_free(d);
}

int cored_detector_size(const cored_detector *d) { return d->size; }

static int score(cored_detector *d, float *p_fake, cored_error *err)
{
    float *x = cored_model_input(d->m);
    for (size_t i = 0; i < (size_t)d->size * d->size * 3; i++) x[i] = d->lut[d->rgb[i]];
    int rc = cored_model_forward(d->m, 1, CORED_FWD_EVAL, 0, err);
    if (!rc) cored_p_fake(p_fake, cored_model_logits(d->m), 1);
    return rc;
}

int cored_detector_score_rgb(cored_detector *d, const uint8_t *rgb, int w, int h, float *p_fake,
                             cored_error *err)
{
    if (w < 1 || h < 1) return CORED_FAIL(err, CORED_E_ARG, "image of %dx%d pixels", w, h);
    int rc = cored_resize_rgb8(d->rgb, d->size, d->size, rgb, w, h, &d->rz, err);
    return rc ? rc : score(d, p_fake, err);
}

int cored_detector_score_file(cored_detector *d, const char *path, float *p_fake, cored_error *err)
{
    int rc = cored_image_read_rgb8(d->rgb, d->size, path, &d->file, &d->file_cap, &d->img, &d->rz, err);
    return rc ? rc : score(d, p_fake, err);
}
