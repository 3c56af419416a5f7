// DCMTK's dcmrt behind a C interface (see include/cdicomrt.h). DCMTK encodes the RT Structure Set;
// this file only says which instance each contour lies on and what the ROIs are.
#include "cdicomrt.h"
#include "series_reference.hpp"

#include <dcmtk/dcmrt/drtstrct.h>

#include <ctime>
#include <string>
#include <vector>

using namespace mds;

namespace {

// RT Structure Set Storage, and the Study Root (Detached Study Management) class an RT Referenced Study names.
const char *const structureSetClass = "1.2.840.10008.5.1.4.1.1.481.3";
const char *const studyClass = "1.2.840.10008.3.1.2.3.1";

std::string today(const char *format) {
    char text[32];
    std::time_t now = std::time(nullptr);
    std::strftime(text, sizeof(text), format, std::localtime(&now));
    return text;
}

int buildStructureSet(const char *const *files, int fileCount, const mds_grid &grid, const mdr_roi *rois, int roiCount, const char *label,
                      DcmFileFormat &out) {
    quietDCMTK();
    if (fileCount < 1) return fail("no files of the reference series");
    std::vector<Instance> instances(static_cast<size_t>(fileCount));
    OFString patientID, study, series;
    Uint16 rows = 0, columns = 0;
    for (int i = 0; i < fileCount; ++i) {
        OFString p, st, se;
        if (readInstance(files[i], instances[size_t(i)], p, st, se, rows, columns) != 0) return -1;
        if (i == 0) { patientID = p; study = st; series = se; }
        if (checkPlane(instances[size_t(i)], grid) != 0) return -1;
    }
    if (placeInstances(instances, grid) != 0) return -1;
    std::vector<const Instance *> bySlice(size_t(grid.size[2]), nullptr);
    for (const Instance &in : instances) bySlice[size_t(in.slice)] = &in;

    // Patient and study as the series has them (and its frame of reference).
    DcmFileFormat source;
    OFCondition status = source.loadFileUntilTag(files[0], EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect, DCM_PixelData);
    if (status.bad()) return fail(std::string(files[0]) + ": DCMTK cannot read it (" + status.text() + ")");
    DcmDataset &reference = *source.getDataset();
    OFString frameOfReference;
    if (reference.findAndGetOFString(DCM_FrameOfReferenceUID, frameOfReference).bad() || frameOfReference.empty())
        return fail(std::string(files[0]) + ": has no Frame of Reference UID for the contours to lie in");
    DRTStructureSetIOD rt;
    if (checked(rt.readPatientData(reference), "reading the series' patient") != 0) return -1;
    if (checked(rt.readStudyData(reference), "reading the series' study") != 0) return -1;
    rt.setSOPClassUID(structureSetClass);
    rt.setSOPInstanceUID(generateUID(SITE_INSTANCE_UID_ROOT).c_str());
    rt.setSeriesInstanceUID(generateUID(SITE_SERIES_UID_ROOT).c_str());
    rt.setModality("RTSTRUCT");
    rt.setSeriesNumber("901");
    rt.setSeriesDescription(label);
    rt.setInstanceNumber("1");
    rt.setManufacturer("MedSeg");
    rt.setFrameOfReferenceUID(frameOfReference);
    rt.setPositionReferenceIndicator("");
    rt.setStructureSetLabel(OFString(label).substr(0, 16));
    rt.setStructureSetName(label);
    rt.setStructureSetDate(today("%Y%m%d").c_str());
    rt.setStructureSetTime(today("%H%M%S").c_str());

    // Every instance of the series, in the frame of reference the contours lie in.
    DRTReferencedFrameOfReferenceSequence::Item *frame = nullptr;
    if (checked(rt.getReferencedFrameOfReferenceSequence().addItem(frame), "referencing the frame of reference") != 0) return -1;
    frame->setFrameOfReferenceUID(frameOfReference);
    DRTRTReferencedStudySequence::Item *studyItem = nullptr;
    frame->getRTReferencedStudySequence().addItem(studyItem);
    studyItem->setReferencedSOPClassUID(studyClass);
    studyItem->setReferencedSOPInstanceUID(study);
    DRTRTReferencedSeriesSequence::Item *seriesItem = nullptr;
    studyItem->getRTReferencedSeriesSequence().addItem(seriesItem);
    seriesItem->setSeriesInstanceUID(series);
    for (const Instance *in : bySlice) {
        DRTContourImageSequence::Item *image = nullptr;
        seriesItem->getContourImageSequence().addItem(image);
        image->setReferencedSOPClassUID(in->sopClass.c_str());
        image->setReferencedSOPInstanceUID(in->sopInstance.c_str());
    }

    for (int r = 0; r < roiCount; ++r) {
        const mdr_roi &roi = rois[r];
        const std::string number = std::to_string(r + 1);
        DRTStructureSetROISequence::Item *described = nullptr;
        rt.getStructureSetROISequence().addItem(described);
        described->setROINumber(number.c_str());
        described->setReferencedFrameOfReferenceUID(frameOfReference);
        described->setROIName(roi.name);
        described->setROIGenerationAlgorithm("AUTOMATIC");
        DRTRTROIObservationsSequence::Item *observed = nullptr;
        rt.getRTROIObservationsSequence().addItem(observed);
        observed->setObservationNumber(number.c_str());
        observed->setReferencedROINumber(number.c_str());
        observed->setRTROIInterpretedType("ORGAN");
        observed->setROIInterpreter("");
        DRTROIContourSequence::Item *contoured = nullptr;
        rt.getROIContourSequence().addItem(contoured);
        contoured->setReferencedROINumber(number.c_str());
        contoured->setROIDisplayColor((std::to_string(roi.color[0]) + "\\" + std::to_string(roi.color[1]) + "\\" + std::to_string(roi.color[2])).c_str());
        for (int c = 0; c < roi.contour_count; ++c) {
            const mdr_contour &contour = roi.contours[c];
            if (contour.slice < 0 || contour.slice >= grid.size[2] || contour.point_count < 3)
                return fail("ROI '" + std::string(roi.name) + "': contour " + std::to_string(c + 1) + " is not a polygon on a slice of the series");
            DRTContourSequence::Item *item = nullptr;
            contoured->getContourSequence().addItem(item);
            DRTContourImageSequence::Item *image = nullptr;
            item->getContourImageSequence().addItem(image);
            image->setReferencedSOPClassUID(bySlice[size_t(contour.slice)]->sopClass.c_str());
            image->setReferencedSOPInstanceUID(bySlice[size_t(contour.slice)]->sopInstance.c_str());
            item->setContourGeometricType("CLOSED_PLANAR");
            item->setNumberOfContourPoints(std::to_string(contour.point_count).c_str());
            item->setContourNumber(std::to_string(c + 1).c_str());
            std::string data;
            data.reserve(size_t(contour.point_count) * 3 * 12);
            for (int v = 0; v < contour.point_count * 3; ++v) {
                if (v) data += '\\';
                data += decimal(contour.points[v]).c_str();
            }
            // The values are checked as the whole string is: skip the per-value check of a long list.
            if (checked(item->setContourData(data.c_str(), OFFalse), "contour data of ROI '" + std::string(roi.name) + "'") != 0) return -1;
        }
    }
    return checked(rt.write(*out.getDataset()), "DCMTK refuses the RT Structure Set");
}

}  // namespace

extern "C" int mdr_write(const char *const *files, int file_count, const mds_grid *grid, const mdr_roi *rois, int roi_count, const char *label,
                         const char *path) {
    try {
        DcmFileFormat file;
        if (buildStructureSet(files, file_count, *grid, rois, roi_count, label, file) != 0) return -1;
        OFCondition status = file.saveFile(path, EXS_LittleEndianExplicit);
        return status.good() ? 0 : fail(std::string("DCMTK cannot write the RT Structure Set: ") + status.text());
    } catch (const std::exception &error) {
        return fail(error.what());
    }
}
