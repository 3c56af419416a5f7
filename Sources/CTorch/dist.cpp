// Distributed data parallelism through libtorch's c10d: TCPStore rendezvous, Gloo process group,
// collectives, and c10d's Reducer (the engine behind PyTorch DDP: gradient buckets all-reduced as
// soon as they are ready during backward).
#include "shim.hpp"
#include <arpa/inet.h>
#include <chrono>
#include <cstdlib>
#include <netdb.h>
#include <csignal>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <torch/version.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#include <torch/csrc/autograd/custom_function.h>
#include <type_traits>
#ifdef MT_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

using mt::T;

struct mt_pg_s {
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::ProcessGroup> pg;
    int rank;
    int world;
};

struct mt_reducer_s {
    std::shared_ptr<c10d::Reducer> reducer;
};

namespace {
// The local address this process reaches the master from: the kernel's route choice for a UDP
// socket "connected" to it (no packet is sent). Gloo's default device binds to whatever the
// hostname resolves to, which on Debian is often 127.0.1.1 and unreachable from other nodes.
std::string route_address_to(const std::string &master) {
    addrinfo hints{}, *found = nullptr;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    if (getaddrinfo(master.c_str(), "9", &hints, &found) != 0 || !found) return "";
    std::string local;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
        sockaddr_in self{};
        socklen_t length = sizeof(self);
        char text[INET_ADDRSTRLEN] = {0};
        if (getsockname(fd, reinterpret_cast<sockaddr *>(&self), &length) == 0 &&
            inet_ntop(AF_INET, &self.sin_addr, text, sizeof(text)))
            local = text;
    }
    if (fd >= 0) close(fd);
    freeaddrinfo(found);
    return local;
}

// GLOO_SOCKET_IFNAME names the interface, as in PyTorch; otherwise the one that routes to the master.
std::shared_ptr<gloo::transport::Device> gloo_device(const std::string &master) {
    if (const char *name = std::getenv("GLOO_SOCKET_IFNAME"); name && *name)
        return c10d::ProcessGroupGloo::createDeviceForInterface(name);
    std::string local = route_address_to(master);
    if (!local.empty()) return c10d::ProcessGroupGloo::createDeviceForHostname(local);
    return c10d::ProcessGroupGloo::createDefaultDevice();
}

// libtorch's c10d API moves between releases; these pick the form the headers in use have at
// compile time (the template parameter keeps the branch not taken from being compiled).

// 1.x: the Gloo group is the process group. 2.x: a ProcessGroup dispatching to backends, made with
// Options up to some 2.x and from (store, rank, size) after.
template <typename PG = c10d::ProcessGroup>
c10::intrusive_ptr<PG> make_process_group(const c10::intrusive_ptr<c10d::Store> &store, int rank, int world, int timeout_ms) {
    if constexpr (std::is_constructible_v<PG, c10::intrusive_ptr<c10d::Store>, int, int>) {
        return c10::make_intrusive<PG>(store, rank, world);
    } else {
        auto options = c10::make_intrusive<typename PG::Options>("gloo", std::chrono::milliseconds(timeout_ms));
        return c10::make_intrusive<PG>(store, rank, world, options);
    }
}

// The Reducer took per-bucket size limits after the bucket indices until late 2.x, which then
// moved them to a list at the end beside new flags (all off here, as PyTorch's defaults).
template <typename R = c10d::Reducer>
std::shared_ptr<R> make_reducer(std::vector<at::Tensor> params, std::vector<std::vector<size_t>> buckets, std::vector<size_t> limits,
                                c10::intrusive_ptr<c10d::ProcessGroup> pg, std::vector<bool> sparse, int64_t bucket_bytes,
                                bool find_unused, int64_t first_bucket_bytes) {
    if constexpr (std::is_constructible_v<R, std::vector<at::Tensor>, std::vector<std::vector<size_t>>, std::vector<size_t>,
                                          c10::intrusive_ptr<c10d::ProcessGroup>, std::vector<bool>, int64_t, bool, bool,
                                          std::unordered_map<size_t, std::string>, int64_t>) {
        return std::make_shared<R>(params, buckets, limits, pg, sparse, bucket_bytes, find_unused, /*gradient_as_bucket_view=*/false,
                                   std::unordered_map<size_t, std::string>(), first_bucket_bytes);
    } else {
        std::vector<int64_t> caps(limits.begin(), limits.end());
        return std::make_shared<R>(params, buckets, pg, sparse, bucket_bytes, find_unused, /*gradient_as_bucket_view=*/false,
                                   std::unordered_map<size_t, std::string>(), first_bucket_bytes,
                                   /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false, caps);
    }
}

// Which backend serves collectives not tied to a device type (barrier): settable from some 2.x on.
template <typename PG, typename = void> struct has_default_backend : std::false_type {};
template <typename PG>
struct has_default_backend<PG, std::void_t<decltype(std::declval<PG &>().setDefaultBackend(std::declval<typename PG::BackendType>()))>>
    : std::true_type {};

template <typename PG = c10d::ProcessGroup>
void set_default_backend(const c10::intrusive_ptr<PG> &pg, typename PG::BackendType type) {
    if constexpr (has_default_backend<PG>::value) pg->setDefaultBackend(type);
}

void wait(const c10::intrusive_ptr<c10d::Work> &work) {
    if (!work->wait()) throw std::runtime_error("collective did not complete");
}

at::Tensor allreduce_copy(mt_pg_s *group, const at::Tensor &t) {
    std::vector<at::Tensor> tensors{t.clone(at::MemoryFormat::Contiguous)};
    wait(group->pg->allreduce(tensors));
    return tensors[0];
}

// y = sum over ranks of x. Every rank's loss depends on every rank's x through y, so the gradient
// of x is the sum over ranks of the gradients of y: backward is the same all-reduce. Every rank
// must run the backward of these calls in the same order (as for any collective).
struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
    static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &x, int64_t group) {
        ctx->saved_data["group"] = group;
        return allreduce_copy(reinterpret_cast<mt_pg_s *>(group), x);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx, torch::autograd::variable_list grads) {
        auto *group = reinterpret_cast<mt_pg_s *>(ctx->saved_data["group"].toInt());
        return {allreduce_copy(group, grads[0]), at::Tensor()};
    }
};
} // namespace

extern "C" {
// A launched rank ends with its launcher: the kernel kills it when its parent dies (prctl is
// variadic, so Swift cannot call it). 0 when bound; 1 when `parent` is no longer the parent, i.e.
// the launcher died before the binding was set.
int mt_end_with_parent(int parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return -1;
    return getppid() == parent ? 0 : 1;
}


mt_pg_t mt_pg_create(const char *master_addr, int master_port, int rank, int world_size, int timeout_ms, int use_nccl,
                     int host_store, const char *key_prefix) {
    MT_TRY(nullptr,
        c10d::TCPStoreOptions options;
        options.port = static_cast<uint16_t>(master_port);
        options.isServer = host_store != 0;
        options.numWorkers = world_size;
        options.waitWorkers = true;
        options.timeout = std::chrono::milliseconds(timeout_ms);
        c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), options);
        if (key_prefix && *key_prefix) store = c10::make_intrusive<c10d::PrefixStore>(std::string(key_prefix), store);
        auto gloo = c10d::ProcessGroupGloo::Options::create();
        gloo->timeout = std::chrono::milliseconds(timeout_ms);
        gloo->devices.push_back(gloo_device(master_addr));
        auto gloo_group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, gloo);
#ifdef MT_WITH_NCCL
        // CUDA tensors go through NCCL, CPU tensors (metrics, checksums) through Gloo, as PyTorch's "cpu:gloo,cuda:nccl".
        c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl_group;
        if (use_nccl) {
            auto nccl = c10d::ProcessGroupNCCL::Options::create();
            nccl->timeout = std::chrono::milliseconds(timeout_ms);
            nccl_group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, nccl);
        }
#else
        if (use_nccl) throw std::runtime_error("this build of MedSeg has no NCCL: build it against a CUDA libtorch (LIBTORCH=...)");
#endif
#if TORCH_VERSION_MAJOR >= 2
        // From libtorch 2 on, Gloo is a Backend that a ProcessGroup dispatches to.
        auto pg = make_process_group(store, rank, world_size, timeout_ms);
        pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo_group);
        set_default_backend(pg, c10d::ProcessGroup::BackendType::GLOO);
#ifdef MT_WITH_NCCL
        if (nccl_group) {
            pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl_group);
            set_default_backend(pg, c10d::ProcessGroup::BackendType::NCCL);
        }
#endif
#else
        c10::intrusive_ptr<c10d::ProcessGroup> pg = gloo_group;
#ifdef MT_WITH_NCCL
        if (nccl_group) pg = nccl_group;
#endif
#endif
        return new mt_pg_s{store, pg, rank, world_size};
    )
}

void mt_pg_free(mt_pg_t pg) { delete pg; }

int mt_pg_allreduce(mt_pg_t pg, mt_tensor_t t) {
    MT_STATUS(
        std::vector<at::Tensor> tensors{T(t)};
        wait(pg->pg->allreduce(tensors));
    )
}

int mt_pg_broadcast(mt_pg_t pg, mt_tensor_t t, int root) {
    MT_STATUS(
        std::vector<at::Tensor> tensors{T(t)};
        c10d::BroadcastOptions options;
        options.rootRank = root;
        wait(pg->pg->broadcast(tensors, options));
    )
}

mt_list_t mt_pg_allgather(mt_pg_t pg, mt_tensor_t t) {
    MT_TRY(nullptr,
        std::vector<at::Tensor> input{T(t)};
        std::vector<std::vector<at::Tensor>> output(1);
        for (int i = 0; i < pg->world; ++i) output[0].push_back(at::empty_like(T(t)));
        wait(pg->pg->allgather(output, input));
        return mt::wrap_list(output[0]);
    )
}

int mt_pg_barrier(mt_pg_t pg) { MT_STATUS(wait(pg->pg->barrier())) }

mt_tensor_t mt_pg_allreduce_differentiable(mt_pg_t pg, mt_tensor_t t) {
    MT_TENSOR(AllReduceSum::apply(T(t), reinterpret_cast<int64_t>(pg)))
}

mt_reducer_t mt_reducer_create(mt_pg_t pg, const mt_tensor_t *params, size_t n, int64_t bucket_bytes,
                               int64_t first_bucket_bytes, int find_unused) {
    MT_TRY(nullptr,
        std::vector<at::Tensor> tensors;
        for (size_t i = 0; i < n; ++i) tensors.push_back(T(params[i]));
        std::vector<bool> sparse(n, false);
        // Buckets as DDP makes them: reverse parameter order, first bucket small so that
        // communication starts early in backward.
        std::vector<size_t> limits{static_cast<size_t>(first_bucket_bytes), static_cast<size_t>(bucket_bytes)};
        auto assignment = c10d::compute_bucket_assignment_by_size(tensors, limits, sparse);
        auto buckets = std::get<0>(assignment);
        auto per_bucket_limits = std::get<1>(assignment);
        std::reverse(buckets.begin(), buckets.end());
        std::reverse(per_bucket_limits.begin(), per_bucket_limits.end());
        auto reducer = make_reducer(tensors, buckets, per_bucket_limits, pg->pg, sparse, bucket_bytes, find_unused != 0, first_bucket_bytes);
        return new mt_reducer_s{reducer};
    )
}

int mt_reducer_prepare_for_backward(mt_reducer_t r, const mt_tensor_t *outputs, size_t n) {
    MT_STATUS(
        std::vector<at::Tensor> tensors;
        for (size_t i = 0; i < n; ++i) tensors.push_back(T(outputs[i]));
        r->reducer->prepare_for_forward();
        r->reducer->prepare_for_backward(tensors);
    )
}

int mt_reducer_bucket_count(mt_reducer_t r) {
    MT_TRY(-1, return static_cast<int>(r->reducer->get_grad_buckets(false).size());)
}

void mt_reducer_free(mt_reducer_t r) { delete r; }

} // extern "C"
