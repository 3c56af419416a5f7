// Runtime queries: version, threads, seeding, devices, BLAS and distributed availability.
#include "shim.hpp"
#include "cuda_driver.hpp"
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <torch/version.h>
#if defined(MT_WITH_CUDA) && __has_include(<c10/core/CachingDeviceAllocator.h>)
#include <c10/core/CachingDeviceAllocator.h>
#define MT_WITH_DEVICE_STATS 1
#endif
#include <dlfcn.h>
#include <malloc.h>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <cstdio>

namespace {
thread_local std::string last_error;
std::string config_text;

int copy_string(const std::string &s, char *buffer, size_t capacity) {
    if (!buffer || capacity == 0) return -1;
    std::strncpy(buffer, s.c_str(), capacity - 1);
    buffer[capacity - 1] = 0;
    return 0;
}
} // namespace

void mt::set_error(const std::string &message) { last_error = message; }

extern "C" {

const char *mt_last_error(void) { return last_error.c_str(); }

const char *mt_version(void) { return TORCH_VERSION; }

int mt_init(void) {
    // A libtorch with CUDA registers its CUDA backend only when libtorch_cuda is loaded.
    static bool done = false;
    if (!done) {
        done = true;
        dlopen("libtorch_cuda.so", RTLD_NOW | RTLD_GLOBAL);
        // Activations are large (tens of MB) and allocated and freed every step. glibc serves
        // such blocks with fresh mmaps, and every step then pays for page faults on new zeroed
        // pages; keeping them on the heap lets the next step reuse the memory (about 1.5x faster
        // U-Net steps on CPU). MEDSEG_MALLOC_DEFAULT=1 keeps glibc's defaults.
        const char *keep = getenv("MEDSEG_MALLOC_DEFAULT");
        if (!keep || strcmp(keep, "1") != 0) {
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, 1 << 30);
        }
    }
    return 0;
}

void mt_release_free_memory(void) { malloc_trim(0); }

int mt_get_num_threads(void) { return at::get_num_threads(); }

int mt_set_num_threads(int n) { MT_STATUS(at::set_num_threads(n)) }

int mt_manual_seed(uint64_t seed) { MT_STATUS(at::manual_seed(seed)) }

int mt_cuda_is_available(void) {
    MT_TRY(0, return at::detail::getCUDAHooks().hasCUDA() && at::detail::getCUDAHooks().getNumGPUs() > 0 ? 1 : 0;)
}

int mt_cuda_device_count(void) { MT_TRY(0, return at::detail::getCUDAHooks().getNumGPUs();) }

int mt_cudnn_is_available(void) { MT_TRY(0, return at::detail::getCUDAHooks().hasCuDNN() ? 1 : 0;) }

// Through the driver API (libtorch's CUDA device index is the driver's ordinal: both follow
// CUDA_VISIBLE_DEVICES), so no CUDA runtime header or library is needed to build.
int mt_cuda_device_name(int index, char *buffer, size_t capacity) {
    mt::CudaDriver &d = mt::cuda_driver();
    int device = 0;
    char name[256] = {0};
    if (!d.ok || d.cuDeviceGet(&device, index) != 0 || d.cuDeviceGetName(name, sizeof name - 1, device) != 0) {
        mt::set_error("the CUDA driver (libcuda.so.1) cannot name device " + std::to_string(index));
        return -1;
    }
    int major = 0, minor = 0;
    size_t bytes = 0;
    std::string text = name;
    if (d.cuDeviceGetAttribute(&major, mt::kComputeCapabilityMajor, device) == 0 &&
        d.cuDeviceGetAttribute(&minor, mt::kComputeCapabilityMinor, device) == 0 && d.cuDeviceTotalMem(&bytes, device) == 0) {
        char extra[96];
        std::snprintf(extra, sizeof extra, " (compute %d.%d, %.0f GiB)", major, minor, bytes / 1073741824.0);
        text += extra;
    }
    return copy_string(text, buffer, capacity);
}

int64_t mt_cuda_total_memory(int index) {
    mt::CudaDriver &d = mt::cuda_driver();
    int device = 0;
    size_t bytes = 0;
    if (!d.ok || d.cuDeviceGet(&device, index) != 0 || d.cuDeviceTotalMem(&bytes, device) != 0) return -1;
    return int64_t(bytes);
}

int mt_cuda_synchronize(int index) {
#ifdef MT_WITH_CUDA
    MT_STATUS(at::detail::getCUDAHooks().deviceSynchronize(index))
#else
    (void)index;
    return 0;
#endif
}

// The most memory libtorch's caching allocator held for tensors on device `index` since the last
// reset (torch.cuda.max_memory_allocated); reset != 0 starts a new peak. Through c10's device
// allocator interface (libtorch 2.8 and later), so no CUDA header is needed.
int64_t mt_cuda_peak_allocated(int index, int reset) {
#ifdef MT_WITH_DEVICE_STATS
    MT_TRY(-1, {
        auto *allocator = c10::getDeviceAllocator(c10::DeviceType::CUDA);
        const auto device = static_cast<c10::DeviceIndex>(index);
        if (reset) { allocator->resetPeakStats(device); return 0; }
        const auto stats = allocator->getDeviceStats(device);
        return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
    })
#else
    (void)index; (void)reset;
    mt::set_error("this libtorch reports no device memory statistics (CPU build, or older than 2.8)");
    return -1;
#endif
}

int mt_has_gloo(void) {
#ifdef MT_WITH_GLOO
    return 1;
#else
    void *h = dlopen("libgloo.so.0", RTLD_LAZY | RTLD_NOLOAD);
    if (!h) h = dlopen("libgloo.so.0", RTLD_LAZY);
    return h ? 1 : 0;
#endif
}

int mt_has_nccl(void) {
#ifdef MT_WITH_NCCL
    return 1;
#else
    return 0;
#endif
}

const char *mt_config(void) {
    MT_TRY(nullptr, config_text = at::show_config(); return config_text.c_str();)
}

// Which BLAS library actually serves sgemm (Debian switches libblas.so.3 through alternatives).
int mt_blas_library(char *buffer, size_t capacity) {
    void *sym = dlsym(RTLD_DEFAULT, "sgemm_");
    if (!sym) sym = dlsym(RTLD_DEFAULT, "cblas_sgemm");
    Dl_info info;
    if (!sym || !dladdr(sym, &info) || !info.dli_fname) return copy_string("unknown", buffer, capacity);
    char resolved[PATH_MAX];
    const char *path = realpath(info.dli_fname, resolved) ? resolved : info.dli_fname;
    return copy_string(path, buffer, capacity);
}

mt_tensor_t mt_get_rng_state(void) {
    MT_TRY(nullptr,
        at::Generator gen = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(gen.mutex());
        return mt::wrap(gen.get_state());
    )
}

int mt_set_rng_state(mt_tensor_t state) {
    MT_TRY(-1,
        at::Generator gen = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(mt::T(state));
        return 0;
    )
}

int mt_is_grad_enabled(void) { return c10::GradMode::is_enabled() ? 1 : 0; }

void mt_set_grad_enabled(int enabled) { c10::GradMode::set_enabled(enabled != 0); }

} // extern "C"
