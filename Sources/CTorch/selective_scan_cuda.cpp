// The selective scan's kernels on CUDA: the text of selective_scan_kernels.h compiled at run time
// with NVRTC and launched on libtorch's current stream through the CUDA driver API. Both libraries
// are opened with dlopen (libnvrtc from the nvidia-cuda-nvrtc wheel beside torch/, found through
// the rpath; libcuda.so.1 from the driver), so building needs no CUDA toolkit. NVRTC alone needs
// no GPU: scan_kernels_ptx compiles on any machine (a test does, with the wheel set-up fetches).
// Without MT_WITH_CUDA (Debian's CPU libtorch) the kernels cannot be launched and CUDA tensors, if
// any, take the ATen fallback.
#include "shim.hpp"
#include "cuda_driver.hpp"
#include "selective_scan_kernels.h"
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef MT_WITH_CUDA
#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <map>
#endif

namespace {

#define MT_STRINGIFY(...) #__VA_ARGS__
#define MT_EXPAND_AND_STRINGIFY(...) MT_STRINGIFY(__VA_ARGS__)

// The kernels for NVRTC: the device's meaning of the three names, then the kernels' text (the names
// are not defined in this file, so they stay names in the string).
std::string kernel_source() {
    return "#define MT_KERNEL extern \"C\" __global__\n"
           "#define MT_TASK ((long long)blockIdx.x * blockDim.x + threadIdx.x)\n"
           "#define MT_EXP(x) __expf(x)\n" +
           std::string(MT_EXPAND_AND_STRINGIFY(MT_SCAN_KERNELS)) + "\n";
}

using mt::bind;

// The NVRTC entry points used, declared with plain C types (nvrtcResult is an int, programs are
// pointers).
struct Nvrtc {
    int (*nvrtcCreateProgram)(void **, const char *, const char *, int, const char *const *,
                              const char *const *) = nullptr;
    int (*nvrtcCompileProgram)(void *, int, const char *const *) = nullptr;
    int (*nvrtcGetPTXSize)(void *, size_t *) = nullptr;
    int (*nvrtcGetPTX)(void *, char *) = nullptr;
    int (*nvrtcGetProgramLogSize)(void *, size_t *) = nullptr;
    int (*nvrtcGetProgramLog)(void *, char *) = nullptr;
    int (*nvrtcDestroyProgram)(void **) = nullptr;
    bool ok = false;

    explicit Nvrtc(void *lib) {
        ok = lib && bind(lib, "nvrtcCreateProgram", nvrtcCreateProgram) &&
             bind(lib, "nvrtcCompileProgram", nvrtcCompileProgram) && bind(lib, "nvrtcGetPTXSize", nvrtcGetPTXSize) &&
             bind(lib, "nvrtcGetPTX", nvrtcGetPTX) && bind(lib, "nvrtcGetProgramLogSize", nvrtcGetProgramLogSize) &&
             bind(lib, "nvrtcGetProgramLog", nvrtcGetProgramLog) && bind(lib, "nvrtcDestroyProgram", nvrtcDestroyProgram);
    }
};

// MEDSEG_NVRTC, then the loader's search path, then a pip wheel's NVRTC beside torch/ (libtorch
// is in torch/lib): nvidia/cuda_nvrtc/lib (CUDA 12 wheels) or nvidia/cu13/lib (CUDA 13).
void *find_nvrtc() {
    if (const char *path = std::getenv("MEDSEG_NVRTC"))
        if (void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) return h;
    for (const char *name : {"libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so.11.2", "libnvrtc.so"})
        if (void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL)) return h;
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&at::get_num_threads), &info) && info.dli_fname) {  // in libtorch_cpu
        std::string lib = info.dli_fname;
        lib = lib.substr(0, lib.find_last_of('/'));                       // .../torch/lib
        for (const char *folder : {"/../../nvidia/cuda_nvrtc/lib/", "/../../nvidia/cu13/lib/"})
            for (const char *name : {"libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so.11.2"})
                if (void *h = dlopen((lib + folder + name).c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
    }
    return nullptr;
}

// PTX for the first of `archs` this NVRTC compiles for; throws with every log when none works.
std::string compile(const Nvrtc &a, const std::vector<std::string> &archs) {
    const std::string source = kernel_source();
    std::string log;
    for (const std::string &arch : archs) {
        void *prog = nullptr;
        if (a.nvrtcCreateProgram(&prog, source.c_str(), "mt_scan.cu", 0, nullptr, nullptr) != 0)
            throw std::runtime_error("selective_scan: nvrtcCreateProgram failed");
        const std::string arch_option = "--gpu-architecture=" + arch;
        const char *opts[] = {arch_option.c_str(), "--use_fast_math", "-default-device"};
        const int rc = a.nvrtcCompileProgram(prog, 3, opts);
        std::string ptx;
        if (rc == 0) {
            size_t n = 0;
            a.nvrtcGetPTXSize(prog, &n);
            ptx.resize(n);
            if (n) a.nvrtcGetPTX(prog, &ptx[0]);
            while (!ptx.empty() && ptx.back() == '\0') ptx.pop_back();
        } else {
            size_t n = 0;
            a.nvrtcGetProgramLogSize(prog, &n);
            std::string l(n, '\0');
            if (n) a.nvrtcGetProgramLog(prog, &l[0]);
            log += arch + ": " + l + "\n";
        }
        a.nvrtcDestroyProgram(&prog);
        if (!ptx.empty()) return ptx;
    }
    throw std::runtime_error("selective_scan: NVRTC could not compile the scan kernels:\n" + log);
}

} // namespace

namespace mt {

std::string scan_kernels_ptx(const std::string &nvrtc_path, const std::string &architecture) {
    void *lib = nvrtc_path.empty() ? find_nvrtc() : dlopen(nvrtc_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        throw std::runtime_error("selective_scan: cannot load NVRTC" + (nvrtc_path.empty() ? "" : " from " + nvrtc_path) +
                                 (why ? std::string(": ") + why : std::string()));
    }
    Nvrtc nvrtc(lib);
    if (!nvrtc.ok) throw std::runtime_error("selective_scan: " + nvrtc_path + " lacks an NVRTC entry point");
    return compile(nvrtc, {architecture});
}

} // namespace mt

#ifdef MT_WITH_CUDA

namespace {

struct Loaded {
    void *context = nullptr;
    void *forward = nullptr;
    void *backward = nullptr;
};

// The kernels for one device, compiled and loaded once (null functions: that failed). PTX for the
// device's compute capability, or an older virtual architecture when this NVRTC does not know it
// (the driver compiles PTX forward).
Loaded &loaded(int device) {
    static std::mutex mutex;
    static std::map<int, Loaded> cache;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(device);
    if (it != cache.end()) return it->second;
    Loaded &l = cache[device];
    mt::CudaDriver &d = mt::cuda_driver();
    static Nvrtc nvrtc(find_nvrtc());
    if (!d.ok || !nvrtc.ok) return l;
    int dev = 0, major = 0, minor = 0;
    void *ctx = nullptr, *module = nullptr, *forward = nullptr, *backward = nullptr;
    if (d.cuDeviceGet(&dev, device) != 0 || d.cuDeviceGetAttribute(&major, mt::kComputeCapabilityMajor, dev) != 0 ||
        d.cuDeviceGetAttribute(&minor, mt::kComputeCapabilityMinor, dev) != 0 || d.cuDevicePrimaryCtxRetain(&ctx, dev) != 0 ||
        d.cuCtxSetCurrent(ctx) != 0)
        return l;
    const std::string ptx = compile(nvrtc, {"compute_" + std::to_string(major * 10 + minor), "compute_80", "compute_70"});
    if (d.cuModuleLoadData(&module, ptx.c_str()) != 0 || d.cuModuleGetFunction(&forward, module, "mt_scan_forward") != 0 ||
        d.cuModuleGetFunction(&backward, module, "mt_scan_backward") != 0)
        return l;
    l.context = ctx;
    l.forward = forward;
    l.backward = backward;
    return l;
}

// libtorch's current stream for the device as a CUstream, through c10::Stream::native_handle (no
// CUDA header needed); where the headers lack it, null: the legacy default stream, libtorch's
// current stream unless a program switches streams.
template <typename S> auto native_stream(const S &s, int) -> decltype(s.native_handle()) { return s.native_handle(); }
template <typename S> void *native_stream(const S &, long) { return nullptr; }

void *current_stream(const at::Device &device) {
    const c10::Stream stream = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(device);
    return native_stream(stream, 0);
}

// Launches `function` with one thread per (batch, channel) sequence of u on u's device.
bool launch(void *Loaded::*which, const at::Tensor &u, const at::Tensor &A, std::vector<void *> args) {
    if (A.size(1) > MT_SCAN_MAX_STATE || !u.is_cuda()) return false;
    c10::DeviceGuard guard(u.device());
    Loaded &l = loaded(u.device().index());
    void *function = l.*which;
    if (!function || mt::cuda_driver().cuCtxSetCurrent(l.context) != 0) return false;
    const unsigned threads = 128;
    const unsigned blocks = static_cast<unsigned>((u.size(0) * u.size(1) + threads - 1) / threads);
    const int rc = mt::cuda_driver().cuLaunchKernel(function, blocks, 1, 1, threads, 1, 1, 0, current_stream(u.device()),
                                           args.data(), nullptr);
    if (rc != 0) throw std::runtime_error("selective_scan: cuLaunchKernel failed (CUresult " + std::to_string(rc) + ")");
    return true;
}

const float *ptr_or_null(const at::Tensor &t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

} // namespace

namespace mt {

bool cuda_scan_available(int device_index) {
    try {
        const Loaded &l = loaded(device_index < 0 ? 0 : device_index);
        return l.forward && l.backward;
    } catch (...) {
        return false;
    }
}

at::Tensor cuda_scan_forward(const at::Tensor &u, const at::Tensor &dt, const at::Tensor &A, const at::Tensor &Bt,
                             const at::Tensor &Ct, const at::Tensor &D, const at::Tensor &gate) {
    at::Tensor out = at::empty(u.sizes(), u.options());
    const float *pu = u.data_ptr<float>(), *pdt = dt.data_ptr<float>(), *pA = A.data_ptr<float>();
    const float *pB = Bt.data_ptr<float>(), *pC = Ct.data_ptr<float>(), *pD = ptr_or_null(D), *pg = ptr_or_null(gate);
    float *py = out.data_ptr<float>();
    long long b = u.size(0), e = u.size(1), len = u.size(2);
    int state = static_cast<int>(A.size(1));
    if (!launch(&Loaded::forward, u, A, {&pu, &pdt, &pA, &pB, &pC, &pD, &pg, &py, &b, &e, &len, &state}))
        return at::Tensor();
    return out;
}

bool cuda_scan_backward(const ScanKernelGradients &g, const at::Tensor &u, const at::Tensor &dt, const at::Tensor &A,
                        const at::Tensor &Bt, const at::Tensor &Ct, const at::Tensor &gy) {
    long long b = u.size(0), e = u.size(1), len = u.size(2);
    int state = static_cast<int>(A.size(1));
    const float *pu = u.data_ptr<float>(), *pdt = dt.data_ptr<float>(), *pA = A.data_ptr<float>();
    const float *pB = Bt.data_ptr<float>(), *pC = Ct.data_ptr<float>(), *pgy = gy.data_ptr<float>();
    float *ps = g.dC_part.data_ptr<float>(), *pdu = g.du.data_ptr<float>(), *pddt = g.ddt.data_ptr<float>();
    float *pych = g.ych.data_ptr<float>(), *pdA = g.dA_part.data_ptr<float>(), *pdB = g.dB_part.data_ptr<float>();
    return launch(&Loaded::backward, u, A,
                  {&pu, &pdt, &pA, &pB, &pC, &pgy, &ps, &pdu, &pddt, &pych, &pdA, &pdB, &b, &e, &len, &state});
}

} // namespace mt

#else

namespace mt {
bool cuda_scan_available(int) { return false; }
at::Tensor cuda_scan_forward(const at::Tensor &, const at::Tensor &, const at::Tensor &, const at::Tensor &,
                             const at::Tensor &, const at::Tensor &, const at::Tensor &) {
    return at::Tensor();
}
bool cuda_scan_backward(const ScanKernelGradients &, const at::Tensor &, const at::Tensor &, const at::Tensor &,
                        const at::Tensor &, const at::Tensor &, const at::Tensor &) {
    return false;
}
} // namespace mt

#endif
