/* JSON files of cored (run configuration, logs, summaries, reports) through cJSON. */
#ifndef CORED_JSON_H
#define CORED_JSON_H

#include <cJSON.h>

#include "cored.h"

/* Writes j pretty-printed with a final newline, atomically; j is deleted in all cases. */
int cored_json_save(cJSON *j, const char *path, cored_error *err);
/* Reads and parses a JSON file of at most max_bytes; NULL with err set on failure. */
cJSON *cored_json_load(const char *path, size_t max_bytes, cored_error *err);
/* A number, or null for NaN (JSON has no NaN). */
cJSON *cored_json_number(double v);
/* j printed on one line plus a newline, in a cored_alloc'd string (NULL when out of memory). */
char *cored_json_line(const cJSON *j);

#endif
