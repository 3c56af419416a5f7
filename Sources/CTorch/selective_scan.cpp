// Fused selective scan (the SSM recurrence of Mamba) on the CPU, forward and backward, registered
// as a libtorch autograd function.
//
//   dt_t   = softplus(delta_t + delta_bias)            (or delta_t + delta_bias without softplus)
//   h_t[n] = exp(dt_t * A[n]) * h_{t-1}[n] + dt_t * B_t[n] * u_t,   h_{-1} = 0
//   y_t    = sum_n C_t[n] * h_t[n] + D * u_t
//   out_t  = y_t * silu(z_t)                             (when z is given)
//
// Shapes as Mamba's selective_scan_fn for a time-invariant A and input-dependent B, C shared by
// all channels: u, delta, z [B, E, L]; A [E, N]; B, C [B, N, L]; D, delta_bias [E]; out [B, E, L].
// Every (batch, channel) sequence is independent: forward and backward run in parallel over
// B x E with at::parallel_for, each task walking contiguous float32 buffers (u, delta, z per
// sequence; B and C laid out [B, L, N] so the state loop reads contiguous memory).
//
// The forward saves only its inputs; the backward recomputes each sequence's states (N x L
// floats, which stay in cache) and walks time backwards. Gradients of B and C (shared across
// channels) and of A, D, delta_bias (shared across the batch) are written per task into
// scratch buffers and summed afterwards, so no two tasks write the same memory.
#include "shim.hpp"
#include "selective_scan_kernels.h"
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

using mt::T;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

struct ScanShape {
    int64_t batch, channels, length, state;
};

// exp for the decays exp(dt * A): Cephes' expf polynomial on [-ln2/2, ln2/2] scaled by 2^k, written
// without branches or library calls so the compiler vectorizes the loops over the state (the
// scalar expf call was most of the scan's time). Relative error about 2e-7; inputs are clamped to
// [-87, 88] (exp(-87) ~ 1.6e-38 keeps results normal).
// Lets clang vectorize the sums over the state in the loop body that follows (it reorders them).
#if defined(__clang__)
#define MT_REASSOCIATE _Pragma("clang fp reassociate(on)")
#else
#define MT_REASSOCIATE
#endif

inline float fast_exp(float x) {
    x = std::min(88.f, std::max(-87.f, x));
    const float shifter = 12582912.f; // 1.5 * 2^23: adding and subtracting it rounds to an integer
    const float k = (x * 1.44269504088896341f + shifter) - shifter;
    const float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.f;
    int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}


void check_inputs(const at::Tensor &u, const at::Tensor &delta, const at::Tensor &A, const at::Tensor &B,
                  const at::Tensor &C, const at::Tensor &D_, const at::Tensor &z_, const at::Tensor &bias_,
                  bool cpu_only = true) {
    auto present = [](const at::Tensor &t) { return t.defined() && t.numel() > 0 ? t : at::Tensor(); };
    const at::Tensor D = present(D_), z = present(z_), bias = present(bias_);
    auto need = [](bool ok, const std::string &what) {
        if (!ok) throw std::invalid_argument("selective_scan: " + what);
    };
    for (const at::Tensor *t : {&u, &delta, &A, &B, &C}) {
        need(t->defined(), "u, delta, A, B and C are required");
        need(t->scalar_type() == at::kFloat, "all tensors must be float32");
        need(!cpu_only || t->device().is_cpu(), "the fused scan runs on the CPU");
        need(t->device() == u.device(), "all tensors must be on one device");
    }
    need(u.dim() == 3, "u must be [batch, channels, length], got " + std::to_string(u.dim()) + " dimensions");
    const int64_t b = u.size(0), e = u.size(1), l = u.size(2);
    need(b > 0 && e > 0 && l > 0, "u must not be empty");
    need(delta.sizes() == u.sizes(), "delta must have u's shape [batch, channels, length]");
    need(A.dim() == 2 && A.size(0) == e, "A must be [channels, state]");
    const int64_t n = A.size(1);
    need(B.dim() == 3 && B.size(0) == b && B.size(1) == n && B.size(2) == l, "B must be [batch, state, length]");
    need(C.dim() == 3 && C.size(0) == b && C.size(1) == n && C.size(2) == l, "C must be [batch, state, length]");
    for (const at::Tensor *t : {&D, &bias}) {
        if (!t->defined()) continue;
        need(t->scalar_type() == at::kFloat && t->device() == u.device(), "D and delta_bias must be float32 tensors on u's device");
        need(t->dim() == 1 && t->size(0) == e, "D and delta_bias must be [channels]");
    }
    if (z.defined()) {
        need(z.scalar_type() == at::kFloat && z.device() == u.device(), "z must be a float32 tensor on u's device");
        need(z.sizes() == u.sizes(), "z must have u's shape [batch, channels, length]");
    }
}

// dt = softplus(delta + bias) (or without softplus) for all sequences at once, with libtorch's
// vectorized kernels; the scalar log1p/exp per timestep cost more than the state updates.
at::Tensor step_sizes(const at::Tensor &delta, const at::Tensor &bias, bool use_softplus) {
    at::Tensor raw = bias.defined() ? delta + bias.view({1, -1, 1}) : delta;
    return (use_softplus ? at::softplus(raw) : raw).contiguous();
}

// Forward over contiguous buffers. Bt, Ct are [batch, length, state].
at::Tensor scan_forward(const at::Tensor &u, const at::Tensor &delta, const at::Tensor &A, const at::Tensor &Bt,
                        const at::Tensor &Ct, const at::Tensor &D, const at::Tensor &z, const at::Tensor &bias,
                        bool use_softplus) {
    const ScanShape s{u.size(0), u.size(1), u.size(2), A.size(1)};
    at::Tensor out = at::empty(u.sizes(), u.options());
    at::Tensor dt = step_sizes(delta, bias, use_softplus);
    at::Tensor gate = z.defined() ? at::silu(z).contiguous() : at::Tensor();
    const float *pu = u.data_ptr<float>(), *pdt = dt.data_ptr<float>(), *pA = A.data_ptr<float>();
    const float *pB = Bt.data_ptr<float>(), *pC = Ct.data_ptr<float>();
    const float *pD = D.defined() ? D.data_ptr<float>() : nullptr;
    const float *pgate = gate.defined() ? gate.data_ptr<float>() : nullptr;
    float *py = out.data_ptr<float>();
    const int64_t L = s.length, N = s.state;
    at::parallel_for(0, s.batch * s.channels, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> h(N), da(N);
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / s.channels, e = task % s.channels;
            const float *u_ = pu + task * L, *dt_ = pdt + task * L, *a_ = pA + e * N;
            const float *B_ = pB + b * L * N, *C_ = pC + b * L * N;
            float *y_ = py + task * L;
            const float D_e = pD ? pD[e] : 0.f;
            std::fill(h.begin(), h.end(), 0.f);
            for (int64_t t = 0; t < L; ++t) {
                MT_REASSOCIATE
                const float dt = dt_[t], x = u_[t], dtx = dt * x;
                const float *Bn = B_ + t * N, *Cn = C_ + t * N;
                for (int64_t n = 0; n < N; ++n) da[n] = fast_exp(dt * a_[n]);
                float acc = 0.f;
                for (int64_t n = 0; n < N; ++n) {
                    h[n] = da[n] * h[n] + dtx * Bn[n];
                    acc += Cn[n] * h[n];
                }
                y_[t] = acc + D_e * x;
            }
            if (pgate) {
                const float *g_ = pgate + task * L;
                for (int64_t t = 0; t < L; ++t) y_[t] *= g_[t];
            }
        }
    });
    return out;
}

struct Grads {
    at::Tensor du, ddelta, dA, dBt, dCt, dD, dz, dbias;
};

// The elementwise pieces of a backward, vectorized by libtorch: dt, d dt / d raw (softplus'
// derivative, 1 above its threshold of 20, as at::softplus; undefined without softplus), and for
// the gate silu(z) and silu'(z) (undefined without z). All contiguous.
struct ElementwisePieces {
    at::Tensor dt, softplus_grad, gate, gate_grad;
};

ElementwisePieces elementwise_pieces(const at::Tensor &delta, const at::Tensor &z, const at::Tensor &bias,
                                     bool use_softplus) {
    ElementwisePieces p;
    at::Tensor raw = bias.defined() ? delta + bias.view({1, -1, 1}) : delta;
    p.dt = (use_softplus ? at::softplus(raw) : raw).contiguous();
    if (use_softplus) p.softplus_grad = at::where(raw > 20, at::ones_like(raw), at::sigmoid(raw)).contiguous();
    if (z.defined()) {
        at::Tensor sz = at::sigmoid(z);
        p.gate = (z * sz).contiguous();
        p.gate_grad = (sz * (1 + z * (1 - sz))).contiguous();
    }
    return p;
}

// Backward over contiguous buffers. Bt, Ct are [batch, length, state]; so are dBt, dCt.
Grads scan_backward(const at::Tensor &gout, const at::Tensor &u, const at::Tensor &delta, const at::Tensor &A,
                    const at::Tensor &Bt, const at::Tensor &Ct, const at::Tensor &D, const at::Tensor &z,
                    const at::Tensor &bias, bool use_softplus) {
    at::NoGradGuard no_grad;
    const ScanShape s{u.size(0), u.size(1), u.size(2), A.size(1)};
    const int64_t L = s.length, N = s.state, E = s.channels;
    Grads g;
    g.du = at::empty(u.sizes(), u.options());
    g.ddelta = at::empty(u.sizes(), u.options());
    const ElementwisePieces pieces = elementwise_pieces(delta, z, bias, use_softplus);
    const at::Tensor &dt = pieces.dt, &ddt = pieces.softplus_grad, &gate = pieces.gate, &dgate = pieces.gate_grad;
    if (z.defined()) g.dz = at::empty(u.sizes(), u.options());
    // Per-task partial sums: B and C are shared by the channels, A, D and delta_bias by the batch.
    at::Tensor dB_part = at::empty({s.batch, E, L, N}, u.options());
    at::Tensor dC_part = at::empty({s.batch, E, L, N}, u.options());
    at::Tensor dA_part = at::empty({s.batch, E, N}, u.options());
    at::Tensor dD_part = at::empty({s.batch, E}, u.options());
    at::Tensor dbias_part = at::empty({s.batch, E}, u.options());

    const float *pg = gout.data_ptr<float>();
    const float *pu = u.data_ptr<float>(), *pdt = dt.data_ptr<float>(), *pA = A.data_ptr<float>();
    const float *pddt = ddt.defined() ? ddt.data_ptr<float>() : nullptr;
    const float *pB = Bt.data_ptr<float>(), *pC = Ct.data_ptr<float>();
    const float *pD = D.defined() ? D.data_ptr<float>() : nullptr;
    const float *pgate = gate.defined() ? gate.data_ptr<float>() : nullptr;
    const float *pdgate = dgate.defined() ? dgate.data_ptr<float>() : nullptr;
    float *pdu = g.du.data_ptr<float>(), *pdd = g.ddelta.data_ptr<float>();
    float *pdz = z.defined() ? g.dz.data_ptr<float>() : nullptr;
    float *pdB = dB_part.data_ptr<float>(), *pdC = dC_part.data_ptr<float>(), *pdA = dA_part.data_ptr<float>();
    float *pdD = dD_part.data_ptr<float>(), *pdbias = dbias_part.data_ptr<float>();

    at::parallel_for(0, s.batch * E, 1, [&](int64_t begin, int64_t end) {
        // hs holds h_{-1} = 0 then h_0 .. h_{L-1}; dAs holds exp(dt_t A) for t = 0 .. L-1 and a
        // row of zeros for t = L, so the loops below need no boundary tests.
        std::vector<float> hs((L + 1) * N), dAs((L + 1) * N), gys(L), gh(N), gA(N);
        std::fill(hs.begin(), hs.begin() + N, 0.f);
        std::fill(dAs.begin() + L * N, dAs.end(), 0.f);
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / E, e = task % E;
            const float *u_ = pu + task * L, *dt_ = pdt + task * L, *a_ = pA + e * N, *g_ = pg + task * L;
            const float *B_ = pB + b * L * N, *C_ = pC + b * L * N;
            const float D_e = pD ? pD[e] : 0.f;
            float *du_ = pdu + task * L, *dd_ = pdd + task * L;
            float *dB_ = pdB + task * L * N, *dC_ = pdC + task * L * N;

            // Recompute the states h_t and the decays exp(dt_t A).
            for (int64_t t = 0; t < L; ++t) {
                const float dt = dt_[t], dtx = dt * u_[t];
                const float *Bn = B_ + t * N, *hprev = hs.data() + t * N;
                float *h = hs.data() + (t + 1) * N, *da = dAs.data() + t * N;
                for (int64_t n = 0; n < N; ++n) da[n] = fast_exp(dt * a_[n]);
                for (int64_t n = 0; n < N; ++n) h[n] = da[n] * hprev[n] + dtx * Bn[n];
            }
            // The gradient reaching y_t before the gate; the gate's own gradient needs y_t.
            if (pgate) {
                const float *gt_ = pgate + task * L, *dg_ = pdgate + task * L;
                float *dz_ = pdz + task * L;
                for (int64_t t = 0; t < L; ++t) {
                    MT_REASSOCIATE
                    const float *Cn = C_ + t * N, *h = hs.data() + (t + 1) * N;
                    float acc = 0.f;
                    for (int64_t n = 0; n < N; ++n) acc += Cn[n] * h[n];
                    const float y = acc + D_e * u_[t];
                    gys[t] = g_[t] * gt_[t];
                    dz_[t] = g_[t] * y * dg_[t];
                }
            } else {
                std::copy(g_, g_ + L, gys.begin());
            }
            // Walk back in time with the state adjoint gh = dLoss/dh_t.
            std::fill(gh.begin(), gh.end(), 0.f);
            std::fill(gA.begin(), gA.end(), 0.f);
            float gD = 0.f, gbias = 0.f;
            for (int64_t t = L - 1; t >= 0; --t) {
                MT_REASSOCIATE
                const float gy = gys[t], x = u_[t], dt = dt_[t], dtx = dt * x;
                const float *Bn = B_ + t * N, *Cn = C_ + t * N;
                const float *h = hs.data() + (t + 1) * N, *hprev = hs.data() + t * N;
                const float *da = dAs.data() + t * N, *da_next = da + N;
                float *dBn = dB_ + t * N, *dCn = dC_ + t * N;
                float gdt = 0.f, gBx = 0.f;
                gD += gy * x;
                for (int64_t n = 0; n < N; ++n) {
                    // h_{t+1} = dA_{t+1} h_t + ...: carry the adjoint back one step, add y_t's term.
                    const float ghn = da_next[n] * gh[n] + gy * Cn[n];
                    gh[n] = ghn;
                    dCn[n] = gy * h[n];
                    dBn[n] = ghn * dtx;
                    gBx += ghn * Bn[n];
                    // d h_t / d dt = A h_{t-1} dA_t + B_t x_t
                    const float gdA = ghn * hprev[n] * da[n];
                    gdt += gdA * a_[n];
                    gA[n] += gdA * dt;
                }
                du_[t] = gy * D_e + gBx * dt;
                gdt += gBx * x;
                const float graw = pddt ? gdt * pddt[task * L + t] : gdt;
                dd_[t] = graw;
                gbias += graw;
            }
            for (int64_t n = 0; n < N; ++n) pdA[task * N + n] = gA[n];
            pdD[task] = gD;
            pdbias[task] = gbias;
        }
    });
    // Sum the partials by hand: libtorch 1.13's sum over a middle dimension is several times slower
    // than the whole scan at these shapes.
    g.dBt = at::empty({s.batch, L, N}, u.options());
    g.dCt = at::empty({s.batch, L, N}, u.options());
    float *pgB = g.dBt.data_ptr<float>(), *pgC = g.dCt.data_ptr<float>();
    const int64_t LN = L * N;
    at::parallel_for(0, s.batch * LN, 4096, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end;) {
            const int64_t b = i / LN, j0 = i % LN, j1 = std::min(LN, j0 + (end - i));
            float *oB = pgB + b * LN, *oC = pgC + b * LN;
            for (int64_t j = j0; j < j1; ++j) { oB[j] = 0.f; oC[j] = 0.f; }
            for (int64_t e = 0; e < E; ++e) {
                const float *sB = pdB + (b * E + e) * LN, *sC = pdC + (b * E + e) * LN;
                for (int64_t j = j0; j < j1; ++j) { oB[j] += sB[j]; oC[j] += sC[j]; }
            }
            i += j1 - j0;
        }
    });
    auto sum_batch = [&](const float *part, int64_t width) {
        at::Tensor out = at::zeros({width}, u.options());
        float *o = out.data_ptr<float>();
        for (int64_t b = 0; b < s.batch; ++b)
            for (int64_t j = 0; j < width; ++j) o[j] += part[b * width + j];
        return out;
    };
    g.dA = sum_batch(pdA, E * N).view({E, N});
    if (D.defined()) g.dD = sum_batch(pdD, E);
    if (bias.defined()) g.dbias = sum_batch(pdbias, E);
    return g;
}

struct Prepared {
    at::Tensor u, delta, A, Bt, Ct, D, z, bias;
};

Prepared prepare(const at::Tensor &u, const at::Tensor &delta, const at::Tensor &A, const at::Tensor &B,
                 const at::Tensor &C, const at::Tensor &D, const at::Tensor &z, const at::Tensor &bias,
                 bool cpu_only = true) {
    check_inputs(u, delta, A, B, C, D, z, bias, cpu_only);
    // Absent optional inputs arrive undefined or as empty placeholders (see mt_selective_scan).
    auto c = [](const at::Tensor &t) { return t.defined() && t.numel() > 0 ? t.contiguous() : at::Tensor(); };
    // [batch, state, length] -> [batch, length, state]; free when the caller's B already is a
    // transposed view of a [batch, length, state] tensor (as the Mamba block produces it).
    return Prepared{c(u), c(delta), c(A), B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(),
                    c(D), c(z), c(bias)};
}

struct SelectiveScanFunction : public torch::autograd::Function<SelectiveScanFunction> {
    static at::Tensor forward(AutogradContext *ctx, const at::Tensor &u, const at::Tensor &delta, const at::Tensor &A,
                              const at::Tensor &B, const at::Tensor &C, const at::Tensor &D, const at::Tensor &z,
                              const at::Tensor &bias, bool use_softplus) {
        Prepared p = prepare(u, delta, A, B, C, D, z, bias);
        at::Tensor out = scan_forward(p.u, p.delta, p.A, p.Bt, p.Ct, p.D, p.z, p.bias, use_softplus);
        // Undefined tensors (no D, z or bias) are saved as such.
        ctx->save_for_backward({p.u, p.delta, p.A, p.Bt, p.Ct, p.D, p.z, p.bias});
        ctx->saved_data["softplus"] = use_softplus;
        return out;
    }

    static variable_list backward(AutogradContext *ctx, variable_list grads) {
        auto saved = ctx->get_saved_variables();
        const bool use_softplus = ctx->saved_data["softplus"].toBool();
        at::Tensor gout = grads[0].defined() ? grads[0].contiguous() : at::zeros_like(saved[0]);
        Grads g = scan_backward(gout, saved[0], saved[1], saved[2], saved[3], saved[4], saved[5], saved[6], saved[7],
                                use_softplus);
        return {g.du, g.ddelta, g.dA, g.dBt.transpose(1, 2), g.dCt.transpose(1, 2), g.dD, g.dz, g.dbias, at::Tensor()};
    }
};

// libtorch 1.13's custom functions cannot take undefined tensors (VariableInfo reads their
// device), so an absent optional input travels as an empty tensor and comes back as undefined.
inline at::Tensor maybe(mt_tensor_t t) { return t ? T(t) : at::empty({0}, at::kFloat); }

// The device-generic scan in ATen ops (Mamba's selective_scan_ref, chunked over time), with the
// fused kernel's semantics; autograd differentiates it, so it runs wherever ATen runs (CUDA
// included). Per chunk of `chunk` timesteps the decays exp(dt A) and inputs dt B u are made at
// once ([b, E, chunk, N]), then a short loop carries the state; y is one reduction per chunk.
at::Tensor scan_fallback(const at::Tensor &u, const at::Tensor &delta, const at::Tensor &A, const at::Tensor &B,
                         const at::Tensor &C, const at::Tensor &D_, const at::Tensor &z_, const at::Tensor &bias_,
                         bool use_softplus) {
    check_inputs(u, delta, A, B, C, D_, z_, bias_, /*cpu_only=*/false);
    auto present = [](const at::Tensor &t) { return t.defined() && t.numel() > 0 ? t : at::Tensor(); };
    const at::Tensor D = present(D_), z = present(z_), bias = present(bias_);
    const int64_t b = u.size(0), e = u.size(1), L = u.size(2), n = A.size(1);
    at::Tensor raw = bias.defined() ? delta + bias.view({1, -1, 1}) : delta;
    at::Tensor dt = use_softplus ? at::softplus(raw) : raw;              // [b, E, L]
    at::Tensor dtu = dt * u;                                            // [b, E, L]
    at::Tensor Bt = B.transpose(1, 2).unsqueeze(1);                     // [b, 1, L, N]
    at::Tensor Ct = C.transpose(1, 2).unsqueeze(1);                     // [b, 1, L, N]
    at::Tensor Ae = A.view({1, e, 1, n});
    const int64_t chunk = 64;
    at::Tensor h = at::zeros({b, e, n}, u.options());
    std::vector<at::Tensor> ys;
    for (int64_t t0 = 0; t0 < L; t0 += chunk) {
        const int64_t len = std::min(chunk, L - t0);
        at::Tensor dA = at::exp(dt.narrow(2, t0, len).unsqueeze(-1) * Ae);              // [b, E, len, N]
        at::Tensor dBu = dtu.narrow(2, t0, len).unsqueeze(-1) * Bt.narrow(2, t0, len);  // [b, E, len, N]
        std::vector<at::Tensor> hs;
        hs.reserve(len);
        for (int64_t t = 0; t < len; ++t) {
            h = dA.select(2, t) * h + dBu.select(2, t);
            hs.push_back(h);
        }
        ys.push_back((at::stack(hs, 2) * Ct.narrow(2, t0, len)).sum(-1));               // [b, E, len]
    }
    at::Tensor y = ys.size() == 1 ? ys[0] : at::cat(ys, 2);
    if (D.defined()) y = y + u * D.view({1, -1, 1});
    if (z.defined()) y = y * at::silu(z);
    return y;
}

// Gradients of the ATen scan with respect to its defined inputs (autograd on fresh leaves);
// zeros for absent D, delta_bias ([channels]) and z (u's shape).
std::vector<at::Tensor> fallback_gradients(const at::Tensor &grad_out, const std::vector<at::Tensor> &inputs,
                                           bool use_softplus) {
    std::vector<at::Tensor> in;
    for (const auto &t : inputs)
        in.push_back(t.defined() && t.numel() > 0 ? t.detach().clone().requires_grad_(true) : at::Tensor());
    at::Tensor out;
    {
        at::AutoGradMode grad_on(true);
        out = scan_fallback(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], use_softplus);
    }
    std::vector<at::Tensor> wrt;
    for (auto &t : in)
        if (t.defined()) wrt.push_back(t);
    auto g = torch::autograd::grad({out}, wrt, {grad_out}, /*retain_graph=*/false, /*create_graph=*/false,
                                   /*allow_unused=*/true);
    std::vector<at::Tensor> res;
    size_t k = 0;
    for (size_t i = 0; i < in.size(); ++i) {
        if (!in[i].defined()) {
            res.push_back(at::zeros_like(i == 6 ? inputs[0] : inputs[0].select(2, 0).select(0, 0)));
            continue;
        }
        at::Tensor gi = g[k++];
        res.push_back(gi.defined() ? gi.contiguous() : at::zeros_like(in[i]));
    }
    return res;
}

// The implementation a scan takes (the mt_selective_scan_backend strings).
enum class Backend { fused_cpu, cuda_kernels, emulated_kernels, fallback };

// MEDSEG_SCAN=fallback forces the ATen scan on every device, MEDSEG_SCAN=emulated runs the CUDA
// kernels' code on the host for CPU tensors; tests compare both with the fused kernel. CUDA takes
// the kernels when they load and the state (N) fits them.
Backend backend_for(const at::Tensor &u, int64_t state) {
    const char *v = std::getenv("MEDSEG_SCAN");
    const std::string forced = v ? v : "";
    if (forced == "fallback") return Backend::fallback;
    if (u.device().is_cpu()) return forced == "emulated" ? Backend::emulated_kernels : Backend::fused_cpu;
    if (u.is_cuda() && state <= MT_SCAN_MAX_STATE && mt::cuda_scan_available(u.device().index()))
        return Backend::cuda_kernels;
    return Backend::fallback;
}
Backend backend_for(const at::Tensor &u, const at::Tensor &A) {
    return backend_for(u, A.dim() == 2 ? A.size(1) : std::numeric_limits<int64_t>::max());
}

// The scan's gradients from the backward kernel (cuda_kernels or emulated_kernels) plus the
// elementwise terms around it (the D skip, the gate, softplus and the bias), in ATen ops on the
// inputs' device. Bt, Ct are [b, L, N].
Grads kernel_backward(Backend backend, const at::Tensor &gout, const at::Tensor &u, const at::Tensor &delta,
                      const at::Tensor &A, const at::Tensor &Bt, const at::Tensor &Ct, const at::Tensor &D,
                      const at::Tensor &z, const at::Tensor &bias, bool use_softplus) {
    const ElementwisePieces pieces = elementwise_pieces(delta, z, bias, use_softplus);
    at::Tensor gy = (pieces.gate.defined() ? gout * pieces.gate : gout).contiguous();
    const int64_t b = u.size(0), e = u.size(1), L = u.size(2), n = A.size(1);
    mt::ScanKernelGradients k{at::empty_like(u), at::empty_like(u), at::empty_like(u), at::empty({b * e, n}, u.options()),
                              at::empty({b, e, L, n}, u.options()), at::empty({b, e, L, n}, u.options())};
    const bool ran = backend == Backend::cuda_kernels ? mt::cuda_scan_backward(k, u, pieces.dt, A, Bt, Ct, gy)
                                                      : mt::emulated_scan_backward(k, u, pieces.dt, A, Bt, Ct, gy);
    if (!ran) throw std::runtime_error("selective_scan: the backward kernel is unavailable");
    Grads g;
    g.du = D.defined() ? k.du + gy * D.view({1, -1, 1}) : k.du;
    g.ddelta = pieces.softplus_grad.defined() ? k.ddt * pieces.softplus_grad : k.ddt;
    g.dA = k.dA_part.view({b, e, n}).sum(0);
    g.dBt = k.dB_part.sum(1);
    g.dCt = k.dC_part.sum(1);
    if (D.defined()) g.dD = (gy * u).sum(at::IntArrayRef{0, 2});
    if (bias.defined()) g.dbias = g.ddelta.sum(at::IntArrayRef{0, 2});
    if (z.defined()) g.dz = gout * (D.defined() ? k.ych + u * D.view({1, -1, 1}) : k.ych) * pieces.gate_grad;
    return g;
}

// The kernels as an autograd function: forward and backward each one kernel launch.
struct KernelScanFunction : public torch::autograd::Function<KernelScanFunction> {
    static at::Tensor forward(AutogradContext *ctx, const at::Tensor &u, const at::Tensor &delta, const at::Tensor &A,
                              const at::Tensor &B, const at::Tensor &C, const at::Tensor &D, const at::Tensor &z,
                              const at::Tensor &bias, bool use_softplus, bool emulated) {
        Prepared p = prepare(u, delta, A, B, C, D, z, bias, /*cpu_only=*/false);
        at::Tensor gate = p.z.defined() ? at::silu(p.z).contiguous() : at::Tensor();
        at::Tensor dt = step_sizes(p.delta, p.bias, use_softplus);
        at::Tensor out = emulated ? mt::emulated_scan_forward(p.u, dt, p.A, p.Bt, p.Ct, p.D, gate)
                                  : mt::cuda_scan_forward(p.u, dt, p.A, p.Bt, p.Ct, p.D, gate);
        if (!out.defined()) throw std::runtime_error("selective_scan: the forward kernel is unavailable");
        ctx->save_for_backward({p.u, p.delta, p.A, p.Bt, p.Ct, p.D, p.z, p.bias});
        ctx->saved_data["softplus"] = use_softplus;
        ctx->saved_data["emulated"] = emulated;
        return out;
    }

    static variable_list backward(AutogradContext *ctx, variable_list grads) {
        auto saved = ctx->get_saved_variables();
        const Backend backend = ctx->saved_data["emulated"].toBool() ? Backend::emulated_kernels : Backend::cuda_kernels;
        at::Tensor gout = grads[0].defined() ? grads[0].contiguous() : at::zeros_like(saved[0]);
        Grads g = kernel_backward(backend, gout, saved[0], saved[1], saved[2], saved[3], saved[4], saved[5], saved[6],
                                  saved[7], ctx->saved_data["softplus"].toBool());
        return {g.du, g.ddelta, g.dA, g.dBt.transpose(1, 2), g.dCt.transpose(1, 2), g.dD, g.dz, g.dbias, at::Tensor(),
                at::Tensor()};
    }
};

} // namespace


extern "C" {

mt_tensor_t mt_selective_scan(mt_tensor_t u, mt_tensor_t delta, mt_tensor_t A, mt_tensor_t B, mt_tensor_t C,
                              mt_tensor_t D, mt_tensor_t z, mt_tensor_t delta_bias, int delta_softplus) {
    MT_TENSOR(([&]() -> at::Tensor {
        const at::Tensor &tu = T(u);
        const Backend backend = backend_for(tu, T(A));
        if (backend == Backend::fused_cpu)
            return SelectiveScanFunction::apply(tu, T(delta), T(A), T(B), T(C), maybe(D), maybe(z), maybe(delta_bias),
                                                delta_softplus != 0);
        if (backend != Backend::fallback) {
            // Absent optional inputs travel as empty tensors on u's device (as for the CPU function).
            auto here = [&](mt_tensor_t t) { return t ? T(t) : at::empty({0}, tu.options()); };
            return KernelScanFunction::apply(tu, T(delta), T(A), T(B), T(C), here(D), here(z), here(delta_bias),
                                             delta_softplus != 0, backend == Backend::emulated_kernels);
        }
        auto opt = [](mt_tensor_t t) { return t ? T(t) : at::Tensor(); };
        return scan_fallback(tu, T(delta), T(A), T(B), T(C), opt(D), opt(z), opt(delta_bias), delta_softplus != 0);
    })())
}

const char *mt_selective_scan_backend(mt_tensor_t u) {
    try {
        switch (backend_for(T(u), /*state=*/0)) {
        case Backend::fused_cpu: return "fused CPU kernel";
        case Backend::cuda_kernels: return "NVRTC CUDA kernels";
        case Backend::emulated_kernels: return "CUDA kernels emulated on the CPU";
        case Backend::fallback: break;
        }
        return "ATen fallback";
    } catch (...) {
        return "ATen fallback";
    }
}

mt_list_t mt_selective_scan_backward(mt_tensor_t grad_out, mt_tensor_t u, mt_tensor_t delta, mt_tensor_t A,
                                     mt_tensor_t B, mt_tensor_t C, mt_tensor_t D, mt_tensor_t z,
                                     mt_tensor_t delta_bias, int delta_softplus) {
    MT_TRY(nullptr,
        const at::Tensor &tu = T(u);
        const Backend backend = backend_for(tu, T(A));
        if (backend == Backend::fallback) {
            auto opt = [](mt_tensor_t t) { return t ? T(t) : at::Tensor(); };
            return mt::wrap_list(fallback_gradients(T(grad_out), {tu, T(delta), T(A), T(B), T(C), opt(D), opt(z),
                                                                  opt(delta_bias)}, delta_softplus != 0));
        }
        at::NoGradGuard no_grad;
        Prepared p = prepare(tu, T(delta), T(A), T(B), T(C), maybe(D), maybe(z), maybe(delta_bias), /*cpu_only=*/false);
        at::Tensor gout = T(grad_out).contiguous();
        if (gout.sizes() != p.u.sizes() || gout.scalar_type() != at::kFloat || gout.device() != p.u.device())
            throw std::invalid_argument("selective_scan: the output gradient must be float32 shaped like u, on its device");
        Grads g = backend == Backend::fused_cpu
                      ? scan_backward(gout, p.u, p.delta, p.A, p.Bt, p.Ct, p.D, p.z, p.bias, delta_softplus != 0)
                      : kernel_backward(backend, gout, p.u, p.delta, p.A, p.Bt, p.Ct, p.D, p.z, p.bias, delta_softplus != 0);
        auto orZeros = [](const at::Tensor &t, const at::Tensor &like) { return t.defined() ? t : at::zeros_like(like); };
        return mt::wrap_list({g.du, g.ddelta, g.dA, g.dBt.transpose(1, 2).contiguous(), g.dCt.transpose(1, 2).contiguous(),
                              orZeros(g.dD, p.u.select(2, 0).select(0, 0)), orZeros(g.dz, p.u),
                              orZeros(g.dbias, p.u.select(2, 0).select(0, 0))});
    )
}

char *mt_selective_scan_kernels_ptx(const char *nvrtc_library, const char *architecture) {
    MT_TRY(nullptr,
        return strdup(mt::scan_kernels_ptx(nvrtc_library ? nvrtc_library : "", architecture ? architecture : "compute_80").c_str());
    )
}

} // extern "C"
