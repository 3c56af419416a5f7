// DCMTK's dcmseg behind a C interface (see include/cdicomseg.h). DCMTK encodes the Segmentation
// IOD (modules, functional groups, bit-packed frames); this file decides which slice of the series
// each reference file is, which frames to write, and turns a SEG's frames back into arrays.
#include "cdicomseg.h"
#include "series_reference.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgseg.h>
#include <dcmtk/dcmiod/iodreferences.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <dcmtk/dcmseg/segutils.h>
#include <dcmtk/oflog/oflog.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace mds;

CodeSequenceMacro code(const mds_code &c) { return CodeSequenceMacro(c.value, c.scheme, c.meaning); }


// Every frame lies exactly on its source slice: Spatial Locations Preserved YES in each Source
// Image item (dcmfg has no setter for it), which readers such as highdicom require before they
// index the segmentation by source instance.
void markSpatialLocationsPreserved(DcmDataset &dataset) {
    DcmSequenceOfItems *frames = nullptr;
    if (dataset.findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, frames).bad() || !frames) return;
    for (unsigned long f = 0; f < frames->card(); ++f) {
        DcmSequenceOfItems *derivations = nullptr;
        if (frames->getItem(f)->findAndGetSequence(DCM_DerivationImageSequence, derivations).bad() || !derivations) continue;
        for (unsigned long d = 0; d < derivations->card(); ++d) {
            DcmSequenceOfItems *sources = nullptr;
            if (derivations->getItem(d)->findAndGetSequence(DCM_SourceImageSequence, sources).bad() || !sources) continue;
            for (unsigned long s = 0; s < sources->card(); ++s) sources->getItem(s)->putAndInsertString(DCM_SpatialLocationsPreserved, "YES");
        }
    }
}

int buildSegmentation(const char *const *files, int fileCount, const mds_grid &grid, const uint16_t *labels, const mds_segment *segments,
                      int segmentCount, const char *description, DcmFileFormat &file) {
    quietDCMTK();
    if (fileCount != grid.size[2])
        return fail("the reference series has " + std::to_string(fileCount) + " files, the label map " + std::to_string(grid.size[2]) +
                    " slices: the label map is not in this series' geometry");
    if (segmentCount < 1 || segmentCount > 65535) return fail("a SEG holds 1 to 65535 segments, not " + std::to_string(segmentCount));
    std::vector<Instance> instances(static_cast<size_t>(fileCount));
    OFString patientID, study, series;
    for (int i = 0; i < fileCount; ++i) {
        Uint16 rows = 0, columns = 0;
        if (readInstance(files[i], instances[size_t(i)], patientID, study, series, rows, columns) != 0) return -1;
        if (rows != grid.size[1] || columns != grid.size[0])
            return fail(std::string(files[i]) + ": " + std::to_string(columns) + " x " + std::to_string(rows) + " pixels, the label map " +
                        std::to_string(grid.size[0]) + " x " + std::to_string(grid.size[1]) + ": the label map is not in this series' geometry");
    }
    for (const Instance &in : instances)
        if (checkPlane(in, grid) != 0) return -1;
    if (placeInstances(instances, grid) != 0) return -1;
    std::vector<const Instance *> bySlice(size_t(grid.size[2]));
    for (const Instance &in : instances) bySlice[size_t(in.slice)] = &in;

    // Which segments each slice holds: one pass over the label map.
    const size_t plane = size_t(grid.size[0]) * size_t(grid.size[1]);
    std::vector<std::vector<char>> present(size_t(grid.size[2]), std::vector<char>(size_t(segmentCount) + 1, 0));
    for (int k = 0; k < grid.size[2]; ++k) {
        const uint16_t *slice = labels + plane * size_t(k);
        std::vector<char> &here = present[size_t(k)];
        for (size_t p = 0; p < plane; ++p) {
            uint16_t v = slice[p];
            if (v > segmentCount)
                return fail("the label map holds label " + std::to_string(v) + " but only " + std::to_string(segmentCount) +
                            " segments are described");
            here[v] = 1;
        }
    }

    size_t frameCount = 0;
    for (const auto &here : present)
        for (int v = 1; v <= segmentCount; ++v) frameCount += size_t(here[size_t(v)]);
    if (frameCount == 0) return fail("the label map holds no label above 0: a SEG needs at least one frame");

    DcmSegmentation *created = nullptr;
    IODGeneralEquipmentModule::EquipmentInfo equipment("MedSeg", "MedSeg", "1", "1");
    ContentIdentificationMacro content("1", "SEGMENTATION", description, "");
    if (checked(DcmSegmentation::createBinarySegmentation(created, Uint16(grid.size[1]), Uint16(grid.size[0]), equipment, content),
                "cannot create a DICOM Segmentation") != 0)
        return -1;
    std::unique_ptr<DcmSegmentation> seg(created);

    // Patient, study and frame of reference from the first slice's file.
    {
        DcmFileFormat format;
        if (checked(format.loadFileUntilTag(bySlice[0]->file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect, DCM_PixelData),
                    bySlice[0]->file + ": cannot be read") != 0 ||
            checked(seg->importFromSourceImage(*format.getDataset()), bySlice[0]->file + ": cannot take patient and study from it") != 0)
            return -1;
    }
    if (checked(seg->getSeries().setSeriesInstanceUID(generateUID(SITE_SERIES_UID_ROOT).c_str()), "series UID") != 0 ||
        checked(seg->getSeries().setSeriesNumber("1000"), "series number") != 0 ||
        checked(seg->getSeries().setSeriesDescription(description), "series description") != 0)
        return -1;

    for (int s = 0; s < segmentCount; ++s) {
        DcmSegment *segment = nullptr;
        if (checked(DcmSegment::create(segment, segments[s].label, code(segments[s].category), code(segments[s].type),
                                       DcmSegTypes::SAT_AUTOMATIC, "MedSeg"),
                    std::string("segment '") + segments[s].label + "'") != 0)
            return -1;
        Uint16 assigned = 0;
        if (checked(seg->addSegment(segment, assigned), std::string("segment '") + segments[s].label + "'") != 0) {
            delete segment;
            return -1;
        }
    }

    // Shared by every frame: the series' pixel spacing, slice spacing and orientation.
    FGPixelMeasures measures;
    std::string spacing = number(grid.spacing[1]) + "\\" + number(grid.spacing[0]);
    if (checked(measures.setPixelSpacing(spacing.c_str()), "pixel spacing " + spacing) != 0 ||
        checked(measures.setSliceThickness(number(grid.spacing[2]).c_str()), "slice thickness") != 0 ||
        checked(measures.setSpacingBetweenSlices(number(grid.spacing[2]).c_str()), "slice spacing") != 0 ||
        checked(seg->addForAllFrames(measures), "pixel measures") != 0)
        return -1;
    const double *o = bySlice[0]->iop;
    std::unique_ptr<FGPlaneOrientationPatient> orientation(
        FGPlaneOrientationPatient::createMinimal(decimal(o[0]), decimal(o[1]), decimal(o[2]), decimal(o[3]), decimal(o[4]), decimal(o[5])));
    if (!orientation) return fail(bySlice[0]->file + ": DCMTK refuses its Image Orientation (Patient) as a plane orientation");
    if (checked(seg->addForAllFrames(*orientation), "plane orientation") != 0) return -1;

    std::string dimensions = generateUID(SITE_INSTANCE_UID_ROOT);
    IODMultiframeDimensionModule &dims = seg->getDimensions();
    if (checked(dims.addDimensionIndex(DCM_ReferencedSegmentNumber, dimensions.c_str(), DCM_SegmentIdentificationSequence, "ReferencedSegmentNumber"),
                "dimension") != 0 ||
        checked(dims.addDimensionIndex(DCM_ImagePositionPatient, dimensions.c_str(), DCM_PlanePositionSequence, "ImagePositionPatient"), "dimension") != 0)
        return -1;

    // One frame per segment and slice that holds it, in segment then slice order.
    std::vector<Uint8> frame(plane);
    const CodeSequenceMacro derivation("113076", "DCM", "Segmentation");
    for (int s = 1; s <= segmentCount; ++s) {
        for (int k = 0; k < grid.size[2]; ++k) {
            if (!present[size_t(k)][size_t(s)]) continue;
            const uint16_t *slice = labels + plane * size_t(k);
            for (size_t p = 0; p < plane; ++p) frame[p] = slice[p] == s ? 1 : 0;
            const Instance &source = *bySlice[size_t(k)];
            std::unique_ptr<FGPlanePosPatient> position(
                FGPlanePosPatient::createMinimal(decimal(source.ipp[0]), decimal(source.ipp[1]), decimal(source.ipp[2])));
            FGFrameContent frameContent;
            frameContent.setDimensionIndexValues(Uint32(s), 0);
            frameContent.setDimensionIndexValues(Uint32(k + 1), 1);
            FGDerivationImage derived;
            DerivationImageItem *item = nullptr;
            if (!position) return fail(source.file + ": DCMTK refuses its Image Position (Patient) as a plane position");
            if (checked(derived.addDerivationImageItem(derivation, "", item), "derivation image") != 0) return -1;
            SourceImageItem *sourceItem = new SourceImageItem();
            item->getSourceImageItems().push_back(sourceItem);
            if (checked(sourceItem->getPurposeOfReferenceCode().set("121322", "DCM", "Source image for image processing operation"), "purpose of reference") != 0 ||
                checked(sourceItem->getImageSOPInstanceReference().setReferencedSOPClassUID(source.sopClass.c_str()), source.file + ": SOP Class UID") != 0 ||
                checked(sourceItem->getImageSOPInstanceReference().setReferencedSOPInstanceUID(source.sopInstance.c_str()), source.file + ": SOP Instance UID") != 0)
                return -1;
            OFVector<FGBase *> perFrame;
            perFrame.push_back(position.get());
            perFrame.push_back(&frameContent);
            perFrame.push_back(&derived);
            if (checked(seg->addFrame(frame.data(), Uint16(s), perFrame), "frame of segment " + std::to_string(s) + " on slice " + std::to_string(k)) != 0)
                return -1;
        }
    }

    // The Referenced Series Sequence: every instance of the source series.
    IODReferences references;
    for (const Instance &in : instances)
        references.add(new IODImageReference(patientID, study, series, in.sopInstance.c_str(), in.sopClass.c_str()));
    seg->getCommonInstanceReference().addReferences(references, study);

    DcmDataset &out = *file.getDataset();
    if (checked(seg->writeDataset(out), "DCMTK cannot encode the Segmentation") != 0) return -1;
    markSpatialLocationsPreserved(out);
    return 0;
}

int readSegmentation(const char *path, mds_segmentation *out) {
    quietDCMTK();
    DcmFileFormat format;
    OFCondition status = format.loadFile(path);
    if (status.bad()) return fail(std::string(path) + ": not a DICOM file DCMTK can read (" + status.text() + ")");
    DcmDataset &ds = *format.getDataset();
    OFString sopClass;
    ds.findAndGetOFString(DCM_SOPClassUID, sopClass);
    if (sopClass != UID_SegmentationStorage)
        return fail(std::string(path) + ": not a DICOM Segmentation (its SOP Class UID is '" + sopClass.c_str() + "', a SEG's is " +
                    UID_SegmentationStorage + ")");
    DcmSegmentation *loaded = nullptr;
    status = DcmSegmentation::loadDataset(ds, loaded);
    std::unique_ptr<DcmSegmentation> seg(loaded);
    if (status.bad() || !seg) return fail(std::string(path) + ": DCMTK cannot read the Segmentation (" + status.text() + ")");
    if (seg->getSegmentationType() != DcmSegTypes::ST_BINARY)
        return fail(std::string(path) + ": a fractional Segmentation; MedSeg reads binary ones");
    Uint16 rows = 0, columns = 0;
    ds.findAndGetUint16(DCM_Rows, rows);
    ds.findAndGetUint16(DCM_Columns, columns);
    size_t frames = seg->getNumberOfFrames(), plane = size_t(rows) * columns;
    FGInterface &groups = seg->getFunctionalGroups();
    FGPlaneOrientationPatient *orientation = OFstatic_cast(FGPlaneOrientationPatient *, groups.get(0, DcmFGTypes::EFG_PLANEORIENTPATIENT));
    FGPixelMeasures *measures = OFstatic_cast(FGPixelMeasures *, groups.get(0, DcmFGTypes::EFG_PIXELMEASURES));
    if (frames == 0 || !orientation || !measures)
        return fail(std::string(path) + ": the Segmentation has no frames, or no Plane Orientation or Pixel Measures");
    double *o = out->orientation;
    if (orientation->getImageOrientationPatient(o[0], o[1], o[2], o[3], o[4], o[5]).bad() ||
        measures->getPixelSpacing(out->pixel_spacing[0], 0).bad() || measures->getPixelSpacing(out->pixel_spacing[1], 1).bad())
        return fail(std::string(path) + ": its Plane Orientation or Pixel Spacing is unreadable");
    if (measures->getSpacingBetweenSlices(out->slice_spacing).bad()) out->slice_spacing = 0;
    out->rows = rows;
    out->columns = columns;
    out->frame_count = int(frames);
    out->segment_count = int(seg->getNumberOfSegments());
    out->frame_segments = static_cast<int *>(std::calloc(frames, sizeof(int)));
    out->frame_positions = static_cast<double *>(std::calloc(frames * 3, sizeof(double)));
    out->pixels = static_cast<uint8_t *>(std::malloc(frames * plane));
    out->segment_labels = static_cast<char **>(std::calloc(size_t(out->segment_count) + 1, sizeof(char *)));
    if (!out->frame_segments || !out->frame_positions || !out->pixels || !out->segment_labels)
        return fail(std::string(path) + ": out of memory for " + std::to_string(frames) + " frames");
    for (int s = 0; s < out->segment_count; ++s) {
        OFString label;
        if (DcmSegment *segment = seg->getSegment(size_t(s + 1))) segment->getSegmentLabel(label);
        out->segment_labels[s] = copyString(label.c_str());
    }
    OFString frameOfReference;
    ds.findAndGetOFString(DCM_FrameOfReferenceUID, frameOfReference);
    out->frame_of_reference = copyString(frameOfReference.c_str());
    for (size_t f = 0; f < frames; ++f) {
        std::string which = std::string(path) + ": frame " + std::to_string(f + 1);
        FGSegmentation *identification = OFstatic_cast(FGSegmentation *, groups.get(Uint32(f), DcmFGTypes::EFG_SEGMENTATION));
        FGPlanePosPatient *position = OFstatic_cast(FGPlanePosPatient *, groups.get(Uint32(f), DcmFGTypes::EFG_PLANEPOSPATIENT));
        Uint16 segment = 0;
        double *p = out->frame_positions + 3 * f;
        if (!identification || identification->getReferencedSegmentNumber(segment).bad() || segment < 1 || segment > out->segment_count)
            return fail(which + " names no segment of the Segmentation");
        if (!position || position->getImagePositionPatient(p[0], p[1], p[2]).bad()) return fail(which + " has no Plane Position (Patient)");
        out->frame_segments[f] = segment;
        const DcmIODTypes::Frame *packed = seg->getFrame(f);
        if (!packed) return fail(which + " has no pixel data");
        // DCMTK keeps binary frames bit-packed, 8 pixels a byte.
        std::unique_ptr<DcmIODTypes::Frame> unpacked(DcmSegUtils::unpackBinaryFrame(packed, rows, columns));
        if (!unpacked || unpacked->length < plane) return fail(which + ": its pixel data is cut short");
        uint8_t *target = out->pixels + plane * f;
        for (size_t i = 0; i < plane; ++i) target[i] = unpacked->pixData[i] ? 1 : 0;
    }
    return 0;
}

}  // namespace

using namespace mds;

extern "C" {

const char *mds_last_error(void) { return lastError.c_str(); }

struct mds_writer {
    DcmFileFormat file;
};

int mds_prepare(const char *const *files, int file_count, const mds_grid *grid, const uint16_t *labels, const mds_segment *segments,
                int segment_count, const char *series_description, mds_writer **out) {
    *out = nullptr;
    std::unique_ptr<mds_writer> writer(new mds_writer());
    try {
        if (buildSegmentation(files, file_count, *grid, labels, segments, segment_count, series_description, writer->file) != 0) return -1;
    } catch (const std::exception &error) {
        return fail(error.what());
    }
    *out = writer.release();
    return 0;
}

int mds_save(mds_writer *writer, const char *path) {
    OFCondition status = writer->file.saveFile(path, EXS_LittleEndianExplicit);
    return status.good() ? 0 : fail(std::string("DCMTK cannot write the Segmentation: ") + status.text());
}

void mds_free_writer(mds_writer *writer) { delete writer; }

int mds_read(const char *path, mds_segmentation *out) {
    std::memset(out, 0, sizeof(*out));
    int status = -1;
    try { status = readSegmentation(path, out); } catch (const std::exception &error) { status = fail(std::string(path) + ": " + error.what()); }
    if (status != 0) mds_free(out);
    return status;
}

void mds_free(mds_segmentation *segmentation) {
    if (!segmentation) return;
    std::free(segmentation->frame_segments);
    std::free(segmentation->frame_positions);
    std::free(segmentation->pixels);
    for (int s = 0; s < segmentation->segment_count && segmentation->segment_labels; ++s) std::free(segmentation->segment_labels[s]);
    std::free(segmentation->segment_labels);
    std::free(segmentation->frame_of_reference);
    std::memset(segmentation, 0, sizeof(*segmentation));
}

}  // extern "C"
