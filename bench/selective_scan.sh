#!/usr/bin/env bash
# The fused selective scan (Sources/CTorch/selective_scan.cpp) against PyTorch implementations of
# the same scan (bench/selective_scan_ref.py: Mamba's per-timestep loop, a log-depth doubling scan
# and the log-space logcumsumexp form), forward and backward, at the shapes UltraLight VM-UNet's PVM
# layers scan at 256x256 with batch 2 (4 chunks -> batch 8; E = 2 * C / 4; state 16):
#   encoder4 L 1024 E 12, encoder5 L 256 E 16, encoder6 L 64 E 24,
#   decoder1 L 64 E 32, decoder2 L 256 E 24, decoder3 L 1024 E 16.
# Times are medians in ms per call, all on the same threads.
#
# The fused side runs through `medseg benchmark --op selective-scan` (which calls
# F.benchmarkSelectiveScan in a release build). `--direct` times the same C entry point from a
# small C++ program built here instead (for builds whose medseg lacks the option).
# Usage: bash bench/selective_scan.sh [--direct] [threads] [ref-iterations]
# SHAPES="B,E,L ..." picks shapes; NO_LOOP=1 skips the per-timestep loop (minutes at L 1024).
set -euo pipefail
cd "$(dirname "$0")/.."
direct=0
if [ "${1:-}" = "--direct" ]; then direct=1; shift; fi
threads=${1:-2}
iters=${2:-5}
shapes=${SHAPES:-"8,12,1024 8,16,256 8,24,64 8,32,64 8,24,256 8,16,1024"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fused() { # B E L -> one JSON line
  if [ "$direct" = 1 ]; then
    "$tmp/scanbench" "$1" "$2" "$3" 16 20 "$threads"
  else
    $medseg benchmark --op selective-scan --batch-size "$1" --channels "$2" --length "$3" --state 16 \
      --warmup 3 --steps 20 --threads "$threads" --json
  fi
}

if [ "$direct" = 1 ]; then
  cat > "$tmp/scanbench.cpp" <<'CPP'
// Times mt_selective_scan (forward, recording the graph) and the autograd backward through it.
#include "ctorch.h"
#include <torch/torch.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
int main(int argc, char **argv) {
    if (argc < 7) return 2;
    int64_t B = atol(argv[1]), E = atol(argv[2]), L = atol(argv[3]), N = atol(argv[4]), iters = atol(argv[5]);
    at::set_num_threads(atoi(argv[6]));
    auto leaf = [](at::Tensor t) { return t.detach().requires_grad_(true); };
    auto u = leaf(torch::randn({B, E, L})), delta = leaf(torch::randn({B, E, L}) * 0.5 - 4);
    auto A = leaf(-torch::arange(1, N + 1).to(at::kFloat).repeat({E, 1}));
    auto Bm = leaf(torch::randn({B, L, N})), Cm = leaf(torch::randn({B, L, N}));
    auto D = leaf(torch::ones({E})), z = leaf(torch::randn({B, E, L})), bias = leaf(torch::zeros({E}));
    auto gy = torch::randn({B, E, L});
    auto Bv = Bm.transpose(1, 2), Cv = Cm.transpose(1, 2);
    auto h = [](at::Tensor &t) { return reinterpret_cast<mt_tensor_t>(&t); };
    std::vector<double> f, b;
    for (int64_t i = 0; i < iters + 3; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        mt_tensor_t y = mt_selective_scan(h(u), h(delta), h(A), h(Bv), h(Cv), h(D), h(z), h(bias), 1);
        if (!y) { fprintf(stderr, "%s\n", mt_last_error()); return 1; }
        auto t1 = std::chrono::steady_clock::now();
        reinterpret_cast<at::Tensor *>(y)->backward(gy);
        auto t2 = std::chrono::steady_clock::now();
        mt_free(y);
        for (auto *p : {&u, &delta, &A, &Bm, &Cm, &D, &z, &bias}) p->mutable_grad().reset();
        if (i >= 3) {
            f.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
            b.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
        }
    }
    std::sort(f.begin(), f.end());
    std::sort(b.begin(), b.end());
    printf("{\"op\": \"selective-scan\", \"batch\": %ld, \"channels\": %ld, \"length\": %ld, \"state\": %ld, "
           "\"forward_ms\": %.3f, \"backward_ms\": %.3f}\n", (long)B, (long)E, (long)L, (long)N, f[f.size() / 2], b[b.size() / 2]);
}
CPP
  inc="-I/usr/include/torch/csrc/api/include -ISources/CTorch -ISources/CTorch/include"
  clang++ -std=c++17 -O2 -fPIC -Wno-deprecated-declarations -Wno-unused-parameter $inc -DUSE_DISTRIBUTED -DUSE_C10D_GLOO -DMT_WITH_GLOO=1 \
    -idirafter Sources/CTorch/compat "$tmp/scanbench.cpp" Sources/CTorch/selective_scan.cpp Sources/CTorch/runtime.cpp Sources/CTorch/tensor.cpp -o "$tmp/scanbench" -ltorch -ltorch_cpu -lc10 -ldl
else
  medseg=.build/release/medseg
  [ -x "$medseg" ] || swift build -c release --product medseg >/dev/null
fi

printf '%-10s%-5s%-6s%12s%12s%14s%14s%14s%14s\n' shape E L fused_fwd fused_bwd loop_fwd+bwd doubling logcumsum speedup_min
for s in $shapes; do
  IFS=, read -r b e l <<<"$s"
  ours=$(fused "$b" "$e" "$l")
  # The per-timestep loop's backward is very slow at L 1024: fewer iterations there.
  loop_iters=$iters; [ "$l" -ge 1024 ] && loop_iters=2
  refs=$( [ "${NO_LOOP:-0}" = 1 ] || /usr/bin/python3 bench/selective_scan_ref.py --threads "$threads" --iterations "$loop_iters" --impl loop "$s";
          /usr/bin/python3 bench/selective_scan_ref.py --threads "$threads" --iterations "$iters" --impl doubling --impl logcumsum "$s" )
  /usr/bin/python3 - "$ours" "$refs" <<'PY'
import json, sys
ours = json.loads(sys.argv[1])
refs = {r["impl"]: r for r in map(json.loads, sys.argv[2].strip().splitlines()) if "impl" in r}
tot = lambda r: r["forward_ms"] + r["backward_ms"]
fused = tot(ours)
cols = [tot(refs[k]) if k in refs else float("nan") for k in ("loop", "doubling", "logcumsum")]
shape = f"{ours['batch']}x{ours['channels']}x{ours['length']}"
print(f"{shape:<10}{ours['channels']:<5}{ours['length']:<6}{ours['forward_ms']:>12.3f}{ours['backward_ms']:>12.3f}"
      + "".join(f"{c:>14.3f}" for c in cols) + f"{min(c for c in cols if c == c) / fused:>13.1f}x")
PY
done
