// Distributed data parallelism through libtorch's c10d: TCPStore rendezvous, Gloo process group,
// collectives, and c10d's Reducer (the engine behind PyTorch DDP: gradient buckets all-reduced as
// soon as they are ready during backward).
#include "shim.hpp"
#include <arpa/inet.h>
#include <chrono>
#include <cstdlib>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include <torch/version.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

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

void wait(const c10::intrusive_ptr<c10d::Work> &work) {
    if (!work->wait()) throw std::runtime_error("collective did not complete");
}
} // namespace

extern "C" {

mt_pg_t mt_pg_create(const char *master_addr, int master_port, int rank, int world_size, int timeout_ms) {
    MT_TRY(nullptr,
        c10d::TCPStoreOptions options;
        options.port = static_cast<uint16_t>(master_port);
        options.isServer = rank == 0;
        options.numWorkers = world_size;
        options.waitWorkers = true;
        options.timeout = std::chrono::milliseconds(timeout_ms);
        auto store = c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), options);
        auto gloo = c10d::ProcessGroupGloo::Options::create();
        gloo->timeout = std::chrono::milliseconds(timeout_ms);
        gloo->devices.push_back(gloo_device(master_addr));
        auto gloo_group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, gloo);
#if TORCH_VERSION_MAJOR >= 2
        // From libtorch 2 on, Gloo is a Backend that a ProcessGroup dispatches to.
        auto pg_options = c10::make_intrusive<c10d::ProcessGroup::Options>("gloo", std::chrono::milliseconds(timeout_ms));
        auto pg = c10::make_intrusive<c10d::ProcessGroup>(store, rank, world_size, pg_options);
        pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo_group);
#else
        c10::intrusive_ptr<c10d::ProcessGroup> pg = gloo_group;
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
        auto reducer = std::make_shared<c10d::Reducer>(tensors, buckets, per_bucket_limits, pg->pg, sparse, bucket_bytes,
                                                       find_unused != 0, /*gradient_as_bucket_view=*/false,
                                                       std::unordered_map<size_t, std::string>(), first_bucket_bytes);
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
