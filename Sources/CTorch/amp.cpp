// Mixed precision and memory layout: autocast scopes, the gradient scaler's unscale with its
// non-finite check, channels-last memory formats and the cuDNN autotuner switch.
#include "shim.hpp"
#include <ATen/autocast_mode.h>
#include <torch/version.h>
#include <vector>

using mt::T;

namespace {
// libtorch 2.4 made autocast's state per device type (set_autocast_enabled(device, on)); before, CPU
// and CUDA had their own functions (set_cpu_enabled / set_enabled, set_autocast_cpu_dtype /
// set_autocast_gpu_dtype), which later releases deprecate and then drop.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define MT_AUTOCAST_PER_DEVICE 1
#endif

at::DeviceType device_of(int device_type) {
    if (device_type != MT_CPU && device_type != MT_CUDA) throw std::runtime_error("autocast supports the CPU and CUDA devices only");
    return static_cast<at::DeviceType>(device_type);
}

bool autocast_enabled(at::DeviceType d) {
#ifdef MT_AUTOCAST_PER_DEVICE
    return at::autocast::is_autocast_enabled(d);
#else
    return d == at::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

at::ScalarType autocast_dtype(at::DeviceType d) {
#ifdef MT_AUTOCAST_PER_DEVICE
    return at::autocast::get_autocast_dtype(d);
#else
    return d == at::kCPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
#endif
}

void set_autocast(at::DeviceType d, bool enabled, at::ScalarType dtype) {
#ifdef MT_AUTOCAST_PER_DEVICE
    at::autocast::set_autocast_enabled(d, enabled);
    at::autocast::set_autocast_dtype(d, dtype);
#else
    if (d == at::kCPU) {
        at::autocast::set_cpu_enabled(enabled);
        at::autocast::set_autocast_cpu_dtype(dtype);
    } else {
        at::autocast::set_enabled(enabled);
        at::autocast::set_autocast_gpu_dtype(dtype);
    }
#endif
}
} // namespace

extern "C" {

int mt_autocast_is_enabled(int device_type) { MT_TRY(-1, return autocast_enabled(device_of(device_type)) ? 1 : 0;) }

int mt_autocast_get_dtype(int device_type) { MT_TRY(-1, return static_cast<int>(autocast_dtype(device_of(device_type)));) }

int mt_autocast_set(int device_type, int enabled, int dtype) {
    MT_STATUS(set_autocast(device_of(device_type), enabled != 0, static_cast<at::ScalarType>(dtype)))
}

int mt_autocast_increment_nesting(void) { MT_TRY(-1, return static_cast<int>(at::autocast::increment_nesting());) }

int mt_autocast_decrement_nesting(void) { MT_TRY(-1, return static_cast<int>(at::autocast::decrement_nesting());) }

int mt_autocast_clear_cache(void) { MT_STATUS(at::autocast::clear_cache()) }

int mt_amp_unscale_(const mt_tensor_t *grads, size_t n, double inv_scale, int *found_inf) {
    MT_STATUS(
        std::vector<at::Tensor> cuda;
        bool found = false;
        for (size_t i = 0; i < n; ++i) {
            at::Tensor &g = T(grads[i]);
            if (g.is_cuda()) {
                cuda.push_back(g);
                continue;
            }
            // CPU: libtorch 1.13's fused kernel is CUDA-only. The check comes before the
            // multiplication, as in the fused kernel (a huge finite gradient stays detected).
            if (!found && !at::isfinite(g).all().item<bool>()) found = true;
            g.mul_(inv_scale);
        }
        if (!cuda.empty()) {
            // The fused kernel wants found_inf and inv_scale as one-element float tensors on the device.
            auto opts = at::TensorOptions().dtype(at::kFloat).device(cuda[0].device());
            at::Tensor flag = at::zeros({1}, opts);
            at::Tensor inv = at::full({1}, inv_scale, opts);
            at::_amp_foreach_non_finite_check_and_unscale_(cuda, flag, inv);
            if (flag.item<float>() != 0) found = true;
        }
        *found_inf = found ? 1 : 0;
    )
}

mt_tensor_t mt_contiguous_format(mt_tensor_t t, int memory_format) {
    MT_TENSOR(T(t).contiguous(static_cast<c10::MemoryFormat>(memory_format)))
}

int mt_is_contiguous_format(mt_tensor_t t, int memory_format) {
    MT_TRY(-1, return T(t).is_contiguous(static_cast<c10::MemoryFormat>(memory_format)) ? 1 : 0;)
}

int mt_cudnn_benchmark(void) { return at::globalContext().benchmarkCuDNN() ? 1 : 0; }

void mt_set_cudnn_benchmark(int enabled) { at::globalContext().setBenchmarkCuDNN(enabled != 0); }

} // extern "C"
