#include "cuda_driver.hpp"
#include <mutex>

namespace mt {

CudaDriver &cuda_driver() {
    static CudaDriver d;
    static std::once_flag once;
    std::call_once(once, [] {
        void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        d.ok = cuda && bind(cuda, "cuInit", d.cuInit) && bind(cuda, "cuDeviceGet", d.cuDeviceGet) &&
               bind(cuda, "cuDeviceGetName", d.cuDeviceGetName) &&
               bind(cuda, "cuDeviceGetAttribute", d.cuDeviceGetAttribute) &&
               bind(cuda, "cuDeviceTotalMem_v2", d.cuDeviceTotalMem) &&
               bind(cuda, "cuDevicePrimaryCtxRetain", d.cuDevicePrimaryCtxRetain) &&
               bind(cuda, "cuCtxSetCurrent", d.cuCtxSetCurrent) && bind(cuda, "cuModuleLoadData", d.cuModuleLoadData) &&
               bind(cuda, "cuModuleGetFunction", d.cuModuleGetFunction) &&
               bind(cuda, "cuLaunchKernel", d.cuLaunchKernel) && d.cuInit(0) == 0;
    });
    return d;
}

} // namespace mt
