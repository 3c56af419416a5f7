/* JPEG reading over libjpeg(-turbo). libjpeg reports errors by longjmp; it never leaves this file. */
#include "cimagecodecs.h"
#include "internal.h"
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int truncated;
} jpeg_error_context;

static void on_jpeg_error(j_common_ptr cinfo) {
    jpeg_error_context *ctx = (jpeg_error_context *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, ctx->message);
    longjmp(ctx->jump, 1);
}

/* Warnings are not printed; benign ones (extraneous bytes) are ignored, but a file that ends
 * early, which libjpeg pads with gray, is reported as truncated. */
static void on_jpeg_emit(j_common_ptr cinfo, int level) {
    jpeg_error_context *ctx = (jpeg_error_context *)cinfo->err;
    if (level < 0) {
        cinfo->err->num_warnings++;
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) ctx->truncated = 1;
    }
}

int mc_jpeg_read(const char *path, mc_raster *out) {
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        mc_set_errorf("cannot open: %s", strerror(errno));
        return -1;
    }
    unsigned char magic[3];
    if (fread(magic, 1, 3, fp) != 3 || magic[0] != 0xFF || magic[1] != 0xD8 || magic[2] != 0xFF) {
        fclose(fp);
        mc_set_error("not a JPEG file");
        return -1;
    }
    rewind(fp);
    struct jpeg_decompress_struct cinfo;
    jpeg_error_context err;
    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = on_jpeg_error;
    err.base.emit_message = on_jpeg_emit;
    uint8_t *volatile pixels = NULL;
    if (setjmp(err.jump)) {
        free(pixels);
        jpeg_destroy_decompress(&cinfo);
        fclose(fp);
        mc_set_errorf("corrupt JPEG: %s", err.message[0] ? err.message : "decoding failed");
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, fp);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        fclose(fp);
        mc_set_error("CMYK JPEG images are not supported");
        return -1;
    }
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int width = (int)cinfo.output_width, height = (int)cinfo.output_height, channels = cinfo.output_components;
    size_t stride = (size_t)width * channels;
    /* A JPEG block of 64 pixels takes a few bits at least: no more than ~1000x its bytes. */
    if (mc_declared_fits(path, (size_t)height, stride, 1024) != 0) {
        jpeg_destroy_decompress(&cinfo);
        fclose(fp);
        return -1;
    }
    pixels = malloc(stride * height);
    if (!pixels) {
        jpeg_destroy_decompress(&cinfo);
        fclose(fp);
        mc_set_error("out of memory");
        return -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    fclose(fp);
    if (err.truncated) {
        free(pixels);
        mc_set_error("truncated JPEG: the file ends before the image data");
        return -1;
    }
    out->width = width;
    out->height = height;
    out->pages = 1;
    out->channels = channels;
    out->bits = 8;
    out->sample_format = 1;
    out->pixels = pixels;
    return 0;
}
