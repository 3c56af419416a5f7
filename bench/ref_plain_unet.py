"""PyTorch reference for `medseg benchmark --model plainunet --mode train`: nnU-Net's plain conv
U-Net in its regular form (as PlainConvUNet.Config.regular: `depth` stages, kernel 3, stride 2
after stage 0, features base*2^i capped at 512 (2D) / 320 (3D), conv-InstanceNorm(affine)-
LeakyReLU(0.01) x2 per stage, transposed-conv upsampling, 1x1 seg layer, no deep supervision),
trained with BCE-with-logits and Adam on random data, as MedSeg's benchmark does.
Usage: python3 ref_plain_unet.py --dim 2 --batch-size 64 --size 192,160 --in-channels 4 --classes 4
       --depth 6 --features 32 --precision fp32|bf16|fp16 [--channels-last] [--mode train|infer] --device cuda
Prints one JSON object with img_per_s."""
import argparse, json, time
import torch, torch.nn as nn, torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--dim", type=int, default=2); p.add_argument("--batch-size", type=int, default=64)
p.add_argument("--size", default="192", help="one value for every axis, or one per axis: 192,160"); p.add_argument("--in-channels", type=int, default=4)
p.add_argument("--classes", type=int, default=4); p.add_argument("--depth", type=int, default=6)
p.add_argument("--features", type=int, default=32); p.add_argument("--precision", default="fp32")
p.add_argument("--channels-last", action="store_true"); p.add_argument("--device", default="cuda")
p.add_argument("--warmup", type=int, default=3); p.add_argument("--steps", type=int, default=10)
p.add_argument("--mode", default="train", choices=["train", "infer"])
a = p.parse_args()
size = [int(v) for v in a.size.replace("x", ",").split(",")]
size = size * a.dim if len(size) == 1 else size
assert len(size) == a.dim, f"--size needs 1 or {a.dim} values"
Conv = nn.Conv2d if a.dim == 2 else nn.Conv3d
Norm = nn.InstanceNorm2d if a.dim == 2 else nn.InstanceNorm3d
Up = nn.ConvTranspose2d if a.dim == 2 else nn.ConvTranspose3d
cap = 512 if a.dim == 2 else 320
feats = [min(a.features << i, cap) for i in range(a.depth)]

def stage(i, o, stride):
    return nn.Sequential(Conv(i, o, 3, stride, 1), Norm(o, eps=1e-5, affine=True), nn.LeakyReLU(0.01, inplace=True),
                         Conv(o, o, 3, 1, 1), Norm(o, eps=1e-5, affine=True), nn.LeakyReLU(0.01, inplace=True))

class PlainConvUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.ModuleList([stage(a.in_channels if s == 0 else feats[s - 1], feats[s], 1 if s == 0 else 2)
                                  for s in range(a.depth)])
        self.up = nn.ModuleList([Up(feats[s], feats[s - 1], 2, 2) for s in reversed(range(1, a.depth))])
        self.dec = nn.ModuleList([stage(2 * feats[s - 1], feats[s - 1], 1) for s in reversed(range(1, a.depth))])
        self.seg = Conv(feats[0], a.classes, 1)
        # nnU-Net builds a seg layer for every decoder stage (deep supervision); without it only the
        # last one runs, but the parameter count matches MedSeg's.
        self.ds = nn.ModuleList([Conv(feats[s - 1], a.classes, 1) for s in reversed(range(2, a.depth))])
    def forward(self, x):
        skips = []
        for e in self.enc:
            x = e(x); skips.append(x)
        skips.pop()
        for u, d in zip(self.up, self.dec):
            x = d(torch.cat([u(x), skips.pop()], 1))
        return self.seg(x)

dev = torch.device(a.device)
def sync():
    if dev.type == "cuda": torch.cuda.synchronize()
torch.backends.cudnn.benchmark = True
model = PlainConvUNet().to(dev)
fmt = (torch.channels_last if a.dim == 2 else torch.channels_last_3d) if a.channels_last else torch.contiguous_format
model = model.to(memory_format=fmt)
shape = [a.batch_size, a.in_channels] + size
x = torch.randn(shape, device=dev).contiguous(memory_format=fmt)
y = (torch.rand([a.batch_size, a.classes] + size, device=dev) > 0.5).float()
opt = torch.optim.Adam(model.parameters(), 1e-4)
amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[a.precision]
scaler = torch.amp.GradScaler(dev.type) if a.precision == "fp16" else None

model.train(a.mode == "train")

def step():
    if a.mode == "infer":
        with torch.no_grad(), torch.autocast(dev.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            return model(x).float().mean()
    opt.zero_grad(set_to_none=True)
    with torch.autocast(dev.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
        loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
    if scaler:
        scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
    else:
        loss.backward(); opt.step()
    return loss

for _ in range(a.warmup): step()
sync()
if dev.type == "cuda": torch.cuda.reset_peak_memory_stats()
t = time.perf_counter()
for _ in range(a.steps): loss = step()
sync()
dt = (time.perf_counter() - t) / a.steps
print(json.dumps({"img_per_s": a.batch_size / dt, "step_ms": dt * 1e3, "loss": float(loss),
                  "params": sum(p.numel() for p in model.parameters()), "torch": torch.__version__,
                  "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None}))
