/* C wrappers over DCMTK's dcmseg (Debian's libdcmtk-dev) for MedSegData: writes a label map as a
 * binary DICOM Segmentation that references the series it was segmented on, and reads one back.
 * The DICOM encoding is DCMTK's; this file only maps slices to instances and labels to segments.
 * Like cdicom.h, the functions never throw: they return -1 and leave a message in
 * mds_last_error instead. */
#ifndef CDICOMSEG_H
#define CDICOMSEG_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The message of the last failed call on this thread. */
const char *mds_last_error(void);

/* A code of a coded concept: Code Value, Coding Scheme Designator, Code Meaning. */
typedef struct {
    const char *value;
    const char *scheme;
    const char *meaning;
} mds_code;

/* One segment: the voxels of the label map equal to its segment number (1, 2, ... in order). */
typedef struct {
    const char *label;
    mds_code category;
    mds_code type;
} mds_segment;

/* The label map's grid in DICOM LPS: as md_volume (cdicom.h) describes a series. */
typedef struct {
    int size[3];
    double spacing[3];
    double origin[3];
    double direction[9];
} mds_grid;

/* A Segmentation built in memory, to be saved (mds_save) and freed (mds_free_writer). */
typedef struct mds_writer mds_writer;

/* Builds a binary SEG of `segment_count` segments: segment n holds the voxels of `labels`
 * (x fastest, grid.size voxels) equal to n; values above segment_count are refused. Only slices
 * that hold a segment get a frame. `files` are the series' files (any order); each must lie on one
 * slice of `grid` with its rows and columns along the grid's x and y and as far apart, and every
 * slice must have one. Patient, study and frame of reference are copied from them; each frame
 * references its source instance. Messages about one file start with its path. 0 / -1. */
int mds_prepare(const char *const *files, int file_count, const mds_grid *grid, const uint16_t *labels,
                const mds_segment *segments, int segment_count, const char *series_description, mds_writer **out);
/* Writes the built SEG to `path` (replacing it). 0 / -1. */
int mds_save(mds_writer *writer, const char *path);
void mds_free_writer(mds_writer *writer);

/* A SEG as read: its frames unpacked (one byte per pixel, 0 or 1), with each frame's segment and
 * position, and the shared orientation and spacing. */
typedef struct {
    int rows, columns, frame_count, segment_count;
    double orientation[6];     /* row cosine, column cosine */
    double pixel_spacing[2];   /* between rows, between columns (as DICOM's Pixel Spacing) */
    double slice_spacing;      /* Spacing Between Slices, 0 when absent */
    int *frame_segments;       /* frame_count segment numbers */
    double *frame_positions;   /* frame_count x 3 Image Position (Patient) */
    uint8_t *pixels;           /* frame_count x rows x columns, column fastest */
    char **segment_labels;     /* segment_count labels, by segment number - 1 */
    char *frame_of_reference;  /* Frame of Reference UID (may be empty) */
} mds_segmentation;

/* Reads a binary SEG; refuses other files (not DICOM, not a Segmentation, fractional) naming the
 * file. Free with mds_free. 0 / -1. */
int mds_read(const char *path, mds_segmentation *out);
void mds_free(mds_segmentation *segmentation);

#ifdef __cplusplus
}
#endif
#endif
