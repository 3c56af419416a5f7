"""PyTorch references of the selective scan for bench/selective_scan.sh (Debian's /usr/bin/python3,
torch 1.13, no mamba_ssm): forward and backward times of

  loop     Mamba's selective_scan_ref: one step of the recurrence per timestep
  doubling a log-depth (Hillis-Steele) scan: log2(L) vectorized steps over [B, E, L, N]
  logcumsum  the log-space cumulative form: h_t = exp(S_t) * sum_{s<=t} exp(-S_s) dB_s u_s with
           S = cumsum(dt * A), evaluated with logcumsumexp on the positive and negative parts

with the Mamba block's arguments (D, z, delta bias, softplus). Prints one JSON line per
(implementation, shape): {"impl", "batch", "channels", "length", "state", "forward_ms", "backward_ms"}.

usage: selective_scan_ref.py [--threads 2] [--iterations 10] [--check] B,E,L[,N] ...
"""
import argparse, json, time
import torch
import torch.nn.functional as F


def _prep(delta, delta_bias, delta_softplus):
    if delta_bias is not None:
        delta = delta + delta_bias[..., None]
    return F.softplus(delta) if delta_softplus else delta


def _finish(h_or_y, u, D, z):
    y = h_or_y
    if D is not None:
        y = y + u * D[None, :, None]
    if z is not None:
        y = y * F.silu(z)
    return y


def scan_loop(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=True):
    delta = _prep(delta, delta_bias, delta_softplus)
    b, e, l = u.shape
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    dBu = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    h = u.new_zeros(b, e, A.shape[1])
    ys = []
    for t in range(l):
        h = dA[:, :, t] * h + dBu[:, :, t]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, :, t]))
    return _finish(torch.stack(ys, dim=2), u, D, z)


def scan_doubling(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=True):
    delta = _prep(delta, delta_bias, delta_softplus)
    a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    h = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    l = u.shape[2]
    k = 1
    while k < l:
        # (a, h)[t] <- (a[t] a[t-k], a[t] h[t-k] + h[t]); positions t < k have nothing before them.
        h = torch.cat([h[:, :, :k], a[:, :, k:] * h[:, :, :-k] + h[:, :, k:]], dim=2)
        a = torch.cat([a[:, :, :k], a[:, :, k:] * a[:, :, :-k]], dim=2)
        k *= 2
    y = torch.einsum("bdln,bnl->bdl", h, C)
    return _finish(y, u, D, z)


def scan_logcumsum(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=True):
    delta = _prep(delta, delta_bias, delta_softplus)
    S = torch.cumsum(torch.einsum("bdl,dn->bdln", delta, A), dim=2)          # log of the decay products
    x = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    tiny = 1e-30
    pos = torch.logcumsumexp(torch.log(x.clamp(min=tiny)) - S, dim=2)
    neg = torch.logcumsumexp(torch.log((-x).clamp(min=tiny)) - S, dim=2)
    h = torch.exp(S + pos) - torch.exp(S + neg)
    y = torch.einsum("bdln,bnl->bdl", h, C)
    return _finish(y, u, D, z)


IMPLS = {"loop": scan_loop, "doubling": scan_doubling, "logcumsum": scan_logcumsum}


def inputs(b, e, l, n, grad=True):
    g = torch.Generator().manual_seed(0)
    t = lambda *s: torch.randn(*s, generator=g)
    ins = dict(u=t(b, e, l), delta=t(b, e, l) * 0.5 - 4, A=-torch.arange(1, n + 1, dtype=torch.float32).repeat(e, 1),
               B=t(b, n, l), C=t(b, n, l), D=torch.ones(e), z=t(b, e, l), delta_bias=torch.zeros(e))
    for v in ins.values():
        v.requires_grad_(grad)
    return ins


def bench(fn, b, e, l, n, iterations):
    ins = inputs(b, e, l, n)
    gy = torch.randn(b, e, l)
    fwd, bwd = [], []
    for i in range(iterations + 2):
        for v in ins.values():
            v.grad = None
        t0 = time.perf_counter()
        y = fn(**ins, delta_softplus=True)
        t1 = time.perf_counter()
        y.backward(gy)
        t2 = time.perf_counter()
        if i >= 2:
            fwd.append((t1 - t0) * 1e3)
            bwd.append((t2 - t1) * 1e3)
    fwd.sort(); bwd.sort()
    return fwd[len(fwd) // 2], bwd[len(bwd) // 2]


def check(b, e, l, n):
    """The three forms agree (outputs and input gradients) on one shape."""
    gy = torch.randn(b, e, l)
    ref = None
    for name, fn in IMPLS.items():
        ins = inputs(b, e, l, n)
        y = fn(**ins)
        y.backward(gy)
        got = [y.detach()] + [v.grad for v in ins.values()]
        if ref is None:
            ref = got
        else:
            err = max(((a - r).abs().max() / (r.abs().max() + 1e-12)).item() for a, r in zip(got, ref))
            print(json.dumps({"check": name, "vs": "loop", "max_rel_err": err}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--impl", action="append", choices=list(IMPLS))
    ap.add_argument("--check", action="store_true")
    ap.add_argument("shapes", nargs="+", help="B,E,L[,N]")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for s in args.shapes:
        v = [int(x) for x in s.split(",")]
        b, e, l = v[:3]
        n = v[3] if len(v) > 3 else 16
        if args.check:
            check(b, e, min(l, 128), n)
        for name in args.impl or list(IMPLS):
            f, bw = bench(IMPLS[name], b, e, l, n, args.iterations)
            print(json.dumps({"impl": name, "batch": b, "channels": e, "length": l, "state": n,
                              "forward_ms": round(f, 3), "backward_ms": round(bw, 3)}), flush=True)


if __name__ == "__main__":
    main()
