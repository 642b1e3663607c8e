/*
 * Direct NHWC convolution for few channels (conv_direct.c); conv.c chooses it per shape.
 * groups 1, weights OIHW, the same arguments as cored_conv_forward/backward.
 */
#ifndef CORED_OPS_CONV_DIRECT_H
#define CORED_OPS_CONV_DIRECT_H

#include "ops.h"

/* Workspace (floats) of any of the three below. */
size_t cored_conv_direct_ws_floats(const cored_conv_shape *s);
/* y = act(conv(x, w) + b) (b may be NULL), the activation applied to each output row while
   it is in cache. Kernel up to 8 x 8. */
void cored_conv_direct_forward(float *y, const float *x, const float *w, const float *b,
                               cored_act act, const cored_conv_shape *s, float *ws);
/* dx = (overwritten) input gradient. */
void cored_conv_direct_backward_data(float *dx, const float *dy, const float *w,
                                     const cored_conv_shape *s, float *ws);
/* dw += weight gradient; needs Cout a multiple of 16. */
void cored_conv_direct_backward_weight(float *dw, const float *dy, const float *x,
                                       const cored_conv_shape *s, float *ws);

#endif
