/* Shared options and execution of the training commands; see train_cli.h. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/core.h"
#include "train_cli.h"

void train_cli_add(train_cli *t, opt_def d)
{
    if (t->n_defs < TRAIN_MAX_OPTS) t->defs[t->n_defs++] = d;
}

void train_cli_init(train_cli *t)
{
    memset(t, 0, sizeof *t);
    cored_train_cfg *c = &t->cfg;
    cored_train_defaults(c);
    t->select_idx = 0;
    t->cutmix_idx = 0;
    t->rep_estimate_idx = c->rep_unbiased;
    t->rep_teacher_idx = c->rep_teacher_running;
    t->rep_norm_idx = c->rep_norm;
    t->log_every = 50;
    opt_def d[] = {
        {"data", OPT_STR, &c->data, 0, 0, NULL, "DIR", "data root in the official CoReD layout"},
        {"model", OPT_STR, &c->arch, 0, 0, NULL, "NAME", "tiny | xception | efficientnet-b0"},
        {"size", OPT_INT, &c->size, 16, 4096, NULL, "PX", "input size (square)"},
        {"epochs", OPT_INT, &c->epochs, 1, 100000, NULL, "N", "epochs"},
        {"batch", OPT_INT, &c->batch, 2, 4096, NULL, "N", "batch size"},
        {"optimizer", OPT_CHOICE, &t->optim_idx, 0, 0, "sgd|adam|adamw", "NAME", "optimiser"},
        {"lr", OPT_FLOAT, &c->optim.lr, 0, 1e3, NULL, "X", "learning rate (constant)"},
        {"momentum", OPT_FLOAT, &c->optim.momentum, 0, 1, NULL, "X", "SGD momentum"},
        {"nesterov", OPT_FLAG, &c->optim.nesterov, 0, 0, NULL, NULL, "Nesterov momentum"},
        {"weight-decay", OPT_FLOAT, &c->optim.weight_decay, 0, 10, NULL, "X", "weight decay"},
        {"seed", OPT_U64, &c->seed, 0, 0, NULL, "S", "random seed (data order, augmentation, init)"},
        {"threads", OPT_INT, &c->threads, 0, 1024, NULL, "N", "compute threads, 0 = all cores"},
        {"loader-threads", OPT_INT, &c->loader_threads, 0, 1024, NULL, "N", "image decoding threads, 0 = automatic"},
        {"deterministic", OPT_FLAG, &c->deterministic, 0, 0, NULL, NULL,
         "accepted for scripts: results never depend on --threads"},
        {"temperature", OPT_FLOAT, &c->temperature, 1e-3, 1e3, NULL, "T", "distillation temperature"},
        {"alpha", OPT_FLOAT, &c->alpha, 0, 1, NULL, "A", "distillation weight"},
        {"freeze-bn", OPT_FLAG, &c->freeze_bn, 0, 0, NULL, NULL,
         "train with BN in eval mode, as the official code effectively does"},
        {"rep", OPT_CHOICE, &t->rep_idx, 0, 0, "scalar|vector", "MODE", "CoReD representation statistic"},
        {"rep-estimate", OPT_CHOICE, &t->rep_estimate_idx, 0, 0, "plain|unbiased", "HOW",
         "CoReD per-cell term: the paper's squared difference, or minus the batch's sampling variance"},
        {"rep-teacher-bn", OPT_CHOICE, &t->rep_teacher_idx, 0, 0, "student|running", "BN",
         "CoReD teacher statistics under the student's BN mode, or running statistics (official code)"},
        {"rep-norm", OPT_CHOICE, &t->rep_norm_idx, 0, 0, "none|batch", "HOW",
         "CoReD term: the paper's sum over cells, or each cell by its share of the batch in units of the "
         "teacher's variance of the statistic"},
        {"rep-weight", OPT_FLOAT, &c->rep_weight, 0, 1e6, NULL, "X",
         "factor of the CoReD term, 0 = the norm's (1 with none, 0.1 with batch)"},
        {"select", OPT_CHOICE, &t->select_idx, 0, 0, "acc|auc", "BY", "model selection: sum of val accuracy or AUC"},
        {"max-per-class", OPT_INT, &c->max_per_class, 0, 100000000, NULL, "N",
         "cap on training images per class, 0 = none"},
        {"cutmix", OPT_CHOICE, &t->cutmix_idx, 0, 0, "opposite|same|none", "MODE",
         "CutMix: opposite-class (p 0.2, Beta(0.5,0.5)) or same-class (p 0.5, Beta(1,1))"},
        {"cutmix-p", OPT_FLOAT, &c->cutmix_p, 0, 1, NULL, "P", "CutMix probability, 0 = the mode's"},
        {"cutmix-beta", OPT_FLOAT, &c->cutmix_beta, 0, 1e3, NULL, "A", "CutMix Beta(A, A) parameter, 0 = the mode's"},
        {"no-flip", OPT_FLAG, &t->no_flip, 0, 0, NULL, NULL, "no horizontal flip"},
        {"lwf-temperature", OPT_FLOAT, &c->lwf_temperature, 1e-3, 1e3, NULL, "T", "LwF temperature"},
        {"lwf-lambda", OPT_FLOAT, &c->lwf_lambda, 0, 1e6, NULL, "X", "LwF distillation weight"},
        {"ewc-lambda", OPT_FLOAT, &c->ewc_lambda, 0, 1e12, NULL, "X", "EWC penalty weight"},
        {"ewc-samples", OPT_INT, &c->ewc_samples, 2, 1000000, NULL, "N", "images per task for EWC's Fisher"},
        {"replay-size", OPT_INT, &c->replay_size, 2, 100000000, NULL, "N", "images in the replay buffer"},
        {"pack", OPT_STR, &t->pack_opt, 0, 0, NULL, "FILE",
         "pack of pre-resized images; default DATA/.cored-pack-SIZE.bin when present; 'none' to decode"},
        {"strict", OPT_FLAG, &c->strict, 0, 0, NULL, NULL, "a corrupt image is an error, not a skipped file"},
        {"save-every", OPT_FLOAT, &c->save_every, 0, 1e9, NULL, "S",
         "seconds between mid-epoch checkpoints, 0 = epoch ends only"},
        {"force", OPT_FLAG, &c->force, 0, 0, NULL, NULL, "replace an existing run folder"},
        {"trace", OPT_STR, &c->trace, 0, 0, NULL, "FILE",
         "append one JSON line per step: loss terms, gradient norms per term, cell statistics (slower)"},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) train_cli_add(t, d[i]);
    t->n_common = t->n_defs;
    train_cli_add(t, (opt_def){"resume", OPT_STR, &t->resume, 0, 0, NULL, "RUN",
                               "continue the interrupted run in RUN with its saved configuration"});
    train_cli_add(t, (opt_def){"quiet", OPT_FLAG, &t->quiet, 0, 0, NULL, NULL, "no progress output"});
    train_cli_add(t, (opt_def){"log-every", OPT_INT, &t->log_every, 1, 1000000, NULL, "N",
                               "without a terminal, one progress line every N batches"});
}

int train_cli_given(const train_cli *t, const char *name)
{
    for (int i = 0; i < t->n_defs; i++)
        if (!strcmp(t->defs[i].name, name)) return t->given[i];
    return 0;
}

const char *cli_abspath(char *buf, size_t n, const char *path)
{
    if (!path) return NULL;
    char cwd[4096];
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
        snprintf(buf, n, "%s", path);
    else
        snprintf(buf, n, "%s/%s", cwd, path);
    return buf;
}

int train_cli_parse(train_cli *t, const char *cmd, int argc, char **argv, void (*usage)(void),
                    const char *const *extra)
{
    int rc = opts_parse_given(cmd, argc, argv, t->defs, t->n_defs, usage, NULL, 0, NULL, t->given);
    if (rc == 1) return -1; /* --help was printed */
    if (rc) return rc;
    if (!t->resume) return 0;
    for (int i = 0; i < t->n_defs; i++) {
        if (!t->given[i] || !strcmp(t->defs[i].name, "threads") || !strcmp(t->defs[i].name, "loader-threads"))
            continue;
        int refused = i < t->n_common;
        for (const char *const *e = extra; e && *e && !refused; e++) refused = !strcmp(*e, t->defs[i].name);
        if (refused)
            return cli_usage_error(cmd, "--resume continues with the run's saved configuration; "
                                        "--%s cannot be given with it", t->defs[i].name);
    }
    return 0;
}

int train_cli_finish(train_cli *t, const char *cmd, char **strings)
{
    cored_train_cfg *c = &t->cfg;
    if (t->resume) {
        cored_error err = {0};
        char path[4096];
        snprintf(path, sizeof path, "%s/config.json", t->resume);
        int threads = c->threads, lthreads = c->loader_threads;
        cored_progress_fn pf = c->progress;
        if (cored_train_cfg_load(c, strings, path, &err)) {
            cli_print_error(&err);
            return 1;
        }
        if (train_cli_given(t, "threads")) c->threads = threads;
        if (train_cli_given(t, "loader-threads")) c->loader_threads = lthreads;
        c->progress = pf;
        c->out = t->resume;
        c->resume = 1;
        return 0;
    }
    cored_optim_cfg o = cored_optim_defaults((cored_opt_kind)t->optim_idx);
    if (t->optim_idx != CORED_OPT_SGD) {
        /* Adam-family defaults unless given */
        if (!train_cli_given(t, "lr")) c->optim.lr = o.lr;
        if (!train_cli_given(t, "momentum")) c->optim.momentum = 0;
        if (!train_cli_given(t, "weight-decay")) c->optim.weight_decay = o.weight_decay;
    }
    c->optim.kind = (cored_opt_kind)t->optim_idx;
    c->rep = t->rep_idx ? CORED_REP_VECTOR : CORED_REP_SCALAR;
    c->rep_unbiased = t->rep_estimate_idx;
    c->rep_teacher_running = t->rep_teacher_idx;
    c->rep_norm = (cored_rep_norm)t->rep_norm_idx;
    c->select_auc = t->select_idx == 1;
    c->cutmix = t->cutmix_idx == 0 ? CORED_CUTMIX_OPPOSITE : t->cutmix_idx == 1 ? CORED_CUTMIX_SAME : CORED_CUTMIX_NONE;
    c->flip = !t->no_flip;
    c->pack = t->pack_opt && !strcmp(t->pack_opt, "none") ? "" : cli_abspath(t->abs_pack, sizeof t->abs_pack, t->pack_opt);
    if (!c->data) return cli_usage_error(cmd, "--data is required");
    c->data = cli_abspath(t->abs_data, sizeof t->abs_data, c->data);
    c->from = cli_abspath(t->abs_from, sizeof t->abs_from, c->from);
    c->init = cli_abspath(t->abs_init, sizeof t->abs_init, c->init);
    c->out = cli_abspath(t->abs_out, sizeof t->abs_out, c->out);
    return 0;
}

void train_cli_print(const train_cli *t, const char *what)
{
    if (t->quiet) return;
    const cored_train_cfg *c = &t->cfg;
    fprintf(stderr, "%s: %s %s -> %s\n", what, cored_method_name(c->method), c->target, c->out);
    fprintf(stderr, "  model %s %d px, batch %d, %d epochs, %s lr %g momentum %g wd %g, seed %llu\n", c->arch,
            c->size, c->batch, c->epochs, cored_optim_kind_name(c->optim.kind), c->optim.lr, c->optim.momentum,
            c->optim.weight_decay, (unsigned long long)c->seed);
    fprintf(stderr, "  data %s", c->data);
    if (c->n_sources) {
        fprintf(stderr, ", sources");
        for (int i = 0; i < c->n_sources; i++) fprintf(stderr, "%s%s", i ? "," : " ", c->sources[i]);
    }
    fprintf(stderr, ", cutmix %s, flip %s, select %s%s%s\n",
            c->cutmix == CORED_CUTMIX_NONE ? "none" : c->cutmix == CORED_CUTMIX_SAME ? "same" : "opposite",
            c->flip ? "on" : "off", c->select_auc ? "auc" : "acc", c->freeze_bn ? ", BN frozen" : "",
            c->resume ? ", resuming" : "");
    if (c->method == CORED_METHOD_CORED || c->method == CORED_METHOD_DL)
        fprintf(stderr, "  T %g, alpha %g%s\n", c->temperature, c->alpha,
                c->method == CORED_METHOD_CORED ? (c->rep == CORED_REP_VECTOR ? ", vector representation" : ", scalar representation") : "");
    if (c->method == CORED_METHOD_LWF) fprintf(stderr, "  LwF T %g, lambda %g\n", c->lwf_temperature, c->lwf_lambda);
    if (c->method == CORED_METHOD_EWC) fprintf(stderr, "  EWC lambda %g, %d images per task\n", c->ewc_lambda, c->ewc_samples);
    if (c->method == CORED_METHOD_REPLAY) fprintf(stderr, "  replay buffer of %d images\n", c->replay_size);
    if (c->from) fprintf(stderr, "  from %s\n", c->from);
    if (c->init) fprintf(stderr, "  init %s%s\n", c->init, c->init_head == CORED_INIT_HEAD_RESET ? " (backbone: classifier re-initialised)" : "");
}

int train_cli_run(train_cli *t, const char *label)
{
    cli_progress pr;
    cli_progress_init(&pr, t->quiet, t->log_every, label);
    t->cfg.progress = cli_progress_fn;
    t->cfg.progress_user = &pr;
    t->cfg.stop = &cli_stop;
    cli_install_signals();
    cored_error err = {0};
    cored_train_result res;
    int rc = cored_train_run(&t->cfg, &res, &err);
    cli_progress_done(&pr);
    if (rc == CORED_E_STOPPED) {
        fprintf(stderr, "cored: %s\n", err.msg);
        return 130;
    }
    if (rc) {
        cli_print_error(&err);
        return 1;
    }
    if (!t->quiet) {
        if (res.best_epoch >= 0)
            fprintf(stderr, "%sdone: best epoch %d (val %s sum %.4f) in %.0f s -> %s/best.safetensors\n", label,
                    res.best_epoch + 1, t->cfg.select_auc ? "AUC" : "accuracy", res.best_score, res.seconds,
                    t->cfg.out);
        else
            fprintf(stderr, "%salready complete: %s\n", label, t->cfg.out);
    }
    return 0;
}
