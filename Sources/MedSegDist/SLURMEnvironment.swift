import Foundation

/// Where a task that SLURM's `srun` started stands, from the variables srun sets for each task:
/// SLURM_PROCID (rank), SLURM_STEP_NUM_TASKS or SLURM_NTASKS (world size), SLURM_LOCALID (local
/// rank), SLURM_NODEID (node rank), SLURM_STEP_TASKS_PER_NODE (tasks on each node) and the step's
/// node list, whose first host is the master, as PyTorch Lightning and torchrun-free scripts take
/// them. MASTER_ADDR and MASTER_PORT, where a job script exports them, win; otherwise the port is
/// derived from the job id, so every task of a job agrees on it without talking.
public enum SLURMEnvironment {
    /// Whether this process is a task of an srun job step (a batch script itself is not: it runs
    /// once, whatever the allocation's task count).
    public static func isStepTask(_ env: [String: String]) -> Bool {
        env["SLURM_PROCID"] != nil && (env["SLURM_STEP_ID"] != nil || env["SLURM_STEPID"] != nil)
            && (env["SLURM_STEP_NUM_TASKS"] ?? env["SLURM_NTASKS"]) != nil
    }

    /// The run of an srun step of more than one task; nil outside a step or for a single task.
    /// `masterPort` (the command line's) wins over MASTER_PORT and the job id's port.
    public static func environment(_ env: [String: String], masterPort: Int? = nil) throws -> DistributedEnvironment? {
        guard isStepTask(env) else { return nil }
        func int(_ key: String) throws -> Int? {
            guard let text = env[key] else { return nil }
            guard let v = Int(text) else { throw DistributedError("SLURM's variable \(key)=\(text) is not an integer") }
            return v
        }
        let world = try int("SLURM_STEP_NUM_TASKS") ?? int("SLURM_NTASKS") ?? 1
        guard world > 1 else { return nil }
        let rank = try int("SLURM_PROCID") ?? 0
        guard (0..<world).contains(rank) else { throw DistributedError("SLURM_PROCID \(rank) is outside the step's \(world) tasks") }
        let node = try int("SLURM_NODEID") ?? 0
        let nodes = env["SLURM_STEP_NODELIST"] ?? env["SLURM_JOB_NODELIST"] ?? env["SLURM_NODELIST"]
        guard let address = env["MASTER_ADDR"].flatMap({ $0.isEmpty ? nil : $0 }) ?? nodes.flatMap(firstHost) else {
            throw DistributedError("SLURM task \(rank) of \(world): no SLURM_STEP_NODELIST or SLURM_JOB_NODELIST to find the master in (or set MASTER_ADDR)")
        }
        let port = try masterPort ?? int("MASTER_PORT") ?? int("SLURM_JOB_ID").map(portForJob) ?? 29500
        let perNode = env["SLURM_STEP_TASKS_PER_NODE"].flatMap(tasksPerNode) ?? []
        let localWorld = node < perNode.count ? perNode[node] : try int("SLURM_NTASKS_PER_NODE") ?? world
        return DistributedEnvironment(rank: rank, localRank: try int("SLURM_LOCALID") ?? 0, worldSize: world, localWorldSize: localWorld,
                                      nodeRank: node, masterAddress: address, masterPort: port,
                                      restartCount: try int("SLURM_RESTART_COUNT") ?? 0)
    }

    /// The rendezvous port of a job: 15000 + the job id's last four digits.
    public static func portForJob(_ jobID: Int) -> Int { 15000 + jobID % 10000 }

    /// The first host of a SLURM host list ("gpu[07-09,12],cpu1" gives "gpu07"; zero padding kept).
    public static func firstHost(_ list: String) -> String? {
        var depth = 0, first = ""
        for c in list {
            if c == "," && depth == 0 { break }
            if c == "[" { depth += 1 } else if c == "]" { depth -= 1 }
            first.append(c)
        }
        // Each bracket group to its first value: "[07-09,12]" to "07".
        var host = "", group: String? = nil
        for c in first {
            if c == "[" { group = "" } else if c == "]" {
                host += group.map { String($0.prefix { $0 != "," && $0 != "-" }) } ?? ""
                group = nil
            } else if group != nil { group!.append(c) } else { host.append(c) }
        }
        return host.isEmpty ? nil : host
    }

    /// Tasks on each node of SLURM_STEP_TASKS_PER_NODE ("2(x3),1" gives [2, 2, 2, 1]).
    public static func tasksPerNode(_ text: String) -> [Int]? {
        guard !text.isEmpty else { return nil }
        var out: [Int] = []
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: "(", maxSplits: 1, omittingEmptySubsequences: false)
            guard let count = Int(pieces[0]), count >= 0 else { return nil }
            var times = 1
            if pieces.count == 2 {
                let repetition = pieces[1]
                guard repetition.hasPrefix("x"), repetition.hasSuffix(")"), let n = Int(repetition.dropFirst().dropLast()), (1...100_000).contains(n) else { return nil }
                times = n
            }
            guard out.count + times <= 100_000 else { return nil }
            out += Array(repeating: count, count: times)
        }
        return out
    }

    /// Cores SLURM gave each task (SLURM_CPUS_PER_TASK), for its intra-op threads.
    public static func cpusPerTask(_ env: [String: String]) -> Int? {
        guard isStepTask(env) else { return nil }
        return env["SLURM_CPUS_PER_TASK"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
    }
}
