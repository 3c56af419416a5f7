/* GIF reading over giflib: the first frame's palette indices on the logical screen. */
#include "cimagecodecs.h"
#include "internal.h"
#include <gif_lib.h>
#include <stdlib.h>
#include <string.h>

static int fail_gif(GifFileType *gif, int code, uint8_t *canvas, uint8_t *line) {
    free(canvas);
    free(line);
    int ignored = 0;
    if (gif) DGifCloseFile(gif, &ignored);
    const char *text = GifErrorString(code);
    if (code == D_GIF_ERR_READ_FAILED || code == D_GIF_ERR_EOF_TOO_SOON)
        mc_set_errorf("truncated GIF (%s)", text ? text : "unexpected end of file");
    else
        mc_set_errorf("corrupt GIF: %s", text ? text : "decoding failed");
    return -1;
}

int mc_gif_read(const char *path, mc_gif *out) {
    memset(out, 0, sizeof *out);
    int code = 0;
    GifFileType *gif = DGifOpenFileName(path, &code);
    if (!gif) {
        if (code == D_GIF_ERR_NOT_GIF_FILE) {
            mc_set_error("not a GIF file");
            return -1;
        }
        return fail_gif(NULL, code, NULL, NULL);
    }
    uint8_t *canvas = NULL, *line = NULL;
    for (;;) {
        GifRecordType type;
        if (DGifGetRecordType(gif, &type) == GIF_ERROR) return fail_gif(gif, gif->Error, canvas, line);
        if (type == TERMINATE_RECORD_TYPE) {
            int ignored = 0;
            DGifCloseFile(gif, &ignored);
            mc_set_error("GIF holds no image");
            return -1;
        }
        if (type == EXTENSION_RECORD_TYPE) {
            int ext = 0;
            GifByteType *block = NULL;
            if (DGifGetExtension(gif, &ext, &block) == GIF_ERROR) return fail_gif(gif, gif->Error, canvas, line);
            while (block) {
                if (DGifGetExtensionNext(gif, &block) == GIF_ERROR) return fail_gif(gif, gif->Error, canvas, line);
            }
            continue;
        }
        if (type != IMAGE_DESC_RECORD_TYPE) continue;
        if (DGifGetImageDesc(gif) == GIF_ERROR) return fail_gif(gif, gif->Error, canvas, line);
        GifImageDesc d = gif->Image;
        ColorMapObject *map = d.ColorMap ? d.ColorMap : gif->SColorMap;
        if (!map) {
            int ignored = 0;
            DGifCloseFile(gif, &ignored);
            mc_set_error("corrupt GIF: the first frame has no colour table");
            return -1;
        }
        if (d.Width <= 0 || d.Height <= 0) {
            int ignored = 0;
            DGifCloseFile(gif, &ignored);
            mc_set_errorf("corrupt GIF: frame size %d x %d", d.Width, d.Height);
            return -1;
        }
        int width = gif->SWidth > d.Left + d.Width ? gif->SWidth : d.Left + d.Width;
        int height = gif->SHeight > d.Top + d.Height ? gif->SHeight : d.Top + d.Height;
        /* 12-bit LZW codes stand for at most 4096 pixels each. */
        if (mc_declared_fits(path, (size_t)height, (size_t)width, 4096) != 0) {
            int ignored = 0;
            DGifCloseFile(gif, &ignored);
            return -1;
        }
        canvas = malloc((size_t)width * height);
        line = malloc((size_t)d.Width);
        if (!canvas || !line) return fail_gif(gif, D_GIF_ERR_NOT_ENOUGH_MEM, canvas, line);
        memset(canvas, gif->SBackGroundColor, (size_t)width * height);
        /* Interlaced frames store rows in four passes. */
        static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
        int passes = d.Interlace ? 4 : 1;
        for (int p = 0; p < passes; p++) {
            for (int y = d.Interlace ? start[p] : 0; y < d.Height; y += d.Interlace ? step[p] : 1) {
                if (DGifGetLine(gif, line, d.Width) == GIF_ERROR) return fail_gif(gif, gif->Error, canvas, line);
                memcpy(canvas + (size_t)(d.Top + y) * width + d.Left, line, (size_t)d.Width);
            }
        }
        free(line);
        out->width = width;
        out->height = height;
        out->indices = canvas;
        out->palette_entries = map->ColorCount < 256 ? map->ColorCount : 256;
        for (int i = 0; i < out->palette_entries; i++) {
            out->palette[3 * i] = map->Colors[i].Red;
            out->palette[3 * i + 1] = map->Colors[i].Green;
            out->palette[3 * i + 2] = map->Colors[i].Blue;
        }
        int ignored = 0;
        DGifCloseFile(gif, &ignored);
        return 0;
    }
}
