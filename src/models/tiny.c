/*
 * `tiny`: a small CNN for tests and the demo. Four conv(3x3, stride 2, pad 1)-BN-ReLU
 * stages (3 -> 32 -> 32 -> 64 -> 64 channels), global average pool, linear to 2 classes.
 * About 66 k parameters and 20 M multiply-adds per 128-px image. The feature tap is bn4's
 * output before its ReLU (64 x 8 x 8 at 128 px), mirroring Xception's tap.
 * PyTorch twin: tools/twins.py (class Tiny), same state_dict names.
 */
#include <stdio.h>

#include "model.h"

static const struct {
    int cout;
} tiny_stages[] = {{32}, {32}, {64}, {64}};

static int tiny_build(cored_model *m, cored_error *err)
{
    (void)err;
    int x = cored_add_input(m, m->size);
    for (int i = 0; i < (int)(sizeof tiny_stages / sizeof tiny_stages[0]); i++) {
        char conv[16], bn[16];
        snprintf(conv, sizeof conv, "conv%d", i + 1);
        snprintf(bn, sizeof bn, "bn%d", i + 1);
        x = cored_add_conv(m, conv, x, tiny_stages[i].cout, 3, 2, 1, 1, 1, 1, 1, 0);
        x = cored_add_bn(m, bn, x, 1e-5f, 0.1f);
        x = cored_add_act(m, LAYER_RELU, x);
    }
    x = cored_add_gap(m, x);
    cored_add_linear(m, "fc", x, 2);
    return CORED_OK;
}

const cored_arch cored_arch_tiny = {
    .name = "tiny", .build = tiny_build, .init = NULL, .tap = "bn4", .head = "fc", .min_size = 16};
