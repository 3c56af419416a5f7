"""Helpers of bench/export.sh (`medseg predict` of one large CT-like volume with an nnU-Net v2 model folder).
Usage:
  python3 bench/export_ref.py model FOLDER CLASSES PATCH FEATURES   (torch, dynamic_network_architectures: /usr/bin/python3)
  python3 bench/export_ref.py image FILE SIZE                        (numpy, nibabel)
  python3 bench/export_ref.py run LIMIT_MB JSON_OUT -- COMMAND...     (standard library only)
  python3 bench/export_ref.py compare MASK_A [MASK_B]                (numpy, nibabel)
PATCH and FEATURES are comma-separated (PATCH z,y,x); SIZE is XxYxZ voxels."""
import json, os, signal, subprocess, sys, time

PLAN_SPACING = [2.5, 0.8, 0.8]          # z, y, x mm: the plans' 3d_fullres spacing
IMAGE_SPACING = (0.7, 0.7, 1.25)        # x, y, z mm: the case's, another than the plans'
# CT foreground intensities as nnU-Net's fingerprint would give them for soft tissue and organs.
CT_PROPS = {"max": 1800.0, "mean": 60.0, "median": 55.0, "min": -1000.0, "percentile_00_5": -150.0, "percentile_99_5": 900.0, "std": 120.0}


def model(folder, classes, patch, features):
    """An nnU-Net v2 model folder (plans.json, dataset.json, dataset_fingerprint.json, fold_0/checkpoint_final.pth)
    for 3d_fullres, with a small PlainConvUNet of random weights: network time stays modest on 2 cores."""
    import pydoc, torch
    classes, patch, features = int(classes), [int(v) for v in patch.split(",")], [int(v) for v in features.split(",")]
    # Stride 2 on an axis while the patch stays even and at least 8 there: the patch is divisible by the total stride.
    strides, shape = [[1, 1, 1]], list(patch)
    for _ in features[1:]:
        s = [2 if n % 2 == 0 and n >= 8 else 1 for n in shape]
        shape = [n // k for n, k in zip(shape, s)]
        strides.append(s)
    n = len(features)
    arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {"n_stages": n, "features_per_stage": features, "conv_op": "torch.nn.modules.conv.Conv3d",
                            "kernel_sizes": [[3, 3, 3]] * n, "strides": strides, "n_conv_per_stage": [2] * n,
                            "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
                            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    resampling = lambda seg, order: {"is_seg": seg, "order": order, "order_z": 0, "force_separate_z": None}
    median_shape = [150, 448, 448]
    plans = {"dataset_name": "Dataset900_BenchExport", "plans_name": "nnUNetPlans",
             "original_median_spacing_after_transp": PLAN_SPACING, "original_median_shape_after_transp": median_shape,
             "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
             "configurations": {"3d_fullres": {
                 "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
                 "patch_size": patch, "median_image_size_in_voxels": median_shape, "spacing": PLAN_SPACING,
                 "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
                 "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
                 "resampling_fn_data_kwargs": resampling(False, 3), "resampling_fn_seg_kwargs": resampling(True, 1),
                 "resampling_fn_probabilities": "resample_data_or_seg_to_shape", "resampling_fn_probabilities_kwargs": resampling(False, 1),
                 "architecture": arch, "batch_dice": False}},
             "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
             "foreground_intensity_properties_per_channel": {"0": CT_PROPS}}
    dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, **{f"structure_{c}": c for c in range(1, classes)}},
               "numTraining": 20, "file_ending": ".nii.gz"}
    os.makedirs(os.path.join(folder, "fold_0"), exist_ok=True)
    json.dump(plans, open(os.path.join(folder, "plans.json"), "w"), indent=1)
    json.dump(dataset, open(os.path.join(folder, "dataset.json"), "w"), indent=1)
    json.dump({"spacings": [PLAN_SPACING] * 20, "shapes_after_crop": [median_shape] * 20, "median_relative_size_after_cropping": 1.0,
               "foreground_intensity_properties_per_channel": {"0": CT_PROPS}}, open(os.path.join(folder, "dataset_fingerprint.json"), "w"))
    kwargs = dict(arch["arch_kwargs"])
    for key in arch["_kw_requires_import"]:
        if kwargs[key] is not None:
            kwargs[key] = pydoc.locate(kwargs[key])
    torch.manual_seed(31)
    net = pydoc.locate(arch["network_class_name"])(input_channels=1, num_classes=classes, deep_supervision=True, **kwargs)
    with torch.no_grad():
        # Wide random convolution weights (norms stay at scale 1), output layers 10x wider and without bias: many
        # classes win somewhere (default init, or random output biases, give a near-constant argmax: a trivial mask), and
        # logits of order 1 with clear gaps between classes, so that nnU-Net's float16 sums of windows break few ties.
        for name, t in net.named_parameters():
            if t.dim() > 1:
                t.uniform_(-0.3, 0.3)
            if "seg_layers" in name:
                t.mul_(10) if t.dim() > 1 else t.zero_()
    # Mirroring axes None: neither tool mirrors (mirroring would multiply the network time by 8).
    torch.save({"network_weights": net.state_dict(), "optimizer_state": None, "grad_scaler_state": None,
                "logging": {"mean_fg_dice": [0.5], "ema_fg_dice": [0.5]}, "_best_ema": 0.5, "current_epoch": 1000,
                "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": dataset, "device": torch.device("cpu")},
                "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": None},
               os.path.join(folder, "fold_0", "checkpoint_final.pth"))
    print(f"model: {classes} classes, patch {patch}, features {features}, strides {strides[1:]}, "
          f"{sum(p.numel() for p in net.parameters())} parameters")


def image(path, size):
    """A CT-like int16 volume: air, an elliptic body of soft tissue with a bone ring, lungs, fat and organ-like blobs
    of several HU, plus noise; written slab by slab so that a 512 x 512 x 300 case needs little memory."""
    import nibabel as nib, numpy as np
    nx, ny, nz = (int(v) for v in size.lower().split("x"))
    rng = np.random.default_rng(31)
    vol = np.empty((nx, ny, nz), dtype=np.int16)
    x = ((np.arange(nx) - nx / 2) / (0.42 * nx))[:, None]
    y = ((np.arange(ny) - ny / 2) / (0.32 * ny))[None, :]
    r = x ** 2 + y ** 2
    # Blobs: centre (fractions of x, y, z), radii (fractions), HU.
    blobs = [((0.5 + 0.25 * np.cos(a), 0.5 + 0.15 * np.sin(a), 0.2 + 0.6 * rng.random()), (0.06 + 0.06 * rng.random(), 0.05 + 0.05 * rng.random(),
              0.08 + 0.15 * rng.random()), hu) for a, hu in zip(np.linspace(0, 2 * np.pi, 12, endpoint=False),
                                                                 [60, 30, -100, 150, 45, 250, -60, 80, 20, 400, 5, 110])]
    for z in range(nz):
        s = np.full((nx, ny), -1000, dtype=np.float32)
        s[r < 1] = 40
        s[(r > 0.82) & (r < 1)] = 700                                             # ribs / spine ring
        for side in (-1, 1):                                                        # lungs in the upper half
            if z > 0.45 * nz:
                s[((x - side * 0.45) / 0.35) ** 2 + (y / 0.6) ** 2 < 1] = -800
        for (cx, cy, cz), (rx, ry, rz), hu in blobs:
            if abs(z / nz - cz) >= rz:
                continue
            d = ((np.arange(nx)[:, None] / nx - cx) / rx) ** 2 + ((np.arange(ny)[None, :] / ny - cy) / ry) ** 2 + ((z / nz - cz) / rz) ** 2
            s[d < 1] = hu
        vol[:, :, z] = np.clip(s + rng.normal(0, 12, s.shape), -1024, 3071).astype(np.int16)
    img = nib.Nifti1Image(vol, np.diag([*IMAGE_SPACING, 1.0]))
    img.header.set_data_dtype(np.int16)
    img.header.set_xyzt_units("mm", "sec")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nib.save(img, path)
    print(f"image: {nx} x {ny} x {nz} at {IMAGE_SPACING} mm, {path}")


def tree_pss_kb(root):
    """Proportional set size of a process and all its descendants (nnU-Net works in several processes, each with its
    own torch): shared pages count once in the sum, where a sum of RSS would count them in every process."""
    children = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(pid))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += next((int(l.split()[1]) for l in f if l.startswith("Pss:")), 0)
        except OSError:
            pass
    return total


def run(limit_mb, out, command):
    """Runs a command in its own session, samples its process tree's PSS every 0.1 s and stops the whole session
    once it passes LIMIT_MB (a run that would exhaust the machine's memory is cut, not OOM-killed with its neighbours)."""
    limit_kb, peak, killed = int(limit_mb) * 1024, 0, False
    start = time.time()
    p = subprocess.Popen(command, start_new_session=True)
    while p.poll() is None:
        peak = max(peak, tree_pss_kb(p.pid))
        if peak > limit_kb and not killed:
            os.killpg(p.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.1)
    json.dump({"rc": p.returncode, "wall_s": time.time() - start, "tree_pss_mb": peak / 1024, "killed_at_limit": killed}, open(out, "w"))
    return p.returncode


def compare(a, b=None):
    """Fraction of voxels with equal labels (same grid required), and the labels each mask holds; one mask: its labels."""
    import nibabel as nib, numpy as np
    if b is None:
        print(json.dumps({"labels_a": int(len(np.unique(np.asarray(nib.load(a).dataobj))))}))
        return
    ia, ib = nib.load(a), nib.load(b)
    la, lb = np.asarray(ia.dataobj), np.asarray(ib.dataobj)
    if la.shape != lb.shape or not np.allclose(ia.header.get_zooms()[:3], ib.header.get_zooms()[:3], atol=1e-4):
        print(json.dumps({"equal": None, "why": f"grids differ: {la.shape} {ia.header.get_zooms()} vs {lb.shape} {ib.header.get_zooms()}"}))
        return
    print(json.dumps({"equal": float((la == lb).mean()), "labels_a": int(len(np.unique(la))), "labels_b": int(len(np.unique(lb)))}))


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    if what == "model":
        model(*args)
    elif what == "image":
        image(*args)
    elif what == "run":
        sys.exit(run(args[0], args[1], args[3:] if args[2] == "--" else args[2:]))
    elif what == "compare":
        compare(*args)
    else:
        sys.exit(__doc__)
