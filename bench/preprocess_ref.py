"""Helpers of bench/preprocess.sh (`medseg plan` and `medseg preprocess` of CT-sized cases, beside nnU-Net's
nnUNetv2_plan_and_preprocess).
Usage:
  python3 bench/preprocess_ref.py data FOLDER CASES WORKERS      (numpy, nibabel)
  python3 bench/preprocess_ref.py run LIMIT_MB JSON_OUT -- COMMAND... (standard library only)
  python3 bench/preprocess_ref.py shapes MEDSEG_FOLDER NNUNET_FOLDER  (nnU-Net's Python: blosc2)
FOLDER becomes an nnU-Net v2 raw data set (dataset.json, imagesTr/CASE_0000.nii.gz, labelsTr/CASE.nii.gz)."""
import json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_ref import run  # noqa: E402  (the process-tree PSS sampler and memory limit of bench/export.sh)

LABELS = {"background": 0, "liver": 1, "kidney": 2, "spleen": 3}


def geometry(i, cases):
    """Case i of CASES: slices from 200 to 400 spread evenly over the cases, and spacings spread over
    0.6..0.9 mm in plane and 1.0..3.0 mm along z in other orders (so that size and spacing do not go together)."""
    f = lambda k: ((i * k) % cases) / max(1, cases - 1)
    nz = 200 + round(200 * i / max(1, cases - 1))
    sxy = round(0.6 + 0.3 * f(7), 3)
    sz = round(1.0 + 2.0 * f(3), 2)
    return nz, sxy, sz


def case(args):
    """One CT-like int16 case of 512 x 512 x Z and its label map: air (-1000) around an elliptic body of soft
    tissue (40 HU) under a fat layer (-100 HU) with a spine (450 HU), lungs (-850 HU) in the upper third, and as
    labelled organs a liver (1, 60 HU), two kidneys (2, 150 HU) and a spleen (3, 50 HU); Gaussian noise of 15 HU.
    Sizes are in mm, so that the body is the same whatever the spacing. Written slab by slab into int16 arrays."""
    import nibabel as nib, numpy as np
    folder, i, cases = args
    nz, sxy, sz = geometry(i, cases)
    rng = np.random.default_rng(1000 + i)
    n = 512
    x = ((np.arange(n) - n / 2 + 0.5) * sxy)[:, None]          # mm, x first (nibabel's array order)
    y = ((np.arange(n) - n / 2 + 0.5) * sxy)[None, :]
    length = nz * sz
    image = np.empty((n, n, nz), dtype=np.int16)
    label = np.zeros((n, n, nz), dtype=np.uint8)

    def ellipsoid(cx, cy, cz, rx, ry, rz, zmm):
        dz = ((zmm - cz) / rz) ** 2
        return None if dz >= 1 else ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1 - dz

    # Organs: centres and radii in mm, centres along z as fractions of the scanned length.
    organs = [(1, 60, (-50, 10, 0.45 * length, 85, 65, 0.18 * length + 40)),
              (2, 150, (-60, 55, 0.3 * length, 28, 22, 0.07 * length + 25)),
              (2, 150, (60, 55, 0.3 * length, 28, 22, 0.07 * length + 25)),
              (3, 50, (70, 20, 0.5 * length, 35, 30, 0.06 * length + 20))]
    body = (x / 145) ** 2 + (y / 105) ** 2
    for z in range(nz):
        zmm = (z + 0.5) * sz
        s = np.full((n, n), -1000.0, dtype=np.float32)
        s[body < 1] = 40
        s[(body >= 0.85) & (body < 1)] = -100
        s[((x / 18) ** 2 + ((y - 75) / 18) ** 2) < 1] = 450
        if zmm > 0.66 * length:
            for side in (-1, 1):
                s[((x - side * 65) / 50) ** 2 + ((y + 5) / 70) ** 2 < 1] = -850
        lab = np.zeros((n, n), dtype=np.uint8)
        for value, hu, (cx, cy, cz, rx, ry, rz) in organs:
            m = ellipsoid(cx, cy, cz, rx, ry, rz, zmm)
            if m is not None:
                s[m] = hu
                lab[m] = value
        image[:, :, z] = np.clip(s + rng.normal(0, 15, s.shape).astype(np.float32), -1024, 3071).astype(np.int16)
        label[:, :, z] = lab
    affine = np.diag([sxy, sxy, sz, 1.0])
    name = f"case_{i:03d}"
    for data, path, dtype in ((image, f"imagesTr/{name}_0000.nii.gz", np.int16), (label, f"labelsTr/{name}.nii.gz", np.uint8)):
        img = nib.Nifti1Image(data, affine)
        img.header.set_data_dtype(dtype)
        img.header.set_xyzt_units("mm", "sec")
        nib.save(img, os.path.join(folder, path))
    return f"{name}: 512 x 512 x {nz} at {sxy} x {sxy} x {sz} mm"


def data(folder, cases, workers):
    """The raw data set, cases made on WORKERS processes."""
    from multiprocessing import Pool
    cases, workers = int(cases), int(workers)
    for sub in ("imagesTr", "labelsTr"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    with Pool(max(1, min(workers, cases))) as pool:
        for line in pool.imap(case, [(folder, i, cases) for i in range(cases)]):
            print(line, flush=True)
    json.dump({"channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": cases, "file_ending": ".nii.gz",
               "name": "BenchPreprocess"}, open(os.path.join(folder, "dataset.json"), "w"), indent=1)


def shapes(medseg, nnunet):
    """Per case, MedSeg's stored shape (ID.json) against nnU-Net's (ID.b2nd), and how many agree."""
    import blosc2, glob
    same, rows = 0, []
    for path in sorted(glob.glob(os.path.join(medseg, "*.json"))):
        cid = os.path.basename(path)[:-5]
        ours = json.load(open(path))["shape"]
        b2 = os.path.join(nnunet, cid + ".b2nd")
        theirs = list(blosc2.open(b2, mode="r").shape) if os.path.exists(b2) else None
        same += ours == theirs
        rows.append((cid, ours, theirs))
    print(json.dumps({"cases": len(rows), "same_shape": same,
                      "differ": [f"{c}: {a} vs {b}" for c, a, b in rows if a != b][:5]}))


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    if what == "data":
        data(*args)
    elif what == "run":
        sys.exit(run(args[0], args[1], args[3:] if args[2] == "--" else args[2:]))
    elif what == "shapes":
        shapes(*args)
    else:
        sys.exit(__doc__)
