/* TIFF reading (every page) and writing (multi-page) over libtiff. */
#include "cimagecodecs.h"
#include "internal.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

typedef struct {
    char message[256];
} tiff_context;

static int on_tiff_error(TIFF *tif, void *user, const char *module, const char *format, va_list args) {
    (void)tif;
    (void)module;
    tiff_context *ctx = user;
    if (ctx && !ctx->message[0]) vsnprintf(ctx->message, sizeof ctx->message, format, args); /* first = cause */
    return 1;
}

static int on_tiff_warning(TIFF *tif, void *user, const char *module, const char *format, va_list args) {
    (void)tif;
    (void)user;
    (void)module;
    (void)format;
    (void)args; /* unknown tags and the like: not printed */
    return 1;
}

static TIFF *open_tiff(const char *path, const char *mode, tiff_context *ctx) {
    TIFFOpenOptions *options = TIFFOpenOptionsAlloc();
    if (!options) return NULL;
    TIFFOpenOptionsSetErrorHandlerExtR(options, on_tiff_error, ctx);
    TIFFOpenOptionsSetWarningHandlerExtR(options, on_tiff_warning, ctx);
    TIFF *tif = TIFFOpenExt(path, mode, options);
    TIFFOpenOptionsFree(options);
    return tif;
}

/* How one page is stored and how it is delivered. */
typedef struct {
    uint32_t width, height;
    uint16_t spp, bps, format, planar, photometric;
    int tiled;
    int fallback;        /* decode through TIFFReadRGBAImage */
    int palette;         /* 1..8-bit indices into a colour map */
    int out_channels, out_bits, out_format;
} page_layout;

static int read_layout(TIFF *tif, page_layout *l) {
    memset(l, 0, sizeof *l);
    if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &l->width) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &l->height))
        return -1;
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &l->spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &l->bps);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &l->format);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &l->planar);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &l->photometric)) l->photometric = PHOTOMETRIC_MINISBLACK;
    if (l->format == SAMPLEFORMAT_VOID) l->format = SAMPLEFORMAT_UINT;
    l->tiled = TIFFIsTiled(tif);
    int whole_bytes = l->bps == 8 || l->bps == 16 || l->bps == 32 || l->bps == 64;
    int packed = (l->bps == 1 || l->bps == 2 || l->bps == 4) && l->spp == 1;
    int format_ok = l->format == SAMPLEFORMAT_UINT || l->format == SAMPLEFORMAT_INT ||
                    (l->format == SAMPLEFORMAT_IEEEFP && (l->bps == 32 || l->bps == 64));
    int photometric_ok = l->photometric != PHOTOMETRIC_YCBCR && l->photometric != PHOTOMETRIC_SEPARATED &&
                         l->photometric != PHOTOMETRIC_CIELAB && l->photometric != PHOTOMETRIC_LOGL &&
                         l->photometric != PHOTOMETRIC_LOGLUV;
    if ((whole_bytes || packed) && format_ok && photometric_ok && l->spp >= 1) {
        l->out_channels = l->spp;
        l->out_bits = packed ? 8 : l->bps;
        l->out_format = l->format;
        l->palette = l->photometric == PHOTOMETRIC_PALETTE && l->spp == 1 && l->bps <= 8;
    } else {
        l->fallback = 1;
        l->out_channels = (l->spp == 2 || l->spp == 4) ? 4 : 3;
        l->out_bits = 8;
        l->out_format = SAMPLEFORMAT_UINT;
    }
    return 0;
}

/* Copies `count` pixels of one source run (contiguous samples, or one sample plane when
 * `sample` >= 0) into the interleaved page at row y, column x0. */
static void copy_run(const page_layout *l, uint8_t *page, const uint8_t *src, uint32_t y, uint32_t x0,
                     uint32_t count, int sample) {
    size_t bytes = l->out_bits / 8, channels = l->out_channels;
    uint8_t *row = page + ((size_t)y * l->width + x0) * channels * bytes;
    if (l->bps < 8) {
        unsigned mask = (1u << l->bps) - 1;
        for (uint32_t i = 0; i < count; i++) {
            size_t bit = (size_t)i * l->bps;
            row[i] = (uint8_t)((src[bit / 8] >> (8 - l->bps - bit % 8)) & mask);
        }
    } else if (sample < 0) {
        memcpy(row, src, (size_t)count * channels * bytes);
    } else {
        for (uint32_t i = 0; i < count; i++) memcpy(row + (i * channels + (size_t)sample) * bytes, src + i * bytes, bytes);
    }
}

static int read_page(TIFF *tif, const page_layout *l, uint8_t *page, tiff_context *ctx) {
    if (l->fallback) {
        uint32_t *raster = _TIFFmalloc((tmsize_t)((size_t)l->width * l->height * sizeof(uint32_t)));
        if (!raster) return -1;
        if (!TIFFReadRGBAImageOriented(tif, l->width, l->height, raster, ORIENTATION_TOPLEFT, 0)) {
            _TIFFfree(raster);
            return -1;
        }
        size_t n = (size_t)l->width * l->height;
        for (size_t i = 0; i < n; i++) {
            uint32_t p = raster[i];
            uint8_t *d = page + i * l->out_channels;
            d[0] = TIFFGetR(p);
            d[1] = TIFFGetG(p);
            d[2] = TIFFGetB(p);
            if (l->out_channels == 4) d[3] = TIFFGetA(p);
        }
        _TIFFfree(raster);
        return 0;
    }
    int separate = l->planar == PLANARCONFIG_SEPARATE && l->spp > 1;
    int planes = separate ? l->spp : 1;
    if (l->tiled) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
        tmsize_t tile_size = TIFFTileSize(tif), tile_row = TIFFTileRowSize(tif);
        if (tw == 0 || th == 0 || tile_size <= 0) return -1;
        uint8_t *buffer = _TIFFmalloc(tile_size);
        if (!buffer) return -1;
        for (int s = 0; s < planes; s++)
            for (uint32_t ty = 0; ty < l->height; ty += th)
                for (uint32_t tx = 0; tx < l->width; tx += tw) {
                    if (TIFFReadTile(tif, buffer, tx, ty, 0, (uint16_t)s) < 0) {
                        if (!ctx->message[0]) snprintf(ctx->message, sizeof ctx->message, "cannot decode tile");
                        _TIFFfree(buffer);
                        return -1;
                    }
                    uint32_t rows = ty + th > l->height ? l->height - ty : th;
                    uint32_t cols = tx + tw > l->width ? l->width - tx : tw;
                    for (uint32_t r = 0; r < rows; r++)
                        copy_run(l, page, buffer + (size_t)r * tile_row, ty + r, tx, cols, separate ? s : -1);
                }
        _TIFFfree(buffer);
    } else {
        tmsize_t line = TIFFScanlineSize(tif);
        if (line <= 0) return -1;
        uint8_t *buffer = _TIFFmalloc(line);
        if (!buffer) return -1;
        for (int s = 0; s < planes; s++)
            for (uint32_t y = 0; y < l->height; y++) {
                if (TIFFReadScanline(tif, buffer, y, (uint16_t)s) < 0) {
                    if (!ctx->message[0]) snprintf(ctx->message, sizeof ctx->message, "cannot decode row %u", y);
                    _TIFFfree(buffer);
                    return -1;
                }
                copy_run(l, page, buffer, y, 0, l->width, separate ? s : -1);
            }
        _TIFFfree(buffer);
    }
    return 0;
}

static int is_reduced(TIFF *tif) {
    uint32_t subfile = 0;
    return TIFFGetField(tif, TIFFTAG_SUBFILETYPE, &subfile) && (subfile & FILETYPE_REDUCEDIMAGE);
}

/* Opens a file that starts as a TIFF does; NULL with a message otherwise. */
static TIFF *open_for_reading(const char *path, tiff_context *ctx) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        mc_set_errorf("cannot open: %s", strerror(errno));
        return NULL;
    }
    unsigned char magic[4] = {0, 0, 0, 0};
    size_t got = fread(magic, 1, 4, fp);
    fclose(fp);
    int le = magic[0] == 'I' && magic[1] == 'I' && magic[3] == 0 && (magic[2] == 42 || magic[2] == 43);
    int be = magic[0] == 'M' && magic[1] == 'M' && magic[2] == 0 && (magic[3] == 42 || magic[3] == 43);
    if (got != 4 || !(le || be)) {
        mc_set_error("not a TIFF file");
        return NULL;
    }
    memset(ctx, 0, sizeof *ctx);
    TIFF *tif = open_tiff(path, "r", ctx);
    if (!tif) mc_set_errorf("corrupt TIFF: %s", ctx->message[0] ? ctx->message : "cannot read the header");
    return tif;
}

/* Moves to the next directory; 0 after the last one. A chain that points at a directory that
 * cannot be read (a file cut short) is an error, not the end: -1 with a message. */
static int next_directory(TIFF *tif, int page, tiff_context *ctx) {
    if (TIFFLastDirectory(tif)) return 0;
    if (TIFFReadDirectory(tif)) return 1;
    mc_set_errorf("corrupt TIFF: the directory after page %d cannot be read (%s)", page,
                  ctx->message[0] ? ctx->message : "the file is cut short or the offset is wrong");
    return -1;
}

/* Counts the pages (reduced-resolution subfiles skipped) and checks they share one layout, which
 * goes to `first`; leaves the file at its last page. 0, or -1 with a message. */
static int scan_pages(TIFF *tif, page_layout *first, int *pages, tiff_context *ctx) {
    page_layout l;
    memset(first, 0, sizeof *first);
    memset(&l, 0, sizeof l);
    *pages = 0;
    int more = 1;
    for (; more > 0; more = next_directory(tif, *pages, ctx)) {
        if (is_reduced(tif)) continue;
        if (read_layout(tif, &l) != 0) {
            mc_set_errorf("corrupt TIFF: page %d has no image size", *pages + 1);
            return -1;
        }
        if (*pages == 0) {
            *first = l;
        } else if (l.width != first->width || l.height != first->height || l.out_channels != first->out_channels ||
                   l.out_bits != first->out_bits || l.out_format != first->out_format || l.palette != first->palette) {
            mc_set_errorf("page %d (%ux%u, %d x %d-bit samples) differs from page 1 (%ux%u, %d x %d-bit samples)",
                          *pages + 1, l.width, l.height, l.out_channels, l.out_bits, first->width, first->height,
                          first->out_channels, first->out_bits);
            return -1;
        }
        (*pages)++;
    }
    if (more < 0) return -1;
    if (*pages == 0) {
        mc_set_error("corrupt TIFF: no image pages");
        return -1;
    }
    return 0;
}

/* A TIFF opened with its pages scanned (`scan_pages`) and their declared size checked against the
 * file's; NULL with a message otherwise. */
static TIFF *open_pages(const char *path, tiff_context *ctx, page_layout *first, int *pages, size_t *page_bytes) {
    TIFF *tif = open_for_reading(path, ctx);
    if (!tif) return NULL;
    if (scan_pages(tif, first, pages, ctx) != 0) {
        TIFFClose(tif);
        return NULL;
    }
    *page_bytes = (size_t)first->width * first->height * first->out_channels * (first->out_bits / 8);
    /* Pages may share strips, and LZW/deflate expand their data at most a few thousand times. */
    if (mc_declared_fits(path, (size_t)*pages, *page_bytes, 4096) != 0) {
        TIFFClose(tif);
        return NULL;
    }
    return tif;
}

/* The raster's layout as its pages give it (no pixels). */
static void set_layout(mc_raster *out, const page_layout *first, int pages) {
    out->width = (int)first->width;
    out->height = (int)first->height;
    out->pages = pages;
    out->channels = first->out_channels;
    out->bits = first->out_bits;
    out->sample_format = first->out_format;
}

int mc_tiff_read(const char *path, mc_raster *out) {
    memset(out, 0, sizeof *out);
    tiff_context ctx;
    page_layout first, l;
    int pages = 0;
    size_t page_bytes = 0;
    TIFF *tif = open_pages(path, &ctx, &first, &pages, &page_bytes);
    if (!tif) return -1;
    uint8_t *pixels = malloc(page_bytes * pages);
    if (!pixels) {
        TIFFClose(tif);
        mc_set_errorf("out of memory: its %d pages need %.1f GB", pages, (double)page_bytes * pages / 1e9);
        return -1;
    }
    /* Pass 2: decode. */
    if (!TIFFSetDirectory(tif, 0)) {
        free(pixels);
        TIFFClose(tif);
        mc_set_error("corrupt TIFF: cannot re-read page 1");
        return -1;
    }
    /* Palette pages: the decoded indices are kept and expanded through each page's colour map. */
    size_t plane = (size_t)first.width * first.height;
    uint8_t *rgb = first.palette ? malloc(plane * 3 * pages) : NULL;
    if (first.palette && !rgb) {
        free(pixels);
        TIFFClose(tif);
        mc_set_error("out of memory");
        return -1;
    }
    int page = 0;
    do {
        if (is_reduced(tif)) continue;
        read_layout(tif, &l);
        int failed = read_page(tif, &l, pixels + page_bytes * page, &ctx) != 0;
        if (!failed && rgb) {
            uint16_t *red = NULL, *green = NULL, *blue = NULL;
            if (!TIFFGetField(tif, TIFFTAG_COLORMAP, &red, &green, &blue)) {
                snprintf(ctx.message, sizeof ctx.message, "palette image without a colour map");
                failed = 1;
            } else {
                size_t entries = (size_t)1 << l.bps;
                int wide = 0; /* 16-bit colour map entries (the standard); some writers store 8-bit values */
                for (size_t i = 0; i < entries; i++)
                    if (red[i] > 255 || green[i] > 255 || blue[i] > 255) wide = 1;
                const uint8_t *src = pixels + page_bytes * page;
                uint8_t *dst = rgb + plane * 3 * page;
                for (size_t i = 0; i < plane; i++) {
                    uint8_t k = src[i];
                    dst[3 * i] = (uint8_t)(wide ? red[k] >> 8 : red[k]);
                    dst[3 * i + 1] = (uint8_t)(wide ? green[k] >> 8 : green[k]);
                    dst[3 * i + 2] = (uint8_t)(wide ? blue[k] >> 8 : blue[k]);
                }
            }
        }
        if (failed) {
            free(pixels);
            free(rgb);
            TIFFClose(tif);
            mc_set_errorf("corrupt TIFF: page %d: %s", page + 1, ctx.message[0] ? ctx.message : "decoding failed");
            return -1;
        }
        page++;
    } while (page < pages && TIFFReadDirectory(tif));
    TIFFClose(tif);
    if (page < pages) {
        free(pixels);
        free(rgb);
        mc_set_errorf("corrupt TIFF: only %d of %d pages could be read", page, pages);
        return -1;
    }
    set_layout(out, &first, pages);
    if (rgb) {
        out->channels = 3;
        out->is_palette = 1;
        out->indices = pixels;
        out->pixels = rgb;
    } else {
        out->pixels = pixels;
    }
    return 0;
}

int mc_tiff_write(const char *path, const void *pixels, int width, int height, int pages, int channels,
                  int bits, int sample_format, int compress, double x_resolution, double y_resolution,
                  int resolution_unit, const char *description) {
    if (width <= 0 || height <= 0 || pages <= 0 || (channels != 1 && channels != 3) ||
        (bits != 8 && bits != 16 && bits != 32 && bits != 64) || sample_format < 1 || sample_format > 3) {
        mc_set_errorf("cannot write a TIFF of %dx%dx%d, %d channels, %d-bit format %d", width, height, pages,
                      channels, bits, sample_format);
        return -1;
    }
    size_t row_bytes = (size_t)width * channels * (bits / 8);
    size_t total = row_bytes * height * pages;
    tiff_context ctx;
    memset(&ctx, 0, sizeof ctx);
    TIFF *tif = open_tiff(path, total > ((size_t)7 << 29) ? "w8" : "w", &ctx);
    if (!tif) {
        mc_set_errorf("cannot create: %s", ctx.message[0] ? ctx.message : strerror(errno));
        return -1;
    }
    uint8_t *row = _TIFFmalloc((tmsize_t)row_bytes);
    if (!row) {
        TIFFClose(tif);
        mc_set_error("out of memory");
        return -1;
    }
    const uint8_t *src = pixels;
    for (int p = 0; p < pages; p++) {
        TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)width);
        TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)height);
        TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)channels);
        TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)bits);
        TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, (uint16_t)sample_format);
        TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, channels == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
        TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        TIFFSetField(tif, TIFFTAG_COMPRESSION, compress ? COMPRESSION_ADOBE_DEFLATE : COMPRESSION_NONE);
        TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(tif, 0));
        if (x_resolution > 0 && y_resolution > 0) {
            TIFFSetField(tif, TIFFTAG_XRESOLUTION, (float)x_resolution);
            TIFFSetField(tif, TIFFTAG_YRESOLUTION, (float)y_resolution);
            TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, (uint16_t)resolution_unit);
        }
        if (description && p == 0) TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, description);
        if (pages > 1) {
            TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
            TIFFSetField(tif, TIFFTAG_PAGENUMBER, (uint16_t)p, (uint16_t)pages);
        }
        for (int y = 0; y < height; y++) {
            memcpy(row, src + ((size_t)p * height + y) * row_bytes, row_bytes); /* codecs may alter the row */
            if (TIFFWriteScanline(tif, row, (uint32_t)y, 0) < 0) {
                _TIFFfree(row);
                TIFFClose(tif);
                mc_set_errorf("write error: %s", ctx.message[0] ? ctx.message : "libtiff could not write a row");
                return -1;
            }
        }
        if (!TIFFWriteDirectory(tif)) {
            _TIFFfree(row);
            TIFFClose(tif);
            mc_set_errorf("write error: %s", ctx.message[0] ? ctx.message : "libtiff could not write a page");
            return -1;
        }
    }
    _TIFFfree(row);
    TIFFClose(tif);
    if (ctx.message[0]) {
        mc_set_errorf("write error: %s", ctx.message);
        return -1;
    }
    return 0;
}

int mc_tiff_stats(const char *path, mc_raster *out, mc_stats *stats) {
    memset(out, 0, sizeof *out);
    tiff_context ctx;
    page_layout first, l;
    int pages = 0;
    size_t page_bytes = 0;
    TIFF *tif = open_pages(path, &ctx, &first, &pages, &page_bytes);
    if (!tif) return -1;
    set_layout(out, &first, pages);
    out->is_palette = first.palette;
    if (!stats || first.palette) {
        TIFFClose(tif);
        return stats ? 1 : 0;
    }
    int type = first.out_format == SAMPLEFORMAT_IEEEFP ? (first.out_bits == 32 ? MC_F32 : MC_F64)
             : first.out_format == SAMPLEFORMAT_INT ? (first.out_bits == 8 ? MC_I8 : first.out_bits == 16 ? MC_I16 : first.out_bits == 32 ? MC_I32 : MC_I64)
             : (first.out_bits == 8 ? MC_U8 : first.out_bits == 16 ? MC_U16 : first.out_bits == 32 ? MC_U32 : MC_U64);
    size_t samples = (size_t)first.width * first.height * first.out_channels;
    uint8_t *page = malloc(page_bytes);
    if (!page || !TIFFSetDirectory(tif, 0)) {
        free(page);
        TIFFClose(tif);
        mc_set_error(page ? "corrupt TIFF: cannot re-read page 1" : "out of memory");
        return -1;
    }
    int done = 0;
    do {
        if (is_reduced(tif)) continue;
        read_layout(tif, &l);
        if (read_page(tif, &l, page, &ctx) != 0) {
            free(page);
            TIFFClose(tif);
            mc_set_errorf("corrupt TIFF: page %d: %s", done + 1, ctx.message[0] ? ctx.message : "decoding failed");
            return -1;
        }
        mc_stats_add(stats, page, samples, type, 0, 1, 0);
        done++;
    } while (done < pages && TIFFReadDirectory(tif));
    free(page);
    TIFFClose(tif);
    if (done < pages) {
        mc_set_errorf("corrupt TIFF: only %d of %d pages could be read", done, pages);
        return -1;
    }
    return 0;
}
