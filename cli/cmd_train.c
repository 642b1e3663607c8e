/*
 * cored train: task 1 — a detector trained with cross-entropy on DATA/<task>/train,
 * selected by validation accuracy on DATA/<task>/val.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/core.h"
#include "train_cli.h"

static void usage(void)
{
    printf("usage: cored train --data DIR --task NAME --out RUN [options]\n"
           "       cored train --resume RUN\n\n"
           "Task 1: trains a real/fake detector with cross-entropy on DIR/NAME/train (labels:\n"
           "real = 0, fake = 1), keeps the epoch with the best accuracy on DIR/NAME/val, and\n"
           "writes RUN/{config.json,log.csv,log.jsonl,best.safetensors,last.safetensors,summary.json}.\n"
           "Ctrl-C saves RUN/last.safetensors and --resume RUN continues from it (bit-exactly\n"
           "with --threads 1 --deterministic).\n");
}

int cmd_train(int argc, char **argv)
{
    static train_cli t;
    const char *task = NULL, *out = NULL, *init = NULL;
    int init_head = CORED_INIT_HEAD_KEEP;
    train_cli_init(&t);
    train_cli_add(&t, (opt_def){"task", OPT_STR, &task, 0, 0, NULL, "NAME", "the task to learn (a folder of DIR)"});
    train_cli_add(&t, (opt_def){"out", OPT_STR, &out, 0, 0, NULL, "RUN", "run folder"});
    train_cli_add(&t, (opt_def){"init", OPT_STR, &init, 0, 0, NULL, "FILE", "initial weights (default: PyTorch-style init)"});
    train_cli_add(&t, (opt_def){"init-head", OPT_CHOICE, &init_head, 0, 0, "keep|reset", "HOW",
                                "--init's classifier: keep (a complete checkpoint) or reset (a backbone, "
                                "e.g. ImageNet weights: a new 2-class classifier, PyTorch's default init)"});
    int rc = train_cli_parse(&t, "train", argc, argv, usage, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    char *strings = NULL;
    if (t.resume) {
        if (task || out || init || train_cli_given(&t, "init-head")) return cli_usage_error("train", "--resume takes the task and folder from the run");
    } else {
        if (!task || !out) return cli_usage_error("train", "--task and --out are required");
        t.cfg.target = task;
        t.cfg.out = out;
        t.cfg.init = init;
        t.cfg.init_head = (cored_init_head)init_head;
        if (init_head != CORED_INIT_HEAD_KEEP && !init) return cli_usage_error("train", "--init-head needs --init");
        t.cfg.method = CORED_METHOD_CE;
    }
    if ((rc = train_cli_finish(&t, "train", &strings))) return rc;
    if (t.cfg.method != CORED_METHOD_CE) {
        cored_free(strings);
        return cli_usage_error("train", "%s is a continual step; resume it with 'cored adapt --resume'", t.resume);
    }
    train_cli_print(&t, "train");
    rc = train_cli_run(&t, "");
    cored_free(strings);
    return rc;
}
