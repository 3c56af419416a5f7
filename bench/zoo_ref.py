"""PyTorch references of the model zoo timed like `medseg benchmark` (Adam, BCE-with-logits,
warm-up steps then timed steps), built from the reference implementations the parity tests use
(scripts/fixtures/*.py). Usage: python3 bench/zoo_ref.py MODEL MODE SIZE BATCH THREADS WARMUP STEPS"""
import json, os, sys, time
import torch, torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts", "fixtures"))


def build(name):
    if name == "unetpp":
        from make_zoo_fixtures_unet import UNetPlusPlus
        return UNetPlusPlus(3, 1, 3, 32, 5, deep_supervision=False), (1, 3)
    if name == "plainunet":
        from make_zoo_fixtures_unet import PlainConvUNet
        feats = [min(32 * 2 ** i, 512) for i in range(6)]
        return PlainConvUNet(2, 4, 4, feats, [[3, 3]] * 6, [[1, 1]] + [[2, 2]] * 5, deep_supervision=False), (4, 4)
    if name == "ultralight_vmunet":
        from make_ultralight_fixtures import UltraLight_VM_UNet
        return UltraLight_VM_UNet(num_classes=1, input_channels=3), (3, 1)
    if name == "setr_mla":
        from make_setr_fixtures import SETRMLA
        m = SETRMLA(dict(img=224, p=16, cin=3, dim=768, depth=12, heads=12, mlp=3072), classes=1)
        m.encoder.requires_grad_(False)
        return m, (3, 1)
    if name == "segresnet":
        from monai.networks.nets import SegResNet
        return SegResNet(spatial_dims=3, in_channels=4, out_channels=3), (4, 3)
    if name == "mednext":
        import importlib.util
        import monai.networks.blocks  # noqa: F401 (the installed MONAI's packages; MONAI 1.6's MedNeXt files beside them)
        root = os.path.join(HERE, "..", ".deps", "reference", "monai-1.6.0", "monai", "networks")
        for module, path in (("monai.networks.blocks.mednext_block", "blocks/mednext_block.py"), ("monai_1_6_mednext", "nets/mednext.py")):
            spec = importlib.util.spec_from_file_location(module, os.path.join(root, path))
            sys.modules[module] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(sys.modules[module])
        return sys.modules["monai_1_6_mednext"].create_mednext("B", in_channels=1, out_channels=3, kernel_size=3), (1, 3)
    if name == "swinunetr":
        from monai.networks.nets import SwinUNETR
        return SwinUNETR(img_size=(64, 64, 64), in_channels=1, out_channels=14, feature_size=48), (1, 14)
    if name == "primus":
        from dynamic_network_architectures.architectures.primus import PrimusB
        return PrimusB(1, 3, (8, 8, 8), (64, 64, 64)), (1, 3)
    raise SystemExit("unknown model " + name)


def main():
    name, mode, size, batch, threads, warmup, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \
        int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, (cin, cout) = build(name)
    dims = 3 if name in ("unetpp", "segresnet", "swinunetr", "mednext", "primus") else 2
    shape = (batch, cin) + (size,) * dims
    x = torch.randn(*shape)
    y = (torch.rand((batch, cout) + (size,) * dims) > 0.5).float()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-4)
    model.train(mode == "train")

    def out(o):
        return o[0] if isinstance(o, (list, tuple)) else o

    def step():
        if mode == "train":
            opt.zero_grad(set_to_none=True)
            F.binary_cross_entropy_with_logits(out(model(x)), y).backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)
    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t) / steps
    print(json.dumps({"model": name, "mode": mode, "params": sum(p.numel() for p in model.parameters()), "img_per_s": batch / dt}))


if __name__ == "__main__":
    main()
