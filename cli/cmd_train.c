/*
 * cored train: task 1 — a detector trained with cross-entropy on DATA/<task>/train,
 * selected by validation accuracy on DATA/<task>/val.
 */
#include <stdio.h>

#include "cli.h"
#include "train_cli.h"

static const cli_doc doc = {
    "train", "--data DIR --task NAME --out RUN [options]\n--config FILE --out RUN [options]\n--resume RUN",
    "Task 1: trains a real/fake detector with cross-entropy on DIR/NAME/train (labels: real = 0,\n"
    "fake = 1), keeps the epoch with the best accuracy on DIR/NAME/val, and writes\n"
    "RUN/{config.json,log.csv,log.jsonl,best.safetensors,last.safetensors,summary.json}.\n"
    "Settings: the defaults (the paper's), then --preset, then --config FILE (e.g. another run's\n"
    "config.json), then the options given. Ctrl-C saves RUN/last.safetensors; --resume RUN\n"
    "continues from it, bit-exactly.",
    "cored train --data data --task Blend --out runs/blend --preset quick\n"
    "cored train --data ffpp --task DeepFakes --model xception --init xception-imagenet.safetensors "
    "--init-head reset --out runs/df\n"
    "cored train --config runs/blend/config.json --seed 2 --out runs/blend-seed2"};

int cmd_train(int argc, char **argv) { return train_cli_command(TRAIN_CMD_TRAIN, &doc, argc, argv); }
