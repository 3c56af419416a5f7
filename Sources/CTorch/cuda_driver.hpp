// The CUDA driver API, opened with dlopen from the NVIDIA driver's libcuda.so.1: no CUDA toolkit or
// CUDA runtime header is needed to build, and a machine without a driver simply has none. Used for
// device names (runtime.cpp) and for the selective scan's NVRTC kernels (selective_scan_cuda.cpp).
#pragma once
#include <cstddef>
#include <dlfcn.h>

namespace mt {

// dlsym into a typed function pointer; false when the symbol is missing.
template <typename F> bool bind(void *lib, const char *name, F &fn) {
    fn = reinterpret_cast<F>(dlsym(lib, name));
    return fn != nullptr;
}

// The driver entry points used, declared with plain C types (CUresult is an int, CUdevice an int,
// contexts, modules, functions and streams are pointers).
struct CudaDriver {
    int (*cuInit)(unsigned) = nullptr;
    int (*cuDeviceGet)(int *, int) = nullptr;
    int (*cuDeviceGetName)(char *, int, int) = nullptr;
    int (*cuDeviceGetAttribute)(int *, int, int) = nullptr;
    int (*cuDeviceTotalMem)(size_t *, int) = nullptr;
    int (*cuDevicePrimaryCtxRetain)(void **, int) = nullptr;
    int (*cuCtxSetCurrent)(void *) = nullptr;
    int (*cuModuleLoadData)(void **, const void *) = nullptr;
    int (*cuModuleGetFunction)(void **, void *, const char *) = nullptr;
    int (*cuLaunchKernel)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *,
                          void **, void **) = nullptr;
    bool ok = false;   // libcuda.so.1 loaded, every entry point found and cuInit succeeded
};

// CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR.
constexpr int kComputeCapabilityMajor = 75;
constexpr int kComputeCapabilityMinor = 76;

// Loaded once per process.
CudaDriver &cuda_driver();

} // namespace mt
