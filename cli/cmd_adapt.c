/*
 * cored adapt: one continual step — from the previous step's checkpoint (teacher and
 * starting weights) to a new target task, with CoReD or a baseline.
 */
#include <stdio.h>

#include "cli.h"
#include "train_cli.h"

static const cli_doc doc = {
    "adapt",
    "--data DIR --from CKPT --sources A[,B...] --target C --out RUN [--method M] [options]\n"
    "--config FILE --from CKPT --sources A[,B...] --target C --out RUN [options]\n--resume RUN",
    "One continual step: the student starts from CKPT (the previous step's best model), which\n"
    "also serves as the frozen teacher. It trains on DIR/TransferLearning/C/train (or\n"
    "DIR/C/train when that folder is absent) and keeps the epoch with the best sum of\n"
    "validation accuracy over the sources and the target. --sources lists the tasks CKPT has\n"
    "learned, in order (the first is task 1); the model and input size are CKPT's.\n\n"
    "Methods: cored (CE + KD + representation term), tl (fine-tuning), dl (CE + KD), tg (L2-SP\n"
    "towards the teacher weighted by its confidence), lwf (KD at T = 2), ewc (Fisher penalty),\n"
    "replay (a buffer of earlier tasks' images), joint (all seen tasks' training data). ewc,\n"
    "replay and joint read earlier tasks' training images; the others do not.",
    "cored adapt --data data --from runs/blend/best.safetensors --sources Blend --target Warp "
    "--out runs/warp\n"
    "cored adapt --data data --from runs/warp/best.safetensors --sources Blend,Warp --target Texture "
    "--method dl --preset quick --out runs/texture-dl\n"
    "cored adapt --resume runs/warp"};

int cmd_adapt(int argc, char **argv) { return train_cli_command(TRAIN_CMD_ADAPT, &doc, argc, argv); }
