import Foundation
import XCTest
import TestSupport
import MedSegData
import Torch
import MedSegModels
@testable import MedSegTrain

/// Every seed preset trains on synthetic data of its kind with the loss going down. Sizes and
/// widths are cut down so that a CPU test takes seconds; everything else is the preset's recipe.
final class PresetTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("preset")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    private func train(_ preset: String, data options: SyntheticCases.Options, overrides: String) throws -> [EpochRecord] {
        let data = temp.appendingPathComponent(preset + "-data")
        try SyntheticCases(options).write(to: data, training: 6, test: 0, fileEnding: ".nii.gz")
        var config = try TrainingPresets.config(preset)
        config = try config.merging(yaml: overrides + "\nthreads: 1\nworkers: 0\nval_every: 100\n", source: "test overrides")
        let run = TrainingRun(config: config, datasetFolder: data, runFolder: temp.appendingPathComponent(preset), options: .init(verbose: false))
        try run.run()
        return try Checkpoint.load(RunFolder(run.runFolder).checkpoint(.final)).state.progress.history
    }

    private func assertLossGoesDown(_ history: [EpochRecord], _ preset: String) {
        let first = history.first!.trainLoss, last = history.last!.trainLoss
        XCTAssertTrue(first.isFinite && last.isFinite, preset)
        XCTAssertLessThan(last, first, "\(preset): train loss \(history.map(\.trainLoss))")
    }

    /// `--config 3d_fullres --model segresnet`: the network keeps its own width and as many levels
    /// as the plan's patch can halve; a planned network keeps the plan's stages.
    func testANetworkOffThePlansStagesKeepsItsOwnShape() {
        var c = TrainingConfig()
        c.model = .segresnet
        c.dims = 3
        c.patch_size = [24, 40, 40]
        c.features = 32
        c.depth = 5
        var own = c.ownNetworkOnPlan(keeping: ["model"])
        XCTAssertEqual(own.width, 8)
        XCTAssertEqual(own.levels, 4, "24 and 40 halve three times")
        c.patch_size = [20, 40, 40]
        own = c.ownNetworkOnPlan(keeping: ["model", "features"])
        XCTAssertEqual(own.width, 32, "a width the user gave stays")
        XCTAssertEqual(own.levels, 3, "20 halves twice")
        // MedNeXt halves four times whatever its size: the plan's 20 x 40 x 40 grows to 32 x 48 x 48.
        c.model = .mednext
        XCTAssertEqual(c.ownNetworkOnPlan(keeping: ["model"]).patch_size, [32, 48, 48])
        XCTAssertEqual(c.ownNetworkOnPlan(keeping: ["model", "patch_size"]).patch_size, [20, 40, 40], "a patch the user gave stays")
        c.model = .plainunet
        XCTAssertEqual(c.ownNetworkOnPlan(keeping: ["model"]), c)
    }

    /// MedNeXt's recipe (MIC-DKFZ's nnUNetTrainerV2_MedNeXt): AdamW 1e-3 in nnU-Net's loop.
    func testMedNeXt3D() throws {
        let c = try TrainingPresets.config("mednext-3d")
        XCTAssertEqual(c.model, .mednext)
        XCTAssertEqual(c.model_size, .B)
        XCTAssertEqual(c.kernel_size, 3)
        XCTAssertEqual(c.optimizer, .adamw)
        XCTAssertEqual(c.lr, 1e-3)
        XCTAssertEqual(c.weight_decay, 3e-5)
        XCTAssertEqual(c.eps, 1e-4)
        XCTAssertTrue(c.deep_supervision)
        XCTAssertEqual(c.epochs * c.iterations, 250_000)
        XCTAssertEqual(try MedNeXt(.init(size: c.model_size, dims: c.dims, classes: 3, kernelSize: c.kernel_size)).config.divisor, 16)
        let h = try train("mednext-3d", data: .init(dims: 3, size: [32, 32, 32], classes: 2, seed: 4),
                          overrides: "model_size: S\npatch_size: [32, 32, 32]\nbatch_size: 2\nepochs: 4\niterations: 2\nlr: 0.003\naugmentation: none")
        assertLossGoesDown(h, "mednext-3d")
    }

    /// Primus's recipe (nnU-Net's nnUNet_Primus_M_Trainer): AdamW 3e-4 after 50 warm-up epochs, clipping at 1.
    func testPrimus3D() throws {
        let c = try TrainingPresets.config("primus-3d")
        XCTAssertEqual([c.model.rawValue, c.model_size.rawValue, c.optimizer.rawValue], ["primus", "M", "adamw"])
        XCTAssertEqual([c.lr, c.weight_decay, c.grad_clip, c.beta1, c.beta2], [3e-4, 0.05, 1, 0.9, 0.98])
        XCTAssertEqual(c.warmup_epochs, 50)
        XCTAssertFalse(c.deep_supervision)
        XCTAssertTrue(c.patch_size.allSatisfy { $0 % 8 == 0 })
        let h = try train("primus-3d", data: .init(dims: 3, size: [32, 32, 32], classes: 2, seed: 4),
                          overrides: "model_size: S\npatch_size: [32, 32, 32]\nbatch_size: 2\nepochs: 4\niterations: 2\nwarmup_epochs: 1\nlr: 0.001\naugmentation: none")
        assertLossGoesDown(h, "primus-3d")
    }

    func testISBIUNet() throws {
        let h = try train("isbi2012-unet", data: .init(dims: 2, size: [32, 32], classes: 1, seed: 1),
                          overrides: "features: 4\ndepth: 3\npatch_size: [32, 32]\nepochs: 4\niterations: 4\nlr: 0.01\nnormalization: zscore")
        assertLossGoesDown(h, "isbi2012-unet")
    }

    func testISICUltraLight() throws {
        let h = try train("isic-ultralight", data: .init(dims: 2, size: [64, 64], classes: 1, channels: 3, seed: 2),
                          overrides: "features: 4\npatch_size: [64, 64]\nbatch_size: 2\nepochs: 4\niterations: 3\nlr: 0.01\nnormalization: zscore")
        assertLossGoesDown(h, "isic-ultralight")
    }

    func testLiverUNetPlusPlus3D() throws {
        let h = try train("liver-unetpp-3d", data: .init(dims: 3, size: [24, 24, 16], classes: 2, seed: 3),
                          overrides: "features: 2\ndepth: 3\npatch_size: [16, 16, 16]\nepochs: 4\niterations: 3\nnormalization: zscore")
        assertLossGoesDown(h, "liver-unetpp-3d")
    }

    func testFundusSETRWithPretrainedFrozenEncoder() throws {
        // "Pretrained" encoder weights: another initialization of the same ViT, saved with a DDP prefix.
        Torch.manualSeed(77)
        let donor = try ModelFactory.make(.init(name: "setr_mla", dims: 2, inChannels: 1, outChannels: 1, features: 32, depth: 4))
        let encoder = donor.namedStateTensors().filter { $0.name.hasPrefix("encoder.") }
            .map { ("module." + String($0.name.dropFirst("encoder.".count)), $0.tensor) }
        let weights = temp.appendingPathComponent("vit.safetensors")
        try Safetensors.save(StateDict(encoder), to: weights)

        let h = try train("fundus-setr-mla", data: .init(dims: 2, size: [32, 32], classes: 1, seed: 4),
                          overrides: "features: 32\ndepth: 4\npatch_size: [32, 32]\nbatch_size: 2\nepochs: 4\niterations: 3\nlr: 0.003\nnormalization: zscore\nencoder_weights: \(weights.path)")
        assertLossGoesDown(h, "fundus-setr-mla")
        // The encoder was loaded and stayed frozen through training.
        let trained = try Checkpoint.load(RunFolder(temp.appendingPathComponent("fundus-setr-mla")).checkpoint(.final))
        let saved = Dictionary(uniqueKeysWithValues: encoder.map { (String($0.0.dropFirst("module.".count)), $0.1) })
        var compared = 0
        for (name, t) in trained.model where name.hasPrefix("encoder.") {
            XCTAssertTrue(try t.equal(XCTUnwrap(saved[String(name.dropFirst("encoder.".count))])), name)
            compared += 1
        }
        XCTAssertEqual(compared, encoder.count)
        // Optimizer state exists only for the decoder: AdamW's two moments per trainable tensor.
        XCTAssertEqual(trained.optimizer.filter { $0.name.hasSuffix("exp_avg") }.count, donor.trainableParameters().count)
    }

    func testBraTSPlainUNet2D() throws {
        let h = try train("brats-nnunet-2d", data: .init(dims: 2, size: [32, 32], classes: 3, channels: 4, seed: 5),
                          overrides: "features: 4\ndepth: 3\npatch_size: [32, 32]\nbatch_size: 4\nepochs: 4\niterations: 3\nlr: 0.01")
        assertLossGoesDown(h, "brats-nnunet-2d")
        // The seed's recipe trains under bf16 autocast (on the CPU here too).
        let saved = try String(contentsOf: temp.appendingPathComponent("brats-nnunet-2d/config.yaml"), encoding: .utf8)
        XCTAssertEqual(try TrainingConfig().merging(yaml: saved, source: "config.yaml").precision, .bf16)
    }

    func testEveryPresetIsValid() throws {
        for name in TrainingPresets.names { XCTAssertNoThrow(try TrainingPresets.config(name).validate(), name) }
        XCTAssertThrowsError(try TrainingPresets.config("nope"))
    }
}

/// MedNeXt's UpKern: a kernel-5 network starts from a kernel-3 one's weights, its kernels resized
/// trilinearly as MIC-DKFZ's `upkern_load_weights` does (run here on MONAI 1.6's MedNeXt).
final class MedNeXtUpKernTests: XCTestCase {
    func testAKernel3CheckpointStartsAKernel5NetworkAsUpKernDoes() throws {
        let folder = try makeTemporaryFolder("upkern")
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try MedNeXtReference.run("""
        folder = sys.argv[2]
        torch.manual_seed(0)
        small = mednext.create_mednext("S", in_channels=1, out_channels=2, kernel_size=3)
        large = mednext.create_mednext("S", in_channels=1, out_channels=2, kernel_size=5)
        source, target = small.state_dict(), large.state_dict()
        for k in target:  # upkern_load_weights' rule
            if "bias" in k or "norm" in k or source[k].shape == target[k].shape:
                target[k] = source[k]
            else:
                target[k] = torch.nn.functional.interpolate(source[k], size=target[k].shape[2:], mode="trilinear")
        torch.save(small.state_dict(), folder + "/k3.pth")
        torch.save(target, folder + "/k5.pth")
        """, [folder.path])
        let net = try MedNeXt(.init(size: .S, dims: 3, inChannels: 1, classes: 2, kernelSize: 5))
        let report = try PretrainedWeights.load(folder.appendingPathComponent("k3.pth"), into: net)
        XCTAssertTrue(report.result.isExact, "\(report)")
        XCTAssertEqual(report.resizedKernels.count, 8 + 4 + 2 + 4 + 8, "every depthwise kernel: encoder blocks, down, bottleneck, up, decoder blocks")
        let expected = try PyTorchCheckpoint.stateDict(from: folder.appendingPathComponent("k5.pth"))
        for (name, tensor) in net.namedStateTensors() {
            try FixtureSupport.assertClose(tensor, try XCTUnwrap(expected[name], name), rtol: 1e-6, atol: 1e-6, name)
        }
        XCTAssertTrue(report.description.contains("UpKern: 26 kernels resized"), report.description)
    }
}
