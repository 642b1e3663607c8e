/*
 * Helpers shared by the source files of the forgery families (src/synth/families*.c);
 * internal to src/synth, not part of the contract in synth.h.
 */
#ifndef CORED_SYNTH_FAMILY_PARTS_H
#define CORED_SYNTH_FAMILY_PARTS_H

#include "synth/synth.h"

/* The manipulated region: centre, semi-axes (px) and angle (rad). */
typedef struct {
    float cx, cy, ax, ay, angle;
} cored_synth_ellipse;

/* U(lo, hi) from r. */
float cored_synth_uniform(cored_rng *r, float lo, float hi);

/* A region of face-part scale near the centre (where an aligned face crop has its face):
   semi-axes 22-38 % of the side, centre within 12 % of the image centre, uniform angle. */
cored_synth_ellipse cored_synth_draw_ellipse(int size, cored_rng *r);

/* Soft ellipse mask m[size*size]: 1 inside, 0 outside, a smoothstep of width `feather` px
   centred on the boundary. */
void cored_synth_ellipse_mask(float *m, int size, const cored_synth_ellipse *e, float feather);

/* The region of the families without a seam: cored_synth_draw_ellipse, then its mask in m
   faded in over U(0.3, 0.5) x its smaller semi-axis (both drawn from r, in that order). */
cored_synth_ellipse cored_synth_soft_region(float *m, int size, cored_rng *r);

/* Fills info's ellipse from e and its strength. */
void cored_synth_set_info(cored_fake_info *info, const cored_synth_ellipse *e, float strength);

/* out = m s' + (1 - m) b per pixel, s' = s + amount (s - blur(s)): s sharpened by an unsharp
   mask of Gaussian sigma px, pasted over the base b with weight m (size*size). blur and tmp:
   size*size*3 floats of scratch. (src/synth/families_more.c) */
void cored_synth_sharpen_paste(float *out, const float *m, const float *b, const float *s, float *blur, float *tmp,
                               int size, float sigma, float amount);

/* The families of src/synth/families_more.c. Each draws its region and parameters from r,
   writes the fake (interleaved RGB float, size x size) to out and the per-pixel weight of the
   manipulation to m, and fills info; b is the base; k = size / 64. smooth, blur and tmp are
   size*size*3 floats of scratch. */
void cored_synth_relight(float *out, float *m, cored_fake_info *info, const float *b, int size, cored_rng *r);
void cored_synth_retouch(float *out, float *m, cored_fake_info *info, const float *b, float *smooth, float *blur,
                         float *tmp, int size, float k, cored_rng *r);

/* The held-out families of src/synth/families_heldout.c, with the same conventions. Inpaint:
   fill, detail and tmp are size*size*3 floats, work at least size*size*4/3 + 8. Resample:
   small, up, tmp and blur are size*size*3 floats. */
void cored_synth_inpaint(float *out, float *m, cored_fake_info *info, const float *b, float *fill, float *work,
                         float *detail, float *tmp, int size, float k, cored_rng *r);
void cored_synth_resample(float *out, float *m, cored_fake_info *info, const float *b, float *small, float *up,
                          float *tmp, float *blur, int size, cored_rng *r);

#endif
