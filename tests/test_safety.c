/*
 * Nothing a user gave cored is destroyed, and every failed write says where and why:
 * write errors (a file size limit standing in for a full disk) name the file and the
 * system's reason in every writer (JSON, appended logs, plots, PNG images); CSV fields are
 * quoted as RFC 4180 says.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

int main(void)
{
    RUN(test_write_errors);
    RUN(test_csv_fields);
    return test_finish();
}
