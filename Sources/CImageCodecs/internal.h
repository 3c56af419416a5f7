/* Shared by the codec files; not part of the public header. */
#ifndef CIMAGECODECS_INTERNAL_H
#define CIMAGECODECS_INTERNAL_H
#include <stdarg.h>

void mc_set_error(const char *message);
void mc_set_errorf(const char *format, ...) __attribute__((format(printf, 1, 2)));

#endif
