/* C wrappers over zlib, libpng, libjpeg and libtiff for MedSegData. libpng and libjpeg report
 * errors by longjmp, which must not cross Swift frames, so every codec call is wrapped here and
 * returns an error code with a message (mc_last_error) instead. */
#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H
#include <stddef.h>
#include <stdint.h>

/* The message of the last failed call on this thread. */
const char *mc_last_error(void);

/* Frees any buffer these functions returned (malloc'd; NULL is fine). */
void mc_free(void *pointer);

/* ---- gzip ---------------------------------------------------------------------------------- */

/* Reads a whole file, inflating it when it is gzip-compressed (plain files are read as they are).
 * `limit` (0: none) bounds the content: with `prefix` the first `limit` bytes are returned, else
 * content beyond `limit` bytes is an error, found without ever holding more than limit + 1 bytes.
 * On success *data (free with mc_free) holds *length bytes; returns 0, or -1 with a message
 * (missing file, corrupt or truncated gzip data, content over the limit). */
int mc_gz_read_file(const char *path, size_t limit, int prefix, uint8_t **data, size_t *length);

/* Writes `length` bytes as a gzip file at `path` (level 1 fast .. 9 small; -1 default). 0 / -1. */
int mc_gz_write_file(const char *path, const void *data, size_t length, int level);

/* Inflates gzip or zlib data in memory (concatenated gzip members too). `limit` (0: none) is the
 * most output allowed: more is an error, found holding at most limit + 1 bytes. 0 / -1 (corrupt or
 * truncated data, over the limit). */
int mc_inflate(const void *source, size_t source_length, size_t limit, uint8_t **data, size_t *length);

/* Compresses bytes into one gzip member in memory. 0 / -1. */
int mc_gzip_compress(const void *source, size_t source_length, int level, uint8_t **data, size_t *length);

/* ---- statistics ---------------------------------------------------------------------------- */

/* Stored sample types (as SampleType in Swift). */
enum { MC_U8, MC_I8, MC_U16, MC_I16, MC_U32, MC_I32, MC_U64, MC_I64, MC_F32, MC_F64 };

/* The distinct values counted before an image counts as not a label map. */
#define MC_STATS_VALUES 32

/* Minimum, maximum and sum of the finite voxels, the count of the others, and the count of each
 * value while there are at most MC_STATS_VALUES of them. */
typedef struct {
    float minimum, maximum;
    double sum;
    uint64_t finite, non_finite;
    int value_count, too_many_values, last_hit;
    float values[MC_STATS_VALUES];
    uint64_t counts[MC_STATS_VALUES];
} mc_stats;

void mc_stats_init(mc_stats *stats);

/* Adds `count` stored samples of `type` (byte-swapped when `swap`), each taken as the float32 of
 * sample x slope + intercept, as a whole read gives it. */
void mc_stats_add(mc_stats *stats, const void *samples, size_t count, int type, int swap, double slope, double intercept);

/* Adds the `length` bytes of samples from byte `offset` of a file's content (inflated when it is
 * gzip-compressed), a megabyte at a time. 0, or -1 with a message (truncated, corrupt, or more
 * than `slack` bytes after the samples: not the file the header describes). */
int mc_gz_stats(const char *path, size_t offset, size_t length, size_t slack, int type, int swap, double slope,
                double intercept, mc_stats *stats);

/* ---- rasters (PNG, JPEG, TIFF) ------------------------------------------------------------- */

/* A decoded raster: pages x height x width x channels samples, interleaved, native byte order. */
typedef struct {
    int width;
    int height;
    int pages;          /* 1 except for multi-page TIFF */
    int channels;       /* samples per pixel: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA (or TIFF extra samples) */
    int bits;           /* bits per sample of `pixels`: 8, 16, 32 or 64 */
    int sample_format;  /* 1 unsigned integer, 2 signed integer, 3 IEEE float */
    int is_palette;     /* 1 when the file stored palette indices (PNG or TIFF palette) */
    void *pixels;       /* free with mc_free (or mc_raster_free) */
    uint8_t *indices;   /* palette images only: pages x height x width raw indices, else NULL */
} mc_raster;

/* Frees pixels and indices and clears the struct. */
void mc_raster_free(mc_raster *raster);

/* PNG of any kind: 1-16 bit gray, gray+alpha, RGB, RGBA, palette (expanded to RGB in `pixels`,
 * raw indices in `indices`). Bit depths below 8 are expanded to 8 (gray) or unpacked (indices). */
int mc_png_read(const char *path, mc_raster *out);

/* Writes 8- or 16-bit PNG; channels 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA). `pixels` are
 * height x width x channels samples (uint8_t or native-endian uint16_t). 0 / -1. */
int mc_png_write(const char *path, const void *pixels, int width, int height, int channels, int bits);

/* The first frame of a GIF (87a/89a) as palette indices on its logical screen (pixels outside
 * the frame take the background index), and the frame's colour table. */
typedef struct {
    int width;
    int height;
    uint8_t *indices;      /* height x width; free with mc_free */
    int palette_entries;
    uint8_t palette[768];  /* RGB triplets */
} mc_gif;
int mc_gif_read(const char *path, mc_gif *out);

/* Baseline or progressive JPEG, decoded to gray (1 channel) or RGB (3 channels), 8 bits. */
int mc_jpeg_read(const char *path, mc_raster *out);

/* Every page (image directory, reduced-resolution subfiles skipped) of a TIFF. Pages must share
 * size and sample layout. 8/16/32/64-bit integer and 32/64-bit float samples, strips or tiles,
 * contiguous or separate planes; 1/2/4-bit samples are unpacked to 8-bit values; other layouts
 * (YCbCr, odd bit depths) are decoded through libtiff's RGBA interface to 8-bit RGB(A). Palette
 * pages (1-8 bit) give their colours as RGB in `pixels` and the raw indices in `indices`. */
int mc_tiff_read(const char *path, mc_raster *out);

/* The pages of a TIFF as mc_tiff_read sees them, decoded one at a time into `stats` (nothing
 * else is held; NULL: none decoded): `out` gets the raster's layout with no pixels. 0; 1 for
 * palette pages (whose colours a whole read decides: nothing added); -1 with a message. */
int mc_tiff_stats(const char *path, mc_raster *out, mc_stats *stats);

/* Writes `pages` pages of height x width x channels samples (channels 1 or 3) with `bits` 8, 16,
 * 32 or 64 and `sample_format` 1 (unsigned), 2 (signed) or 3 (float), deflate-compressed when
 * `compress` is non-zero. BigTIFF is used when the data exceed 3.5 GiB. X/YResolution (pixels per
 * unit) and ResolutionUnit (1 none, 2 inch, 3 cm) are written on every page when both resolutions
 * are > 0; `description` (ImageDescription, may be NULL) on the first page. 0 / -1. */
int mc_tiff_write(const char *path, const void *pixels, int width, int height, int pages, int channels,
                  int bits, int sample_format, int compress, double x_resolution, double y_resolution,
                  int resolution_unit, const char *description);

#endif
