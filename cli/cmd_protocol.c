/*
 * cored protocol: task 1 once, then every method through every continual step,
 * evaluating every task after every step, and the report with plots.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dist/dist.h"
#include "core/core.h"
#include "train/protocol.h"
#include "train_cli.h"

static const cli_doc doc = {
    "protocol",
    "--data DIR --tasks A,B[,C...] --out RUN [--methods tl,dl,tg,cored] [options]\n--resume RUN",
    "Trains task 1 (A) once, then for every method runs the continual steps A -> B -> C ...\n"
    "(each step starts from the previous step's best model), evaluates every task's test\n"
    "split after every step, and writes RUN/report.md, report.csv, report.json and\n"
    "RUN/plots/ (AUC heat maps, mean AUC after each step, ROC curves of the final models).\n"
    "Methods: cored, tl, dl, tg, lwf, ewc, replay, joint. Settings as for cored train and\n"
    "cored adapt. Ctrl-C stops cleanly; --resume continues where it stopped.",
    "cored protocol --data data --tasks Blend,Warp,Texture,Upsample --preset quick --size 64 --out runs/p\n"
    "cored protocol --data ffpp --tasks DeepFakes,Face2Face,FaceSwap,NeuralTextures --methods tl,cored "
    "--model xception --out runs/ffpp\n"
    "cored protocol --resume runs/p"};

static const char *const split_names[] = {"val", "test", NULL};

int cmd_protocol(int argc, char **argv)
{
    static train_cli t;
    const char *tasks = NULL, *methods = "tl,dl,tg,cored";
    int task1_epochs = 0, split = 1;
    train_cli_init(&t, TRAIN_CMD_PROTOCOL, &doc);
    train_cli_add(&t, (opt_def){"tasks", OPT_STR, &tasks, 0, 0, NULL, "A,B,...", "tasks in order (the first is task 1)",
                                NULL, OPT_REQUIRED});
    train_cli_add(&t, (opt_def){"methods", OPT_STR, &methods, 0, 0, NULL, "M,...", "continual methods to compare"});
    train_cli_add(&t, (opt_def){"task1-epochs", OPT_INT, &task1_epochs, 0, 100000, NULL, "N",
                                "epochs of task 1, 0: --epochs"});
    train_cli_add(&t, (opt_def){"split", OPT_CHOICE, &split, 0, 0, split_names, NULL, "evaluation split"});
    static const char *const own[] = {"tasks", NULL};
    int rc = train_cli_parse(&t, argc, argv, own);
    if (rc) {
        train_cli_free(&t);
        return rc < 0 ? 0 : rc;
    }
    cored_protocol_cfg p;
    memset(&p, 0, sizeof p);
    char *strings[2] = {NULL, NULL}, tbuf[4096], mbuf[512], abs_out[4096];
    cored_error err = {0};
    if (t.resume) {
        if (cored_protocol_load(&p, strings, cli_abspath(abs_out, sizeof abs_out, t.resume), &err)) {
            cli_print_error(&err);
            return 1;
        }
        if (train_cli_given(&t, "threads")) p.base.threads = t.line.threads;
        if (train_cli_given(&t, "loader-threads")) p.base.loader_threads = t.line.loader_threads;
    } else {
        p.base = t.cfg;
        if (strlen(tasks) >= sizeof tbuf || strlen(methods) >= sizeof mbuf)
            return cli_usage_error("protocol", "--tasks or --methods is too long");
        snprintf(tbuf, sizeof tbuf, "%s", tasks);
        p.n_tasks = opts_split(tbuf, p.tasks, CORED_MAX_TASKS);
        if (p.n_tasks < 2) return cli_usage_error("protocol", "--tasks needs 2 to %d task names", CORED_MAX_TASKS);
        snprintf(mbuf, sizeof mbuf, "%s", methods);
        const char *ml[CORED_METHOD_COUNT];
        int nm = opts_split(mbuf, ml, CORED_METHOD_COUNT);
        if (nm < 1) return cli_usage_error("protocol", "--methods needs 1 to %d names", CORED_METHOD_COUNT);
        for (int i = 0; i < nm; i++) {
            int k = cored_method_parse(ml[i]);
            if (k < 0 || k == CORED_METHOD_CE)
                return cli_usage_error("protocol", "unknown method '%s' (cored, tl, dl, tg, lwf, ewc, replay, joint)", ml[i]);
            p.methods[p.n_methods++] = (cored_method)k;
        }
        p.task1_epochs = task1_epochs;
        p.out = p.base.out;
        p.force = p.base.force;
        p.split = split ? CORED_SPLIT_TEST : CORED_SPLIT_VAL;
        p.base.method = CORED_METHOD_CE;
        if (cored_train_resolve(&p.base, &err)) {
            cli_print_error(&err);
            return 1;
        }
    }
    const int root = cored_dist_rank() == 0; /* under mpirun rank 0 reports */
    if (!t.quiet && root) {
        fprintf(stderr, "protocol: %d tasks (", p.n_tasks);
        for (int i = 0; i < p.n_tasks; i++) fprintf(stderr, "%s%s", i ? " -> " : "", p.tasks[i]);
        fprintf(stderr, "), methods");
        for (int i = 0; i < p.n_methods; i++) fprintf(stderr, "%s%s", i ? "," : " ", cored_method_name(p.methods[i]));
        fprintf(stderr, ", model %s %d px, %d epochs per step%s -> %s\n", p.base.arch, p.base.size, p.base.epochs,
                p.resume ? ", resuming" : "", p.out);
    }
    cli_progress pr;
    cli_progress_init(&pr, t.quiet || !root, t.log_every, "  ");
    p.base.progress = root ? cli_progress_fn : NULL;
    p.base.progress_user = &pr;
    p.base.stop = &cli_stop;
    cli_install_signals();
    static char summary[16384];
    rc = cored_protocol_run(&p, summary, sizeof summary, &err);
    cli_progress_done(&pr);
    cored_free(strings[0]);
    cored_free(strings[1]);
    train_cli_free(&t);
    if (rc == CORED_E_STOPPED) {
        fprintf(stderr, "cored: %s\ncored: continue with: cored protocol --resume %s\n", err.msg, p.out);
        return 130;
    }
    if (rc && cored_dist_size() > 1) /* a failing rank ends the whole job, naming itself */
        cored_dist_abort(1, "error: %s%s%s", err.msg[0] ? err.msg : cored_status_str(err.code),
                         err.hint[0] ? "; hint: " : "", err.hint);
    if (rc) {
        cli_print_error(&err);
        return 1;
    }
    if (!root) return 0;
    printf("%s\nreport: %s/report.md (plots in %s/plots)\n", summary, p.out, p.out);
    return 0;
}
