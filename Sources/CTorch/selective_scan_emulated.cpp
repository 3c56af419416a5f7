// The selective scan's CUDA kernels (selective_scan_kernels.h) compiled for the host and run one
// sequence after another, so that tests check the arithmetic NVRTC compiles for the GPU against
// the fused CPU kernel on machines without one (MEDSEG_SCAN=emulated). Serial and slow: meant
// only for tests.
#include "shim.hpp"
#include "selective_scan_kernels.h"
#include <cmath>

namespace {

thread_local long long emulated_task = 0; // the "thread" the kernel body runs as

#define MT_KERNEL static
#define MT_TASK emulated_task
#define MT_EXP(x) std::exp(x)
MT_SCAN_KERNELS
#undef MT_KERNEL
#undef MT_TASK
#undef MT_EXP

template <typename Kernel> void run_all(long long tasks, Kernel kernel) {
    for (emulated_task = 0; emulated_task < tasks; ++emulated_task) kernel();
}

const float *ptr_or_null(const at::Tensor &t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

} // namespace

namespace mt {

at::Tensor emulated_scan_forward(const at::Tensor &u, const at::Tensor &dt, const at::Tensor &A, const at::Tensor &Bt,
                                 const at::Tensor &Ct, const at::Tensor &D, const at::Tensor &gate) {
    const long long batch = u.size(0), channels = u.size(1), length = u.size(2);
    const int state = static_cast<int>(A.size(1));
    if (state > MT_SCAN_MAX_STATE || !u.device().is_cpu()) return at::Tensor();
    at::Tensor out = at::empty(u.sizes(), u.options());
    run_all(batch * channels, [&] {
        mt_scan_forward(u.data_ptr<float>(), dt.data_ptr<float>(), A.data_ptr<float>(), Bt.data_ptr<float>(),
                        Ct.data_ptr<float>(), ptr_or_null(D), ptr_or_null(gate), out.data_ptr<float>(), batch, channels,
                        length, state);
    });
    return out;
}

bool emulated_scan_backward(const ScanKernelGradients &g, const at::Tensor &u, const at::Tensor &dt, const at::Tensor &A,
                            const at::Tensor &Bt, const at::Tensor &Ct, const at::Tensor &gy) {
    const long long batch = u.size(0), channels = u.size(1), length = u.size(2);
    const int state = static_cast<int>(A.size(1));
    if (state > MT_SCAN_MAX_STATE || !u.device().is_cpu()) return false;
    run_all(batch * channels, [&] {
        mt_scan_backward(u.data_ptr<float>(), dt.data_ptr<float>(), A.data_ptr<float>(), Bt.data_ptr<float>(),
                         Ct.data_ptr<float>(), gy.data_ptr<float>(), g.dC_part.data_ptr<float>(), g.du.data_ptr<float>(),
                         g.ddt.data_ptr<float>(), g.ych.data_ptr<float>(), g.dA_part.data_ptr<float>(),
                         g.dB_part.data_ptr<float>(), batch, channels, length, state);
    });
    return true;
}

} // namespace mt
