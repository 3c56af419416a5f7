/* PNG reading and writing over libpng. libpng reports errors by longjmp; it never leaves this file. */
#include "cimagecodecs.h"
#include "internal.h"
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char message[256];
} png_context;

static void on_png_error(png_structp png, png_const_charp message) {
    png_context *ctx = png_get_error_ptr(png);
    if (ctx) snprintf(ctx->message, sizeof ctx->message, "%s", message ? message : "libpng error");
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message; /* warnings (e.g. unknown chunks, iCCP profiles) do not stop a read */
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

int mc_png_read(const char *path, mc_raster *out) {
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        mc_set_errorf("cannot open: %s", strerror(errno));
        return -1;
    }
    unsigned char signature[8];
    if (fread(signature, 1, 8, fp) != 8 || png_sig_cmp(signature, 0, 8) != 0) {
        fclose(fp);
        mc_set_error("not a PNG file");
        return -1;
    }
    png_context ctx;
    memset(&ctx, 0, sizeof ctx);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        if (png) png_destroy_read_struct(&png, NULL, NULL);
        fclose(fp);
        mc_set_error("out of memory");
        return -1;
    }
    /* Everything allocated after setjmp is reached through volatile pointers so the error path
     * can free it. */
    uint8_t *volatile buffer = NULL;
    png_bytep *volatile rows = NULL;
    uint8_t *volatile rgb = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(buffer);
        free(rows);
        free(rgb);
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        mc_set_errorf("corrupt PNG: %s", ctx.message[0] ? ctx.message : "decoding failed");
        return -1;
    }
    png_init_io(png, fp);
    png_set_sig_bytes(png, 8);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    int bit_depth = png_get_bit_depth(png, info), color_type = png_get_color_type(png, info);
    int palette = color_type == PNG_COLOR_TYPE_PALETTE;
    if (palette) {
        png_set_packing(png); /* 1/2/4-bit indices: one per byte */
    } else {
        if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        if (bit_depth == 16 && host_is_little_endian()) png_set_swap(png);
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    int out_bits = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    /* Deflate expands at most ~1032x: a header declaring more pixels than that is a lie. */
    if (mc_declared_fits(path, height, rowbytes, 1032) != 0) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        return -1;
    }
    buffer = malloc(rowbytes * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (!buffer || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < height; y++) rows[y] = buffer + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    out->width = (int)width;
    out->height = (int)height;
    out->pages = 1;
    out->sample_format = 1;
    if (palette) {
        png_colorp colors = NULL;
        int count = 0;
        if (!png_get_PLTE(png, info, &colors, &count)) count = 0;
        rgb = malloc((size_t)width * height * 3);
        if (!rgb) png_error(png, "out of memory");
        /* Indices are packed width per row (rowbytes == width after png_set_packing). */
        uint8_t *indices = malloc((size_t)width * height);
        if (!indices) png_error(png, "out of memory");
        for (png_uint_32 y = 0; y < height; y++) {
            const uint8_t *row = rows[y];
            for (png_uint_32 x = 0; x < width; x++) {
                uint8_t i = row[x];
                size_t p = (size_t)y * width + x;
                indices[p] = i;
                if (i < count) {
                    rgb[3 * p] = colors[i].red;
                    rgb[3 * p + 1] = colors[i].green;
                    rgb[3 * p + 2] = colors[i].blue;
                } else {
                    rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = 0;
                }
            }
        }
        free(buffer);
        buffer = NULL;
        out->channels = 3;
        out->bits = 8;
        out->is_palette = 1;
        out->pixels = rgb;
        out->indices = indices;
        rgb = NULL;
    } else {
        out->channels = channels;
        out->bits = out_bits;
        out->pixels = buffer; /* rows are tightly packed: rowbytes == width * channels * bits / 8 */
        buffer = NULL;
    }
    free(rows);
    rows = NULL;
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    return 0;
}

int mc_png_write(const char *path, const void *pixels, int width, int height, int channels, int bits) {
    if (width <= 0 || height <= 0 || channels < 1 || channels > 4 || (bits != 8 && bits != 16)) {
        mc_set_errorf("cannot write a PNG of %dx%d, %d channels, %d bits", width, height, channels, bits);
        return -1;
    }
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        mc_set_errorf("cannot create: %s", strerror(errno));
        return -1;
    }
    png_context ctx;
    memset(&ctx, 0, sizeof ctx);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        if (png) png_destroy_write_struct(&png, NULL);
        fclose(fp);
        mc_set_error("out of memory");
        return -1;
    }
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        mc_set_errorf("PNG encoding failed: %s", ctx.message[0] ? ctx.message : "libpng error");
        return -1;
    }
    static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                       PNG_COLOR_TYPE_RGB_ALPHA};
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, bits, color_types[channels],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    if (bits == 16 && host_is_little_endian()) png_set_swap(png);
    size_t rowbytes = (size_t)width * channels * (bits / 8);
    rows = malloc(sizeof(png_bytep) * (size_t)height);
    if (!rows) png_error(png, "out of memory");
    for (int y = 0; y < height; y++) rows[y] = (png_bytep)pixels + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    free(rows);
    rows = NULL;
    png_destroy_write_struct(&png, &info);
    if (fclose(fp) != 0) {
        mc_set_errorf("write error: %s", strerror(errno));
        return -1;
    }
    return 0;
}
