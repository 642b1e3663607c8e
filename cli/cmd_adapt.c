/*
 * cored adapt: one continual step — from the previous step's checkpoint (teacher and
 * starting weights) to a new target task, with CoReD or a baseline.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/core.h"
#include "io/checkpoint.h"
#include "train_cli.h"

static void usage(void)
{
    printf("usage: cored adapt --data DIR --from CKPT --sources A[,B...] --target C --out RUN\n"
           "                   [--method cored|tl|dl|tg|lwf|ewc|replay|joint] [options]\n"
           "       cored adapt --resume RUN\n\n"
           "One continual step: the student starts from CKPT (the previous step's best model), which\n"
           "also serves as the frozen teacher. It trains on DIR/TransferLearning/C/train (or\n"
           "DIR/C/train when that folder is absent) and keeps the epoch with the best sum of\n"
           "validation accuracy over the sources and the target. --sources lists the earlier tasks\n"
           "in order (the first is task 1).\n\n"
           "methods: cored (CE + KD + representation loss), tl (fine-tuning), dl (CE + KD),\n"
           "tg (L2-SP towards the teacher weighted by its confidence), lwf (KD at T = 2),\n"
           "ewc (Fisher penalty), replay (a buffer of earlier tasks' images), joint (all seen\n"
           "tasks' training data). ewc, replay and joint read earlier tasks' training images;\n"
           "cored, tl, dl, tg and lwf do not.\n");
}

int cmd_adapt(int argc, char **argv)
{
    static train_cli t;
    const char *from = NULL, *target = NULL, *out = NULL, *sources = NULL;
    train_cli_init(&t);
    static const char *method_list = "cored|tl|dl|tg|lwf|ewc|replay|joint";
    static const int method_map[] = {CORED_METHOD_CORED, CORED_METHOD_TL,   CORED_METHOD_DL,
                                     CORED_METHOD_TG,    CORED_METHOD_LWF,  CORED_METHOD_EWC,
                                     CORED_METHOD_REPLAY, CORED_METHOD_JOINT};
    int method = 0;
    const char *arch = NULL;
    int size = 0;
    train_cli_add(&t, (opt_def){"from", OPT_STR, &from, 0, 0, NULL, "CKPT", "the previous step's best checkpoint"});
    train_cli_add(&t, (opt_def){"sources", OPT_STR, &sources, 0, 0, NULL, "A,B", "earlier tasks, in order"});
    train_cli_add(&t, (opt_def){"target", OPT_STR, &target, 0, 0, NULL, "C", "the new task"});
    train_cli_add(&t, (opt_def){"method", OPT_CHOICE, &method, 0, 0, method_list, "M", "continual method"});
    train_cli_add(&t, (opt_def){"out", OPT_STR, &out, 0, 0, NULL, "RUN", "run folder"});
    for (int i = 0; i < t.n_defs; i++) {
        if (!strcmp(t.defs[i].name, "model")) t.defs[i] = (opt_def){"model", OPT_STR, &arch, 0, 0, NULL, "NAME",
                                                                  "tiny | xception | efficientnet-b0 (default: CKPT's)"};
        if (!strcmp(t.defs[i].name, "size")) t.defs[i] = (opt_def){"size", OPT_INT, &size, 16, 4096, NULL, "PX",
                                                                 "input size (default: CKPT's)"};
    }
    int rc = train_cli_parse(&t, "adapt", argc, argv, usage, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    char *strings = NULL, src_buf[4096], ck_arch[64], ck_tasks[4096];
    int ck_size = 0;
    if (t.resume) {
        if (from || target || out || sources) return cli_usage_error("adapt", "--resume takes the step from the run");
    } else {
        if (!from || !sources || !target || !out)
            return cli_usage_error("adapt", "--from, --sources, --target and --out are required");
        if (strlen(sources) >= sizeof src_buf) return cli_usage_error("adapt", "--sources is too long");
        snprintf(src_buf, sizeof src_buf, "%s", sources);
        t.cfg.n_sources = opts_split(src_buf, t.cfg.sources, CORED_MAX_TASKS - 1);
        if (t.cfg.n_sources < 1) return cli_usage_error("adapt", "--sources needs 1 to %d task names", CORED_MAX_TASKS - 1);
        cored_error err = {0};
        if (cored_checkpoint_peek(from, ck_arch, sizeof ck_arch, &ck_size, &err) ||
            cored_checkpoint_meta(from, "tasks", ck_tasks, sizeof ck_tasks, &err)) {
            cli_print_error(&err);
            return 1;
        }
        /* the sources are the tasks the checkpoint has learned, in order */
        if (ck_tasks[0]) {
            char joined[4096] = "";
            for (int i = 0; i < t.cfg.n_sources; i++) {
                if (i) strncat(joined, ",", sizeof joined - strlen(joined) - 1);
                strncat(joined, t.cfg.sources[i], sizeof joined - strlen(joined) - 1);
            }
            if (strcmp(joined, ck_tasks)) {
                fprintf(stderr, "cored: error: %s has learned the tasks %s, but --sources says %s\n"
                                "  hint: pass --sources %s (the earlier tasks, in order)\n", from, ck_tasks, joined, ck_tasks);
                return 1;
            }
        }
        t.cfg.arch = arch ? arch : ck_arch[0] ? ck_arch : NULL;
        if (!t.cfg.arch) return cli_usage_error("adapt", "%s does not name its model; pass --model", from);
        t.cfg.size = size ? size : ck_size ? ck_size : 128;
        t.cfg.from = from;
        t.cfg.target = target;
        t.cfg.out = out;
        t.cfg.method = (cored_method)method_map[method];
    }
    if ((rc = train_cli_finish(&t, "adapt", &strings))) return rc;
    if (t.cfg.method == CORED_METHOD_CE) {
        cored_free(strings);
        return cli_usage_error("adapt", "%s is a task-1 run; resume it with 'cored train --resume'", t.resume);
    }
    train_cli_print(&t, "adapt");
    rc = train_cli_run(&t, "");
    cored_free(strings);
    return rc;
}
