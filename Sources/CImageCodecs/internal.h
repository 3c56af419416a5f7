/* Shared by the codec files; not part of the public header. */
#ifndef CIMAGECODECS_INTERNAL_H
#define CIMAGECODECS_INTERNAL_H
#include <stdarg.h>

void mc_set_error(const char *message);
void mc_set_errorf(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Whether `rows` x `row_bytes` of decoded pixels can come from the file at `path` when its data
 * expands at most `ratio` times (compression's limit: deflate ~1032x): 0, or -1 with a
 * "corrupt header" message. Checked before allocating what a header declares. */
#include <stddef.h>
int mc_declared_fits(const char *path, size_t rows, size_t row_bytes, size_t ratio);

/* Bytes of one stored sample of an MC_* type. */
size_t mc_sample_bytes(int type);

#endif
