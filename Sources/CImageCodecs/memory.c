#include "cimagecodecs.h"
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mc_free(void *pointer) { free(pointer); }

void mc_raster_free(mc_raster *raster) {
    if (!raster) return;
    free(raster->pixels);
    free(raster->indices);
    memset(raster, 0, sizeof *raster);
}

void mc_set_errorf(const char *format, ...) {
    char buffer[512];
    va_list args;
    va_start(args, format);
    vsnprintf(buffer, sizeof buffer, format, args);
    va_end(args);
    mc_set_error(buffer);
}
