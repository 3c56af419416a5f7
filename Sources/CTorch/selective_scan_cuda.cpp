// The selective scan's forward on CUDA: a kernel compiled at run time with NVRTC and launched on
// libtorch's current stream through the CUDA driver API. Both libraries are opened with dlopen
// (libnvrtc from the nvidia-cuda-nvrtc wheel beside torch/, found through the rpath; libcuda.so.1
// from the driver), so building needs no CUDA toolkit. Without MT_WITH_CUDA (Debian's CPU
// libtorch) the kernel is simply unavailable and CUDA tensors, if any, take the ATen fallback.
//
// One thread walks one (batch, channel) sequence through time, holding its N <= 64 states in
// registers; B and C come laid out [b, L, N] so a thread reads one timestep's states contiguously.
#include "shim.hpp"
#include <cstdlib>
#include <mutex>
#include <string>

#ifdef MT_WITH_CUDA
#include <ATen/Parallel.h>
#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <dlfcn.h>
#include <map>
#if __has_include(<c10/cuda/CUDAStream.h>) && __has_include(<cuda_runtime_api.h>) && __has_include(<crt/host_defines.h>)
#include <c10/cuda/CUDAStream.h>
#define MT_HAVE_CUDA_STREAM_HEADER 1
#endif
#include <vector>

namespace {

const char *kernel_source = R"(
extern "C" __global__ void mt_scan_forward(const float *u, const float *dt, const float *A, const float *Bt,
                                           const float *Ct, const float *D, const float *gate, float *out,
                                           long long batch, long long channels, long long length, int state) {
    const long long task = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (task >= batch * channels) return;
    const long long b = task / channels, e = task % channels;
    float h[64], a[64];
    for (int n = 0; n < state; ++n) { h[n] = 0.f; a[n] = A[e * state + n]; }
    const float d_e = D ? D[e] : 0.f;
    const float *pu = u + task * length, *pdt = dt + task * length;
    const float *pg = gate ? gate + task * length : 0;
    float *py = out + task * length;
    for (long long t = 0; t < length; ++t) {
        const float x = pu[t], d = pdt[t], dx = d * x;
        const float *bn = Bt + (b * length + t) * state, *cn = Ct + (b * length + t) * state;
        float y = 0.f;
        for (int n = 0; n < state; ++n) {
            h[n] = __expf(d * a[n]) * h[n] + dx * bn[n];
            y += cn[n] * h[n];
        }
        y += d_e * x;
        py[t] = pg ? y * pg[t] : y;
    }
}
)";

constexpr int kMaxState = 64;

// The driver and NVRTC entry points used, declared with plain C types (CUresult and nvrtcResult
// are ints, handles are pointers).
struct Api {
    int (*cuInit)(unsigned) = nullptr;
    int (*cuDeviceGet)(int *, int) = nullptr;
    int (*cuDeviceGetAttribute)(int *, int, int) = nullptr;
    int (*cuDevicePrimaryCtxRetain)(void **, int) = nullptr;
    int (*cuCtxSetCurrent)(void *) = nullptr;
    int (*cuModuleLoadData)(void **, const void *) = nullptr;
    int (*cuModuleGetFunction)(void **, void *, const char *) = nullptr;
    int (*cuLaunchKernel)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *,
                          void **, void **) = nullptr;
    int (*nvrtcCreateProgram)(void **, const char *, const char *, int, const char *const *,
                              const char *const *) = nullptr;
    int (*nvrtcCompileProgram)(void *, int, const char *const *) = nullptr;
    int (*nvrtcGetPTXSize)(void *, size_t *) = nullptr;
    int (*nvrtcGetPTX)(void *, char *) = nullptr;
    int (*nvrtcGetProgramLogSize)(void *, size_t *) = nullptr;
    int (*nvrtcGetProgramLog)(void *, char *) = nullptr;
    int (*nvrtcDestroyProgram)(void **) = nullptr;
    bool ok = false;
    std::string why;
};

template <typename F> bool bind(void *lib, const char *name, F &fn) {
    fn = reinterpret_cast<F>(dlsym(lib, name));
    return fn != nullptr;
}

void *open_nvrtc() {
    if (const char *path = std::getenv("MEDSEG_NVRTC"))
        if (void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) return h;
    for (const char *name : {"libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so.11.2", "libnvrtc.so"})
        if (void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL)) return h;
    // A pip wheel keeps it in nvidia/cuda_nvrtc/lib beside torch/ (libtorch is in torch/lib).
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&at::get_num_threads), &info) && info.dli_fname) {  // in libtorch_cpu
        std::string lib = info.dli_fname;
        lib = lib.substr(0, lib.find_last_of('/'));                       // .../torch/lib
        const std::string site = lib + "/../../nvidia/cuda_nvrtc/lib/";
        for (const char *name : {"libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so.11.2"})
            if (void *h = dlopen((site + name).c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
    }
    return nullptr;
}

Api &api() {
    static Api a;
    static std::once_flag once;
    std::call_once(once, [] {
        void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!cuda) { a.why = "libcuda.so.1 not found"; return; }
        void *nvrtc = open_nvrtc();
        if (!nvrtc) { a.why = "libnvrtc not found"; return; }
        bool ok = bind(cuda, "cuInit", a.cuInit) && bind(cuda, "cuDeviceGet", a.cuDeviceGet) &&
                  bind(cuda, "cuDeviceGetAttribute", a.cuDeviceGetAttribute) &&
                  bind(cuda, "cuDevicePrimaryCtxRetain", a.cuDevicePrimaryCtxRetain) &&
                  bind(cuda, "cuCtxSetCurrent", a.cuCtxSetCurrent) && bind(cuda, "cuModuleLoadData", a.cuModuleLoadData) &&
                  bind(cuda, "cuModuleGetFunction", a.cuModuleGetFunction) && bind(cuda, "cuLaunchKernel", a.cuLaunchKernel) &&
                  bind(nvrtc, "nvrtcCreateProgram", a.nvrtcCreateProgram) &&
                  bind(nvrtc, "nvrtcCompileProgram", a.nvrtcCompileProgram) &&
                  bind(nvrtc, "nvrtcGetPTXSize", a.nvrtcGetPTXSize) && bind(nvrtc, "nvrtcGetPTX", a.nvrtcGetPTX) &&
                  bind(nvrtc, "nvrtcGetProgramLogSize", a.nvrtcGetProgramLogSize) &&
                  bind(nvrtc, "nvrtcGetProgramLog", a.nvrtcGetProgramLog) &&
                  bind(nvrtc, "nvrtcDestroyProgram", a.nvrtcDestroyProgram);
        if (!ok) { a.why = "a driver or NVRTC entry point is missing"; return; }
        if (a.cuInit(0) != 0) { a.why = "cuInit failed"; return; }
        a.ok = true;
    });
    return a;
}

// PTX for the device's compute capability; an older virtual architecture when this NVRTC does not
// know the device's (the driver compiles PTX forward).
std::string compile(Api &a, int major, int minor) {
    const std::string archs[] = {"--gpu-architecture=compute_" + std::to_string(major * 10 + minor),
                                 "--gpu-architecture=compute_80", "--gpu-architecture=compute_70"};
    std::string log;
    for (const std::string &arch : archs) {
        void *prog = nullptr;
        if (a.nvrtcCreateProgram(&prog, kernel_source, "mt_scan.cu", 0, nullptr, nullptr) != 0)
            throw std::runtime_error("selective_scan: nvrtcCreateProgram failed");
        const char *opts[] = {arch.c_str(), "--use_fast_math", "-default-device"};
        const int rc = a.nvrtcCompileProgram(prog, 3, opts);
        std::string ptx;
        if (rc == 0) {
            size_t n = 0;
            a.nvrtcGetPTXSize(prog, &n);
            ptx.resize(n);
            a.nvrtcGetPTX(prog, &ptx[0]);
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
    throw std::runtime_error("selective_scan: NVRTC could not compile the scan kernel:\n" + log);
}

struct Loaded {
    void *context = nullptr;
    void *function = nullptr;
};

// The kernel for one device, compiled and loaded once (null function: it failed).
Loaded &loaded(int device) {
    static std::mutex mutex;
    static std::map<int, Loaded> cache;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(device);
    if (it != cache.end()) return it->second;
    Loaded &l = cache[device];
    Api &a = api();
    if (!a.ok) return l;
    int dev = 0, major = 0, minor = 0;
    void *ctx = nullptr, *module = nullptr, *fn = nullptr;
    if (a.cuDeviceGet(&dev, device) != 0 || a.cuDeviceGetAttribute(&major, 75, dev) != 0 ||
        a.cuDeviceGetAttribute(&minor, 76, dev) != 0 || a.cuDevicePrimaryCtxRetain(&ctx, dev) != 0 ||
        a.cuCtxSetCurrent(ctx) != 0)
        return l;
    const std::string ptx = compile(a, major, minor);
    if (a.cuModuleLoadData(&module, ptx.c_str()) != 0 || a.cuModuleGetFunction(&fn, module, "mt_scan_forward") != 0)
        return l;
    l.context = ctx;
    l.function = fn;
    return l;
}

// libtorch's current stream for the device as a CUstream: from c10::cuda when the CUDA runtime's
// header is on the include path (a wheel's nvidia/cuda_runtime/include, see Package.swift), else
// c10::Stream::native_handle where the headers have it, else null (the legacy default stream,
// libtorch's current stream unless a program switches streams).
template <typename S> auto native_stream(const S &s, int) -> decltype(s.native_handle()) { return s.native_handle(); }
template <typename S> void *native_stream(const S &, long) { return nullptr; }

void *current_stream(const at::Device &device) {
#ifdef MT_HAVE_CUDA_STREAM_HEADER
    return reinterpret_cast<void *>(c10::cuda::getCurrentCUDAStream(device.index()).stream());
#else
    const c10::Stream stream = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(device);
    return native_stream(stream, 0);
#endif
}

} // namespace

namespace mt {

bool cuda_scan_available(int device_index) {
    try {
        return loaded(device_index < 0 ? 0 : device_index).function != nullptr;
    } catch (...) {
        return false;
    }
}

at::Tensor cuda_scan_forward(const at::Tensor &u, const at::Tensor &dt, const at::Tensor &A, const at::Tensor &Bt,
                             const at::Tensor &Ct, const at::Tensor &D, const at::Tensor &gate) {
    const int64_t batch = u.size(0), channels = u.size(1), length = u.size(2);
    int state = static_cast<int>(A.size(1));
    if (state > kMaxState || !u.is_cuda()) return at::Tensor();
    c10::DeviceGuard guard(u.device());
    const int device = u.device().index();
    Loaded &l = loaded(device);
    if (!l.function) return at::Tensor();
    Api &a = api();
    if (a.cuCtxSetCurrent(l.context) != 0) return at::Tensor();
    at::Tensor out = at::empty(u.sizes(), u.options());
    void *cu_stream = current_stream(u.device());
    const float *pu = u.data_ptr<float>(), *pdt = dt.data_ptr<float>(), *pA = A.data_ptr<float>();
    const float *pB = Bt.data_ptr<float>(), *pC = Ct.data_ptr<float>();
    const float *pD = D.defined() ? D.data_ptr<float>() : nullptr;
    const float *pg = gate.defined() ? gate.data_ptr<float>() : nullptr;
    float *py = out.data_ptr<float>();
    long long b = batch, e = channels, len = length;
    void *args[] = {&pu, &pdt, &pA, &pB, &pC, &pD, &pg, &py, &b, &e, &len, &state};
    const unsigned threads = 128;
    const unsigned blocks = static_cast<unsigned>((batch * channels + threads - 1) / threads);
    const int rc = a.cuLaunchKernel(l.function, blocks, 1, 1, threads, 1, 1, 0, cu_stream, args, nullptr);
    if (rc != 0) throw std::runtime_error("selective_scan: cuLaunchKernel failed (CUresult " + std::to_string(rc) + ")");
    return out;
}

} // namespace mt

#else

namespace mt {
bool cuda_scan_available(int) { return false; }
at::Tensor cuda_scan_forward(const at::Tensor &, const at::Tensor &, const at::Tensor &, const at::Tensor &,
                             const at::Tensor &, const at::Tensor &, const at::Tensor &) {
    return at::Tensor();
}
} // namespace mt

#endif
