/* Helpers shared by the safetensors reader and writer (not part of the API). */
#ifndef CORED_ST_INTERNAL_H
#define CORED_ST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define ST_NAME_SHOW 64 /* bytes of a name shown in messages */

/* A name made printable for messages: control bytes escaped, cut at a character boundary. */
const char *cored_st_shown(const char *name, char buf[ST_NAME_SHOW + 16]);

/* Strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF). Returns the index of
   the first bad byte, or n when all is valid. */
size_t cored_st_utf8_check(const unsigned char *s, size_t n);

/* Looks for a name that appears twice among n strings found at base + k * stride. Sets *dup
   to the index of a repeated name (n when all are unique) and, when order is not NULL,
   fills it with the indices sorted by name. Returns -1 when out of memory. */
int cored_st_find_duplicate(const void *base, size_t stride, int n, int *order, int *dup);

/* Little-endian integers, read byte by byte. */
static inline uint16_t cored_st_le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t cored_st_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t cored_st_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = v << 8 | p[k];
    return v;
}

#endif
