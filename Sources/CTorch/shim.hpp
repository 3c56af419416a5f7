// Shared helpers for the C shim: handle conversion and the exception barrier.
#pragma once
#include <ATen/ATen.h>
#include <string>
#include <vector>
#include "ctorch.h"

struct mt_list_s { std::vector<at::Tensor> items; };

namespace mt {
void set_error(const std::string &message);

inline at::Tensor &T(mt_tensor_t t) { return *reinterpret_cast<at::Tensor *>(t); }
inline c10::optional<at::Tensor> opt(mt_tensor_t t) {
    if (!t) return c10::nullopt;
    return T(t);
}
inline mt_tensor_t wrap(at::Tensor t) { return reinterpret_cast<mt_tensor_t>(new at::Tensor(std::move(t))); }
inline mt_list_t wrap_list(std::vector<at::Tensor> v) { return new mt_list_s{std::move(v)}; }
// Swift passes every scalar as a double; an integral value applied to an integer tensor stays an
// integer (as a Python int would), so integer tensors keep their dtype.
inline at::Scalar scalar_for(const at::Tensor &t, double v) {
    if (!at::isFloatingType(t.scalar_type()) && !at::isComplexType(t.scalar_type()) && v == static_cast<double>(static_cast<int64_t>(v)))
        return at::Scalar(static_cast<int64_t>(v));
    return at::Scalar(v);
}
inline at::IntArrayRef ints(const int64_t *p, size_t n) { return at::IntArrayRef(p, n); }
inline at::TensorOptions options(int dtype, int device_type, int device_index) {
    return at::TensorOptions()
        .dtype(static_cast<at::ScalarType>(dtype))
        .device(at::Device(static_cast<at::DeviceType>(device_type), static_cast<c10::DeviceIndex>(device_index)));
}

// The selective scan's kernels (selective_scan_kernels.h): compiled at run time with NVRTC and
// launched through the driver API on CUDA (selective_scan_cuda.cpp, both libraries loaded with
// dlopen), or emulated on the host for tests (selective_scan_emulated.cpp).
bool cuda_scan_available(int device_index);
// out [b, E, L] for contiguous float32 inputs u, dt (step sizes after bias and softplus)
// [b, E, L], A [E, N], Bt, Ct [b, L, N], D [E] and gate (silu(z)) [b, E, L], the last two optional
// (undefined); an undefined tensor when the kernel is unavailable or N is too large for it.
at::Tensor cuda_scan_forward(const at::Tensor &u, const at::Tensor &dt, const at::Tensor &A, const at::Tensor &Bt,
                             const at::Tensor &Ct, const at::Tensor &D, const at::Tensor &gate);
at::Tensor emulated_scan_forward(const at::Tensor &u, const at::Tensor &dt, const at::Tensor &A, const at::Tensor &Bt,
                                 const at::Tensor &Ct, const at::Tensor &D, const at::Tensor &gate);
// What the backward kernel writes (all allocated by the caller, contents ignored): du (without
// the D term), ddt and y before D and the gate [b, E, L]; each sequence's share of dA [b * E, N]
// and of dBt and dCt [b, E, L, N] (summed by the caller; dC_part first holds the states).
struct ScanKernelGradients {
    at::Tensor du, ddt, ych, dA_part, dB_part, dC_part;
};
// The backward kernel for the same inputs plus gy, the gradient of y before D and the gate;
// false when the kernel is unavailable.
bool cuda_scan_backward(const ScanKernelGradients &g, const at::Tensor &u, const at::Tensor &dt, const at::Tensor &A,
                        const at::Tensor &Bt, const at::Tensor &Ct, const at::Tensor &gy);
bool emulated_scan_backward(const ScanKernelGradients &g, const at::Tensor &u, const at::Tensor &dt, const at::Tensor &A,
                            const at::Tensor &Bt, const at::Tensor &Ct, const at::Tensor &gy);
// PTX of the kernels from the NVRTC library at `nvrtc_path` (empty: the one the CUDA path finds)
// for a virtual architecture such as "compute_80"; throws with NVRTC's log when it fails. Needs
// no GPU and no driver.
std::string scan_kernels_ptx(const std::string &nvrtc_path, const std::string &architecture);
} // namespace mt

// Every entry point runs its body inside MT_TRY so that no C++ exception reaches Swift.
#define MT_TRY(failure, ...)                                                    \
    try {                                                                       \
        __VA_ARGS__                                                             \
    } catch (const c10::Error &e) {                                             \
        mt::set_error(e.what_without_backtrace());                              \
    } catch (const std::exception &e) {                                         \
        mt::set_error(e.what());                                                \
    } catch (...) {                                                             \
        mt::set_error("unknown C++ exception");                                 \
    }                                                                           \
    return failure;

#define MT_TENSOR(...) MT_TRY(nullptr, return mt::wrap(__VA_ARGS__);)
#define MT_STATUS(...) MT_TRY(-1, __VA_ARGS__; return 0;)
