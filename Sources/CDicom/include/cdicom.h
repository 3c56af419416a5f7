/* C wrappers over GDCM (Debian's libgdcm) for MedSegData: lists the DICOM series in a folder and
 * reads one series into a float volume with its patient-space (LPS) geometry. GDCM is C++; Swift
 * sees only these C functions, which never throw: they return -1 and leave a message in
 * md_last_error instead. */
#ifndef CDICOM_H
#define CDICOM_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The message of the last failed call on this thread. */
const char *md_last_error(void);

/* One series of a folder: the files (full paths, sorted by name) that share a SeriesInstanceUID. */
typedef struct {
    char *uid;
    char *modality;
    char *description;
    char *series_number;
    char *study_date;
    int file_count;
    char **files;
} md_series;

/* The DICOM series among the files directly in `folder` (files that are not DICOM, or DICOM
 * without a SeriesInstanceUID such as DICOMDIR, are passed over; files ending .nii.gz, .png, .json
 * and other formats' endings are not opened). *series (free with
 * md_free_series) holds *count entries, ordered by series number then UID. 0 / -1. */
int md_scan_folder(const char *folder, md_series **series, int *count);
void md_free_series(md_series *series, int count);

/* A series as one volume: voxels x fastest (columns), then rows, then slices sorted along the
 * slice normal (row cosine x column cosine), rescale slope and intercept applied. direction is
 * row-major 3x3 with the axes as columns (x: row cosine, y: column cosine, z: normal), origin
 * the first voxel's Image Position (Patient), spacing x, y (Pixel Spacing) and z (between
 * slice positions), all in DICOM's LPS patient space. */
typedef struct {
    int size[3];
    double spacing[3];
    double origin[3];
    double direction[9];
    float *voxels;
    /* Stored values are integers and slope/intercept keep them whole. */
    int integer;
    /* Bits allocated per stored sample (8, 16, 32) and whether they were signed. */
    int stored_bits;
    int stored_signed;
    double minimum;
    double maximum;
} md_volume;

/* Reads the `count` files of one series (any order). Refuses colour images, files of another
 * size or orientation, two slices at one position, uneven slice gaps and tilted stacks, naming
 * the files concerned. 0 / -1. */
int md_read_series(const char *const *files, int count, md_volume *out);
void md_free_volume(md_volume *volume);

#ifdef __cplusplus
}
#endif
#endif
