/* Voxel statistics accumulated chunk by chunk, straight from stored samples: inspecting an image
 * (data info) never needs it whole, or as float32. Written in C so that a debug build still
 * walks a billion voxels in seconds. */
#include "cimagecodecs.h"
#include "internal.h"
#include <math.h>
#include <string.h>

void mc_stats_init(mc_stats *s) {
    memset(s, 0, sizeof *s);
    s->minimum = INFINITY;
    s->maximum = -INFINITY;
}

static void swap_bytes(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n / 2; i++) {
        uint8_t t = p[i];
        p[i] = p[n - 1 - i];
        p[n - 1 - i] = t;
    }
}

size_t mc_sample_bytes(int type) {
    switch (type) {
    case MC_U8: case MC_I8: return 1;
    case MC_U16: case MC_I16: return 2;
    case MC_U32: case MC_I32: case MC_F32: return 4;
    default: return 8;
    }
}

/* The sample at `p` as a double (unaligned, in the file's byte order). */
static double load_sample(const uint8_t *p, int type, int swap) {
    uint8_t b[8];
    size_t n = mc_sample_bytes(type);
    memcpy(b, p, n);
    if (swap && n > 1) swap_bytes(b, n);
    switch (type) {
    case MC_U8: return b[0];
    case MC_I8: return (int8_t)b[0];
    case MC_U16: { uint16_t v; memcpy(&v, b, 2); return v; }
    case MC_I16: { int16_t v; memcpy(&v, b, 2); return v; }
    case MC_U32: { uint32_t v; memcpy(&v, b, 4); return v; }
    case MC_I32: { int32_t v; memcpy(&v, b, 4); return v; }
    case MC_U64: { uint64_t v; memcpy(&v, b, 8); return (double)v; }
    case MC_I64: { int64_t v; memcpy(&v, b, 8); return (double)v; }
    case MC_F32: { float v; memcpy(&v, b, 4); return v; }
    default: { double v; memcpy(&v, b, 8); return v; }
    }
}

/* Counts `v` among the distinct values while there are at most MC_STATS_VALUES of them. */
static void count_value(mc_stats *s, float v) {
    if (s->too_many_values) return;
    if (s->value_count > 0 && s->values[s->last_hit] == v) {
        s->counts[s->last_hit]++;
        return;
    }
    for (int i = 0; i < s->value_count; i++)
        if (s->values[i] == v) {
            s->counts[i]++;
            s->last_hit = i;
            return;
        }
    if (s->value_count == MC_STATS_VALUES) {
        s->too_many_values = 1;
        return;
    }
    s->values[s->value_count] = v;
    s->counts[s->value_count] = 1;
    s->last_hit = s->value_count++;
}

void mc_stats_add(mc_stats *s, const void *samples, size_t count, int type, int swap, double slope, double intercept) {
    const uint8_t *p = samples;
    size_t step = mc_sample_bytes(type);
    int scaled = !(slope == 1 && intercept == 0);
    for (size_t i = 0; i < count; i++, p += step) {
        double d = load_sample(p, type, swap);
        /* The value a whole read gives: the sample as a float32, then scaled in double. */
        float v = scaled ? (float)((double)(float)d * slope + intercept) : (float)d;
        if (!isfinite(v)) {
            s->non_finite++;
            continue;
        }
        if (v < s->minimum) s->minimum = v;
        if (v > s->maximum) s->maximum = v;
        s->sum += v;
        s->finite++;
        count_value(s, v);
    }
}
