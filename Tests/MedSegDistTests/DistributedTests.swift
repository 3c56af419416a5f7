import Foundation
import XCTest
import TestSupport
import Torch
import MedSegData
@testable import MedSegDist
@testable import MedSegTrain

final class DistributedEnvironmentTests: XCTestCase {
    func testEnvironmentParsing() throws {
        XCTAssertNil(try DistributedEnvironment.fromEnvironment([:]))
        let e = try XCTUnwrap(try DistributedEnvironment.fromEnvironment(
            ["RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1",
             "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "TORCHELASTIC_RESTART_COUNT": "2"]))
        XCTAssertEqual(e, DistributedEnvironment(rank: 3, localRank: 1, worldSize: 4, localWorldSize: 2, nodeRank: 1,
                                                 masterAddress: "10.0.0.1", masterPort: 29500, restartCount: 2))
        XCTAssertThrowsError(try DistributedEnvironment.fromEnvironment(["RANK": "4", "WORLD_SIZE": "4", "MASTER_ADDR": "a", "MASTER_PORT": "1"]))
        XCTAssertThrowsError(try DistributedEnvironment.fromEnvironment(["RANK": "0", "WORLD_SIZE": "1", "MASTER_PORT": "1"])) {
            XCTAssertTrue("\($0)".contains("MASTER_ADDR"))
        }
        let vars = DistributedEnvironment.variables(localRank: 1, nproc: 2, nodeRank: 1, nnodes: 2, masterAddress: "h", masterPort: 5,
                                                    restartCount: 0, maxRestarts: 1, threadsPerRank: 1)
        XCTAssertEqual(vars["RANK"], "3")
        XCTAssertEqual(vars["WORLD_SIZE"], "4")
        // Under a current torchrun the agent serves the store on MASTER_PORT.
        let agent = try XCTUnwrap(try DistributedEnvironment.fromEnvironment(
            ["RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "29500", "TORCHELASTIC_USE_AGENT_STORE": "True"]))
        XCTAssertTrue(agent.agentServesStore)
        XCTAssertFalse(e.agentServesStore)
        XCTAssertEqual(DistributedEnvironment.rendezvous(agentServesStore: true, libtorchVersion: "2.11.0", masterPort: 29500), .agentStore)
        XCTAssertEqual(DistributedEnvironment.rendezvous(agentServesStore: true, libtorchVersion: "1.13.1", masterPort: 29500), .ownStore(port: 29501))
        XCTAssertEqual(DistributedEnvironment.rendezvous(agentServesStore: false, libtorchVersion: "2.11.0", masterPort: 29500), .ownStore(port: 29500))
    }

    /// The variables srun sets for task 3 of a 2-node step of 4 tasks (as a real slurmd sets them:
    /// see SLURMTests), and what is and is not an srun step.
    func testSLURMStepVariables() throws {
        let task: [String: String] = ["SLURM_PROCID": "3", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4",
                                      "SLURM_LOCALID": "1", "SLURM_NODEID": "1", "SLURM_STEP_NODELIST": "gpu[07-08]",
                                      "SLURM_JOB_NODELIST": "gpu[07-08],cpu1", "SLURM_STEP_TASKS_PER_NODE": "2(x2)", "SLURM_JOB_ID": "123456",
                                      "SLURM_CPUS_PER_TASK": "8"]
        let e = try XCTUnwrap(try DistributedEnvironment.fromEnvironment(task))
        XCTAssertEqual(e, DistributedEnvironment(rank: 3, localRank: 1, worldSize: 4, localWorldSize: 2, nodeRank: 1,
                                                 masterAddress: "gpu07", masterPort: 15000 + 3456))
        XCTAssertEqual(try DistributedEnvironment.fromEnvironment(task, masterPort: 4000)?.masterPort, 4000, "--master-port wins")
        var exported = task
        exported["MASTER_ADDR"] = "10.1.2.3"
        exported["MASTER_PORT"] = "29555"
        XCTAssertEqual(try DistributedEnvironment.fromEnvironment(exported)?.masterAddress, "10.1.2.3", "a job script's MASTER_ADDR wins")
        XCTAssertEqual(try DistributedEnvironment.fromEnvironment(exported)?.masterPort, 29555)
        XCTAssertNil(try DistributedEnvironment.fromEnvironment(task, slurm: false), "a command line with its own launcher ignores srun's task")
        XCTAssertEqual(SLURMEnvironment.cpusPerTask(task), 8)

        var batchScript = task
        batchScript["SLURM_STEP_ID"] = nil
        XCTAssertNil(try DistributedEnvironment.fromEnvironment(batchScript), "a batch script runs once, whatever its allocation's tasks")
        XCTAssertTrue(DistributedEnvironment.launcherDescription(batchScript).contains("SLURM job 123456 outside srun"))
        var single = task
        single["SLURM_STEP_NUM_TASKS"] = "1"; single["SLURM_PROCID"] = "0"
        XCTAssertNil(try DistributedEnvironment.fromEnvironment(single), "one task is not distributed")
        var outside = task
        outside["SLURM_PROCID"] = "4"
        XCTAssertThrowsError(try DistributedEnvironment.fromEnvironment(outside)) { XCTAssertTrue("\($0)".contains("SLURM_PROCID 4 is outside")) }
        XCTAssertTrue(DistributedEnvironment.launcherDescription(task).contains("SLURM srun step: task 3 of 4 (local 1 of 2, node 1), job 123456, master gpu07:18456"))
        XCTAssertTrue(DistributedEnvironment.launcherDescription([:]).hasPrefix("none"))

        XCTAssertEqual(SLURMEnvironment.firstHost("node[01-04,07]-ib,login"), "node01-ib")
        XCTAssertEqual(SLURMEnvironment.firstHost("a1,b2"), "a1")
        XCTAssertEqual(SLURMEnvironment.firstHost("rack[3-4]n[10-12]"), "rack3n10")
        XCTAssertNil(SLURMEnvironment.firstHost(""))
        XCTAssertEqual(SLURMEnvironment.tasksPerNode("2(x3),1"), [2, 2, 2, 1])
        XCTAssertEqual(SLURMEnvironment.tasksPerNode("4"), [4])
        for bad in ["2(x", "x(x2)", "2(y3)", "2(x0)", "2(x99999999999)", ""] { XCTAssertNil(SLURMEnvironment.tasksPerNode(bad), bad) }
    }

    func testFreePortAndLineBuffer() throws {
        XCTAssertGreaterThan(try Launcher.freePort(), 1023)
        let b = LineBuffer()
        XCTAssertEqual(b.append(Data("a\nb".utf8)), ["a"])
        XCTAssertEqual(b.append(Data("c\r\nd".utf8)), ["bc"])
        XCTAssertEqual(b.flush(), "d")
    }
}

/// Real multi-process runs through the `medseg` executable.
final class DistributedRunTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("dist")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    private func start(_ args: [String], env: [String: String] = [:], output: URL? = nil, namespace: String? = nil) throws -> Process {
        let p = Process()
        let medseg = try XCTUnwrap(Executables.medseg())
        if let namespace {
            p.executableURL = URL(fileURLWithPath: TestHosts.ip)
            p.arguments = ["netns", "exec", namespace, medseg.path] + args
        } else {
            p.executableURL = medseg
            p.arguments = args
        }
        p.environment = ProcessInfo.processInfo.environment.merging(env) { _, new in new }
        if let output {
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            let h = try FileHandle(forWritingTo: output)
            p.standardOutput = h
            p.standardError = h
        } else {
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
        }
        try p.run()
        return p
    }

    /// 2 processes x batch 4 end with the same weights as 1 process x batch 8.
    func testTwoRanksEqualOneRankWithTheirCombinedBatch() throws {
        let single = temp.appendingPathComponent("single.safetensors"), multi = temp.appendingPathComponent("multi.safetensors")
        let one = try start(["ddp-check", "--out", single.path])
        one.waitUntilExit()
        XCTAssertEqual(one.terminationStatus, 0)
        let port = try Launcher.freePort()
        let ranks = try (0..<2).map { r in
            try start(["ddp-check", "--out", multi.path],
                      env: ["RANK": "\(r)", "WORLD_SIZE": "2", "LOCAL_RANK": "\(r)", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "\(port)", "OMP_NUM_THREADS": "1"])
        }
        for p in ranks { p.waitUntilExit(); XCTAssertEqual(p.terminationStatus, 0) }
        let (a, _) = try Safetensors.load(single)
        let (b, meta) = try Safetensors.load(multi)
        XCTAssertEqual(meta["world"], "2")
        XCTAssertGreaterThan(Int(meta["buckets"] ?? "0") ?? 0, 1, "small buckets: several all-reduces overlap backward")
        for (name, t) in a {
            XCTAssertTrue(try t.allClose(XCTUnwrap(b[name]), rtol: 1e-5, atol: 1e-6), name)
        }
    }

    /// NCCL between ranks on the GPU: a world of one equals a process without a group, and two
    /// ranks sharing the GPU equal it too, where NCCL allows two ranks on one device; where it
    /// refuses, both ranks stop with NCCL's reason instead of hanging.
    func testNCCLRanksOnTheGPUEqualOneProcess() throws {
        guard Torch.cudaAvailable, Torch.ncclAvailable else { throw XCTSkip("no CUDA device with NCCL") }
        let single = temp.appendingPathComponent("single.safetensors")
        let one = try start(["ddp-check", "--device", "cuda:0", "--out", single.path])
        try finish(one, within: 120, "one process on cuda:0")
        XCTAssertEqual(one.terminationStatus, 0)
        let (reference, _) = try Safetensors.load(single)
        for world in [1, 2] {
            let out = temp.appendingPathComponent("nccl\(world).safetensors")
            let port = try Launcher.freePort()
            let logs = (0..<world).map { temp.appendingPathComponent("nccl\(world)-rank\($0).log") }
            let ranks = try (0..<world).map { r in
                try start(["ddp-check", "--device", "cuda:0", "--out", out.path],
                          env: ["RANK": "\(r)", "WORLD_SIZE": "\(world)", "LOCAL_RANK": "\(r)", "MASTER_ADDR": "127.0.0.1",
                                "MASTER_PORT": "\(port)"], output: logs[r])
            }
            for (r, p) in ranks.enumerated() { try finish(p, within: 180, "NCCL world \(world), rank \(r)") }
            let output = try logs.map { try String(contentsOf: $0, encoding: .utf8) }.joined(separator: "\n")
            if world == 2, ranks.contains(where: { $0.terminationStatus != 0 }) {
                XCTAssertTrue(output.contains("NCCL") && output.lowercased().contains("duplicate"),
                              "two ranks on one GPU failed for another reason than NCCL's duplicate-GPU refusal:\n\(output)")
                print("NCCL refuses two ranks on one GPU: \(output.split(separator: "\n").first { $0.contains("uplicate") } ?? "")")
                continue
            }
            for p in ranks { XCTAssertEqual(p.terminationStatus, 0, output) }
            let (weights, meta) = try Safetensors.load(out)
            XCTAssertEqual(meta["world"], "\(world)")
            XCTAssertEqual(meta["device"], "cuda:0")
            for (name, t) in reference {
                XCTAssertTrue(try t.allClose(XCTUnwrap(weights[name]), rtol: 1e-4, atol: 1e-5), "NCCL world \(world): \(name)")
            }
        }
    }

    /// Killing the launcher with SIGKILL (as the OOM killer or a scheduler does: it cannot stop its
    /// ranks itself) ends its ranks too, instead of leaving them training into the run folder.
    func testRanksEndWhenTheLauncherIsKilled() throws {
        let data = try dataset(), run = temp.appendingPathComponent("run"), log = temp.appendingPathComponent("launcher.log")
        // Long epochs: ranks that print nothing for a while would not even notice the closed pipe.
        var args = trainArgs(data, run, epochs: 2) + ["--nproc-per-node", "2"]
        args[args.firstIndex(of: "--iterations")! + 1] = "100000"
        let launcher = try start(args, output: log)
        var ranks: [Int32] = []
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            ranks = Self.children(of: launcher.processIdentifier)
            // Both started, and past their rendezvous (rank 0 has begun the run folder): bound long before.
            if ranks.count == 2 && FileManager.default.fileExists(atPath: run.appendingPathComponent("dataset_path.txt").path) { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTAssertEqual(ranks.count, 2, "the launcher's ranks")
        Thread.sleep(forTimeInterval: 0.5)
        kill(launcher.processIdentifier, SIGKILL)
        launcher.waitUntilExit()
        let end = Date().addingTimeInterval(5)
        while ranks.contains(where: Self.isAlive) && Date() < end { Thread.sleep(forTimeInterval: 0.1) }
        let orphans = ranks.filter(Self.isAlive)
        for pid in orphans { kill(pid, SIGKILL) }
        XCTAssertEqual(orphans, [], "ranks still running after their launcher was killed")
    }

    /// Process ids whose parent is `parent` (from /proc).
    static func children(of parent: Int32) -> [Int32] {
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init)
        return pids.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == parent && isAlive(pid)
        }.sorted()
    }

    /// Running (a zombie, killed but not yet reaped, is not).
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
    }

    /// Waits for `process`; one still running after `seconds` is killed and fails the test.
    private func finish(_ process: Process, within seconds: TimeInterval, _ what: String) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            XCTFail("\(what) still ran after \(Int(seconds)) s")
        }
    }

    private func dataset() throws -> String {
        let root = temp.appendingPathComponent("data")
        try SyntheticCases(SyntheticCases.Options(dims: 2, size: [48, 48], classes: 1, seed: 2)).write(to: root, training: 10, test: 0)
        return root.path
    }

    private func trainArgs(_ data: String, _ run: URL, epochs: Int) -> [String] {
        ["train", "--dataset", data, "--out", run.path, "--epochs", "\(epochs)", "--iterations", "3", "--batch-size", "2",
         "--patch-size", "32,32", "--features", "4", "--lr", "0.01"]
    }

    /// --global-batch-size (and seed 001's --dbs) split one batch over the ranks; the log says how.
    func testGlobalBatchIsSplitOverTheRanks() throws {
        let data = try dataset()
        for (name, extra) in [("global", ["--global-batch-size", "4"]), ("dbs", ["--batch-size", "4", "--dbs"])] {
            let run = temp.appendingPathComponent(name)
            var args = trainArgs(data, run, epochs: 1) + ["--nproc-per-node", "2"]
            if name == "dbs" { let i = args.firstIndex(of: "--batch-size")!; args.removeSubrange(i...(i + 1)) }
            let p = try start(args + extra, output: temp.appendingPathComponent("\(name).log"))
            p.waitUntilExit()
            let output = (try? String(contentsOf: temp.appendingPathComponent("\(name).log"), encoding: .utf8)) ?? ""
            XCTAssertEqual(p.terminationStatus, 0, output)
            let log = try String(contentsOf: run.appendingPathComponent("log.txt"), encoding: .utf8)
            XCTAssertTrue(log.contains("global batch 4 split over 2 processes (2 on rank 0 and every other)"), log)
        }
    }

    /// A current torchrun (PyTorch 2's elastic agent serves the rendezvous store itself) starts
    /// medseg ranks with --no-python, as the README says: on one node, and as two nodes of two.
    func testTorchrunStartsRanksThatTrainAndAgree() throws {
        guard let torchrun = CurrentTorchrun.find() else {
            throw XCTSkip("no current torchrun here: set MEDSEG_TORCHRUN, or install PyTorch 2 into .deps/torch-cuda (scripts/torch-cuda.sh)")
        }
        let medseg = try XCTUnwrap(Executables.medseg())
        let data = try dataset()
        for nnodes in [1, 2] {
            let run = temp.appendingPathComponent("torchrun\(nnodes)")
            let port = try Launcher.freePort()
            let logs = (0..<nnodes).map { temp.appendingPathComponent("torchrun\(nnodes)-node\($0).log") }
            let agents = try (0..<nnodes).map { node in
                let p = Process()
                p.executableURL = torchrun.executable
                p.arguments = torchrun.arguments + ["--nproc-per-node", "2", "--nnodes", "\(nnodes)", "--node-rank", "\(node)",
                                                    "--master-addr", "127.0.0.1", "--master-port", "\(port)", "--no-python", medseg.path]
                    + trainArgs(data, run, epochs: 2) + ["--threads", "1"]
                p.environment = ProcessInfo.processInfo.environment.merging(torchrun.environment) { _, new in new }
                _ = FileManager.default.createFile(atPath: logs[node].path, contents: nil)
                let h = try FileHandle(forWritingTo: logs[node])
                p.standardOutput = h
                p.standardError = h
                try p.run()
                return p
            }
            for (node, agent) in agents.enumerated() { try finish(agent, within: 300, "torchrun, \(nnodes) node(s): node \(node)") }
            let log0 = try String(contentsOf: logs[0], encoding: .utf8)
            for agent in agents { XCTAssertEqual(agent.terminationStatus, 0, log0) }
            let world = 2 * nnodes
            XCTAssertTrue(log0.contains("batch 2 per process x \(world) processes = \(2 * world)"), log0)
            XCTAssertTrue(log0.contains("all \(world) ranks agree on the weights"), log0)
            XCTAssertTrue(FileManager.default.fileExists(atPath: RunFolder(run).checkpoint(.final).path), log0)
        }
    }

    /// Two "nodes" (two launchers, --nnodes 2), two ranks each, train together and agree.
    func testTwoNodesOfTwoRanksTrainTogether() throws {
        let data = try dataset(), run = temp.appendingPathComponent("run")
        let port = try Launcher.freePort()
        let logs = (0..<2).map { temp.appendingPathComponent("node\($0).log") }
        let nodes = try (0..<2).map { node in
            try start(trainArgs(data, run, epochs: 2) + ["--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "\(node)",
                                                         "--master-addr", "127.0.0.1", "--master-port", "\(port)"], output: logs[node])
        }
        for n in nodes { n.waitUntilExit(); XCTAssertEqual(n.terminationStatus, 0) }
        let log0 = try String(contentsOf: logs[0], encoding: .utf8)
        XCTAssertTrue(log0.contains("world size 4"), log0)
        XCTAssertTrue(log0.contains("batch 2 per process x 4 processes = 8"), log0)
        XCTAssertTrue(log0.contains("all 4 ranks agree on the weights"), log0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: RunFolder(run).checkpoint(.final).path))
    }

    /// Two nodes on their own addresses: two network namespaces joined by a veth pair, a launcher
    /// of two ranks in each; the second node reaches the first only over the veth link.
    func testTwoNodesOnTheirOwnAddressesTrainTogether() throws {
        let hosts: TestHosts
        do { hosts = try TestHosts.make() } catch { throw XCTSkip("no network namespaces here (\(error)); the loopback variant covers two nodes") }
        defer { hosts.remove() }
        let data = try dataset(), run = temp.appendingPathComponent("run")
        let logs = (0..<2).map { temp.appendingPathComponent("node\($0).log") }
        let nodes = try (0..<2).map { node in
            try start(trainArgs(data, run, epochs: 1) + ["--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "\(node)",
                                                         "--master-addr", hosts.addresses[0], "--master-port", "29531", "--dist-timeout", "60"],
                      output: logs[node], namespace: hosts.namespaces[node])
        }
        for (n, log) in zip(nodes, logs) {
            n.waitUntilExit()
            XCTAssertEqual(n.terminationStatus, 0, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
        }
        let log0 = try String(contentsOf: logs[0], encoding: .utf8)
        XCTAssertTrue(log0.contains("world size 4"), log0)
        XCTAssertTrue(log0.contains("all 4 ranks agree on the weights"), log0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: RunFolder(run).checkpoint(.final).path))
    }

    /// A model with a frozen encoder and auxiliary heads trains data-parallel: the frozen
    /// parameters stay out of the gradient all-reduce and the ranks still agree.
    func testFrozenEncoderAndAuxiliaryHeadsUnderDataParallel() throws {
        let data = try dataset(), run = temp.appendingPathComponent("setr"), log = temp.appendingPathComponent("setr.log")
        let p = try start(["train", "--dataset", data, "--out", run.path, "--model", "setr_mla", "--features", "32", "--depth", "4",
                           "--epochs", "2", "--iterations", "2", "--batch-size", "2", "--patch-size", "32,32",
                           "--nproc-per-node", "2", "--master-port", "0"], output: log)
        p.waitUntilExit()
        let text = try String(contentsOf: log, encoding: .utf8)
        XCTAssertEqual(p.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("all 2 ranks agree on the weights"), text)
        let final = try Checkpoint.load(RunFolder(run).checkpoint(.final))
        let optimizerFor = Set(final.optimizer.map { $0.name.split(separator: ".")[1] })
        let trainable = final.model.filter { !$0.name.hasPrefix("encoder.") && $0.tensor.dtype == .float32 && !$0.name.contains("running_") }
        XCTAssertEqual(optimizerFor.count, trainable.count, "optimizer state only for the decoder and heads")
    }

    private func rankPID(_ rank: Int, under launcher: Int32) -> Int32? {
        guard let children = try? String(contentsOfFile: "/proc/\(launcher)/task/\(launcher)/children", encoding: .utf8) else { return nil }
        for pid in children.split(separator: " ").compactMap({ Int32($0) }) {
            if let env = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ")),
               String(decoding: env, as: UTF8.self).split(separator: "\0").contains("RANK=\(rank)") { return pid }
        }
        return nil
    }

    private func killRank1WhenTraining(_ launcher: Process, run: URL) throws {
        let latest = RunFolder(run).checkpoint(.latest)
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: latest.path) && Date() < deadline { usleep(20_000) }
        let pid = try XCTUnwrap(rankPID(1, under: launcher.processIdentifier), "rank 1 is a child of the launcher")
        kill(pid, SIGKILL)
    }

    /// A rank killed mid-run: the launcher names it and stops the others quickly.
    func testKilledRankStopsTheGroupWithItsName() throws {
        let data = try dataset(), run = temp.appendingPathComponent("run"), log = temp.appendingPathComponent("launch.log")
        let launcher = try start(trainArgs(data, run, epochs: 400) + ["--nproc-per-node", "2", "--master-port", "0"], output: log)
        try killRank1WhenTraining(launcher, run: run)
        let killedAt = Date()
        launcher.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(killedAt), 15, "the group stops within the grace period")
        XCTAssertNotEqual(launcher.terminationStatus, 0)
        let text = try String(contentsOf: log, encoding: .utf8)
        XCTAssertTrue(text.contains("rank 1") && text.contains("killed by signal 9"), text)
    }

    /// With --max-restarts 1 the group restarts from the latest checkpoint and ends where an
    /// uninterrupted run ends.
    func testRestartAfterAFailureMatchesAnUninterruptedRun() throws {
        let data = try dataset()
        let clean = temp.appendingPathComponent("clean"), restarted = temp.appendingPathComponent("restarted")
        let log = temp.appendingPathComponent("restart.log")
        let reference = try start(trainArgs(data, clean, epochs: 30) + ["--nproc-per-node", "2", "--master-port", "0"])
        reference.waitUntilExit()
        XCTAssertEqual(reference.terminationStatus, 0)

        let launcher = try start(trainArgs(data, restarted, epochs: 30) + ["--nproc-per-node", "2", "--master-port", "0", "--max-restarts", "1"], output: log)
        try killRank1WhenTraining(launcher, run: restarted)
        launcher.waitUntilExit()
        let text = try String(contentsOf: log, encoding: .utf8)
        XCTAssertEqual(launcher.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("restarting the group") && text.contains("resuming"), text)

        let a = try Checkpoint.load(RunFolder(clean).checkpoint(.final))
        let b = try Checkpoint.load(RunFolder(restarted).checkpoint(.final))
        let diceA = try XCTUnwrap(a.state.progress.history.last?.valDice), diceB = try XCTUnwrap(b.state.progress.history.last?.valDice)
        XCTAssertEqual(diceA, diceB, accuracy: 1e-3)
        XCTAssertEqual(b.state.progress.history.map(\.epoch), Array(1...30))
    }
}

final class RendezvousErrorTests: XCTestCase {
    func testPortInUseIsAClearError() throws {
        // Hold a port, then ask rank 0 to host the rendezvous on it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = INADDR_ANY
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        XCTAssertTrue(ok)
        XCTAssertEqual(listen(fd, 1), 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        XCTAssertThrowsError(try ProcessGroup(masterAddress: "127.0.0.1", masterPort: port, rank: 0, worldSize: 2, timeout: 2)) {
            XCTAssertTrue("\($0)".contains("already in use") && "\($0)".contains("\(port)"), "\($0)")
        }
    }

    func testUnreachableMasterFailsWithinTheTimeout() throws {
        let port = try Launcher.freePort()
        let start = Date()
        XCTAssertThrowsError(try ProcessGroup(masterAddress: "127.0.0.1", masterPort: port, rank: 1, worldSize: 2, timeout: 2)) {
            XCTAssertTrue("\($0)".contains("cannot reach the master at 127.0.0.1:\(port)"), "\($0)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
    }
}

/// Two test hosts on this machine: network namespaces with their own addresses, joined by a
/// veth pair (needs root and iproute2; tests skip where they cannot be made).
/// torchrun of PyTorch 2 or later: MEDSEG_TORCHRUN (a torchrun executable; with
/// MEDSEG_TORCHRUN_PYTHONPATH where its interpreter finds that torch), else the one in the CUDA
/// wheel that the set-up or `make gpu-bundle` installs into .deps/torch-cuda.
struct CurrentTorchrun {
    let executable: URL
    let arguments: [String]
    let environment: [String: String]

    static func find() -> CurrentTorchrun? {
        let env = ProcessInfo.processInfo.environment
        if let path = env["MEDSEG_TORCHRUN"], FileManager.default.isExecutableFile(atPath: path) {
            return CurrentTorchrun(executable: URL(fileURLWithPath: path), arguments: [],
                                   environment: env["MEDSEG_TORCHRUN_PYTHONPATH"].map { ["PYTHONPATH": $0] } ?? [:])
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let wheel = root.appendingPathComponent(".deps/torch-cuda")
        let script = wheel.appendingPathComponent("bin/torchrun")
        guard FileManager.default.fileExists(atPath: script.path) else { return nil }
        return CurrentTorchrun(executable: URL(fileURLWithPath: "/usr/bin/env"), arguments: ["python3", script.path],
                               environment: ["PYTHONPATH": wheel.path])
    }
}

struct TestHosts {
    static let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "ip"
    let namespaces: [String]
    let addresses = ["10.231.7.1", "10.231.7.2"]

    struct Failure: Error, CustomStringConvertible { let description: String }

    @discardableResult
    static func ip(_ args: [String]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ip)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard p.terminationStatus == 0 else { throw Failure(description: "ip \(args.joined(separator: " ")): \(text)") }
        return p.terminationStatus
    }

    static func make() throws -> TestHosts {
        let tag = String(ProcessInfo.processInfo.processIdentifier % 100_000)
        let hosts = TestHosts(namespaces: ["msA\(tag)", "msB\(tag)"])
        let veth = ["vA\(tag)", "vB\(tag)"]
        do {
            for ns in hosts.namespaces { try ip(["netns", "add", ns]) }
            try ip(["link", "add", veth[0], "type", "veth", "peer", "name", veth[1]])
            for i in 0..<2 {
                try ip(["link", "set", veth[i], "netns", hosts.namespaces[i]])
                try ip(["-n", hosts.namespaces[i], "addr", "add", hosts.addresses[i] + "/30", "dev", veth[i]])
                try ip(["-n", hosts.namespaces[i], "link", "set", veth[i], "up"])
                try ip(["-n", hosts.namespaces[i], "link", "set", "lo", "up"])
            }
        } catch {
            hosts.remove()
            throw error
        }
        return hosts
    }

    /// Deleting a namespace removes its end of the veth pair, and with it the other end.
    func remove() {
        for ns in namespaces { _ = try? Self.ip(["netns", "delete", ns]) }
    }
}
