/*
 * Nothing a user gave cored is destroyed, and every failed write says where and why:
 * write errors (a file size limit standing in for a full disk) name the file and the
 * system's reason in every writer (JSON, appended logs, plots, PNG images); CSV fields are
 * quoted as RFC 4180 says; the path rule of every command (an output never the same file
 * as an input, never where a data or source folder is read, no input inside a replaced
 * folder), through links, hard links and "..", for paths that do not exist yet; the lock
 * of a run folder.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "eval/report.h"
#include "harness.h"
#include "io/json.h"
#include "synth/synth.h"

/* ---------------------------------------------------------------- write errors */

typedef int (*writer)(const char *path, cored_error *err);

static int write_json(const char *path, cored_error *err)
{
    cJSON *j = cJSON_CreateArray();
    for (int i = 0; i < 4000; i++) cJSON_AddItemToArray(j, cJSON_CreateNumber(i));
    return cored_json_save(j, path, err);
}

static int write_log(const char *path, cored_error *err)
{
    static char line[8192];
    memset(line, 'x', sizeof line);
    return cored_append_file(path, line, sizeof line, err);
}

static int write_plot(const char *path, cored_error *err)
{
    const double m[4] = {90, 50, 60, 80};
    const char *tasks[2] = {"A", "B"};
    return cored_plot_heatmap(path, "AUC", m, 2, tasks, err);
}

static int write_png(const char *path, cored_error *err)
{
    enum { W = 256 };
    static uint8_t rgb[W * W * 3];
    uint64_t x = 88172645463325252ull; /* xorshift: noise that deflate cannot shrink */
    for (size_t i = 0; i < sizeof rgb; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        rgb[i] = (uint8_t)x;
    }
    return cored_png_write(path, rgb, W, W, err);
}

/* Each writer, under a 1 KiB file size limit, fails with a message that names its file
   and the system's reason (EFBIG). */
static void test_write_errors(void)
{
    const struct {
        const char *name;
        writer fn;
    } cases[] = {{"config.json", write_json}, {"log.csv", write_log}, {"plot.png", write_plot},
                 {"sheet.png", write_png}};
    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", test_tmpdir(), cases[k].name);
        cored_error err = {0};
        lim = old;
        lim.rlim_cur = 1024;
        CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
        int rc = cases[k].fn(path, &err);
        setrlimit(RLIMIT_FSIZE, &old);
        CHECK_MSG(rc == CORED_E_IO && strstr(err.msg, path) && strstr(err.msg, strerror(EFBIG)),
                  "%s: rc %d, message '%s'", cases[k].name, rc, err.msg);
        CHECK_MSG(cases[k].fn(path, &err) == CORED_OK, "%s without a limit: %s", cases[k].name, err.msg);
    }
    signal(SIGXFSZ, prev);
}

/* ---------------------------------------------------------------- CSV */

static void test_csv_fields(void)
{
    const char *cases[][2] = {{"plain", "plain"},     {"a,b", "\"a,b\""},         {"say \"hi\"", "\"say \"\"hi\"\"\""},
                              {"two\nlines", "\"two\nlines\""}, {"cr\r", "\"cr\r\""}, {"", ""}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cored_sb b = {0};
        cored_sb_csv(&b, "%s", cases[k][0]);
        CHECK_MSG(!b.oom && !strcmp(b.s ? b.s : "", cases[k][1]), "'%s' -> '%s'", cases[k][0], b.s ? b.s : "");
        cored_sb_release(&b);
    }
    cored_sb b = {0};
    cored_sb_csv(&b, "val_acc_%s", "A,\"B\"");
    CHECK_MSG(b.s && !strcmp(b.s, "\"val_acc_A,\"\"B\"\"\""), "a formatted field is quoted whole: %s", b.s);
    cored_sb_release(&b);
}

/* ---------------------------------------------------------------- the path rule */

static char *tpath(const char *rel)
{
    static char buf[8][4200];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", test_tmpdir(), rel);
    return p;
}

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f) fputs("x", f), fclose(f);
}

/* cored_paths_check of one input-like and one output-like use: its status, and whether the
   message names both paths. */
static int check2(const char *in, cored_path_role in_role, const char *out, cored_path_role out_role)
{
    const cored_path_use u[2] = {{in, "--in", in_role}, {out, "--out", out_role}};
    cored_error err = {0};
    int rc = cored_paths_check(u, 2, &err);
    if (rc) CHECK_MSG(strstr(err.msg, in) && strstr(err.msg, out), "the message names both: %s", err.msg);
    return rc;
}

static void test_path_rule(void)
{
    mkdir(tpath("data"), 0755);
    mkdir(tpath("data/A"), 0755);
    mkdir(tpath("data/A/train"), 0755);
    mkdir(tpath("runs"), 0755);
    touch(tpath("w.st"));
    CHECK(link(tpath("w.st"), tpath("hard.st")) == 0);
    CHECK(symlink(tpath("w.st"), tpath("soft.st")) == 0);
    CHECK(symlink(tpath("data/A"), tpath("into-data")) == 0);
    const int I = CORED_PATH_INPUT, D = CORED_PATH_DATA, S = CORED_PATH_SOURCES, O = CORED_PATH_OUTPUT,
              OD = CORED_PATH_OUTPUT_DIR, R = CORED_PATH_REPLACED_DIR;
    const struct {
        const char *in;
        int in_role;
        const char *out;
        int out_role, refused;
    } cases[] = {
        {"w.st", I, "w.st", O, 1},                  /* the same path */
        {"w.st", I, "hard.st", O, 1},               /* a hard link */
        {"soft.st", I, "w.st", O, 1},               /* a symbolic link */
        {"w.st", I, "runs/../w.st", O, 1},          /* ".." */
        {"w.st", I, "runs/w.st", O, 0},             /* another file */
        {"w.st", I, "new/../w.st", O, 1},           /* ".." after a folder that does not exist */
        {"data", D, "data", OD, 1},                 /* the data root itself */
        {"data", D, "data/A/run", OD, 1},           /* a run folder that does not exist yet */
        {"data", D, "data/A/train/x.png", O, 1},    /* a file where the index reads */
        {"data", D, "into-data/x.png", O, 1},       /* through a link into the data set */
        {"data", D, "data/new/deeper/x", O, 1},     /* several folders that do not exist */
        {"data", D, "data/pack.bin", O, 0},         /* directly in the root: the index never reads it */
        {"data", D, "data/runs", OD, 1},            /* a folder there would be a task */
        {"data", D, "runs/r", OD, 0},
        {"data", D, "database/x", O, 0},            /* a name that only starts like the root */
        {"data", S, "data/sheet.png", O, 1},        /* a source folder is read everywhere */
        {"data/A", S, "data", R, 1},                /* an input inside a folder that is replaced */
        {"w.st", I, "runs", R, 0},
        {"", I, "w.st", O, 0},                      /* an empty path is no input */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *in = cases[k].in[0] ? tpath(cases[k].in) : "";
        int rc = check2(in, (cored_path_role)cases[k].in_role, tpath(cases[k].out), (cored_path_role)cases[k].out_role);
        CHECK_MSG((rc == CORED_E_ARG) == cases[k].refused && (rc == 0 || rc == CORED_E_ARG), "%s vs %s: rc %d",
                  cases[k].in, cases[k].out, rc);
    }
    /* a relative path is resolved against the working directory */
    char cwd[4200];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(test_tmpdir()) == 0);
    CHECK(check2("w.st", CORED_PATH_INPUT, "./runs/../hard.st", CORED_PATH_OUTPUT) == CORED_E_ARG);
    CHECK(check2("data", CORED_PATH_DATA, "data/A/out.json", CORED_PATH_OUTPUT) == CORED_E_ARG);
    CHECK(chdir(cwd) == 0);
}

static void test_lock(void)
{
    const char *dir = tpath("run");
    mkdir(dir, 0755);
    int a = -1, b = -1;
    cored_error err = {0};
    CHECK(cored_dir_lock(dir, &a, &err) == CORED_OK && a >= 0);
    char want[64];
    snprintf(want, sizeof want, "pid %ld", (long)getpid());
    /* flock locks belong to open files: a second open in this process is a second writer */
    CHECK(cored_dir_lock(dir, &b, &err) == CORED_E_BUSY && b == -1);
    CHECK_MSG(strstr(err.msg, dir) && strstr(err.msg, want), "the refusal names the folder and the holder: %s", err.msg);
    cored_dir_unlock(a);
    CHECK(cored_dir_lock(dir, &b, &err) == CORED_OK);
    cored_dir_unlock(b);
    CHECK(cored_dir_lock(tpath("missing/run"), &b, &err) == CORED_E_IO && strstr(err.msg, "missing/run"));
}

int main(void)
{
    RUN(test_write_errors);
    RUN(test_csv_fields);
    RUN(test_path_rule);
    RUN(test_lock);
    return test_finish();
}
