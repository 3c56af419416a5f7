"""Writes MedSeg's malformed-input corpus: files whose headers lie, overflow, point elsewhere or
inflate without end, for every image reader. `make test` runs it (Tests/EndToEndTests/
MalformedCorpusTests.swift) and reads each file with `medseg data info`: none may crash, hang,
allocate what its real content does not need, or read outside its folder; each refusal is one
line naming the file. Standard library only (struct, zlib, gzip, zipfile, pickle).

Usage: python3 scripts/malformed/make_corpus.py OUT_DIR
Writes OUT_DIR/manifest.json: [{"file", "expect": "error" | "any", "fragment"}], where "error"
means a refusal that contains `fragment`, and "any" a clean read or a one-line refusal."""
import gzip, json, os, struct, sys, zlib

OUT = sys.argv[1] if len(sys.argv) > 1 else "corpus"
os.makedirs(OUT, exist_ok=True)
MANIFEST = []


def put(name, data, expect="error", fragment=""):
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    MANIFEST.append({"file": name, "expect": expect, "fragment": fragment})


# ---- NIfTI-1 / NIfTI-2 ----

def nifti1(dim, datatype=2, bitpix=8, vox_offset=352.0, pixdim=None, sform=None, scl=(0.0, 0.0)):
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    d = list(dim) + [1] * (8 - len(dim))
    struct.pack_into("<8h", h, 40, *d)
    struct.pack_into("<hh", h, 70, datatype, bitpix)
    struct.pack_into("<8f", h, 76, *(pixdim or [1.0] * 8))
    struct.pack_into("<f", h, 108, vox_offset)
    struct.pack_into("<ff", h, 112, *scl)
    if sform:
        struct.pack_into("<h", h, 254, 1)
        struct.pack_into("<12f", h, 280, *sform)
    h[344:348] = b"n+1\0"
    return bytes(h) + b"\0\0\0\0"


def nifti2(dim, datatype=2, bitpix=8, vox_offset=544):
    h = bytearray(540)
    struct.pack_into("<i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into("<hh", h, 12, datatype, bitpix)
    d = list(dim) + [1] * (8 - len(dim))
    struct.pack_into("<8q", h, 16, *d)
    struct.pack_into("<8d", h, 104, *([1.0] * 8))
    struct.pack_into("<q", h, 168, vox_offset)
    return bytes(h) + b"\0\0\0\0"


def make_nifti():
    put("nifti/nifti2_vox_offset_max.nii", nifti2([3, 2, 2, 2], vox_offset=2 ** 63 - 1) + bytes(8), fragment="vox_offset")
    put("nifti/empty.nii", b"", fragment="empty")
    put("nifti/short_header.nii", nifti1([3, 4, 4, 4])[:100], fragment="truncated")
    put("nifti/not_nifti.nii", b"hello world, this is no image" * 20, fragment="not a NIfTI")
    put("nifti/negative_dim.nii", nifti1([3, 4, -4, 4]) + bytes(64), fragment="corrupt header")
    put("nifti/zero_dim.nii", nifti1([3, 4, 0, 4]), fragment="corrupt header")
    put("nifti/rank_zero.nii", nifti1([0, 4, 4, 4]) + bytes(64), fragment="corrupt header")
    put("nifti/rank_nine.nii", nifti1([9, 4, 4, 4]) + bytes(64), fragment="corrupt header")
    put("nifti/huge_dims_small_data.nii", nifti1([3, 32767, 32767, 32767], 4, 16) + bytes(100), fragment="truncated")
    put("nifti/complex64.nii", nifti1([3, 2, 2, 2], 32, 64) + bytes(64), fragment="unsupported NIfTI datatype 32")
    put("nifti/vox_offset_huge.nii", nifti1([3, 2, 2, 2], vox_offset=1e12) + bytes(8), fragment="")
    put("nifti/vox_offset_negative.nii", nifti1([3, 2, 2, 2], vox_offset=-1e6) + bytes(8), expect="any")
    put("nifti/pixdim_nan.nii", nifti1([3, 2, 2, 2], pixdim=[1.0, float("nan"), 0.0, -1.0, 1, 1, 1, 1]) + bytes(8), expect="any")
    put("nifti/sform_nan.nii", nifti1([3, 2, 2, 2], sform=[float("nan")] * 12) + bytes(8), expect="any")
    put("nifti/scl_inf.nii", nifti1([3, 2, 2, 2], scl=(float("inf"), 1.0)) + bytes(8), expect="any")
    put("nifti/float_nan_inf.nii", nifti1([3, 2, 2, 1], 16, 32) + struct.pack("<4f", float("nan"), float("inf"), -float("inf"), 1e38), expect="any")
    put("nifti/nifti2_dims_2e31.nii", nifti2([3, 2**31, 2**31, 2**31]) + bytes(64), fragment="corrupt header")
    put("nifti/nifti2_dims_2e62.nii", nifti2([4, 2**62, 2**62, 4, 4]) + bytes(64), fragment="corrupt header")
    put("nifti/nifti2_negative.nii", nifti2([3, -(2**40), 2, 2]) + bytes(64), fragment="corrupt header")
    # gzip: a bomb (header says 8^3 bytes, 64 MiB inflate), truncated, trailing megabytes.
    small = nifti1([3, 8, 8, 8]) + bytes(512)
    put("nifti/bomb.nii.gz", gzip.compress(small + bytes(64 << 20), 9), fragment="more than")
    put("nifti/truncated.nii.gz", gzip.compress(small)[:-30], fragment="")
    put("nifti/trailing_2mib.nii.gz", gzip.compress(small + bytes(2 << 20), 9), fragment="more than")
    put("nifti/ok_small.nii.gz", gzip.compress(small), expect="any")
    # A .hdr/.img pair whose .img is a bomb.
    put("nifti/pair_bomb.hdr", nifti1([3, 8, 8, 8], vox_offset=0.0)[:344] + b"ni1\0", fragment="more than")
    put("nifti/pair_bomb.img.gz", gzip.compress(bytes(64 << 20), 9), expect="skip")


# ---- NRRD ----

def nrrd(fields, data=b"", magic="NRRD0004"):
    text = magic + "\n" + "".join(f"{k}: {v}\n" for k, v in fields) + "\n"
    return text.encode() + data


def make_nrrd():
    base = [("type", "uint8"), ("dimension", "3"), ("sizes", "2 2 2"), ("encoding", "raw")]

    def with_(**kv):
        out = []
        for k, v in base:
            out.append((k, kv.pop(k.replace(" ", "_"), v)))
        out += [(k.replace("_", " "), v) for k, v in kv.items()]
        return out
    put("nrrd/ok.nrrd", nrrd(base, bytes(8)), expect="any")
    put("nrrd/sizes_2e32.nrrd", nrrd(with_(sizes="4294967296 4294967296 4294967296"), bytes(8)), fragment="corrupt header")
    put("nrrd/sizes_negative.nrrd", nrrd(with_(sizes="2 -2 2"), bytes(8)), fragment="sizes")
    put("nrrd/sizes_zero.nrrd", nrrd(with_(sizes="2 0 2"), bytes(8)), fragment="sizes")
    put("nrrd/dimension_wrong.nrrd", nrrd(with_(dimension="5"), bytes(8)), fragment="sizes")
    put("nrrd/ascii_65535_cubed.nrrd", nrrd(with_(sizes="65535 65535 65535", encoding="ascii"), b"1 2 3\n"), fragment="corrupt header")
    put("nrrd/hex_65535_cubed.nrrd", nrrd(with_(sizes="65535 65535 65535", encoding="hex"), b"00ff\n"), fragment="corrupt header")
    put("nrrd/gzip_1000_cubed.nrrd", nrrd(with_(sizes="1000 1000 1000", encoding="gzip"), gzip.compress(bytes(100))), fragment="corrupt header")
    put("nrrd/gzip_bomb.nrrd", nrrd(with_(encoding="gzip"), gzip.compress(bytes(64 << 20), 9)), fragment="more than")
    put("nrrd/byte_skip_max_raw.nrrd", nrrd(with_(byte_skip="9223372036854775807"), bytes(8)), fragment="")
    put("nrrd/byte_skip_max_gzip.nrrd", nrrd(with_(encoding="gzip", byte_skip="9223372036854775807"), gzip.compress(bytes(8))), fragment="corrupt header")
    put("nrrd/byte_skip_negative.nrrd", nrrd(with_(byte_skip="-5"), bytes(8)), fragment="")
    put("nrrd/unknown_encoding.nrrd", nrrd(with_(encoding="bzip9"), bytes(8)), fragment="encoding")
    put("nrrd/unknown_type.nrrd", nrrd(with_(type="quaternion"), bytes(8)), fragment="type")
    put("nrrd/no_header_end.nrrd", b"NRRD0004\ntype: uint8\ndimension: 1\nsizes: 4", fragment="")
    put("nrrd/truncated_raw.nrrd", nrrd(base, bytes(3)), fragment="truncated")
    put("nrrd/directions_nan.nrrd", nrrd(with_(space="left-posterior-superior", space_directions="(nan,0,0) (0,1,0) (0,0,1)"), bytes(8)), fragment="NaN")
    put("nrrd/spacings_zero.nrrd", nrrd(with_(spacings="0 -1 nan"), bytes(8)), expect="any")
    # Detached headers naming files elsewhere: never read.
    put("nrrd/detached_etc.nhdr", nrrd(with_(data_file="/etc/hostname", sizes="2 2 1")), fragment="outside the header's folder")
    put("nrrd/detached_parent.nhdr", nrrd(with_(data_file="../../../../../../etc/hostname", sizes="2 2 1")), fragment="outside the header's folder")
    put("nrrd/detached_proc.nhdr", nrrd(with_(data_file="/proc/self/environ", sizes="2 2 1")), fragment="outside the header's folder")
    put("nrrd/detached_ok.raw", bytes(8), expect="skip")
    put("nrrd/detached_ok.nhdr", nrrd(with_(data_file="detached_ok.raw")), expect="any")
    put("nrrd/deep_header.nrrd", b"NRRD0004\n" + b"# comment\n" * 200000 + b"type: uint8\ndimension: 1\nsizes: 1\nencoding: raw\n\n\0", expect="any")


# ---- PNG / TIFF / JPEG / BMP / GIF: declared sizes far beyond their data ----

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, bit_depth=8, color=0, idat=None):
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    raw = idat if idat is not None else zlib.compress(b"\0" * 4)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", raw) + png_chunk(b"IEND", b"")


def tiff(width, height, strips=1, pages=1, compression=1, data=b"\0" * 16):
    # Little-endian baseline gray TIFF; every page points at the same strip.
    entries = lambda: [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, compression),
                       (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, len(data))]
    out = bytearray(b"II*\0" + struct.pack("<I", 8 + len(data)))
    out[8:8] = data
    offset = 8 + len(data)
    for p in range(pages):
        e = entries()
        ifd = struct.pack("<H", len(e)) + b"".join(struct.pack("<HHII", t, ty, n, v) for t, ty, n, v in e)
        nxt = offset + len(ifd) + 4 if p + 1 < pages else 0
        out += ifd + struct.pack("<I", nxt)
        offset = len(out)
    return bytes(out)


def bmp(width, height, bits=24):
    header = b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, 16, 2835, 2835, 0, 0)
    return header + info + bytes(16)


def gif(width, height):
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
            + b"\x08\x02\x4c\x01\x00;")


def make_2d():
    put("png/huge_declared.png", png(100000, 100000), fragment="corrupt header")
    put("png/max_declared.png", png(0x7FFFFFFF, 0x7FFFFFFF), fragment="")
    put("png/zero_width.png", png(0, 10), fragment="")
    put("png/bad_crc.png", png(4, 4)[:-5] + b"XXXXX", fragment="")
    put("png/idat_bomb.png", png(1024, 1024, idat=zlib.compress(bytes(64 << 20), 9)), expect="any")
    put("png/truncated.png", png(64, 64)[:40], fragment="")
    put("tiff/huge_declared.tif", tiff(100000, 100000), fragment="corrupt header")
    put("tiff/thousand_pages_one_strip.tif", tiff(64, 64, pages=1000, data=bytes(64 * 64)), expect="any")
    put("tiff/strip_past_end.tif", tiff(64, 64, data=b"\0" * 4)[:-4], fragment="")
    put("tiff/not_tiff.tif", b"II*\0" + b"\xff" * 20, fragment="")
    put("jpeg/truncated.jpg", b"\xff\xd8\xff\xe0\0\x10JFIF\0\1\1\0\0\1\0\1\0\0\xff\xc0\0\x0b\x08\xff\xff\xff\xff\x01\x01\x11\0", fragment="")
    put("jpeg/not_jpeg.jpg", b"\xff\xd8garbage" * 10, fragment="")
    put("bmp/huge_declared.bmp", bmp(100000, 100000), fragment="truncated")
    put("bmp/negative_width.bmp", bmp(-5, 5), fragment="")
    put("gif/huge_declared.gif", gif(65535, 65535), fragment="")
    put("gif/empty.gif", b"GIF89a", fragment="")


# ---- broken data sets and configs, through `data check`, `train` and `plan` ----

TRAIN = ["train", "--dataset", "{file}", "--out", "{tmp}/run", "--epochs", "1", "--iterations", "1", "--batch-size", "2",
         "--patch-size", "8,8", "--features", "4", "--depth", "2", "--threads", "1"]


def dataset(name, cases, labels=None, num_training=None, ending=".nii.gz"):
    """cases: {id: (image bytes, label bytes or None)}; images are written as CASE_0000."""
    root = f"datasets/{name}"
    for cid, (image, label) in cases.items():
        put(f"{root}/imagesTr/{cid}_0000{ending}", image, expect="skip")
        if label is not None:
            put(f"{root}/labelsTr/{cid}{ending}", label, expect="skip")
    meta = {"channel_names": {"0": "MRI"}, "labels": labels or {"background": 0, "tumour": 1},
            "numTraining": len([c for c in cases.values() if c[1] is not None]) if num_training is None else num_training,
            "file_ending": ending}
    put(f"{root}/dataset.json", json.dumps(meta).encode(), expect="skip")
    return root


def img2d(values, datatype=16, bitpix=32, fmt="<f", dims=(8, 8)):
    n = dims[0] * dims[1] * (dims[2] if len(dims) > 2 else 1)
    data = b"".join(struct.pack(fmt, values[i % len(values)]) for i in range(n))
    return gzip.compress(nifti1([len(dims)] + list(dims), datatype, bitpix) + data)


def check_and_train(name, cases, fragment, **kw):
    root = dataset(name, cases, **kw)
    MANIFEST.append({"file": root, "expect": "error", "fragment": fragment, "args": ["data", "check", "{file}"]})
    MANIFEST.append({"file": root, "expect": "error", "fragment": fragment, "args": TRAIN})


def make_datasets():
    good = img2d([0.0, 1.0, 5.0, 3.0])
    label = lambda v: img2d(v, 2, 8, "<B")
    fg = label([0, 1])
    check_and_train("label_nan", {"a": (good, img2d([0.0, float("nan")])), "b": (good, fg)}, "NaN")
    check_and_train("label_inf", {"a": (good, img2d([0.0, float("inf")])), "b": (good, fg)}, "inf")
    check_and_train("label_1e20", {"a": (good, img2d([0.0, 1e20])), "b": (good, fg)}, "1e+20")
    check_and_train("label_fraction", {"a": (good, img2d([0.0, 0.5])), "b": (good, fg)}, "0.5")
    check_and_train("image_nan", {"a": (img2d([1.0, float("nan")]), fg), "b": (good, fg)}, "NaN or infinite")
    check_and_train("label_rgb", {"a": (good, gzip.compress(nifti1([5, 8, 8, 1, 1, 3], 2, 8) + bytes(192))), "b": (good, fg)}, "channels")
    check_and_train("label_2e40_json", {"a": (good, fg), "b": (good, fg)}, "outside 0 to 65535",
                    labels={"background": 0, "huge": 2**40})
    check_and_train("num_training_wrong", {"a": (good, fg), "b": (good, fg)}, "numTraining", num_training=7)
    check_and_train("image_without_label", {"a": (good, fg), "b": (good, fg), "c": (good, None)}, "no label")
    check_and_train("empty", {}, "labelsTr")
    check_and_train("size_mismatch", {"a": (good, label([0, 1]) and img2d([0, 1], 2, 8, "<B", dims=(8, 4))), "b": (good, fg)}, "size")
    root = dataset("mixed_dims", {"a": (good, fg), "b": (img2d([1.0, 2.0], dims=(8, 8, 2)), label([0, 1]) and img2d([0, 1], 2, 8, "<B", dims=(8, 8, 2)))})
    MANIFEST.append({"file": root, "expect": "error", "fragment": "", "args": ["plan", "{file}"]})
    # Configs.
    put("configs/deep_list.yaml", b"patch_size: " + b"[" * 100000 + b"]" * 100000 + b"\n", expect="skip")
    MANIFEST.append({"file": "configs/deep_list.yaml", "expect": "error", "fragment": "deep",
                     "args": ["train", "--dataset", "/nonexistent", "--out", "{tmp}/run", "--config", "{file}"]})
    put("configs/duplicate_keys.yaml", b"lr: 0.01\nepochs: 3\nlr: 0.5\n", expect="skip")
    MANIFEST.append({"file": "configs/duplicate_keys.yaml", "expect": "error", "fragment": "'lr' twice",
                     "args": ["train", "--dataset", "/nonexistent", "--out", "{tmp}/run", "--config", "{file}"]})
    put("configs/grad_clip_nan.yaml", b"grad_clip: .nan\n", expect="skip")
    for command in (["predict", "--run", "{tmp}", "--input", "{tmp}", "--out", "{tmp}/out"], ["benchmark", "--steps", "1"]):
        MANIFEST.append({"file": "configs/grad_clip_nan.yaml", "expect": "error", "fragment": "--threads must be",
                         "args": command + ["--threads", "100000"]})
    MANIFEST.append({"file": "configs/grad_clip_nan.yaml", "expect": "error", "fragment": "finite",
                     "args": ["train", "--dataset", "/nonexistent", "--out", "{tmp}/run", "--config", "{file}"]})


def make_weights():
    """PyTorch checkpoints made with torch (Debian's python3-torch), then made to lie."""
    try:
        import io, torch
    except ImportError:  # without torch, the weight cases are left out
        return
    def save(obj):
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return bytearray(buffer.getvalue())
    ls = lambda: ["weights", "inspect", "{file}"]
    # A 1-element storage viewed as 2^40 elements (stride 0): never copied out.
    put("pth/stride0_2e40.pth", bytes(save({"w": torch.zeros(1).expand(2 ** 40)})), expect="skip")
    MANIFEST.append({"file": "pth/stride0_2e40.pth", "expect": "error", "fragment": "would expand", "args": ls()})
    # A stored entry whose zip directory claims 4 GiB.
    data = save({"w": torch.ones(4)})
    central = data.rfind(b"PK\x01\x02")
    while central >= 0:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        name = bytes(data[central + 46:central + 46 + name_len])
        if name.endswith(b"data/0"):
            struct.pack_into("<I", data, central + 24, 0xFFFFFFF0)
        central = data.rfind(b"PK\x01\x02", 0, central)
    put("pth/entry_claims_4gib.pth", bytes(data), expect="skip")
    MANIFEST.append({"file": "pth/entry_claims_4gib.pth", "expect": "error", "fragment": "", "args": ls()})
    put("pth/truncated.pth", bytes(save({"w": torch.ones(64)})[:300]), expect="skip")
    MANIFEST.append({"file": "pth/truncated.pth", "expect": "error", "fragment": "", "args": ls()})
    put("pth/not_a_zip.pth", b"\x80\x02}q\x00.", expect="skip")
    MANIFEST.append({"file": "pth/not_a_zip.pth", "expect": "error", "fragment": "", "args": ls()})


# ---- DICOM series (pydicom, Debian's python3-pydicom) whose tags GDCM would replace by defaults ----

def make_dicom():
    try:
        import io
        import pydicom
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    except ImportError:
        return
    try:
        pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    except AttributeError:
        pass
    series_uid = generate_uid()

    def slice_bytes(z, rows=4, columns=4, tags=None, pixel=None, drop=()):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.SeriesNumber = "CT", series_uid, series_uid, 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 2.5 * z]
        ds.PixelSpacing = [0.7, 0.7]
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = pixel if pixel is not None else struct.pack("<%dH" % (rows * columns), *([1000] * (rows * columns)))
        raw = {}
        for key, (vr, value) in (tags or {}).items():
            if isinstance(value, str):
                # Text written as given, whatever pydicom thinks of it: a placeholder, replaced below.
                ds.add_new(key, vr, "0")
                raw[key] = (vr, value)
            else:
                ds.add_new(key, vr, value)
        for key in drop:
            delattr(ds, key)
        out = io.BytesIO()
        pydicom.dcmwrite(out, ds, write_like_original=False)
        data = out.getvalue()
        for key, (vr, value) in raw.items():
            head = struct.pack("<HH", key >> 16, key & 0xFFFF) + vr.encode()
            at = data.find(head, 132)
            old_length = struct.unpack("<H", data[at + 6:at + 8])[0]
            text = value.encode() + (b" " if len(value) % 2 else b"")
            data = data[:at + 6] + struct.pack("<H", len(text)) + text + data[at + 8 + old_length:]
        return data

    def series(name, fragment, slices=3, **kw):
        for z in range(slices):
            put(f"dicom/{name}/IM{z:03d}.dcm", slice_bytes(z, **kw), fragment=fragment)
            MANIFEST.pop()
        MANIFEST.append({"file": f"dicom/{name}", "expect": "error", "fragment": fragment})

    orientation = 0x00200037
    series("orientation_missing", "no Image Orientation", drop=["ImageOrientationPatient"])
    series("orientation_zero", "degenerate orientation", tags={orientation: ("DS", "0\\0\\0\\0\\0\\0")})
    series("orientation_parallel", "degenerate orientation", tags={orientation: ("DS", "1\\0\\0\\1\\0\\0")})
    series("orientation_skew", "degenerate orientation", tags={orientation: ("DS", "1\\0\\0\\0.5\\0.5\\0")})
    series("orientation_nan", "is not six numbers", tags={orientation: ("DS", "nan\\0\\0\\0\\1\\0")})
    series("orientation_three", "is not six numbers", tags={orientation: ("DS", "1\\0\\0")})
    for value, name in [("nan", "nan"), ("abc", "abc"), ("1e309", "huge"), ("0", "zero")]:
        series(f"slope_{name}", "Rescale Slope", tags={0x00281053: ("DS", value)})
    for value, name in [("nan", "nan"), ("-1e309", "huge")]:
        series(f"intercept_{name}", "Rescale Intercept", tags={0x00281052: ("DS", value)})
    series("slope_large", "Rescale Slope", tags={0x00281053: ("DS", "1e38")})
    series("pixel_spacing_nan", "Pixel Spacing", tags={0x00280030: ("DS", "nan\\0.7")})
    series("positions_1e300", "Image Position", tags={0x00200032: ("DS", "0\\0\\1e300")})
    series("pixels_cut_short", "cut short", pixel=b"\0" * 20)
    series("pixels_odd_length", "bytes, where Rows", pixel=b"\0" * 35)
    series("rows_65535", "MiB of pixels", slices=1, rows=65535, columns=65535, pixel=b"\0" * 512)
    series("frames_2e31", "Number of Frames", slices=1, tags={0x00280008: ("IS", "2147483647")})
    series("samples_zero", "Samples per Pixel", slices=1, tags={0x00280002: ("US", 0)})

    # Files GDCM's parser itself trips over, before any check can run: read in a child process,
    # whose crash is one error line.
    good = slice_bytes(0)
    meta_end = 132 + 12 + struct.unpack("<I", good[140:144])[0]
    def one(name, data, fragment=""):
        put(f"dicom/{name}/IM000.dcm", data, fragment=fragment)
        MANIFEST[-1]["file"] = f"dicom/{name}"
    one("cut_after_meta", good[:meta_end])
    one("cut_inside_element", good[:meta_end + 30])
    def element(group, elem, vr, value=b"", undefined=False):
        if vr in ("SQ", "OB", "UN"):
            return struct.pack("<HH2sHI", group, elem, vr.encode(), 0, 0xFFFFFFFF if undefined else len(value)) + value
        return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value
    item_start = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    item_end, seq_end = struct.pack("<HHI", 0xFFFE, 0xE00D, 0), struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    def nested(depth, closed):
        opening = (element(0x0008, 0x1115, "SQ", undefined=True) + item_start) * depth
        return good[:meta_end] + opening + ((item_end + seq_end) * depth if closed else b"")
    one("sequences_20000_deep", nested(20000, True))
    one("sequences_5000_unclosed", nested(5000, False))
    one("element_2gib", good[:meta_end] + element(0x0009, 0x0010, "UN", b"") [:-4] + struct.pack("<I", 0x7FFFFFF0) + b"\0" * 64)


def make_self_overwrite():
    # A converter given its input as its output must refuse before it writes anything.
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header += b" " * ((8 - len(header) % 8) % 8)
    put("weights/self.safetensors", struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1, 2), fragment="would destroy it")
    MANIFEST[-1]["args"] = ["weights", "convert", "{file}", "{file}"]


def make_conversions():
    # Broken geometry read in is never written out.
    for name in ["nifti/sform_nan.nii", "nrrd/directions_nan.nrrd"]:
        MANIFEST.append({"file": name, "expect": "error", "fragment": "NaN", "args": ["data", "convert", "{file}", "{tmp}.nrrd"]})


def make_huge_legal():
    # Legal images far larger than memory (under the test's 2 GB address-space limit): data info
    # streams them; a command that must hold one says how much memory it needs, before it tries.
    header = nifti1((3, 1024, 1024, 1024))
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    body = deflate.compress(header)
    zeros = bytes(1 << 22)
    for _ in range(256):
        body += deflate.compress(zeros)
    put("huge/legal_1024_cubed.nii.gz", body + deflate.flush(), expect="ok")
    MANIFEST.append({"file": "huge/legal_1024_cubed.nii.gz", "expect": "error", "fragment": "of memory",
                     "args": ["data", "convert", "{file}", "{tmp}.nrrd"]})
    # 1000 pages of 1000 x 1000 pixels, every page pointing at the same strip.
    put("huge/legal_1000_pages.tif", tiff(1000, 1000, pages=1000, data=bytes(range(250)) * 4000), expect="ok")
    MANIFEST.append({"file": "huge/legal_1000_pages.tif", "expect": "error", "fragment": "of memory",
                     "args": ["data", "convert", "{file}", "{tmp}.nii.gz"]})
    # Three pages whose chain points past the end: not a one-page image.
    three = bytearray(tiff(16, 16, pages=3, data=bytes(256)))
    first_ifd = struct.unpack_from("<I", three, 4)[0]
    entries = struct.unpack_from("<H", three, first_ifd)[0]
    struct.pack_into("<I", three, first_ifd + 2 + 12 * entries, len(three) + 4096)
    put("tiff/page_chain_past_end.tif", bytes(three), fragment="cannot be read")


# ---- surfaces of prediction: nnU-Net's .npz, post-processing files, model files ----

def npy(shape, descr="<f4", data=None, shape_text=None):
    """An .npy file (format 1.0) with a header that may lie about its shape."""
    text = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text or repr(tuple(shape)))
    text += " " * ((64 - (10 + len(text) + 1) % 64) % 64) + "\n"
    if data is None:
        count = 1
        for n in shape:
            count *= n
        data = struct.pack("<%df" % count, *([0.25] * count))
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + data


def npz(name, member, compress=True, crc_flip=False):
    """A folder holding CASE.npz whose probabilities.npy is `member`."""
    import io, zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        z.writestr("probabilities.npy", member)
    data = bytearray(buf.getvalue())
    if crc_flip:
        # The local header's CRC-32 and the central directory's both changed: the content no longer matches them.
        for sig in (b"PK\x03\x04", b"PK\x01\x02"):
            at = data.find(sig)
            off = at + (14 if sig == b"PK\x03\x04" else 16)
            data[off] ^= 0xFF
    put(f"npz/{name}/case.npz", bytes(data))


def ensemble_args():
    return ["ensemble", "--inputs", "{file}", "{file}", "--out", "{tmp}"]


def make_npz():
    entries = [
        ("overflow_elements", npy([1], shape_text="(4611686018427387904, 4)", data=b""), "overflows 64 bits"),
        ("overflow_square", npy([1], shape_text="(3037000500, 3037000500)", data=b""), "overflows 64 bits"),
        ("beyond_64_bits", npy([1], shape_text="(36893488147419103232, 2)", data=b""), "is not a count"),
        ("malformed_shape", npy([1], shape_text="(2, x, 3)", data=b""), "is not a count"),
        ("zero_d", npy([]), "nnU-Net writes [classes"),
        ("nan", npy([2, 2, 2], data=struct.pack("<8f", *([float("nan")] * 8))), "NaN"),
        ("infinite", npy([2, 2, 2], data=struct.pack("<8f", *([float("inf")] * 8))), "NaN or infinite"),
        ("negative", npy([2, 2, 2], data=struct.pack("<8f", *([-0.5] * 8))), "outside the probabilities"),
        ("short_data", npy([2, 4, 4], data=b"\0" * 12), "bytes of data"),
    ]
    for name, member, fragment in entries:
        npz(name, member)
        MANIFEST[-1].update(fragment=fragment, args=ensemble_args(), file=f"npz/{name}")
    # Its header says 196 kB; the deflate stream inflates to 3 GiB.
    header = npy([3, 128, 128])[:-3 * 128 * 128 * 4]
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = bomb.compress(header) + b"".join(bomb.compress(b"\0" * (1 << 24)) for _ in range(192)) + bomb.flush()
    import zipfile
    with zipfile.ZipFile(os.path.join(OUT, "bomb.zip"), "w") as z:
        info = zipfile.ZipInfo("probabilities.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, b"")   # placeholder entry, replaced below
    # Written by hand: a local header, the raw deflate stream, the central directory.
    size = len(header) + 192 * (1 << 24)
    crc = zlib.crc32(header)
    name = b"probabilities.npy"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(body), size & 0xFFFFFFFF, len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(body), size & 0xFFFFFFFF, len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(body), 0)
    os.remove(os.path.join(OUT, "bomb.zip"))
    put("npz/bomb/case.npz", local + body + central + end)
    MANIFEST[-1].update(file="npz/bomb", fragment="inflates beyond", args=ensemble_args())
    npz("bad_crc", npy([2, 2, 2]), compress=False, crc_flip=True)
    MANIFEST[-1].update(file="npz/bad_crc", fragment="CRC-32", args=ensemble_args())
    os.makedirs(os.path.join(OUT, "npz/folder/case.npz"), exist_ok=True)
    MANIFEST.append({"file": "npz/folder", "expect": "error", "fragment": "is a folder", "args": ensemble_args()})
    os.makedirs(os.path.join(OUT, "npz/fifo"), exist_ok=True)
    os.mkfifo(os.path.join(OUT, "npz/fifo/case.npz"))
    MANIFEST.append({"file": "npz/fifo", "expect": "error", "fragment": "named pipe", "args": ensemble_args()})


def make_postprocessing():
    import pickle, sys, types
    args = ["ensemble", "--inputs", "{tmp}a", "{tmp}b", "--out", "{tmp}o", "--postprocessing", "{file}"]
    fn = "remove_all_but_largest_component_from_segmentation"
    def nnunet_json(labels, steps=1):
        return json.dumps({"postprocessing_fns": [fn] * steps, "postprocessing_kwargs": [{"labels_or_regions": labels}] * steps}).encode()
    for name, data, fragment in [
        ("label_1e300.json", nnunet_json(1e300), "not a label"),
        ("label_minus_1e300.json", nnunet_json(-1e300), "not a label"),
        ("label_9e18.json", nnunet_json(9.3e18), "not a label"),
        ("steps_100000.json", nnunet_json(1, steps=100000), "steps"),
        ("medseg_label_1e300.json", b'{"foreground_as_one": false, "keep_largest_component": [1e300]}', "post-processing"),
        ("medseg_label_70000.json", b'{"foreground_as_one": false, "keep_largest_component": [70000]}', "label 70000"),
    ]:
        put("postprocessing/" + name, data, fragment=fragment)
        MANIFEST[-1]["args"] = args
    # nnU-Net's pickle: (functions, kwargs) with a function global, written without nnU-Net.
    module = types.ModuleType("nnunetv2.postprocessing.remove_connected_components")
    def step():
        pass
    step.__module__, step.__name__, step.__qualname__ = module.__name__, fn, fn
    setattr(module, fn, step)
    sys.modules[module.__name__] = module
    shared = [1, 2]
    for _ in range(60):
        shared = [shared, shared]   # each list twice: 2^60 labels once expanded, a few hundred bytes pickled
    for name, kwargs, fragment in [
        ("shared_60_deep.pkl", [{"labels_or_regions": shared}], "nests lists"),
        ("label_1e300.pkl", [{"labels_or_regions": 10 ** 300}], "not a label"),
    ]:
        put("postprocessing/" + name, pickle.dumps(([step] * len(kwargs), kwargs), protocol=2), fragment=fragment)
        MANIFEST[-1]["args"] = args
    os.mkfifo(os.path.join(OUT, "postprocessing/fifo.json"))
    MANIFEST.append({"file": "postprocessing/fifo.json", "expect": "error", "fragment": "named pipe", "args": args})


def model_zip(name, manifest=None, extra=None, raw_manifest=None):
    import io, zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        if raw_manifest is not None:
            z.writestr("medseg_model.json", raw_manifest)
        elif manifest is not None:
            m = {"format": "medseg-model-1", "folds": ["0"], "checkpoint": "final", "configuration": "3d_fullres", "mirror": True,
                 "step_size": 0.5, "postprocessing": False, "created_by": "corpus"}
            m.update(manifest)
            z.writestr("medseg_model.json", json.dumps(m))
        for path, data in (extra or {}).items():
            z.writestr(zipfile.ZipInfo(path), data)
    put("models/" + name, buf.getvalue())


def make_models():
    args = ["predict", "--model", "{file}", "--input", "{tmp}in", "--out", "{tmp}out"]
    for name, kwargs, fragment in [
        ("step_0.zip", dict(manifest={"step_size": 0}), "step_size"),
        ("step_negative.zip", dict(manifest={"step_size": -0.5}), "step_size"),
        ("step_tiny.zip", dict(manifest={"step_size": 1e-9}), "step_size"),
        ("fold_escapes.zip", dict(manifest={"folds": ["0/../../../../x"]}), "names fold"),
        ("checkpoint_absolute.zip", dict(manifest={"checkpoint": "/etc/passwd"}), "names checkpoint"),
        ("checkpoint_up.zip", dict(manifest={"checkpoint": "../../../etc/passwd"}), "names checkpoint"),
        ("manifest_invalid.zip", dict(raw_manifest="{\"format\": \"medseg-model-1\", "), "is invalid"),
        ("manifest_missing.zip", dict(extra={"fold_0/checkpoint_final.pt": b"x"}), "no medseg_model.json"),
        ("entry_escapes.zip", dict(manifest={}, extra={"../../outside.txt": b"x"}), "would unpack outside"),
        ("format_other.zip", dict(manifest={"format": "medseg-model-99"}), "model format"),
    ]:
        model_zip(name, **kwargs)
        MANIFEST[-1].update(fragment=fragment, args=args)
    os.makedirs(os.path.join(OUT, "models/folder.zip"), exist_ok=True)
    MANIFEST.append({"file": "models/folder.zip", "expect": "error", "fragment": "is a folder", "args": args})
    os.mkfifo(os.path.join(OUT, "models/fifo.zip"))
    MANIFEST.append({"file": "models/fifo.zip", "expect": "error", "fragment": "named pipe", "args": args})


make_dicom()
make_self_overwrite()
make_npz()
make_postprocessing()
make_models()
make_nifti()
make_nrrd()
make_conversions()
make_weights()
make_2d()
make_huge_legal()
make_datasets()
with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump([m for m in MANIFEST if m["expect"] != "skip"], f, indent=1)
print(f"{len([m for m in MANIFEST if m['expect'] != 'skip'])} malformed inputs in {OUT}")
