import Foundation
import XCTest
import TestSupport
import Torch
@testable import MedSegDist

/// `srun medseg ...` on a real SLURM cluster (Debian's slurmctld, slurmd and munge, which the
/// set-up installs), private to the test: scripts/slurm/cluster.sh starts its daemons on loopback
/// ports of their own with every file in a scratch folder, and stops them after the test.
final class SLURMTests: XCTestCase {
    private var temp: URL!
    private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/slurmctld"), FileManager.default.isExecutableFile(atPath: "/usr/bin/srun") else {
            throw XCTSkip("SLURM is not installed (scripts/setup.sh installs it through scripts/slurm/install.sh)")
        }
        temp = try makeTemporaryFolder("slurm")
    }

    override func tearDown() {
        if let temp {
            for cluster in ["one", "two"] { _ = try? run("/bin/bash", [root.appendingPathComponent("scripts/slurm/cluster.sh").path, "stop", temp.appendingPathComponent(cluster).path]) }
            try? FileManager.default.removeItem(at: temp)
        }
    }

    @discardableResult
    private func run(_ executable: String, _ args: [String], env: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        let out = temp.appendingPathComponent("out-\(UUID().uuidString).txt")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let handle = try FileHandle(forWritingTo: out)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        p.waitUntilExit()
        try handle.close()
        return (p.terminationStatus, try String(contentsOf: out, encoding: .utf8))
    }

    /// Starts a cluster of `nodes` slurmd under temp/NAME; returns the environment its clients need.
    private func cluster(_ name: String, nodes: Int, nodeName: String? = nil) throws -> [String: String] {
        let dir = temp.appendingPathComponent(name)
        var env = ["MEDSEG_SLURM_NODES": String(nodes)]
        if let nodeName { env["MEDSEG_SLURM_NODENAME"] = nodeName }
        let started = try run("/bin/bash", [root.appendingPathComponent("scripts/slurm/cluster.sh").path, "start", dir.path], env: env)
        XCTAssertEqual(started.status, 0, started.output)
        return ["SLURM_CONF": dir.appendingPathComponent("slurm.conf").path]
    }

    private var medseg: String { get throws { try XCTUnwrap(Executables.medseg()).path } }

    /// srun -n 2 starts two ranks that find each other from SLURM's variables alone (master: the
    /// step's first node, port from the job id) and end with the weights of one process on the
    /// combined batch; `doctor` says it runs under srun; `predict` shards its cases over the tasks.
    func testSrunTasksTrainAsRanksOfOneRun() throws {
        // The node named as the machine, so that the node list's first host resolves as on a real cluster.
        let hostname = try run("/bin/hostname", ["-s"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        let env = try cluster("one", nodes: 1, nodeName: hostname)
        let single = temp.appendingPathComponent("single.safetensors"), multi = temp.appendingPathComponent("multi.safetensors")
        try run(try medseg, ["ddp-check", "--out", single.path])
        let trained = try run("/usr/bin/srun", ["-n", "2", "-I5", "-K", "--chdir", temp.path, try medseg, "ddp-check", "--out", multi.path], env: env)
        XCTAssertEqual(trained.status, 0, trained.output)
        let (a, _) = try Safetensors.load(single)
        let (b, meta) = try Safetensors.load(multi)
        XCTAssertEqual(meta["world"], "2", "two srun tasks are one run of two ranks")
        for (name, t) in a { XCTAssertTrue(try t.allClose(XCTUnwrap(b[name]), rtol: 1e-5, atol: 1e-6), name) }

        let doctor = try run("/usr/bin/srun", ["-n", "2", "-I5", try medseg, "doctor"], env: env)
        XCTAssertEqual(doctor.status, 0, doctor.output)
        XCTAssertTrue(doctor.output.contains("SLURM srun step: task 0 of 2 (local 0 of 2, node 0)")
                      && doctor.output.contains("SLURM srun step: task 1 of 2 (local 1 of 2, node 0)")
                      && doctor.output.contains("master \(hostname):"), doctor.output)

        // A whole training run: the log counts both ranks, rank 0 writes the checkpoint.
        let data = temp.appendingPathComponent("data"), out = temp.appendingPathComponent("run")
        try run(try medseg, ["data", "synth", "--dim", "2", "--cases", "6", "--test-cases", "4", "--size", "32,32", "--out", data.path])
        let train = try run("/usr/bin/srun", ["-n", "2", "-I5", "-K", try medseg, "train", "--dataset", data.path, "--out", out.path,
                                              "--epochs", "1", "--iterations", "2", "--batch-size", "2", "--patch-size", "32,32",
                                              "--features", "4", "--depth", "2", "--workers", "0"], env: env)
        XCTAssertEqual(train.status, 0, train.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint_final.safetensors").path), train.output)
        XCTAssertTrue(train.output.contains("x 2 processes"), "the log counts both ranks: \(train.output)")

        let predict = try run("/usr/bin/srun", ["-n", "2", "-I5", "-K", try medseg, "predict", "--run", out.path, "--input",
                                                data.appendingPathComponent("imagesTs").path, "--out", temp.appendingPathComponent("pred").path], env: env)
        XCTAssertEqual(predict.status, 0, predict.output)
        XCTAssertTrue(predict.output.contains("rank 0 of 2: wrote 2 prediction(s)") && predict.output.contains("rank 1 of 2: wrote 2 prediction(s)"), predict.output)
    }

    /// Two slurmd nodes on this machine (srun -N 2): each task on its own node, node ranks from
    /// SLURM_NODEID; the master's address comes from the job script here (MASTER_ADDR), since
    /// the two nodes' names are not host names.
    func testSrunAcrossTwoNodes() throws {
        let env = try cluster("two", nodes: 2)
        let multi = temp.appendingPathComponent("multi.safetensors"), single = temp.appendingPathComponent("single.safetensors")
        try run(try medseg, ["ddp-check", "--out", single.path])
        let doctor = try run("/usr/bin/srun", ["-N", "2", "-n", "2", "-I5", try medseg, "doctor"], env: env.merging(["MASTER_ADDR": "127.0.0.1"]) { $1 })
        XCTAssertTrue(doctor.output.contains("task 0 of 2 (local 0 of 1, node 0)") && doctor.output.contains("task 1 of 2 (local 0 of 1, node 1)"),
                      doctor.output)
        let trained = try run("/usr/bin/srun", ["-N", "2", "-n", "2", "-I5", "-K", try medseg, "ddp-check", "--out", multi.path],
                              env: env.merging(["MASTER_ADDR": "127.0.0.1"]) { $1 })
        XCTAssertEqual(trained.status, 0, trained.output)
        let (a, _) = try Safetensors.load(single)
        let (b, meta) = try Safetensors.load(multi)
        XCTAssertEqual(meta["world"], "2")
        for (name, t) in a { XCTAssertTrue(try t.allClose(XCTUnwrap(b[name]), rtol: 1e-5, atol: 1e-6), name) }
    }
}
