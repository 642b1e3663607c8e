/*
 * safetensors reader and writer (https://github.com/huggingface/safetensors, format:
 * 8-byte little-endian header length N, N bytes of JSON header, raw little-endian data).
 *
 * The reader validates everything the format requires and refuses every malformed file
 * with a message that starts with the file's path (or label) and names the tensor where
 * there is one: file shorter than 8 bytes, header length beyond the file or above 100 MB,
 * invalid UTF-8, header not a JSON object starting with '{', invalid JSON (strict RFC 8259,
 * \u0000 and lone surrogates refused), trailing garbage other than JSON whitespace (the
 * crate pads with spaces), unknown dtype, missing keys, negative, non-integer or too large
 * shape entries or offsets, more than CORED_ST_MAX_DIMS dimensions, shape x dtype size !=
 * byte length (with overflow checks), offsets beyond the data section, overlapping or
 * gapped tensors (data must be covered exactly, in any order), trailing bytes after the
 * last tensor, duplicate names, `__metadata__` that is not a map of strings. Unknown keys
 * inside a tensor entry are ignored, as the crate does. Malformed files give
 * CORED_E_FORMAT; allocation failures CORED_E_NOMEM; unreadable files CORED_E_IO.
 * F32 is written by default, and integer dtypes (BOOL, U8, ..., U64) from raw buffers; F32,
 * F16, BF16 and F64 are read and converted to float32 (integer dtypes are read for labels).
 */
#ifndef CORED_SAFETENSORS_H
#define CORED_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "cored.h"

#define CORED_ST_MAX_DIMS 8
#define CORED_ST_MAX_HEADER (100u * 1000u * 1000u)

typedef enum {
    CORED_DT_BOOL,
    CORED_DT_U8,
    CORED_DT_I8,
    CORED_DT_I16,
    CORED_DT_U16,
    CORED_DT_I32,
    CORED_DT_U32,
    CORED_DT_I64,
    CORED_DT_U64,
    CORED_DT_F16,
    CORED_DT_BF16,
    CORED_DT_F32,
    CORED_DT_F64,
    CORED_DT_COUNT
} cored_dtype;

const char *cored_dtype_name(cored_dtype dt);   /* "F32", ... */
size_t cored_dtype_size(cored_dtype dt);        /* bytes per element */

typedef struct {
    char *name;
    cored_dtype dtype;
    int ndim;                            /* 0 for a scalar */
    int64_t shape[CORED_ST_MAX_DIMS];
    size_t numel;
    const unsigned char *data;           /* into the file's data section */
    size_t nbytes;
} cored_st_tensor;

typedef struct {
    char *path;                          /* for messages */
    unsigned char *buf;                  /* the whole file (owned) */
    size_t len;
    cored_st_tensor *tensors;            /* in header order */
    int n_tensors;
    char **meta_keys, **meta_vals;       /* __metadata__, in header order */
    int n_meta;
    int *sorted;                         /* tensor indices sorted by name (cored_st_find) */
} cored_st_file;

/* Reads and validates `path`. On failure *out is NULL and err names the problem. */
int cored_st_open(cored_st_file **out, const char *path, cored_error *err);
/* Validates an in-memory file (copied); `label` stands for the path in messages. */
int cored_st_parse(cored_st_file **out, const unsigned char *buf, size_t len, const char *label,
                   cored_error *err);
void cored_st_close(cored_st_file *f); /* NULL-safe */

const cored_st_tensor *cored_st_find(const cored_st_file *f, const char *name);
const char *cored_st_meta(const cored_st_file *f, const char *key); /* NULL when absent */

/* Converts a tensor of any float dtype (F32, F16, BF16, F64) to float32 (F16 and BF16
   exactly, F64 rounded to nearest); `count` must equal numel (else CORED_E_SHAPE). Integer
   dtypes are refused (CORED_E_FORMAT). Non-finite values, and F64 values beyond the float32
   range, are refused with CORED_E_NONFINITE unless allow_nonfinite, with the tensor name
   and the index of the first bad value in the message; `out` may then be partly written. */
int cored_st_to_f32(const cored_st_file *f, const cored_st_tensor *t, float *out, size_t count,
                    int allow_nonfinite, cored_error *err);
/* Converts a tensor of any integer or float dtype to int64. Refused (and `out` then partly
   written): count != numel (CORED_E_SHAPE), BOOL bytes other than 0/1, U64 above INT64_MAX,
   non-integral floats (CORED_E_FORMAT), NaN or inf (CORED_E_NONFINITE). */
int cored_st_to_i64(const cored_st_file *f, const cored_st_tensor *t, int64_t *out, size_t count,
                    cored_error *err);

/* One tensor to write: F32 data, PyTorch shape. Leaving `raw` NULL (zero-initialised)
   writes `data` as F32; a non-NULL `raw` instead writes numel elements of the integer
   dtype `raw_dtype` (BOOL, U8, I8, I16, U16, I32, U32, I64, U64; host byte order in
   memory, little-endian in the file; BOOL elements must be 0 or 1). */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[CORED_ST_MAX_DIMS];
    const float *data;
    const void *raw;
    cored_dtype raw_dtype;
} cored_st_out;

/* Writes the tensors (F32, in the given order, names must be unique) and the metadata
   (meta_kv: key0, value0, key1, value1, ...; n_meta pairs) atomically to `path`:
   temporary file in the same folder, fsync, rename, fsync of the folder. The header is
   byte-identical to the crate's for the same order: `__metadata__` first, no spaces,
   padded with spaces so that the data section starts at a multiple of 8.
   Refused before anything is written: NULL, non-UTF-8, duplicate or "__metadata__" names,
   negative shapes, more than CORED_ST_MAX_DIMS dimensions, NULL data, a raw dtype that is
   not an integer dtype, BOOL bytes other than 0/1 (CORED_E_ARG), and
   non-finite values (CORED_E_NONFINITE: they are never written). On a failure the old file
   at `path` is left as it was (unless only the final fsync of the folder fails) and no
   temporary file remains. */
int cored_st_write(const char *path, const cored_st_out *tensors, int n, const char *const *meta_kv,
                   int n_meta, cored_error *err);
/* The same into a memory buffer (caller frees with cored_free), for tests and fuzzing;
   "<memory>" stands for the path in messages. *buf is untouched on failure. */
int cored_st_serialize(unsigned char **buf, size_t *len, const cored_st_out *tensors, int n,
                       const char *const *meta_kv, int n_meta, cored_error *err);

#endif
