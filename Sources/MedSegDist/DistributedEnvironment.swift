import Foundation
import Torch

/// Where this process stands in a distributed run, from the variables torchrun (or MedSeg's own
/// launcher) sets: RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT.
public struct DistributedEnvironment: Equatable, Sendable {
    public var rank: Int
    public var localRank: Int
    public var worldSize: Int
    public var localWorldSize: Int
    public var nodeRank: Int
    public var masterAddress: String
    public var masterPort: Int
    public var restartCount: Int
    /// torchrun's agent serves the rendezvous store itself (TORCHELASTIC_USE_AGENT_STORE), so rank 0
    /// joins it as a client instead of hosting one on the same port.
    public var agentServesStore: Bool

    public init(rank: Int, localRank: Int, worldSize: Int, localWorldSize: Int, nodeRank: Int, masterAddress: String,
                masterPort: Int, restartCount: Int = 0, agentServesStore: Bool = false) {
        self.rank = rank; self.localRank = localRank; self.worldSize = worldSize; self.localWorldSize = localWorldSize
        self.nodeRank = nodeRank; self.masterAddress = masterAddress; self.masterPort = masterPort; self.restartCount = restartCount
        self.agentServesStore = agentServesStore
    }

    /// Joins the run's process group (rank 0 hosts the rendezvous unless torchrun's agent does).
    public func joinProcessGroup(timeout: TimeInterval = 60, nccl: Bool) throws -> ProcessGroup {
        switch Self.rendezvous(agentServesStore: agentServesStore, libtorchVersion: Torch.version, masterPort: masterPort) {
        case .agentStore:
            // The agent's store outlives restarts: each attempt keeps its keys apart, as PyTorch's env:// rendezvous.
            return try ProcessGroup(masterAddress: masterAddress, masterPort: masterPort, rank: rank, worldSize: worldSize, timeout: timeout,
                                    nccl: nccl, storeServedElsewhere: true, storePrefix: "/worker/attempt_\(restartCount)")
        case .ownStore(let port):
            return try ProcessGroup(masterAddress: masterAddress, masterPort: port, rank: rank, worldSize: worldSize, timeout: timeout, nccl: nccl)
        }
    }

    public enum Rendezvous: Equatable, Sendable {
        case agentStore
        /// Rank 0 hosts a store on this port of the master.
        case ownStore(port: Int)
    }

    /// Where the ranks meet. libtorch 1.x speaks an older store protocol than the agent of a
    /// current torchrun (whose libuv store never answers it), so under torchrun such a build
    /// leaves the agent's port alone and meets on the next one, which every rank derives alike.
    public static func rendezvous(agentServesStore: Bool, libtorchVersion: String, masterPort: Int) -> Rendezvous {
        guard agentServesStore else { return .ownStore(port: masterPort) }
        return libtorchVersion.hasPrefix("1.") ? .ownStore(port: masterPort + 1) : .agentStore
    }

    /// The environment of a launched rank, or nil when this process was not started as one: the
    /// variables of torchrun (or MedSeg's launcher), else, with `slurm`, those of a task of an
    /// `srun` step (`SLURMEnvironment`, whose port `masterPort` overrides).
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment, slurm: Bool = true,
                                       masterPort: Int? = nil) throws -> DistributedEnvironment? {
        guard let rankText = env["RANK"], let worldText = env["WORLD_SIZE"] else {
            return slurm ? try SLURMEnvironment.environment(env, masterPort: masterPort) : nil
        }
        func int(_ key: String, _ text: String?) throws -> Int {
            guard let text, let v = Int(text) else { throw DistributedError("environment variable \(key)=\(text ?? "") is not an integer") }
            return v
        }
        let rank = try int("RANK", rankText), world = try int("WORLD_SIZE", worldText)
        guard world >= 1, (0..<world).contains(rank) else { throw DistributedError("RANK \(rank) is outside WORLD_SIZE \(world)") }
        guard let addr = env["MASTER_ADDR"], !addr.isEmpty else { throw DistributedError("RANK is set but MASTER_ADDR is not") }
        let port = try int("MASTER_PORT", env["MASTER_PORT"])
        return DistributedEnvironment(rank: rank, localRank: try env["LOCAL_RANK"].map { try int("LOCAL_RANK", $0) } ?? rank,
                                      worldSize: world,
                                      localWorldSize: try env["LOCAL_WORLD_SIZE"].map { try int("LOCAL_WORLD_SIZE", $0) } ?? world,
                                      nodeRank: try env["GROUP_RANK"].map { try int("GROUP_RANK", $0) } ?? 0,
                                      masterAddress: addr, masterPort: port,
                                      restartCount: Int(env["TORCHELASTIC_RESTART_COUNT"] ?? "0") ?? 0,
                                      agentServesStore: env["TORCHELASTIC_USE_AGENT_STORE"] == "True")
    }

    /// Which launcher started this process, in words (for `medseg doctor`).
    public static func launcherDescription(_ env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if env["RANK"] != nil {
            let who = env[LauncherBinding.variable] != nil ? "MedSeg's launcher" : env["TORCHELASTIC_RUN_ID"] != nil ? "torchrun" : "RANK/WORLD_SIZE variables"
            return "\(who): rank \(env["RANK"]!) of \(env["WORLD_SIZE"] ?? "?"), master \(env["MASTER_ADDR"] ?? "?"):\(env["MASTER_PORT"] ?? "?")"
        }
        if SLURMEnvironment.isStepTask(env) {
            switch Result(catching: { try SLURMEnvironment.environment(env) }) {
            case .success(let e?):
                return "SLURM srun step: task \(e.rank) of \(e.worldSize) (local \(e.localRank) of \(e.localWorldSize), node \(e.nodeRank)), job \(env["SLURM_JOB_ID"] ?? "?"), master \(e.masterAddress):\(e.masterPort)"
            case .success(nil): return "SLURM srun step of one task (job \(env["SLURM_JOB_ID"] ?? "?")): not distributed"
            case .failure(let error): return "SLURM srun step, unusable: \(error)"
            }
        }
        if let job = env["SLURM_JOB_ID"] {
            return "SLURM job \(job) outside srun (one process; start the ranks with srun, or \(Setting.named("nproc_per_node")))"
        }
        return "none (one process; \(Setting.named("nproc_per_node")), torchrun or srun start ranks)"
    }

    /// The variables a launcher hands to local rank `localRank` of node `nodeRank`.
    public static func variables(localRank: Int, nproc: Int, nodeRank: Int, nnodes: Int, masterAddress: String, masterPort: Int,
                                 restartCount: Int, maxRestarts: Int, threadsPerRank: Int) -> [String: String] {
        [
            "RANK": String(nodeRank * nproc + localRank), "LOCAL_RANK": String(localRank),
            "WORLD_SIZE": String(nproc * nnodes), "LOCAL_WORLD_SIZE": String(nproc), "GROUP_RANK": String(nodeRank),
            "MASTER_ADDR": masterAddress, "MASTER_PORT": String(masterPort),
            "TORCHELASTIC_RESTART_COUNT": String(restartCount), "TORCHELASTIC_MAX_RESTARTS": String(maxRestarts),
            "TORCHELASTIC_RUN_ID": "medseg", "OMP_NUM_THREADS": String(threadsPerRank),
        ]
    }
}

public struct DistributedError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
