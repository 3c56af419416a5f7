/* C wrappers over zlib, libpng, libjpeg and libtiff for MedSegData. libpng and libjpeg report
 * errors by longjmp, which must not cross Swift frames, so every codec call is wrapped here and
 * returns an error code with a message (mc_last_error) instead. */
#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H
#include <stddef.h>
#include <stdint.h>

const char *mc_last_error(void);

#endif
