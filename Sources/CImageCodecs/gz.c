/* Whole-file gzip reading and writing, and in-memory inflate/deflate, over zlib. */
#include "cimagecodecs.h"
#include "internal.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Expected size of the file's content: the gzip trailer's ISIZE (size mod 2^32) when it looks
 * plausible, else the file size. Only a hint for the first allocation. */
static size_t content_size_hint(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || st.st_size <= 0) return 1 << 16;
    size_t file_size = (size_t)st.st_size;
    FILE *f = fopen(path, "rb");
    if (!f) return file_size;
    unsigned char magic[2] = {0, 0};
    size_t hint = file_size;
    if (fread(magic, 1, 2, f) == 2 && magic[0] == 0x1f && magic[1] == 0x8b && file_size >= 18 &&
        fseeko(f, -4, SEEK_END) == 0) {
        unsigned char t[4];
        if (fread(t, 1, 4, f) == 4) {
            size_t isize = (size_t)t[0] | ((size_t)t[1] << 8) | ((size_t)t[2] << 16) | ((size_t)t[3] << 24);
            /* ISIZE wraps above 4 GiB; deflate rarely expands, so a smaller value means it wrapped. */
            hint = isize >= file_size / 2 ? isize : file_size * 4;
        }
    }
    fclose(f);
    return hint + 1; /* one spare byte lets the first read see the end without growing */
}

/* Whether reading `gz` failed (truncated or corrupt data, an I/O error); sets the message. */
static int read_failed(gzFile gz) {
    int code = Z_OK;
    const char *message = gzerror(gz, &code);
    if (code == Z_OK || code == Z_STREAM_END) return 0;
    if (code == Z_BUF_ERROR)
        mc_set_error("truncated gzip data (unexpected end of file)");
    else if (code == Z_ERRNO)
        mc_set_errorf("read error: %s", strerror(errno));
    else
        mc_set_errorf("corrupt gzip data (%s)", message ? message : "unknown zlib error");
    return 1;
}

int mc_gz_read_file(const char *path, size_t limit, int prefix, uint8_t **data, size_t *length) {
    *data = NULL;
    *length = 0;
    struct stat st;
    if (stat(path, &st) != 0) {
        mc_set_errorf("cannot open: %s", strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        mc_set_error("is a directory");
        return -1;
    }
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        mc_set_errorf("cannot open: %s", errno ? strerror(errno) : "out of memory");
        return -1;
    }
    gzbuffer(gz, 1 << 17);
    size_t capacity = content_size_hint(path), used = 0;
    /* Never more than the limit and one byte beyond it (which tells that the content goes on). */
    if (limit > 0 && capacity > limit + 1) capacity = limit + 1;
    uint8_t *buffer = malloc(capacity);
    if (!buffer) {
        gzclose(gz);
        mc_set_error("out of memory");
        return -1;
    }
    for (;;) {
        if (used == capacity) {
            size_t grown = capacity * 2;
            if (limit > 0 && grown > limit + 1) grown = limit + 1;
            uint8_t *bigger = realloc(buffer, grown);
            if (!bigger) {
                free(buffer);
                gzclose(gz);
                mc_set_error("out of memory");
                return -1;
            }
            buffer = bigger;
            capacity = grown;
        }
        size_t want = capacity - used;
        if (want > (1u << 30)) want = 1u << 30;
        if (limit > 0 && want > limit + 1 - used) want = limit + 1 - used;
        int got = gzread(gz, buffer + used, (unsigned)want);
        if (got < 0) break;
        if (got == 0) break;
        used += (size_t)got;
        if (limit > 0 && used > limit) {
            if (prefix) {
                used = limit;
                break;
            }
            free(buffer);
            gzclose(gz);
            mc_set_errorf("holds more than the %zu bytes its header describes (a decompression bomb, or not the file the header says)", limit);
            return -1;
        }
    }
    if (read_failed(gz)) {
        free(buffer);
        gzclose(gz);
        return -1;
    }
    gzclose(gz);
    *data = buffer;
    *length = used;
    return 0;
}

int mc_gz_write_file(const char *path, const void *data, size_t length, int level) {
    char mode[8];
    if (level < 0 || level > 9) snprintf(mode, sizeof mode, "wb");
    else snprintf(mode, sizeof mode, "wb%d", level);
    gzFile gz = gzopen(path, mode);
    if (!gz) {
        mc_set_errorf("cannot create: %s", errno ? strerror(errno) : "out of memory");
        return -1;
    }
    gzbuffer(gz, 1 << 17);
    const uint8_t *p = data;
    size_t left = length;
    while (left > 0) {
        unsigned chunk = left > (1u << 30) ? (1u << 30) : (unsigned)left;
        int wrote = gzwrite(gz, p, chunk);
        if (wrote <= 0) {
            int code = 0;
            const char *message = gzerror(gz, &code);
            mc_set_errorf("write error: %s", code == Z_ERRNO ? strerror(errno) : message);
            gzclose(gz);
            return -1;
        }
        p += wrote;
        left -= (size_t)wrote;
    }
    int rc = gzclose(gz);
    if (rc != Z_OK) {
        mc_set_errorf("write error: %s", rc == Z_ERRNO ? strerror(errno) : "zlib could not finish the file");
        return -1;
    }
    return 0;
}

int mc_inflate(const void *source, size_t source_length, size_t limit, uint8_t **data, size_t *length) {
    *data = NULL;
    *length = 0;
    size_t capacity = limit > 0 ? limit + 1 : (source_length < 1024 ? 4096 : source_length * 4);
    uint8_t *buffer = malloc(capacity);
    if (!buffer) {
        mc_set_error("out of memory");
        return -1;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK) { /* +32: detect gzip or zlib header */
        free(buffer);
        mc_set_error("zlib initialisation failed");
        return -1;
    }
    const uint8_t *in = source;
    size_t in_left = source_length, used = 0;
    int status = Z_OK;
    for (;;) {
        if (used == capacity) {
            if (limit > 0) { /* limit + 1 bytes came out: more than allowed */
                inflateEnd(&zs);
                free(buffer);
                mc_set_errorf("inflates to more than the %zu bytes its header describes (a decompression bomb, or not the data the header says)", limit);
                return -1;
            }
            size_t grown = capacity * 2;
            uint8_t *bigger = realloc(buffer, grown);
            if (!bigger) {
                status = Z_MEM_ERROR;
                break;
            }
            buffer = bigger;
            capacity = grown;
        }
        zs.next_in = (Bytef *)in;
        zs.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        zs.next_out = buffer + used;
        size_t out_room = capacity - used;
        zs.avail_out = out_room > UINT_MAX ? UINT_MAX : (uInt)out_room;
        uInt avail_in_before = zs.avail_in, avail_out_before = zs.avail_out;
        status = inflate(&zs, Z_NO_FLUSH);
        size_t consumed = avail_in_before - zs.avail_in, produced = avail_out_before - zs.avail_out;
        in += consumed;
        in_left -= consumed;
        used += produced;
        if (status == Z_STREAM_END) {
            /* Another gzip member may follow (skip trailing zero padding). */
            while (in_left > 0 && *in == 0) { in++; in_left--; }
            if (in_left >= 2 && in[0] == 0x1f && in[1] == 0x8b) {
                inflateReset(&zs);
                continue;
            }
            status = Z_OK;
            break;
        }
        if (status == Z_BUF_ERROR && consumed == 0 && produced == 0) {
            if (in_left == 0) { status = Z_BUF_ERROR; break; } /* input ended mid-stream */
            continue; /* output full: grow */
        }
        if (status != Z_OK) break;
        if (in_left == 0 && zs.avail_out > 0) { status = Z_BUF_ERROR; break; }
    }
    inflateEnd(&zs);
    if (status != Z_OK) {
        free(buffer);
        if (status == Z_BUF_ERROR) mc_set_error("truncated gzip data (unexpected end of compressed stream)");
        else if (status == Z_MEM_ERROR) mc_set_error("out of memory");
        else mc_set_errorf("corrupt gzip data (%s)", zs.msg ? zs.msg : "invalid stream");
        return -1;
    }
    *data = buffer;
    *length = used;
    return 0;
}

int mc_gzip_compress(const void *source, size_t source_length, int level, uint8_t **data, size_t *length) {
    *data = NULL;
    *length = 0;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, level < 0 || level > 9 ? Z_DEFAULT_COMPRESSION : level, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        mc_set_error("zlib initialisation failed");
        return -1;
    }
    size_t capacity = source_length + source_length / 1000 + 1024;
    if (source_length <= UINT_MAX) capacity = deflateBound(&zs, (uLong)source_length) + 64;
    uint8_t *buffer = malloc(capacity);
    if (!buffer) {
        deflateEnd(&zs);
        mc_set_error("out of memory");
        return -1;
    }
    const uint8_t *in = source;
    size_t in_left = source_length, used = 0;
    int status;
    for (;;) {
        if (used == capacity) {
            size_t grown = capacity * 2;
            uint8_t *bigger = realloc(buffer, grown);
            if (!bigger) {
                free(buffer);
                deflateEnd(&zs);
                mc_set_error("out of memory");
                return -1;
            }
            buffer = bigger;
            capacity = grown;
        }
        zs.next_in = (Bytef *)in;
        zs.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        zs.next_out = buffer + used;
        size_t out_room = capacity - used;
        zs.avail_out = out_room > UINT_MAX ? UINT_MAX : (uInt)out_room;
        uInt avail_in_before = zs.avail_in, avail_out_before = zs.avail_out;
        int flush = in_left <= UINT_MAX ? Z_FINISH : Z_NO_FLUSH;
        status = deflate(&zs, flush);
        size_t consumed = avail_in_before - zs.avail_in;
        in += consumed;
        in_left -= consumed;
        used += avail_out_before - zs.avail_out;
        if (status == Z_STREAM_END) break;
        if (status != Z_OK && status != Z_BUF_ERROR) {
            free(buffer);
            deflateEnd(&zs);
            mc_set_errorf("gzip compression failed (%s)", zs.msg ? zs.msg : "zlib error");
            return -1;
        }
    }
    deflateEnd(&zs);
    *data = buffer;
    *length = used;
    return 0;
}

int mc_gz_stats(const char *path, size_t offset, size_t length, size_t slack, int type, int swap, double slope,
                double intercept, mc_stats *stats) {
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        mc_set_errorf("cannot open: %s", errno ? strerror(errno) : "out of memory");
        return -1;
    }
    gzbuffer(gz, 1 << 17);
    size_t sample = mc_sample_bytes(type);
    enum { chunk = 1 << 20 }; /* a multiple of every sample size */
    uint8_t *buffer = malloc(chunk);
    if (!buffer) {
        gzclose(gz);
        mc_set_error("out of memory");
        return -1;
    }
    size_t skipped = 0, done = 0;
    while (skipped < offset) { /* the header and extensions, read and dropped */
        size_t want = offset - skipped > chunk ? chunk : offset - skipped;
        int got = gzread(gz, buffer, (unsigned)want);
        if (got <= 0) break;
        skipped += (size_t)got;
    }
    while (skipped == offset && done < length) {
        size_t want = length - done > chunk ? chunk : length - done;
        int got = gzread(gz, buffer, (unsigned)want);
        if (got <= 0) break;
        size_t whole = (size_t)got / sample * sample; /* a sample split across reads is completed below */
        if (whole != (size_t)got) {
            int more = gzread(gz, buffer + got, (unsigned)(whole + sample - (size_t)got));
            if (more > 0) got += more;
            whole = (size_t)got / sample * sample;
        }
        mc_stats_add(stats, buffer, whole / sample, type, swap, slope, intercept);
        done += (size_t)got;
        if (whole != (size_t)got) break;
    }
    size_t beyond = 0; /* content after the image: a few bytes of padding, never more than `slack` */
    while (skipped == offset && done == length && beyond <= slack) {
        int got = gzread(gz, buffer, chunk);
        if (got <= 0) break;
        beyond += (size_t)got;
    }
    free(buffer);
    int failed = read_failed(gz);
    gzclose(gz);
    if (failed) return -1;
    if (skipped < offset || done < length) {
        mc_set_errorf("truncated: header says %zu voxel bytes, file has %zu", length, skipped < offset ? (size_t)0 : done);
        return -1;
    }
    if (beyond > slack) {
        mc_set_errorf("holds more than the %zu bytes its header describes (a decompression bomb, or not the file the header says)",
                      offset + length + slack);
        return -1;
    }
    return 0;
}
