"""PyTorch reference of MedSeg's sliding-window inference (Sources/MedSegTrain/Inference/SlidingWindow.swift),
timed like `medseg benchmark --mode sliding-window`: nnU-Net's window positions
(compute_steps_for_sliding_window, step 0.5 of the patch), the Gaussian importance map (sigma = patch / 8,
maximum 1, zeros replaced by the smallest positive value), mirroring over every combination of the
spatial axes, windows batched per network call; nnU-Net v2's plain conv U-Net (the parity tests'
reference, scripts/fixtures/make_zoo_fixtures_unet.py) in eval mode under torch.no_grad.
Usage: python3 bench/sliding_window_ref.py DIMS SIZE PATCH FEATURES DEPTH MIRROR(0|1) WINDOW_BATCH THREADS WARMUP RUNS [DEVICE]"""
import itertools, json, math, os, sys, time
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts", "fixtures"))
from make_zoo_fixtures_unet import PlainConvUNet  # noqa: E402


def steps(image, patch, fraction):
    """nnU-Net's compute_steps_for_sliding_window along one axis."""
    if image <= patch:
        return [0]
    target = patch * fraction
    count = int(math.ceil((image - patch) / target)) + 1
    actual = (image - patch) / (count - 1)
    return [int(round(actual * i)) for i in range(count)]


def importance_map(patch):
    m = None
    for axis, size in enumerate(patch):
        sigma, center = size / 8, size // 2
        g = torch.exp((torch.arange(size, dtype=torch.float64) - center) ** 2 / (-2 * sigma * sigma))
        shape = [1] * len(patch)
        shape[axis] = size
        g = g.reshape(shape)
        m = g if m is None else m * g
    m = m.float()
    m = m / m.max()
    m[m == 0] = m[m > 0].min()
    return m


def sliding_window(image, network, patch, mirror_axes, batch, counter):
    """Logits [K, spatial...] of an image [C, spatial...] (no padding needed: image >= patch here)."""
    spatial = list(image.shape[1:])
    positions = list(itertools.product(*[steps(s, p, 0.5) for s, p in zip(spatial, patch)]))
    weight = importance_map(patch).to(image.device)
    combos = [[a + 2 for a in c] for r in range(1, len(mirror_axes) + 1) for c in itertools.combinations(mirror_axes, r)]

    def net(x):
        counter["calls"] += 1
        counter["windows"] += x.shape[0]
        return network(x)

    def crop(t, start, leading):
        return t[(slice(None),) * leading + tuple(slice(s, s + p) for s, p in zip(start, patch))]

    total, counts = None, torch.zeros(spatial, device=image.device)
    for i in range(0, len(positions), batch):
        chunk = positions[i:i + batch]
        windows = torch.stack([crop(image, p, 1) for p in chunk])
        # As nnU-Net v2's predict_sliding_window_return_logits / _internal_maybe_mirror_and_predict.
        logits = net(windows)
        for dims in combos:
            logits += torch.flip(net(torch.flip(windows, dims)), dims)
        logits /= len(combos) + 1
        if total is None:
            total = torch.zeros([logits.shape[1]] + spatial, device=image.device)
        for k, start in enumerate(chunk):
            crop(total, start, 1).add_(logits[k] * weight)  # nnU-Net: predicted_logits[sl] += prediction * gaussian
            crop(counts, start, 0).add_(weight)
    return total / counts, len(positions)


def main():
    dims, size, patch, features, depth, mirror, batch, threads, warmup, runs = map(int, sys.argv[1:11])
    device = torch.device(sys.argv[11] if len(sys.argv) > 11 else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    # MedSeg's ModelFactory "plainunet": PlainConvUNet.Config.regular (kernels 3, stride 1 then 2,
    # features base * 2^i capped at 320 in 3D / 512 in 2D), 1 input channel, 1 class.
    cap = 320 if dims == 3 else 512
    feats = [min(features * 2 ** i, cap) for i in range(depth)]
    model = PlainConvUNet(dims, 1, 1, feats, [[3] * dims] * depth, [[1] * dims] + [[2] * dims] * (depth - 1),
                          deep_supervision=False).eval().to(device)
    image = torch.randn([1] + [size] * dims).to(device)
    counter = {"calls": 0, "windows": 0}

    def volume():
        counter["calls"] = counter["windows"] = 0
        with torch.no_grad():
            return sliding_window(image, lambda x: model(x)[0], [patch] * dims, list(range(dims)) if mirror else [], batch, counter)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    for _ in range(warmup):
        volume()
    sync()
    t = time.perf_counter()
    for _ in range(max(1, runs)):
        _, positions = volume()
    sync()
    dt = (time.perf_counter() - t) / max(1, runs)
    print(json.dumps({"model": "plainunet", "mode": "sliding-window", "params": sum(p.numel() for p in model.parameters()),
                      "seconds_per_volume": dt, "positions": positions, "windows": counter["windows"],
                      "network_calls": counter["calls"], "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
