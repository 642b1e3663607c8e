/* JSON helpers over cJSON; see json.h. */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "json.h"

static int write_text(FILE *f, const char *path, void *user, cored_error *err)
{
    return cored_fwrite_all(f, user, strlen(user), path, err);
}

static char *with_newline(char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s);
    char *t = cored_alloc(n + 2);
    if (t) {
        memcpy(t, s, n);
        t[n] = '\n';
        t[n + 1] = 0;
    }
    cJSON_free(s);
    return t;
}

int cored_json_save(cJSON *j, const char *path, cored_error *err)
{
    char *s = j ? with_newline(cJSON_Print(j)) : NULL;
    cJSON_Delete(j);
    if (!s) return CORED_FAIL(err, CORED_E_NOMEM, "%s: cannot format JSON", path);
    int rc = cored_write_atomic(path, write_text, s, err);
    cored_free(s);
    return rc;
}

cJSON *cored_json_load(const char *path, size_t max_bytes, cored_error *err)
{
    unsigned char *buf = NULL;
    size_t len;
    if (cored_read_file(path, max_bytes, &buf, &len, err)) return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts((const char *)buf, len, &end, 0);
    if (!j)
        CORED_FAIL(err, CORED_E_FORMAT, "%s: not valid JSON (near byte %ld)", path,
                   end ? (long)(end - (const char *)buf) : 0L);
    cored_free(buf);
    return j;
}

cJSON *cored_json_number(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

char *cored_json_line(const cJSON *j) { return with_newline(cJSON_PrintUnformatted(j)); }
