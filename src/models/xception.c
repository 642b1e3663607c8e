/*
 * `xception`: the Cadene/tstandley PyTorch Xception that the official CoReD code uses
 * (pretrainedmodels' xception with `last_linear`), 2 classes.
 *
 *   conv1 3->32 3x3 s2 p0, bn1, relu; conv2 32->64 3x3 p0, bn2, relu;
 *   block1..block12 (table below): rep(x) + skip(x), rep = [ReLU, SeparableConv, BN]*
 *     with the leading ReLU dropped when start_with_relu is false and a 3x3/2 max pool
 *     (pad 1) at the end of strided blocks; skip = 1x1 conv (stride s) + BN when the
 *     shape changes, identity otherwise;
 *   conv3 = SeparableConv 1024->1536, bn3, relu; conv4 = SeparableConv 1536->2048, bn4;
 *   head: relu, global average pool, last_linear 2048->2.
 * SeparableConv = depthwise 3x3 pad 1 (`.conv1`) + pointwise 1x1 (`.pointwise`), no bias.
 * Parameter names are the PyTorch state_dict keys; `<i>` in block<k>.rep.<i> counts the
 * ReLU modules of the Sequential, as PyTorch does. Feature tap: bn4's output before the
 * final ReLU (2048 x 4 x 4 at 128 px). Initialisation as the twin's constructor: conv
 * weights N(0, sqrt(2/(k*k*out))), BN 1/0, linear PyTorch default.
 */
#include <math.h>
#include <stdio.h>

#include "model.h"

static const struct {
    int in, out, reps, stride, start_with_relu, grow_first;
} xception_blocks[] = {
    {64, 128, 2, 2, 0, 1},   {128, 256, 2, 2, 1, 1},  {256, 728, 2, 2, 1, 1},
    {728, 728, 3, 1, 1, 1},  {728, 728, 3, 1, 1, 1},  {728, 728, 3, 1, 1, 1},
    {728, 728, 3, 1, 1, 1},  {728, 728, 3, 1, 1, 1},  {728, 728, 3, 1, 1, 1},
    {728, 728, 3, 1, 1, 1},  {728, 728, 3, 1, 1, 1},  {728, 1024, 2, 2, 1, 0},
};

/* SeparableConv2d: depthwise `<name>.conv1` then pointwise `<name>.pointwise`. */
static int sepconv(cored_model *m, const char *name, int x, int cout)
{
    char n1[CORED_NAME_MAX], n2[CORED_NAME_MAX];
    snprintf(n1, sizeof n1, "%s.conv1", name);
    snprintf(n2, sizeof n2, "%s.pointwise", name);
    int cin = x >= 0 ? m->layers[x].c : 1;
    x = cored_add_conv(m, n1, x, cin, 3, 1, 1, 1, 1, 1, cin, 0);
    return cored_add_conv(m, n2, x, cout, 1, 1, 0, 0, 0, 0, 1, 0);
}

static int block(cored_model *m, int k, int inp)
{
    const int in = xception_blocks[k].in, out = xception_blocks[k].out;
    const int reps = xception_blocks[k].reps, stride = xception_blocks[k].stride;
    /* The unit list as the PyTorch constructor builds it: (cin, cout) per unit. */
    int units[4][2], nu = 0, filters = in;
    if (xception_blocks[k].grow_first) {
        units[nu][0] = in, units[nu][1] = out, nu++;
        filters = out;
    }
    for (int i = 0; i < reps - 1; i++) units[nu][0] = filters, units[nu][1] = filters, nu++;
    if (!xception_blocks[k].grow_first) units[nu][0] = in, units[nu][1] = out, nu++;

    int x = inp, idx = 0; /* idx: position in the Sequential, ReLUs included */
    for (int u = 0; u < nu; u++) {
        char name[CORED_NAME_MAX];
        if (u > 0 || xception_blocks[k].start_with_relu) {
            x = cored_add_act(m, LAYER_RELU, x);
            idx++;
        }
        snprintf(name, sizeof name, "block%d.rep.%d", k + 1, idx++);
        x = sepconv(m, name, x, units[u][1]);
        snprintf(name, sizeof name, "block%d.rep.%d", k + 1, idx++);
        x = cored_add_bn(m, name, x, 1e-5f, 0.1f);
    }
    if (stride != 1) x = cored_add_maxpool(m, x, 3, stride, 1);
    int skip = inp;
    if (in != out || stride != 1) {
        char name[CORED_NAME_MAX];
        snprintf(name, sizeof name, "block%d.skip", k + 1);
        skip = cored_add_conv(m, name, inp, out, 1, stride, 0, 0, 0, 0, 1, 0);
        snprintf(name, sizeof name, "block%d.skipbn", k + 1);
        skip = cored_add_bn(m, name, skip, 1e-5f, 0.1f);
    }
    return cored_add_add(m, x, skip);
}

static int xception_build(cored_model *m, cored_error *err)
{
    (void)err;
    int x = cored_add_input(m, m->size);
    x = cored_add_conv(m, "conv1", x, 32, 3, 2, 0, 0, 0, 0, 1, 0);
    x = cored_add_bn(m, "bn1", x, 1e-5f, 0.1f);
    x = cored_add_act(m, LAYER_RELU, x);
    x = cored_add_conv(m, "conv2", x, 64, 3, 1, 0, 0, 0, 0, 1, 0);
    x = cored_add_bn(m, "bn2", x, 1e-5f, 0.1f);
    x = cored_add_act(m, LAYER_RELU, x);
    for (int k = 0; k < (int)(sizeof xception_blocks / sizeof xception_blocks[0]); k++)
        x = block(m, k, x);
    x = sepconv(m, "conv3", x, 1536);
    x = cored_add_bn(m, "bn3", x, 1e-5f, 0.1f);
    x = cored_add_act(m, LAYER_RELU, x);
    x = sepconv(m, "conv4", x, 2048);
    x = cored_add_bn(m, "bn4", x, 1e-5f, 0.1f);
    x = cored_add_act(m, LAYER_RELU, x);
    x = cored_add_gap(m, x);
    cored_add_linear(m, "last_linear", x, 2);
    return CORED_OK;
}

static void xception_init(cored_model *m, uint64_t seed)
{
    for (int i = 0; i < m->n_params; i++) {
        const cored_param *p = &m->params[i];
        cored_rng r;
        cored_rng_derive(&r, seed, 0x1A17, (uint64_t)i, 0);
        if (p->kind == CORED_PARAM_WEIGHT && p->ndim == 4) {
            double sd = sqrt(2.0 / ((double)p->shape[2] * p->shape[3] * p->shape[0]));
            float *d = cored_model_param_data(m, i);
            for (size_t k = 0; k < p->numel; k++) d[k] = (float)(cored_rng_normal(&r) * sd);
        } else {
            cored_init_param_default(m, i, &r);
        }
    }
}

const cored_arch cored_arch_xception = {.name = "xception",
                                        .build = xception_build,
                                        .init = xception_init,
                                        .tap = "bn4",
                                        .head = "last_linear",
                                        .min_size = 64};
