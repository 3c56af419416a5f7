#include "cimagecodecs.h"
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>

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

int mc_declared_fits(const char *path, size_t rows, size_t row_bytes, size_t ratio) {
    struct stat st;
    size_t file_size = stat(path, &st) == 0 && st.st_size > 0 ? (size_t)st.st_size : 0;
    if (row_bytes != 0 && rows > SIZE_MAX / row_bytes) {
        mc_set_errorf("corrupt header: %zu rows of %zu bytes cannot be addressed", rows, row_bytes);
        return -1;
    }
    size_t declared = rows * row_bytes;
    size_t capacity = file_size > SIZE_MAX / ratio ? SIZE_MAX : file_size * ratio;
    if (declared > capacity + 65536) {
        mc_set_errorf("corrupt header: it declares %zu bytes of pixels, more than its %zu bytes of data can hold", declared, file_size);
        return -1;
    }
    return 0;
}
