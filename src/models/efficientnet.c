/*
 * `efficientnet-b0`: lukemelas EfficientNet-PyTorch B0 (width 1.0, depth 1.0), 2 classes.
 *
 *   _conv_stem 3->32 3x3 s2, _bn0, swish;
 *   16 MBConv blocks from the stage table: [_expand_conv 1x1, _bn0, swish] (expand != 1),
 *     _depthwise_conv kxk stride s, _bn1, swish, squeeze-excitation (global pool,
 *     _se_reduce 1x1 with bias to max(1, in*0.25), swish, _se_expand 1x1 with bias,
 *     sigmoid, channel scale), _project_conv 1x1, _bn2, and when stride 1 and in == out:
 *     drop-connect (rate 0.2 * block index / 16, training only) and the identity skip;
 *   _conv_head 1x1 -> 1280, _bn1, swish (the feature tap, 1280 x 4 x 4 at 128 px);
 *   global average pool, dropout 0.2, _fc 1280->2.
 * BN: eps 1e-3, momentum 0.01 in PyTorch's convention (TF's 0.99).
 * Padding is TF "same" computed statically, as Conv2dStaticSamePadding does it, for the
 * image size the PyTorch model is built with (224 for B0) and then applied to whatever
 * size comes in; e.g. a 3x3 stride-2 conv pads (top/left 0, bottom/right 1).
 * Initialisation: PyTorch module defaults (the twin does not re-initialise).
 */
#include <stdio.h>

#include "model.h"

#define EFFNET_BUILD_SIZE 224 /* GlobalParams.image_size of efficientnet-b0 */

static const struct {
    int repeats, kernel, stride, expand, in, out;
} effnet_stages[] = {
    {1, 3, 1, 1, 32, 16},  {2, 3, 2, 6, 16, 24},   {2, 5, 2, 6, 24, 40},  {3, 3, 2, 6, 40, 80},
    {3, 5, 1, 6, 80, 112}, {4, 5, 2, 6, 112, 192}, {1, 3, 1, 6, 192, 320},
};

/* Conv2dStaticSamePadding's padding for kernel k, stride s at static image size `img`. */
static void same_pad(int img, int k, int s, int *lo, int *hi)
{
    int o = (img + s - 1) / s;
    int pad = (o - 1) * s + k - img;
    if (pad < 0) pad = 0;
    *lo = pad / 2;
    *hi = pad - pad / 2;
}

static int conv_same(cored_model *m, const char *name, int x, int cout, int k, int s, int groups,
                     int bias, int img)
{
    int lo, hi;
    same_pad(img, k, s, &lo, &hi);
    return cored_add_conv(m, name, x, cout, k, s, lo, lo, hi, hi, groups, bias);
}

static int mbconv(cored_model *m, int idx, int n_blocks, int inp, int in, int out, int k, int s,
                  int expand, int img)
{
    char name[CORED_NAME_MAX];
#define NAME(leaf) (snprintf(name, sizeof name, "_blocks.%d.%s", idx, leaf), name)
    int x = inp, oup = in * expand;
    if (expand != 1) {
        x = conv_same(m, NAME("_expand_conv"), x, oup, 1, 1, 1, 0, img);
        x = cored_add_bn(m, NAME("_bn0"), x, 1e-3f, 0.01f);
        x = cored_add_act(m, LAYER_SILU, x);
    }
    x = conv_same(m, NAME("_depthwise_conv"), x, oup, k, s, oup, 0, img);
    x = cored_add_bn(m, NAME("_bn1"), x, 1e-3f, 0.01f);
    x = cored_add_act(m, LAYER_SILU, x);
    int squeezed = in / 4 > 1 ? in / 4 : 1;
    int se = cored_add_gap(m, x);
    se = cored_add_conv(m, NAME("_se_reduce"), se, squeezed, 1, 1, 0, 0, 0, 0, 1, 1);
    se = cored_add_act(m, LAYER_SILU, se);
    se = cored_add_conv(m, NAME("_se_expand"), se, oup, 1, 1, 0, 0, 0, 0, 1, 1);
    se = cored_add_act(m, LAYER_SIGMOID, se);
    x = cored_add_chscale(m, x, se);
    x = conv_same(m, NAME("_project_conv"), x, out, 1, 1, 1, 0, (img + s - 1) / s);
    x = cored_add_bn(m, NAME("_bn2"), x, 1e-3f, 0.01f);
#undef NAME
    if (s == 1 && in == out) {
        float rate = 0.2f * (float)idx / (float)n_blocks;
        if (rate > 0.0f) x = cored_add_dropconnect(m, x, rate);
        x = cored_add_add(m, x, inp);
    }
    return x;
}

static int effnet_build(cored_model *m, cored_error *err)
{
    (void)err;
    int n_blocks = 0;
    for (size_t i = 0; i < sizeof effnet_stages / sizeof effnet_stages[0]; i++)
        n_blocks += effnet_stages[i].repeats;
    int img = EFFNET_BUILD_SIZE;
    int x = cored_add_input(m, m->size);
    x = conv_same(m, "_conv_stem", x, 32, 3, 2, 1, 0, img);
    img = (img + 1) / 2;
    x = cored_add_bn(m, "_bn0", x, 1e-3f, 0.01f);
    x = cored_add_act(m, LAYER_SILU, x);
    int idx = 0;
    for (size_t i = 0; i < sizeof effnet_stages / sizeof effnet_stages[0]; i++) {
        int in = effnet_stages[i].in, s = effnet_stages[i].stride;
        for (int r = 0; r < effnet_stages[i].repeats; r++) {
            x = mbconv(m, idx++, n_blocks, x, in, effnet_stages[i].out, effnet_stages[i].kernel, s,
                       effnet_stages[i].expand, img);
            img = (img + s - 1) / s;
            in = effnet_stages[i].out;
            s = 1;
        }
    }
    x = conv_same(m, "_conv_head", x, 1280, 1, 1, 1, 0, img);
    x = cored_add_bn(m, "_bn1", x, 1e-3f, 0.01f);
    x = cored_add_act(m, LAYER_SILU, x);
    cored_layer_set_name(m, x, "features");
    x = cored_add_gap(m, x);
    x = cored_add_dropout(m, x, 0.2f);
    cored_add_linear(m, "_fc", x, 2);
    return CORED_OK;
}

const cored_arch cored_arch_efficientnet_b0 = {.name = "efficientnet-b0",
                                               .build = effnet_build,
                                               .init = NULL,
                                               .tap = "features",
                                               .head = "_fc",
                                               .min_size = 64};
