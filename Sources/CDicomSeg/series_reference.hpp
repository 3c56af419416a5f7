// The reference series of a DICOM object MedSeg derives from a label map (SEG, RT Structure Set):
// each file read as far as its header, placed on a slice of the label map's grid, with the one-line
// errors the C interface reports. Shared by dicomseg.cpp and rtstruct.cpp; not a public header.
#ifndef CDICOMSEG_SERIES_REFERENCE_HPP
#define CDICOMSEG_SERIES_REFERENCE_HPP
#include "cdicomseg.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/oflog/oflog.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace mds {


inline thread_local std::string lastError;

inline int fail(const std::string &message) {
    lastError = message;
    return -1;
}

inline char *copyString(const std::string &text) {
    char *out = static_cast<char *>(std::malloc(text.size() + 1));
    if (out) std::memcpy(out, text.c_str(), text.size() + 1);
    return out;
}

inline std::string number(double value) {
    std::ostringstream out;
    out.precision(6);
    out << value;
    return out.str();
}

// DCMTK logs its own warnings to standard error; MedSeg reports failures itself, in one line.
inline void quietDCMTK() {
    static const bool configured = (OFLog::configure(OFLogger::FATAL_LOG_LEVEL), true);
    (void)configured;
}

// What a reference file contributes: its identity and where it lies.
struct Instance {
    std::string file, sopClass, sopInstance;
    double ipp[3], iop[6], spacing[2];
    int slice = -1;
};

inline int readInstance(const std::string &file, Instance &out, OFString &patientID, OFString &study, OFString &series, Uint16 &rows, Uint16 &columns) {
    DcmFileFormat format;
    // Only the header: the pixels of the source are not needed.
    OFCondition status = format.loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect, DCM_PixelData);
    if (status.bad()) return fail(file + ": DCMTK cannot read it as a DICOM file (" + status.text() + ")");
    DcmDataset &ds = *format.getDataset();
    OFString sopClass, sopInstance;
    if (ds.findAndGetOFString(DCM_SOPClassUID, sopClass).bad() || ds.findAndGetOFString(DCM_SOPInstanceUID, sopInstance).bad() ||
        sopInstance.empty())
        return fail(file + ": has no SOP Class UID or SOP Instance UID to reference");
    for (unsigned long i = 0; i < 3; ++i)
        if (ds.findAndGetFloat64(DCM_ImagePositionPatient, out.ipp[i], i).bad())
            return fail(file + ": has no Image Position (Patient): its slice is unknown");
    for (unsigned long i = 0; i < 6; ++i)
        if (ds.findAndGetFloat64(DCM_ImageOrientationPatient, out.iop[i], i).bad())
            return fail(file + ": has no Image Orientation (Patient)");
    for (unsigned long i = 0; i < 2; ++i)
        if (ds.findAndGetFloat64(DCM_PixelSpacing, out.spacing[i], i).bad()) return fail(file + ": has no Pixel Spacing");
    if (ds.findAndGetUint16(DCM_Rows, rows).bad() || ds.findAndGetUint16(DCM_Columns, columns).bad())
        return fail(file + ": has no Rows or Columns");
    ds.findAndGetOFString(DCM_PatientID, patientID);
    ds.findAndGetOFString(DCM_StudyInstanceUID, study);
    ds.findAndGetOFString(DCM_SeriesInstanceUID, series);
    out.file = file;
    out.sopClass = sopClass.c_str();
    out.sopInstance = sopInstance.c_str();
    return 0;
}

// The file's rows and columns run along the grid's x and y axes, as far apart as its voxels.
inline int checkPlane(const Instance &in, const mds_grid &grid) {
    for (int i = 0; i < 3; ++i)
        if (std::fabs(in.iop[i] - grid.direction[i * 3]) > 1e-4 || std::fabs(in.iop[3 + i] - grid.direction[i * 3 + 1]) > 1e-4)
            return fail(in.file + ": its Image Orientation (Patient) is not the label map's x and y directions: the label map is not in this series' geometry");
    if (std::fabs(in.spacing[1] - grid.spacing[0]) > 1e-4 * grid.spacing[0] || std::fabs(in.spacing[0] - grid.spacing[1]) > 1e-4 * grid.spacing[1])
        return fail(in.file + ": its Pixel Spacing " + number(in.spacing[0]) + " x " + number(in.spacing[1]) + " mm differs from the label map's " +
                    number(grid.spacing[1]) + " x " + number(grid.spacing[0]) + ": the label map is not in this series' geometry");
    return 0;
}

// Places every file on a slice of the grid: its position must be the grid's origin plus a whole
// number of slice steps along the normal (within 1% of a voxel), one file per slice.
inline int placeInstances(std::vector<Instance> &instances, const mds_grid &grid) {
    const double *d = grid.direction;
    std::vector<int> owner(size_t(grid.size[2]), -1);
    for (size_t i = 0; i < instances.size(); ++i) {
        Instance &in = instances[i];
        double offset[3] = {in.ipp[0] - grid.origin[0], in.ipp[1] - grid.origin[1], in.ipp[2] - grid.origin[2]};
        double along[3];
        for (int axis = 0; axis < 3; ++axis)
            along[axis] = (offset[0] * d[0 * 3 + axis] + offset[1] * d[1 * 3 + axis] + offset[2] * d[2 * 3 + axis]) / grid.spacing[axis];
        long k = std::lround(along[2]);
        if (std::fabs(along[0]) > 0.01 || std::fabs(along[1]) > 0.01 || std::fabs(along[2] - double(k)) > 0.01 || k < 0 || k >= grid.size[2])
            return fail(in.file + ": its Image Position (Patient) (" + number(in.ipp[0]) + ", " + number(in.ipp[1]) + ", " + number(in.ipp[2]) +
                        ") is not on a slice of the label map's grid (" + std::to_string(grid.size[2]) +
                        " slices): the label map is not in this series' geometry");
        if (owner[size_t(k)] >= 0)
            return fail(in.file + ": lies on slice " + std::to_string(k) + " like " + instances[size_t(owner[size_t(k)])].file);
        owner[size_t(k)] = int(i);
        in.slice = int(k);
    }
    for (int k = 0; k < grid.size[2]; ++k)
        if (owner[size_t(k)] < 0)
            return fail("slice " + std::to_string(k) + " of the label map's " + std::to_string(grid.size[2]) +
                        " has no file of the reference series: the label map is not in this series' geometry");
    return 0;
}

// A Decimal String value of at most 16 characters (DICOM's limit, which pydicom's full-precision
// floats can exceed), as precise as fits.
inline OFString decimal(double value) {
    char text[64];
    for (int precision = 15; precision > 1; --precision) {
        std::snprintf(text, sizeof(text), "%.*g", precision, value);
        if (std::strlen(text) <= 16) break;
    }
    return text;
}

inline std::string generateUID(const char *root) {
    char uid[100];
    dcmGenerateUniqueIdentifier(uid, root);
    return uid;
}

inline int checked(const OFCondition &status, const std::string &what) {
    return status.good() ? 0 : fail(what + ": " + status.text());
}

}  // namespace mds
#endif
