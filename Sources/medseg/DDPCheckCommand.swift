import ArgumentParser
import Foundation
import MedSegDist
import MedSegTrain
import Torch

/// A fixed small problem trained with SGD by 1 process on the whole batch or by N launched ranks
/// on their slices of it; writes the final weights. Used by the data-parallel equivalence tests
/// (`--device cuda[:N]`: on the GPU, with NCCL between the ranks).
struct DDPCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ddp-check", shouldDisplay: false)

    @Option var out: String
    @Option var globalBatch = 8
    @Option var steps = 5
    @Option var device = "cpu"

    func run() throws {
        let env = try DistributedEnvironment.fromEnvironment()
        let rank = env?.rank ?? 0, world = env?.worldSize ?? 1
        guard globalBatch % world == 0 else { throw ValidationError("--global-batch must divide by the world size") }
        let device = try Device.resolve(device, localRank: env?.localRank ?? 0)
        Torch.manualSeed(1)
        let data = try Tensor.randn([globalBatch * steps, 2, 12, 12]).to(device: device)
        let target = try Tensor.rand([globalBatch * steps, 1, 12, 12]).gt(0.5).float().to(device: device)
        // Other ranks start from different weights: the broadcast from rank 0 must fix that.
        Torch.manualSeed(rank == 0 ? 2 : 99)
        let model = Sequential(try Conv2d(2, 6, kernelSize: 3, padding: 1), ReLU(), try Conv2d(6, 6, kernelSize: 3, padding: 1, groups: 2),
                               GELU(), try Conv2d(6, 1, kernelSize: 1))
        try model.to(device: device)
        let ddp = try env.map {
            try DistributedDataParallel(model: model, group: $0.joinProcessGroup(timeout: 60, nccl: device.isCUDA),
                                        bucketMegabytes: 0.001, firstBucketMegabytes: 0.001)
        }
        let optimizer = try SGD(model.parameters(), lr: 0.1, momentum: 0.9)
        let trainStep = try TrainStep(model: model, ddp: ddp, optimizer: optimizer, loss: BCEWithLogitsLoss(), skipNonFinite: false)
        let local = globalBatch / world
        for step in 0..<steps {
            let start = step * globalBatch + rank * local
            let x = try data.narrow(dim: 0, start: start, length: local), y = try target.narrow(dim: 0, start: start, length: local)
            try trainStep(x, y)
        }
        if rank == 0 {
            try model.to(device: .cpu)
            try Safetensors.save(model.stateDict(), metadata: ["world": String(world), "device": device.description, "buckets": String(ddp?.reducer.bucketCount ?? 0)],
                                 to: URL(fileURLWithPath: out))
        }
    }
}
