// The selective scan's CUDA kernels, forward and backward, as one macro: NVRTC compiles its text
// (stringified in selective_scan_cuda.cpp) for the GPU, and the host compiler compiles the same
// text (selective_scan_emulated.cpp) so that tests check the kernels' arithmetic on the CPU.
// The kernels use three names that each side defines:
//   MT_KERNEL            extern "C" __global__ on the device
//   MT_TASK              this thread's (batch, channel) sequence: blockIdx.x * blockDim.x + threadIdx.x
//   MT_EXP(x)            __expf
// Inside the macro: only block comments, no preprocessor lines.
//
// One thread walks one (batch, channel) sequence, holding its N <= MT_SCAN_MAX_STATE states;
// B and C come laid out [b, L, N] so a thread reads one timestep's states contiguously.
//
// Backward, per sequence, with a_t[n] = exp(dt_t A[n]) and gy the gradient of y before D and the
// gate: a forward sweep stores every state h_t in `states` ([task, L, N]); then, walking back,
//   gh_t  = gy_t C_t + a_{t+1} gh_{t+1}
//   du_t  = sum_n gh_t[n] dt_t B_t[n]                       (the D term is added by the caller)
//   ddt_t = sum_n gh_t[n] (A[n] a_t[n] h_{t-1}[n] + B_t[n] u_t)
// and y_t = sum_n C_t[n] h_t[n] (for the gate's gradient). B, C and A are shared by many
// sequences; rather than atomic adds, each sequence writes its own share, which the caller sums
// (so the gradients are the same on every run): gh_t dt_t u_t into dB_part [task, L, N],
// gy_t h_t over h_t in `states` (that slot is not read again), and sum_t gh_t dt_t a_t h_{t-1}
// into dA_part [task, N].
#pragma once

#define MT_SCAN_MAX_STATE 64

#define MT_SCAN_KERNELS                                                                                                 \
MT_KERNEL void mt_scan_forward(const float *u, const float *dt, const float *A, const float *Bt, const float *Ct,       \
                               const float *D, const float *gate, float *out, long long batch, long long channels,      \
                               long long length, int state) {                                                           \
    const long long task = MT_TASK;                                                                                     \
    if (task >= batch * channels) return;                                                                               \
    const long long b = task / channels, e = task % channels;                                                           \
    float h[MT_SCAN_MAX_STATE], a[MT_SCAN_MAX_STATE];                                                                   \
    for (int n = 0; n < state; ++n) { h[n] = 0.f; a[n] = A[e * state + n]; }                                            \
    const float d_e = D ? D[e] : 0.f;                                                                                   \
    const float *pu = u + task * length, *pdt = dt + task * length;                                                     \
    const float *pg = gate ? gate + task * length : 0;                                                                  \
    float *py = out + task * length;                                                                                    \
    for (long long t = 0; t < length; ++t) {                                                                            \
        const float x = pu[t], d = pdt[t], dx = d * x;                                                                  \
        const float *bn = Bt + (b * length + t) * state, *cn = Ct + (b * length + t) * state;                           \
        float y = 0.f;                                                                                                  \
        for (int n = 0; n < state; ++n) {                                                                               \
            h[n] = MT_EXP(d * a[n]) * h[n] + dx * bn[n];                                                                \
            y += cn[n] * h[n];                                                                                          \
        }                                                                                                               \
        y += d_e * x;                                                                                                   \
        py[t] = pg ? y * pg[t] : y;                                                                                     \
    }                                                                                                                   \
}                                                                                                                       \
                                                                                                                        \
MT_KERNEL void mt_scan_backward(const float *u, const float *dt, const float *A, const float *Bt, const float *Ct,      \
                                const float *gy, float *states, float *du, float *ddt, float *ych, float *dA_part,      \
                                float *dB_part, long long batch, long long channels, long long length, int state) {     \
    const long long task = MT_TASK;                                                                                     \
    if (task >= batch * channels) return;                                                                               \
    const long long b = task / channels, e = task % channels;                                                           \
    float h[MT_SCAN_MAX_STATE], a[MT_SCAN_MAX_STATE], gh[MT_SCAN_MAX_STATE], ga[MT_SCAN_MAX_STATE];                     \
    for (int n = 0; n < state; ++n) { h[n] = 0.f; a[n] = A[e * state + n]; gh[n] = 0.f; ga[n] = 0.f; }                  \
    const float *pu = u + task * length, *pdt = dt + task * length, *pgy = gy + task * length;                          \
    float *ps = states + task * length * state, *pdb = dB_part + task * length * state;                                 \
    for (long long t = 0; t < length; ++t) {                                                                            \
        const float d = pdt[t], dx = d * pu[t];                                                                         \
        const float *bn = Bt + (b * length + t) * state, *cn = Ct + (b * length + t) * state;                           \
        float y = 0.f;                                                                                                  \
        for (int n = 0; n < state; ++n) {                                                                               \
            h[n] = MT_EXP(d * a[n]) * h[n] + dx * bn[n];                                                                \
            ps[t * state + n] = h[n];                                                                                   \
            y += cn[n] * h[n];                                                                                          \
        }                                                                                                               \
        ych[task * length + t] = y;                                                                                     \
    }                                                                                                                   \
    for (long long t = length - 1; t >= 0; --t) {                                                                       \
        const float x = pu[t], d = pdt[t], g = pgy[t];                                                                  \
        const float *bn = Bt + (b * length + t) * state, *cn = Ct + (b * length + t) * state;                           \
        float *ht = ps + t * state;                                                                                     \
        const float *hp = t > 0 ? ps + (t - 1) * state : 0;                                                             \
        float gu = 0.f, gd = 0.f;                                                                                       \
        for (int n = 0; n < state; ++n) {                                                                               \
            const float decay = MT_EXP(d * a[n]), before = hp ? hp[n] : 0.f;                                            \
            /* gh holds a_{t+1} gh_{t+1} here */                                                                        \
            const float ghn = gh[n] + g * cn[n];                                                                        \
            pdb[t * state + n] = ghn * d * x;                                                                           \
            /* h_t is not read again: its slot takes this sequence's share of dC_t */                                   \
            ht[n] = g * ht[n];                                                                                          \
            gu += ghn * bn[n];                                                                                          \
            const float gdecay = ghn * before * decay;                                                                  \
            gd += gdecay * a[n] + ghn * bn[n] * x;                                                                      \
            ga[n] += gdecay * d;                                                                                        \
            gh[n] = ghn * decay;                                                                                        \
        }                                                                                                               \
        du[task * length + t] = gu * d;                                                                                 \
        ddt[task * length + t] = gd;                                                                                    \
    }                                                                                                                   \
    for (int n = 0; n < state; ++n) dA_part[task * state + n] = ga[n];                                                  \
}
