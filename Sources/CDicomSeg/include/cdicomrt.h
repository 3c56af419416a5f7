/* C wrapper over DCMTK's dcmrt for MedSegData: writes contours of a label map as an RT Structure
 * Set referencing the series the label map was made on. DCMTK encodes the DICOM; this file maps
 * contours to the instances of their slices. Errors as in cdicomseg.h (mds_last_error). */
#ifndef CDICOMRT_H
#define CDICOMRT_H
#include "cdicomseg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One closed planar contour on slice `slice` of the grid: `point_count` points, x y z in mm (LPS). */
typedef struct {
    int slice;
    int point_count;
    const double *points;
} mdr_contour;

/* One ROI: its name, display colour and contours. */
typedef struct {
    const char *name;
    int color[3];
    const mdr_contour *contours;
    int contour_count;
} mdr_roi;

/* Writes an RT Structure Set of `rois` to `path`: the series' patient, study and frame of
 * reference, every instance in the referenced frame of reference, each contour referencing the
 * instance of its slice. `files` are the series' files; each must lie on one slice of `grid`, as
 * for mds_prepare. 0 / -1. */
int mdr_write(const char *const *files, int file_count, const mds_grid *grid, const mdr_roi *rois, int roi_count,
              const char *label, const char *path);

#ifdef __cplusplus
}
#endif
#endif
