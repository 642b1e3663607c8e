/*
 * Checked file I/O. Reads are bounded and name the file in every error; writes that
 * replace a file are atomic (temporary file in the same folder, fsync, rename, fsync of
 * the folder), so a crash at any moment leaves either the old or the new file, whole.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"

int cored_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int cored_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int cored_read_file(const char *path, size_t max_bytes, unsigned char **data, size_t *len,
                    cored_error *err)
{
    int rc = CORED_OK;
    unsigned char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return CORED_FAIL(err, CORED_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = CORED_FAIL(err, CORED_E_IO, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        rc = CORED_FAIL(err, CORED_E_FORMAT, "%s: file is %lld bytes, more than the limit of %zu",
                        path, (long long)st.st_size, max_bytes);
        goto fail;
    }
    size_t n = (size_t)st.st_size;
    buf = cored_alloc(n + 1);
    if (!buf) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
        goto fail;
    }
    size_t got = fread(buf, 1, n, f);
    if (got != n || ferror(f)) {
        rc = CORED_FAIL(err, CORED_E_IO, "%s: read %zu of %zu bytes: %s", path, got, n,
                        ferror(f) ? strerror(errno) : "file shrank while reading");
        goto fail;
    }
    buf[n] = 0;
    fclose(f);
    *data = buf;
    *len = n;
    return CORED_OK;
fail:
    cored_free(buf);
    fclose(f);
    return rc;
}

int cored_fwrite_all(FILE *f, const void *data, size_t bytes, const char *path, cored_error *err)
{
    if (bytes && fwrite(data, 1, bytes, f) != bytes)
        return CORED_FAIL(err, CORED_E_IO, "%s: write failed: %s", path, strerror(errno));
    return CORED_OK;
}

int cored_append_file(const char *path, const void *data, size_t bytes, cored_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return CORED_FAIL(err, CORED_E_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    const char *p = data;
    int rc = CORED_OK;
    while (bytes && rc == CORED_OK) {
        ssize_t w = write(fd, p, bytes);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            rc = CORED_FAIL(err, CORED_E_IO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "no progress");
        else
            p += w, bytes -= (size_t)w;
    }
    if (rc == CORED_OK && fsync(fd) != 0)
        rc = CORED_FAIL(err, CORED_E_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == CORED_OK)
        rc = CORED_FAIL(err, CORED_E_IO, "%s: close failed: %s", path, strerror(errno));
    return rc;
}

static void split_path(const char *path, char *dir, size_t dn, char *base, size_t bn)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(dir, dn, "%s", dirname(tmp));
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(base, bn, "%s", basename(tmp));
}

static int fsync_dir(const char *dir, cored_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return CORED_FAIL(err, CORED_E_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    /* Some file systems refuse fsync on folders; the rename is still in place. */
    if (rc != 0 && e != EINVAL && e != EROFS)
        return CORED_FAIL(err, CORED_E_IO, "%s: fsync of folder failed: %s", dir, strerror(e));
    return CORED_OK;
}

int cored_write_atomic(const char *path, cored_write_fn fn, void *user, cored_error *err)
{
    static _Atomic unsigned counter;
    char dir[4096], base[1024], tmp[8192];
    if (strlen(path) >= sizeof dir) return CORED_FAIL(err, CORED_E_ARG, "%s: path too long", path);
    split_path(path, dir, sizeof dir, base, sizeof base);
    /* What an earlier writer of this file left when it was killed goes now. */
    cored_clean_stale_temps(dir, base);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%ld.%u", dir, base, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        return CORED_FAIL(err, CORED_E_IO, "%s: cannot create temporary file in %s: %s", path, dir,
                          strerror(errno));
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return CORED_FAIL(err, CORED_E_IO, "%s: %s", path, strerror(e));
    }
    int rc = fn(f, path, user, err);
    if (rc == CORED_OK && fflush(f) != 0)
        rc = CORED_FAIL(err, CORED_E_IO, "%s: write failed: %s", path, strerror(errno));
    if (rc == CORED_OK && fsync(fileno(f)) != 0)
        rc = CORED_FAIL(err, CORED_E_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && rc == CORED_OK)
        rc = CORED_FAIL(err, CORED_E_IO, "%s: close failed: %s", path, strerror(errno));
    if (rc == CORED_OK && rename(tmp, path) != 0)
        rc = CORED_FAIL(err, CORED_E_IO, "%s: cannot rename temporary file into place: %s", path,
                        strerror(errno));
    if (rc != CORED_OK) {
        unlink(tmp);
        return rc;
    }
    return fsync_dir(dir, err);
}

/* Whether a temporary ".<base>.tmp.<pid>.<counter>" (`rest` is "<pid>.<counter>", st its
   stat) was left by a writer that is gone: its pid is not alive (kill(pid, 0) fails with
   ESRCH), or the process that has the pid now started more than 2 s after the file was
   last written, so it cannot be the writer (pid reuse: in a container every run of cored
   may be pid 1). A name of another form, or a start time that /proc cannot tell, keeps the
   file: deleting a live writer's temporary would break its rename. */
static int stale_temp(const char *rest, const struct stat *st)
{
    char *end;
    errno = 0;
    long pid = strtol(rest, &end, 10);
    if (errno || end == rest || pid <= 0 || *end != '.' || !end[1]) return 0;
    for (const char *c = end + 1; *c; c++)
        if (*c < '0' || *c > '9') return 0;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return 1;
    /* alive (or not ours to signal): when did that process start? /proc/<pid>/stat field
       22 is its start in clock ticks after boot; /proc/stat's btime is the boot time. */
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    unsigned long long ticks = 0, btime = 0;
    int field = 2;
    while (p && field < 22) {
        p = strchr(p + 1, ' ');
        if (p && ++field == 22) ticks = strtoull(p + 1, NULL, 10);
    }
    f = fopen("/proc/stat", "r");
    if (!f) return 0;
    while (fgets(buf, sizeof buf, f))
        if (sscanf(buf, "btime %llu", &btime) == 1) break;
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (field != 22 || !ticks || !btime || hz <= 0) return 0;
    double started = (double)btime + (double)ticks / (double)hz;
    return started > (double)st->st_mtim.tv_sec + 2.0;
}

void cored_clean_stale_temps(const char *dir, const char *basename_)
{
    DIR *d = opendir(dir);
    if (!d) return;
    char prefix[1100];
    snprintf(prefix, sizeof prefix, ".%s.tmp.", basename_);
    size_t pl = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, pl) != 0) continue;
        /* Only a gone writer's file is stale: another process (a second `cored pack` of the
           same data) or this one may be writing it right now. */
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(full, &st) == 0 && stale_temp(e->d_name + pl, &st)) unlink(full);
    }
    closedir(d);
}

int cored_path_join(char *out, size_t n, const char *a, const char *b)
{
    int w = snprintf(out, n, "%s/%s", a, b);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

int cored_mkdir_p(const char *path, cored_error *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return CORED_FAIL(err, CORED_E_ARG, "invalid folder path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return CORED_FAIL(err, CORED_E_IO, "%s: cannot create folder: %s", buf, strerror(errno));
        if (!cored_is_dir(buf))
            return CORED_FAIL(err, CORED_E_IO, "%s: exists and is not a folder", buf);
        buf[i] = c;
    }
    return CORED_OK;
}
