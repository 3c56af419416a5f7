"""PyTorch reference for `medseg benchmark --model ultralight_vmunet --mode train` on a GPU: the
published UltraLight VM-UNet (the parity tests' reference, scripts/fixtures/make_ultralight_fixtures.py)
with its per-timestep selective scan replaced by a chunked parallel scan (inside a chunk every state
at once from the cumulative decays, then one carry per chunk), the fastest a plain-PyTorch scan goes
without a custom kernel. Timed like MedSeg's benchmark: Adam 1e-4, BCE-with-logits, warm-up steps,
then timed steps. `--check` first compares the parallel scan with the loop (values and gradients).
Usage: python3 bench/ultralight_ref.py [--size 256] [--batch-size 8] [--precision fp32|bf16|fp16]
       [--device cuda] [--warmup 3] [--steps 10] [--check]
Prints one JSON object with img_per_s."""
import argparse, json, os, sys, time
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "fixtures"))
import make_ultralight_fixtures as ref  # noqa: E402


def parallel_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=True, chunk=32):
    """selective_scan_ref's result (u, delta, z: [b, d, l]; A: [d, n]; B, C: [b, n, l])."""
    dtype = u.dtype
    u, delta, B, C = u.float(), delta.float(), B.float(), C.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    b, d, length = u.shape
    n = A.shape[1]
    pad = (-length) % chunk
    log_a = torch.einsum("bdl,dn->bdln", delta, A)            # log of each step's decay (<= 0)
    dbu = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    if pad:
        log_a, dbu = F.pad(log_a, (0, 0, 0, pad)), F.pad(dbu, (0, 0, 0, pad))
    k = (length + pad) // chunk
    log_a, dbu = log_a.reshape(b, d, k, chunk, n), dbu.reshape(b, d, k, chunk, n)
    cs = log_a.cumsum(3)
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=u.device).tril()[:, :, None]
    # decay[t, s] = prod of the decays after s up to t (t >= s): exp(cs_t - cs_s), never overflowing.
    decay = torch.exp((cs.unsqueeze(4) - cs.unsqueeze(3)).masked_fill(~causal, float("-inf")))
    h = torch.einsum("bdktsn,bdksn->bdktn", decay, dbu)       # states from inside each chunk
    from_start = torch.exp(cs)                               # decay from a chunk's start to t
    state, carried = torch.zeros(b, d, n, device=u.device), []
    for i in range(k):
        carried.append(state)
        state = h[:, :, i, -1] + from_start[:, :, i, -1] * state
    h = h + from_start * torch.stack(carried, 2).unsqueeze(3)
    y = torch.einsum("bdln,bnl->bdl", h.reshape(b, d, k * chunk, n)[:, :, :length], C)
    if D is not None:
        y = y + u * D[:, None].float()
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)


def check(device):
    torch.manual_seed(0)
    for b, d, length, n in [(2, 6, 70, 16), (1, 4, 257, 8)]:
        u, delta, z = (torch.randn(b, d, length, device=device, requires_grad=True) for _ in range(3))
        A = (-torch.rand(d, n, device=device) * 8).requires_grad_()
        B, C = (torch.randn(b, n, length, device=device, requires_grad=True) for _ in range(2))
        D, bias = torch.randn(d, device=device, requires_grad=True), torch.randn(d, device=device, requires_grad=True)
        inputs = (u, delta, A, B, C, D, z, bias)
        outs = []
        for fn in (ref.selective_scan_ref, parallel_scan):
            y = fn(*inputs[:5], D=D, z=z, delta_bias=bias, delta_softplus=True)
            grads = torch.autograd.grad((y * torch.cos(y)).sum(), inputs)
            outs.append([y] + list(grads))
        for name, a, c in zip(["y", "u", "delta", "A", "B", "C", "D", "z", "bias"], *outs):
            err = ((a - c).abs().max() / (a.abs().max() + 1e-6)).item()
            if err > 1e-4:
                raise SystemExit(f"parallel scan differs from the loop: {name} relative error {err:.2e}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256); p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--in-channels", type=int, default=3); p.add_argument("--classes", type=int, default=1)
    p.add_argument("--precision", default="fp32"); p.add_argument("--device", default="cuda")
    p.add_argument("--warmup", type=int, default=3); p.add_argument("--steps", type=int, default=10)
    p.add_argument("--check", action="store_true")
    a = p.parse_args()
    dev = torch.device(a.device)
    if a.check:
        check(dev)
    ref.selective_scan_ref = parallel_scan
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = ref.UltraLight_VM_UNet(num_classes=a.classes, input_channels=a.in_channels).to(dev)
    x = torch.randn(a.batch_size, a.in_channels, a.size, a.size, device=dev)
    y = (torch.rand(a.batch_size, a.classes, a.size, a.size, device=dev) > 0.5).float()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[a.precision]
    scaler = torch.amp.GradScaler(dev.type) if a.precision == "fp16" else None

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            out = model(x)
            out = out[0] if isinstance(out, (list, tuple)) else out
            loss = F.binary_cross_entropy_with_logits(out.float(), y)
        if scaler:
            scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
        else:
            loss.backward(); opt.step()
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()
    for _ in range(a.warmup):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    sync()
    dt = (time.perf_counter() - t) / a.steps
    print(json.dumps({"model": "ultralight_vmunet", "img_per_s": a.batch_size / dt, "step_ms": dt * 1e3, "loss": float(loss),
                      "params": sum(q.numel() for q in model.parameters()), "torch": torch.__version__, "scan": "chunked parallel",
                      "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None}))


if __name__ == "__main__":
    main()
