/* The training commands' options and their execution; see train_cli.h. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/core.h"
#include "train_cli.h"
#include "dist/dist.h"

static const char *preset_names[8];

/* The rows a command must be given (or find in --config). */
static int required_row(train_cmd cmd, const char *key)
{
    static const char *const need[4][6] = {{"data", "target", "out", NULL},
                                           {"data", "from", "sources", "target", "out", NULL},
                                           {"data", "out", NULL},
                                           {NULL}};
    for (int i = 0; need[cmd][i]; i++)
        if (!strcmp(need[cmd][i], key)) return 1;
    return 0;
}

static int row_in_command(train_cmd cmd, const cored_cfg_field *f)
{
    switch (cmd) {
    case TRAIN_CMD_TRAIN: return (f->where & CORED_CFG_TASK1) != 0;
    case TRAIN_CMD_ADAPT: return (f->where & CORED_CFG_STEP) != 0;
    case TRAIN_CMD_PROTOCOL:
        return strcmp(f->key, "sources") && strcmp(f->key, "target") && strcmp(f->key, "from") &&
               strcmp(f->key, "method");
    case TRAIN_CMD_ROWS: return 0;
    }
    return 0;
}

/* "(for dl, cored)" after the help of a row that acts for some methods only. */
static const char *row_help(char *buf, size_t n, const cored_cfg_field *f)
{
    if (!f->methods) return f->help;
    size_t k = (size_t)snprintf(buf, n, "%s, for", f->help);
    for (int m = 0, first = 1; m < CORED_METHOD_COUNT && k < n; m++)
        if (f->methods & (1u << m)) {
            k += (size_t)snprintf(buf + k, n - k, "%s %s", first ? "" : ",", cored_method_name((cored_method)m));
            first = 0;
        }
    return buf;
}

void train_cli_add(train_cli *t, opt_def d)
{
    if (t->n_defs < TRAIN_MAX_OPTS) {
        t->row[t->n_defs] = -1;
        t->defs[t->n_defs++] = d;
    }
}

/* The option of row r writing into dst: its name (the key with '-', "no-" before a switch
   that defaults to on), type, range, help and default as every command states them. */
static opt_def row_opt(int r, void *dst, unsigned flags)
{
    static char names[64][32], helps[64][256];
    int nf;
    const cored_cfg_field *f = &cored_cfg_fields(&nf)[r];
    int negated = f->type == CORED_CFG_BOOL && f->def && !strcmp(f->def, "true");
    char *name = names[r];
    snprintf(name, sizeof names[r], "%s%s", negated ? "no-" : "", f->key);
    for (char *c = name; *c; c++)
        if (*c == '_') *c = '-';
    opt_def d = {name, OPT_STR, dst, f->lo, f->hi, NULL, f->arg, row_help(helps[r], sizeof helps[r], f), f->def_help,
                 flags};
    if (negated) {
        snprintf(helps[r], sizeof helps[r], "without: %s", f->help);
        d.help = helps[r];
    }
    switch (f->type) {
    case CORED_CFG_INT: d.type = OPT_INT; break;
    case CORED_CFG_U64: d.type = OPT_U64; break;
    case CORED_CFG_FLOAT: d.type = OPT_FLOAT; break;
    case CORED_CFG_BOOL: d.type = OPT_FLAG; break;
    case CORED_CFG_STR: d.def = f->def_help ? f->def_help : ""; break;
    case CORED_CFG_ENUM: d.type = OPT_CHOICE, d.choices = f->names; break;
    case CORED_CFG_TASKS: d.def = ""; break;
    }
    return d;
}

opt_def train_cli_opt(const char *key, void *dst, unsigned flags)
{
    int r = cored_cfg_find(key);
    if (r < 0) {
        fprintf(stderr, "cored: internal error: no setting '%s' in the configuration table\n", key);
        abort();
    }
    return row_opt(r, dst, flags);
}

/* The option of row r in t's command: the row's option writing into t->line, train's --task
   for the target, adapt's methods without task 1's. */
static void add_row(train_cli *t, int r, const cored_cfg_field *f)
{
    int i = t->n_defs;
    if (i == TRAIN_MAX_OPTS) return;
    opt_def d = row_opt(r, (char *)&t->line + f->offset, required_row(t->cmd, f->key) ? OPT_REQUIRED : 0);
    if (t->cmd == TRAIN_CMD_TRAIN && !strcmp(f->key, "target")) d.name = "task";
    if (f->type == CORED_CFG_BOOL) d.dst = &t->flag[i];
    if (f->type == CORED_CFG_TASKS) d.dst = &t->sources;
    if (f->offset == offsetof(cored_train_cfg, method) && t->cmd == TRAIN_CMD_ADAPT) {
        /* a step's methods: every one but task 1's "train" */
        d.choices = f->names + 1, d.dst = &t->flag[i];
        t->flag[i] = t->line.method - 1;
    }
    t->row[i] = r;
    t->defs[t->n_defs++] = d;
}

static void init_common(train_cli *t, train_cmd cmd, const cli_doc *doc)
{
    memset(t, 0, sizeof *t);
    t->cmd = cmd;
    t->doc = doc;
    t->preset = -1;
    t->log_every = 50;
    cored_train_defaults(&t->line);
    if (cmd == TRAIN_CMD_TRAIN) t->line.method = CORED_METHOD_CE;
}

void train_cli_init_rows(train_cli *t, const cli_doc *doc, const char *const *keys)
{
    init_common(t, TRAIN_CMD_ROWS, doc);
    int nf;
    const cored_cfg_field *fields = cored_cfg_fields(&nf);
    for (const char *const *k = keys; *k; k++) {
        int r = cored_cfg_find(*k);
        if (r >= 0) add_row(t, r, &fields[r]);
    }
}

void train_cli_init(train_cli *t, train_cmd cmd, const cli_doc *doc)
{
    init_common(t, cmd, doc);
    int np = 0;
    for (const cored_cfg_preset_def *p = cored_cfg_presets; p->name && np < 7; p++) preset_names[np++] = p->name;
    int nf;
    const cored_cfg_field *fields = cored_cfg_fields(&nf);
    for (int r = 0; r < nf; r++)
        if (row_in_command(cmd, &fields[r])) add_row(t, r, &fields[r]);
    train_cli_add(t, (opt_def){"preset", OPT_CHOICE, &t->preset, 0, 0, preset_names, NULL,
                               "named settings under --config and the options: paper (the paper's "
                               "settings, its representation term included), quick (what make demo uses: "
                               "tiny, Adam lr 0.002, batch 32, 20 epochs)",
                               "", 0});
    train_cli_add(t, (opt_def){"config", OPT_STR, &t->config, 0, 0, NULL, "FILE",
                               "settings from a JSON file such as a run's config.json; options given on the "
                               "command line override them",
                               "", OPT_ALONE});
    train_cli_add(t, (opt_def){"resume", OPT_STR, &t->resume, 0, 0, NULL, "RUN",
                               "continue the interrupted run in RUN with its saved settings (--threads, "
                               "--loader-threads, --quiet and --log-every may change)",
                               "", OPT_ALONE});
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

static int fail(const cored_error *err)
{
    cli_print_error(err);
    return 1;
}

/* --resume: only how the process runs may change. */
static int resume_config(train_cli *t)
{
    const char *cmd = t->doc->name;
    int nf;
    const cored_cfg_field *fields = cored_cfg_fields(&nf);
    for (int i = 0; i < t->n_defs; i++) {
        if (!t->given[i] || !strcmp(t->defs[i].name, "resume") || !strcmp(t->defs[i].name, "quiet") ||
            !strcmp(t->defs[i].name, "log-every"))
            continue;
        if (t->row[i] < 0 || !(fields[t->row[i]].where & CORED_CFG_RUNTIME))
            return cli_usage_error(cmd, "--resume continues with the run's saved settings; --%s cannot be given "
                                        "with it", t->defs[i].name);
    }
    if (t->cmd == TRAIN_CMD_PROTOCOL) return 0; /* the protocol folder holds its own */
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", t->resume);
    cored_error err = {0};
    if (cored_train_cfg_load(&t->cfg, &t->strings, path, &err)) return fail(&err);
    if (t->cmd == TRAIN_CMD_TRAIN && t->cfg.method != CORED_METHOD_CE)
        return cli_usage_error(cmd, "%s is a continual step; resume it with 'cored adapt --resume'", t->resume);
    if (t->cmd == TRAIN_CMD_ADAPT && t->cfg.method == CORED_METHOD_CE)
        return cli_usage_error(cmd, "%s is a task-1 run; resume it with 'cored train --resume'", t->resume);
    for (int i = 0; i < t->n_defs; i++) /* for the printout; cored_train_resume applies them */
        if (t->given[i] && t->row[i] >= 0) cored_cfg_copy(&t->cfg, &t->line, t->row[i]);
    t->cfg.out = cli_abspath(t->abs[0], sizeof t->abs[0], t->resume);
    t->cfg.resume = 1;
    return 0;
}

/* The switches and --sources given, into t->line; the rows given. */
static int apply_line(train_cli *t, cored_cfg_mask *given)
{
    const char *cmd = t->doc->name;
    int nf;
    const cored_cfg_field *fields = cored_cfg_fields(&nf);
    *given = 0;
    for (int i = 0; i < t->n_defs; i++) {
        if (!t->given[i] || t->row[i] < 0) continue;
        const cored_cfg_field *f = &fields[t->row[i]];
        *given |= (cored_cfg_mask)1 << t->row[i];
        if (f->type == CORED_CFG_BOOL) *(int *)((char *)&t->line + f->offset) = strcmp(f->def, "true") != 0;
        if (t->defs[i].dst == &t->flag[i] && f->type == CORED_CFG_ENUM) t->line.method = t->flag[i] + 1;
        if (f->type == CORED_CFG_TASKS) {
            if (strlen(t->sources) >= sizeof t->src_buf) return cli_usage_error(cmd, "--sources is too long");
            snprintf(t->src_buf, sizeof t->src_buf, "%s", t->sources);
            t->line.n_sources = opts_split(t->src_buf, t->line.sources, CORED_MAX_TASKS - 1);
            if (t->line.n_sources < 1)
                return cli_usage_error(cmd, "--sources needs 1 to %d task names", CORED_MAX_TASKS - 1);
        }
    }
    return 0;
}

/* argv into t->line: 0, -1 after --help, or the exit code; *given: the rows given. */
static int parse_line(train_cli *t, int argc, char **argv, cored_cfg_mask *given)
{
    int rc = opts_parse(t->doc, argc, argv, t->defs, t->n_defs, NULL, 0, NULL, t->given);
    if (rc) return rc == 1 ? -1 : rc;
    return apply_line(t, given);
}

int train_cli_parse_rows(train_cli *t, int argc, char **argv)
{
    cored_cfg_mask given;
    int rc = parse_line(t, argc, argv, &given);
    if (rc) return rc;
    t->cfg = t->line;
    cored_cfg_finish(&t->cfg, given);
    return 0;
}

int train_cli_parse(train_cli *t, int argc, char **argv, const char *const *own_required)
{
    const char *cmd = t->doc->name;
    cored_cfg_mask line_set;
    int rc = parse_line(t, argc, argv, &line_set);
    if (rc) return rc;
    cli_install_logger(t->quiet);
    int nf;
    const cored_cfg_field *fields = cored_cfg_fields(&nf);
    if (t->resume) return resume_config(t);
    for (const char *const *o = own_required; o && *o; o++)
        if (!train_cli_given(t, *o)) return cli_usage_error(cmd, "--%s is required", *o);

    /* defaults < --preset < --config < the command line */
    cored_error err = {0};
    cored_cfg_mask set = 0;
    cored_train_cfg *c = &t->cfg;
    cored_train_defaults(c);
    if (t->cmd == TRAIN_CMD_TRAIN) c->method = CORED_METHOD_CE;
    if (t->preset >= 0 && cored_cfg_preset(c, preset_names[t->preset], &set, &err)) return fail(&err);
    if (t->config && cored_train_cfg_read(c, &set, &t->strings, t->config, &err)) return fail(&err);
    for (int i = 0; i < t->n_defs; i++)
        if (t->given[i] && t->row[i] >= 0) cored_cfg_copy(c, &t->line, t->row[i]);
    cored_cfg_finish(c, set | line_set);
    if (t->cmd == TRAIN_CMD_TRAIN) {
        if (c->method != CORED_METHOD_CE)
            return cli_usage_error(cmd, "%s holds a continual step's settings (method %s); use 'cored adapt --config'",
                                   t->config, cored_method_name(c->method));
    } else if (t->cmd == TRAIN_CMD_ADAPT && c->method == CORED_METHOD_CE) {
        /* a task-1 run's settings (--method cannot name train), continued by the default method */
        c->method = CORED_METHOD_CORED;
    }
    for (int r = 0; r < nf; r++) {
        const cored_cfg_field *f = &fields[r];
        const void *v = (const char *)c + f->offset;
        int missing = f->type == CORED_CFG_TASKS ? c->n_sources == 0 : f->type == CORED_CFG_STR && !*(const char *const *)v;
        if (row_in_command(t->cmd, f) && required_row(t->cmd, f->key) && missing)
            return cli_usage_error(cmd, "--%s is required", t->cmd == TRAIN_CMD_TRAIN && !strcmp(f->key, "target")
                                                                ? "task" : f->key);
    }
    for (int r = 0, k = 0; r < nf && k < 8; r++) {
        const char **v = (const char **)((char *)c + fields[r].offset);
        if ((fields[r].where & CORED_CFG_PATH) && *v && strcmp(*v, "none")) {
            *v = cli_abspath(t->abs[k], sizeof t->abs[k], *v);
            k++;
        }
    }
    for (int i = 0; i < t->n_defs && t->cmd == TRAIN_CMD_ADAPT; i++)
        if (t->given[i] && t->row[i] >= 0 && !cored_cfg_acts(&fields[t->row[i]], c->method))
            fprintf(stderr, "cored: warning: --%s does not act for method %s\n", t->defs[i].name,
                    cored_method_name(c->method));
    if (t->cmd != TRAIN_CMD_PROTOCOL && cored_train_resolve(c, &err)) return fail(&err);
    return 0;
}

void train_cli_print(const train_cli *t, const char *what)
{
    if (t->quiet) return;
    const cored_train_cfg *c = &t->cfg;
    fprintf(stderr, "%s: %s %s -> %s%s\n", what, cored_method_name(c->method), c->target, c->out,
            c->resume ? " (resuming)" : "");
    int nf, col = 2, first = 1;
    const cored_cfg_field *fields = cored_cfg_fields(&nf);
    fprintf(stderr, " ");
    for (int r = 0; r < nf; r++) {
        const cored_cfg_field *f = &fields[r];
        if (!cored_cfg_acts(f, c->method) || (f->where & CORED_CFG_NOSAVE) || !strcmp(f->key, "target") ||
            !strcmp(f->key, "method"))
            continue;
        char v[4200];
        cored_cfg_format(c, r, v, sizeof v);
        if (!v[0]) continue;
        int len = (int)(strlen(f->key) + strlen(v)) + 3;
        if (!first) fprintf(stderr, ",");
        if (col + len > 100) {
            fprintf(stderr, "\n ");
            col = 2;
        }
        fprintf(stderr, " %s %s", f->key, v);
        col += len;
        first = 0;
    }
    fprintf(stderr, "\n");
}

int train_cli_run(train_cli *t, const char *label)
{
    cli_progress pr;
    const int root = cored_dist_rank() == 0; /* under mpirun rank 0 reports */
    cli_progress_init(&pr, t->quiet || !root, t->log_every, label);
    t->cfg.progress = root ? cli_progress_fn : NULL;
    t->cfg.progress_user = &pr;
    t->cfg.stop = &cli_stop;
    cli_install_signals();
    cored_error err = {0};
    cored_train_result res;
    int rc;
    if (t->cfg.resume) {
        cored_train_cfg how = t->cfg;
        how.threads = train_cli_given(t, "threads") ? t->line.threads : -1;
        how.loader_threads = train_cli_given(t, "loader-threads") ? t->line.loader_threads : -1;
        rc = cored_train_resume(t->cfg.out, &how, &res, &err);
    } else {
        rc = cored_train_run(&t->cfg, &res, &err);
    }
    cli_progress_done(&pr);
    if (rc == CORED_E_STOPPED) {
        fprintf(stderr, "cored: %s\n", err.msg);
        return 130;
    }
    if (rc && cored_dist_size() > 1) /* a failing rank ends the whole job, naming itself */
        cored_dist_abort(1, "error: %s%s%s", err.msg[0] ? err.msg : cored_status_str(err.code),
                         err.hint[0] ? "; hint: " : "", err.hint);
    if (rc) return fail(&err);
    if (!t->quiet && root) {
        if (res.best_epoch >= 0)
            fprintf(stderr, "%sdone: best epoch %d (val %s sum %.4f) in %.0f s -> %s/best.safetensors\n", label,
                    res.best_epoch + 1, t->cfg.select_auc ? "AUC" : "accuracy", res.best_score, res.seconds,
                    t->cfg.out);
        else
            fprintf(stderr, "%salready complete: %s\n", label, t->cfg.out);
    }
    return 0;
}

void train_cli_free(train_cli *t)
{
    cored_free(t->strings);
    t->strings = NULL;
}

int train_cli_command(train_cmd cmd, const cli_doc *doc, int argc, char **argv)
{
    static train_cli t;
    train_cli_init(&t, cmd, doc);
    int rc = train_cli_parse(&t, argc, argv, NULL);
    if (!rc) {
        train_cli_print(&t, doc->name);
        rc = train_cli_run(&t, "");
    }
    train_cli_free(&t);
    return rc < 0 ? 0 : rc;
}
