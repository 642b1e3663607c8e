/*
 * Path safety: the rule every command applies before it writes, so that nothing a user
 * gave cored is destroyed by it, and the lock that keeps two writers out of one folder.
 *
 * Paths are compared resolved: the part of a path that exists through the kernel
 * (realpath: symbolic links, ".", ".."), the part that does not exist yet lexically, so
 * "runs/../data/A" and a link into the data set are seen for what they are. Two paths are
 * the same file when device and inode are (hard links, symbolic links, bind mounts).
 *
 * The lock is an advisory flock on DIR/.cored.lock, which holds the pid of its holder for
 * the message of a refused second writer. The kernel releases it when the holder exits,
 * also on kill -9, so a lock never outlives its run; the file itself stays. On a file
 * system without locks the run goes on with a warning rather than not at all.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

#define LOCK_NAME ".cored.lock"

/* The resolved absolute form of path into out (PATH_MAX bytes); -1 when it cannot be
   resolved (too long, a component that is not a folder, no permission). */
static int resolve(const char *path, char *out)
{
    char abs[PATH_MAX], cwd[PATH_MAX];
    int w = path[0] == '/' ? snprintf(abs, sizeof abs, "%s", path)
            : getcwd(cwd, sizeof cwd) ? snprintf(abs, sizeof abs, "%s/%s", cwd, path)
                                      : -1;
    if (w < 0 || (size_t)w >= sizeof abs) return -1;
    /* the longest prefix that exists, through realpath */
    size_t cut = strlen(abs);
    for (;;) {
        char c = abs[cut];
        abs[cut] = '\0';
        char *r = realpath(cut ? abs : "/", out);
        abs[cut] = c;
        if (r) break;
        if (errno != ENOENT) return -1;
        while (cut > 0 && abs[cut - 1] != '/') cut--;
        if (cut == 0) return -1;
        cut--;
    }
    /* the rest, lexically: nothing of it exists, so no link can change its meaning */
    size_t len = strlen(out);
    for (const char *p = abs + cut; *p;) {
        while (*p == '/') p++;
        const char *e = p;
        while (*e && *e != '/') e++;
        size_t n = (size_t)(e - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            while (len > 1 && out[len - 1] != '/') len--;
            if (len > 1) len--;
            out[len] = '\0';
        } else if (n && !(n == 1 && p[0] == '.')) {
            if (len + 1 + n >= PATH_MAX) return -1;
            if (len > 1) out[len++] = '/';
            memcpy(out + len, p, n);
            len += n;
            out[len] = '\0';
        }
        p = e;
    }
    return 0;
}

/* When `inner` (resolved) is `outer` (resolved) or lies below it: what follows outer in it
   ("" when equal); otherwise NULL. */
static const char *below(const char *outer, const char *inner)
{
    size_t n = strlen(outer);
    if (n == 1) return inner[1] ? inner + 1 : ""; /* outer is "/" */
    if (strncmp(outer, inner, n) != 0) return NULL;
    if (inner[n] == '\0') return "";
    return inner[n] == '/' ? inner + n + 1 : NULL;
}

static int is_output(cored_path_role r)
{
    return r == CORED_PATH_OUTPUT || r == CORED_PATH_OUTPUT_DIR || r == CORED_PATH_REPLACED_DIR;
}

static int is_read_tree(cored_path_role r) { return r == CORED_PATH_DATA || r == CORED_PATH_SOURCES; }

/* Whether an output `o` at `rel` below the read tree `d` is where d's reader looks: a data
   root's index reads its task folders only, a source tree every file. */
static int read_there(const cored_path_use *d, const cored_path_use *o, const char *rel)
{
    if (d->role == CORED_PATH_DATA && o->role == CORED_PATH_OUTPUT && rel[0] && !strchr(rel, '/')) return 0;
    return 1;
}

int cored_paths_check(const cored_path_use *u, int n, cored_error *err)
{
    char (*res)[PATH_MAX] = cored_alloc(sizeof *res * (size_t)(n ? n : 1));
    unsigned char *ok = cored_calloc((size_t)(n ? n : 1), 1);
    int rc = CORED_OK;
    if (!res || !ok) {
        rc = CORED_FAIL(err, CORED_E_NOMEM, "cannot allocate the path check");
        goto done;
    }
    /* a path that cannot be resolved is left to the command, which names it when it fails */
    for (int i = 0; i < n; i++) ok[i] = u[i].path && u[i].path[0] && resolve(u[i].path, res[i]) == 0;
    for (int o = 0; o < n && !rc; o++) {
        if (!ok[o] || !is_output(u[o].role)) continue;
        struct stat so;
        int o_exists = u[o].role == CORED_PATH_OUTPUT && stat(res[o], &so) == 0;
        for (int i = 0; i < n && !rc; i++) {
            if (!ok[i] || is_output(u[i].role)) continue;
            const char *rel;
            struct stat si;
            if (is_read_tree(u[i].role) && (rel = below(res[i], res[o])) && read_there(&u[i], &u[o], rel)) {
                rc = CORED_FAIL(err, CORED_E_ARG, "%s %s lies inside the %s %s %s, where cored would read it back",
                                u[o].what, u[o].path, u[i].role == CORED_PATH_DATA ? "data folder" : "source folder",
                                u[i].what, u[i].path);
                cored_error_hint(err, "choose %s outside %s", u[o].what, u[i].path);
            } else if (o_exists && u[i].role == CORED_PATH_INPUT && stat(res[i], &si) == 0 &&
                       si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
                rc = CORED_FAIL(err, CORED_E_ARG,
                                "%s %s is the same file as %s %s; cored never writes over a file it reads",
                                u[o].what, u[o].path, u[i].what, u[i].path);
                cored_error_hint(err, "write elsewhere, or copy %s out of the way first", u[i].path);
            } else if (u[o].role == CORED_PATH_REPLACED_DIR && below(res[o], res[i])) {
                rc = CORED_FAIL(err, CORED_E_ARG, "%s %s lies inside %s %s, which this command replaces",
                                u[i].what, u[i].path, u[o].what, u[o].path);
                cored_error_hint(err, "move %s out of %s first, or choose another %s", u[i].path, u[o].path, u[o].what);
            }
        }
    }
done:
    cored_free(res);
    cored_free(ok);
    return rc;
}

/* ---------------------------------------------------------------- the lock */

/* The pid written in a held lock file; 0 while its holder has not written it yet. */
static long lock_holder(int fd)
{
    char buf[32];
    for (int tries = 0; tries < 50; tries++) {
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            long pid = strtol(buf, NULL, 10);
            /* a pid of a process that is gone is the previous holder's: the new holder
               has the lock but has not written its own yet */
            if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) return pid;
        }
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    return 0;
}

int cored_dir_lock(const char *dir, int *fd_out, cored_error *err)
{
    char path[PATH_MAX];
    *fd_out = -1;
    if (cored_path_join(path, sizeof path, dir, LOCK_NAME))
        return CORED_FAIL(err, CORED_E_ARG, "%s: path too long", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return CORED_FAIL(err, CORED_E_IO, "%s: cannot open the lock file: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == ENOLCK || e == EOPNOTSUPP || e == ENOSYS || e == EINVAL) {
            close(fd);
            cored_log(CORED_LOG_WARN, "%s: this file system has no locks (%s); nothing keeps a second run out of %s",
                      path, strerror(e), dir);
            return CORED_OK;
        }
        long pid = e == EWOULDBLOCK ? lock_holder(fd) : 0;
        close(fd);
        if (e != EWOULDBLOCK) return CORED_FAIL(err, CORED_E_IO, "%s: cannot lock: %s", path, strerror(e));
        int rc = pid ? CORED_FAIL(err, CORED_E_BUSY, "%s is in use by another cored run (pid %ld)", dir, pid)
                     : CORED_FAIL(err, CORED_E_BUSY, "%s is in use by another cored run", dir);
        cored_error_hint(err, "wait for it to finish or stop it; two runs in one folder would mix their files");
        return rc;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        int e = errno;
        close(fd);
        return CORED_FAIL(err, CORED_E_IO, "%s: cannot write the lock file: %s", path, strerror(e));
    }
    *fd_out = fd;
    return CORED_OK;
}

void cored_dir_unlock(int fd)
{
    if (fd >= 0) close(fd);
}
