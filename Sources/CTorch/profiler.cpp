// Run control that lives in libtorch's global context: deterministic algorithms, and the
// profiler that records a few training steps into a Chrome trace.
#include "shim.hpp"
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/csrc/autograd/profiler_legacy.h>

using namespace mt;

extern "C" {

int mt_set_deterministic(int enabled) {
    MT_STATUS(
        // cuBLAS is deterministic only with a fixed workspace, read when its handle is made: set
        // before the first CUDA matrix product, and never over the user's own choice.
        if (enabled) setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);
        at::globalContext().setDeterministicAlgorithms(enabled != 0, /*warn_only=*/false);
        at::globalContext().setDeterministicCuDNN(enabled != 0);
        if (enabled) at::globalContext().setBenchmarkCuDNN(false);
    )
}

int mt_deterministic(void) { return at::globalContext().deterministicAlgorithms() ? 1 : 0; }

// One recording at a time: Kineto's (operators and CUDA kernels) on a GPU, where libtorch has
// Kineto; the legacy CPU profiler elsewhere (Debian's libtorch is built without Kineto), which
// writes the same Chrome trace format of the operators.
static std::unique_ptr<std::ostringstream> legacy_trace;
static std::unique_ptr<torch::autograd::profiler::RecordProfile> legacy_recording;
static bool kineto_recording = false;

int mt_profiler_start(int cuda) {
    MT_STATUS(
        if (kineto_recording || legacy_recording) throw std::runtime_error("the profiler is already recording");
        if (cuda) {
            namespace prof = torch::profiler::impl;
            std::set<prof::ActivityType> activities{prof::ActivityType::CPU, prof::ActivityType::CUDA};
            prof::ProfilerConfig config(prof::ProfilerState::KINETO, /*report_input_shapes=*/true);
            torch::autograd::profiler::prepareProfiler(config, activities);
            torch::autograd::profiler::enableProfiler(config, activities);
            kineto_recording = true;
        } else {
            legacy_trace = std::make_unique<std::ostringstream>();
            legacy_recording = std::make_unique<torch::autograd::profiler::RecordProfile>(*legacy_trace);
        }
    )
}

int mt_profiler_stop(const char *trace_path) {
    MT_STATUS(
        if (kineto_recording) {
            kineto_recording = false;
            auto result = torch::autograd::profiler::disableProfiler();
            result->save(trace_path);
        } else if (legacy_recording) {
            legacy_recording.reset(); // writes the trace into legacy_trace
            std::ofstream out(trace_path);
            out << legacy_trace->str();
            legacy_trace.reset();
            if (!out.good()) throw std::runtime_error(std::string("cannot write the trace to ") + trace_path);
        } else {
            throw std::runtime_error("the profiler is not recording");
        }
    )
}

} // extern "C"
