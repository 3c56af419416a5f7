#!/usr/bin/env python3
"""Helpers of bench/dicomseg.sh.

    dicomseg_ref.py labels CT.nii.gz SEGMENTS OUT.nii.gz OUT.npy
        a label map on CT's grid: segment n a 40 x 40 square over 30 slices, placed on a grid in
        plane and staggered in z; written as NIfTI (for MedSeg) and as a (z, y, x) array in the
        series' slice order (for highdicom)
    dicomseg_ref.py highdicom SERIES_DIR LABELS.npy SEGMENTS OUT.dcm
        the same SEG with highdicom: reads the series (pydicom), builds and writes the
        Segmentation; prints its seconds and frame count as JSON
"""
import glob
import json
import sys
import time


def labels(ct, segments, out_nifti, out_npy):
    import nibabel as nib
    import numpy as np
    image = nib.load(ct)
    nx, ny, nz = image.shape[:3]
    lab = np.zeros((nx, ny, nz), np.uint16)
    per_row = max(1, nx // 48)
    for n in range(1, segments + 1):
        i = n - 1
        x0 = (i % per_row) * 48 + 4
        y0 = ((i // per_row) * 48 + 4) % max(1, ny - 44)
        z0 = (i * 7) % max(1, nz - 30)
        lab[x0:x0 + 40, y0:y0 + 40, z0:z0 + 30] = n
    nib.save(nib.Nifti1Image(lab, image.affine), out_nifti)
    np.save(out_npy, np.ascontiguousarray(lab.transpose(2, 1, 0)))


def reference(series, npy, segments, out):
    began = time.time()
    import highdicom as hd
    import numpy as np
    import pydicom
    from pydicom.sr.codedict import codes
    sources = [pydicom.dcmread(f) for f in glob.glob(series + "/*")]
    o = np.array(sources[0].ImageOrientationPatient, float)
    normal = np.cross(o[:3], o[3:])
    sources.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    # The fixture writer leaves out type-2 patient and study attributes that highdicom copies.
    for d in sources:
        for attribute in ("PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
            if attribute not in d:
                setattr(d, attribute, "")
    mask = np.load(npy)
    algorithm = hd.AlgorithmIdentificationSequence(name="highdicom-bench", version="1", family=codes.cid7162.ArtificialIntelligence)
    descriptions = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=f"Label {n}",
        segmented_property_category=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
        segmented_property_type=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm) for n in range(1, segments + 1)]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=1000, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="bench", manufacturer_model_name="bench", software_versions="1", device_serial_number="1")
    seg.save_as(out)
    print(json.dumps({"seconds": time.time() - began, "frames": int(seg.NumberOfFrames)}))


if __name__ == "__main__":
    if sys.argv[1] == "labels":
        labels(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        reference(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
