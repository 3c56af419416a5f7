import Foundation
import XCTest
import Torch
import TestSupport
@testable import MedSegModels

/// Parity with the PyTorch reference of scripts/fixtures/make_setr_fixtures.py.
final class SETRMLATests: XCTestCase {
    static func maxAbsDiff(_ a: Tensor, _ b: Tensor) throws -> Double {
        try (a.detach() - b).abs().to(dtype: .float64).toArray(Double.self).max() ?? 0
    }

    static func tinyConfig(_ fx: [String: Any]) -> SETRMLA.Config {
        let c = fx["config"] as! [String: Any]
        let vit = VisionTransformer.Config(imageSize: c["img"] as! Int, patchSize: c["p"] as! Int, inChannels: c["cin"] as! Int,
                                           hidden: c["dim"] as! Int, depth: c["depth"] as! Int, heads: c["heads"] as! Int,
                                           mlpDim: c["mlp"] as! Int)
        return SETRMLA.Config(encoder: vit, classes: c["classes"] as! Int, mlaChannels: c["mla"] as! Int, headChannels: c["head"] as! Int)
    }

    static func tinyModel() throws -> (SETRMLA, [String: Any]) {
        let fx = try fixtures.json("setr_tiny.json")
        let model = try SETRMLA(tinyConfig(fx))
        let order = fx["state_order"] as! [String]
        XCTAssertEqual(model.namedStateTensors().map(\.name), order)
        let state = fx["state"] as! [String: Any]
        let report = try model.loadState(order.map { ($0, try FixtureSupport.tensor(state[$0])) })
        XCTAssertTrue(report.isExact, "\(report)")
        return (model, fx)
    }

    func testParameterCountsMatchPyTorch() throws {
        let fx = try fixtures.json("setr_tiny.json")
        // The full ViT-B/16 SETR-MLA (3 input channels, 1 class).
        let full = try SETRMLA()
        XCTAssertEqual(full.encoder.config.positions, 197)
        XCTAssertEqual(full.taps, [3, 6, 9, 12])
        XCTAssertEqual(full.parameterCount(), fx["full_param_count"] as! Int)
        XCTAssertEqual(full.parameterCount(), 90_725_633)
        XCTAssertEqual(full.encoder.parameterCount(), fx["full_encoder_param_count"] as! Int)
        XCTAssertEqual(full.encoder.parameterCount(), 85_798_656)
        XCTAssertEqual(full.parameterCount(trainableOnly: true), fx["full_trainable_param_count"] as! Int)
        // Frozen: the optimizer's parameter list leaves the whole encoder out.
        XCTAssertEqual(full.trainableParameters().reduce(0) { $0 + $1.count }, 4_926_977)
        XCTAssertTrue(full.encoderIsFrozen)
        let encoderTensors = Set(full.encoder.parameters().map { ObjectIdentifier($0) })
        XCTAssertFalse(full.trainableParameters().contains { encoderTensors.contains(ObjectIdentifier($0)) })
    }

    func testMatchesThePyTorchReferenceOutputsAndGradients() throws {
        let (model, fx) = try Self.tinyModel()
        XCTAssertEqual(model.parameterCount(), fx["param_count"] as! Int)
        XCTAssertEqual(model.parameterCount(trainableOnly: true), fx["trainable_param_count"] as! Int)
        model.train()
        let x = try FixtureSupport.tensor(fx["input"])
        let target = try FixtureSupport.tensor(fx["target"])
        let (main, aux) = try model.forwardWithAux(x)
        try FixtureSupport.assertClose(main, FixtureSupport.tensor(fx["main"]), rtol: 1e-4, atol: 1e-4, "SETR-MLA main output")
        let auxRef = fx["aux"] as! [Any]
        XCTAssertEqual(aux.count, 4)
        for (i, a) in aux.enumerated() {
            try FixtureSupport.assertClose(a, FixtureSupport.tensor(auxRef[i]), rtol: 1e-4, atol: 1e-4, "SETR-MLA aux \(i)")
        }
        var loss = try F.binaryCrossEntropyWithLogits(main, target: target)
        for a in aux { loss = try loss + F.binaryCrossEntropyWithLogits(a, target: target) * model.config.auxWeight }
        XCTAssertEqual(try loss.item(), fx["loss"] as! Double, accuracy: 1e-5)
        try loss.backward()
        var worstAux = 0.0
        for (i, a) in aux.enumerated() { worstAux = max(worstAux, try Self.maxAbsDiff(a, FixtureSupport.tensor(auxRef[i]))) }
        print("SETR-MLA parity: max |main - torch| = \(try Self.maxAbsDiff(main, FixtureSupport.tensor(fx["main"]))), max |aux - torch| = \(worstAux), |loss - torch| = \(abs(try loss.item() - (fx["loss"] as! Double)))")

        let grads = fx["grads"] as! [String: Any]
        let params = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.tensor) })
        XCTAssertEqual(Set(grads.keys), Set(params.keys.filter { !$0.hasPrefix("encoder.") }))
        var worstGrad = 0.0
        for (name, g) in grads.sorted(by: { $0.key < $1.key }) {
            let grad = try XCTUnwrap(params[name]?.grad, name)
            try FixtureSupport.assertClose(grad, FixtureSupport.tensor(g), rtol: 1e-4, atol: 1e-5, "grad \(name)")
            worstGrad = max(worstGrad, try Self.maxAbsDiff(grad, FixtureSupport.tensor(g)))
        }
        print("SETR-MLA parity: \(grads.count) decoder gradients, max |grad - torch| = \(worstGrad)")
        for (name, p) in model.encoder.namedParameters() {
            XCTAssertFalse(p.requiresGrad, name)
            XCTAssertNil(p.grad, "encoder parameter \(name) got a gradient")
        }
    }

    func testLossHelperWeightsTheAuxiliaryHeads() throws {
        let (model, fx) = try Self.tinyModel()
        model.train()
        let loss = try model.loss(FixtureSupport.tensor(fx["input"]), target: FixtureSupport.tensor(fx["target"])) {
            try F.binaryCrossEntropyWithLogits($0, target: $1)
        }
        XCTAssertEqual(try loss.item(), fx["loss"] as! Double, accuracy: 1e-5)
    }

    func testOtherInputSizeResamplesPositionEmbeddingsLikePyTorch() throws {
        let (model, _) = try Self.tinyModel()
        let fx = try fixtures.json("setr_interp.json")
        model.eval()
        let pos = try model.encoder.positionEmbedding(gridHeight: 6, gridWidth: 5)
        try FixtureSupport.assertClose(pos, FixtureSupport.tensor(fx["pos_embed_6x5"]), rtol: 1e-5, atol: 1e-6, "bicubic pos_embed")
        let x = try FixtureSupport.tensor(fx["input"])
        XCTAssertEqual(x.shape, [1, 3, 48, 40])
        let (main, aux) = try withNoGrad { try model.forwardWithAux(x) }
        print("SETR-MLA 48x40: max |pos_embed - torch| = \(try Self.maxAbsDiff(pos, FixtureSupport.tensor(fx["pos_embed_6x5"]))), max |main - torch| = \(try Self.maxAbsDiff(main, FixtureSupport.tensor(fx["main"])))")
        XCTAssertEqual(main.shape, [1, 1, 48, 40])
        try FixtureSupport.assertClose(main, FixtureSupport.tensor(fx["main"]), rtol: 1e-4, atol: 1e-4, "SETR-MLA main output at 48x40")
        try FixtureSupport.assertClose(aux[0], FixtureSupport.tensor(fx["aux0"]), rtol: 1e-4, atol: 1e-4, "SETR-MLA aux 0 at 48x40")
        // The pretraining size uses pos_embed unchanged.
        XCTAssertTrue(try model.encoder.positionEmbedding(gridHeight: 4, gridWidth: 4).equal(model.encoder.posEmbed))
    }

    // MARK: encoder weights

    static func smallEncoder(_ fx: [String: Any]) throws -> VisionTransformer {
        let c = fx["encoder"] as! [String: Int]
        return try VisionTransformer(.init(imageSize: c["img"]!, patchSize: c["p"]!, inChannels: c["cin"]!, hidden: c["dim"]!,
                                           depth: c["depth"]!, heads: c["heads"]!, mlpDim: c["mlp"]!))
    }

    static func write(_ b64: Any?, _ name: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setr-tests-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(name)
        try Data(base64Encoded: b64 as! String)!.write(to: url)
        return url
    }

    func testLoadsATorchSaveFileWithModulePrefix() throws {
        let fx = try fixtures.json("setr_weights.json")
        let vit = try Self.smallEncoder(fx)
        let url = try Self.write(fx["module_pth"], "encoder_ddp.pth")
        let report = try vit.loadEncoderWeights(url: url)
        XCTAssertTrue(report.load.isExact, "\(report)")
        XCTAssertTrue(report.isComplete)
        XCTAssertEqual(report.load.loadedCount, vit.namedStateTensors().count)
        let state = fx["state"] as! [String: Any]
        for (name, t) in vit.namedStateTensors() {
            XCTAssertTrue(try t.equal(FixtureSupport.tensor(state[name])), name)
        }
        // Also through the SETR wrapper: the encoder stays frozen.
        let setr = try SETRMLA(.init(encoder: vit.config, classes: 1, mlaChannels: 4, headChannels: 4))
        try setr.loadEncoderWeights(url: url)
        XCTAssertTrue(try setr.encoder.posEmbed.equal(vit.posEmbed))
        XCTAssertTrue(setr.encoderIsFrozen)
    }

    /// A full-size ViT-B/16 saved by torch in timm's layout (as VFM_Fundus_weights.pth is: blocks.N.attn.qkv,
    /// mlp.fc1/fc2, a classifier head the segmentation model does not use) loads into SETR-MLA's
    /// ViT-B/16 with every encoder tensor matched, bit-exactly.
    func testFullSizeTimmViTB16Loads() throws {
        let dir = try makeTemporaryFolder("vitb16")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("vit_b16_timm.pth")
        let printed = try Python.run("""
        import sys, torch
        torch.manual_seed(0)
        d, sd = 768, {}
        sd["cls_token"] = torch.randn(1, 1, d); sd["pos_embed"] = torch.randn(1, 197, d)
        sd["patch_embed.proj.weight"] = torch.randn(d, 3, 16, 16); sd["patch_embed.proj.bias"] = torch.randn(d)
        for i in range(12):
            p = f"blocks.{i}."
            for n in ["norm1", "norm2"]:
                sd[p + n + ".weight"] = torch.randn(d); sd[p + n + ".bias"] = torch.randn(d)
            sd[p + "attn.qkv.weight"] = torch.randn(3 * d, d); sd[p + "attn.qkv.bias"] = torch.randn(3 * d)
            sd[p + "attn.proj.weight"] = torch.randn(d, d); sd[p + "attn.proj.bias"] = torch.randn(d)
            sd[p + "mlp.fc1.weight"] = torch.randn(4 * d, d); sd[p + "mlp.fc1.bias"] = torch.randn(4 * d)
            sd[p + "mlp.fc2.weight"] = torch.randn(d, 4 * d); sd[p + "mlp.fc2.bias"] = torch.randn(d)
        sd["norm.weight"] = torch.randn(d); sd["norm.bias"] = torch.randn(d)
        sd["head.weight"] = torch.randn(1000, d); sd["head.bias"] = torch.randn(1000)
        torch.save(sd, sys.argv[1])
        print(float(sd["blocks.11.mlp.fc2.weight"][767, 3071]))
        """, [url.path], interpreter: "/usr/bin/python3")
        let setr = try SETRMLA(.init(encoder: .init(), classes: 1))
        let report = try setr.loadEncoderWeights(url: url)
        XCTAssertTrue(report.isComplete, "\(report)")
        XCTAssertEqual(report.load.missingKeys, [], "\(report)")
        XCTAssertEqual(report.load.shapeMismatches, [], "\(report)")
        XCTAssertEqual(report.load.loadedCount, setr.encoder.namedStateTensors().count, "\(report)")
        XCTAssertEqual(setr.encoder.namedStateTensors().count, 4 + 12 * 12 + 2)
        XCTAssertTrue(setr.encoderIsFrozen)
        let fc2 = try XCTUnwrap(setr.encoder.namedStateTensors().first { $0.name == "blocks.11.mlp.fc2.weight" }?.tensor)
        let value = try fc2.floats()[767 * 3072 + 3071]
        XCTAssertEqual(Double(value), Double(printed.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    func testRGBWeightsAdaptToGrayInput() throws {
        let fx = try fixtures.json("setr_weights.json")
        let c = fx["encoder"] as! [String: Int]
        let gray = try VisionTransformer(.init(imageSize: c["img"]!, patchSize: c["p"]!, inChannels: 1, hidden: c["dim"]!,
                                               depth: c["depth"]!, heads: c["heads"]!, mlpDim: c["mlp"]!))
        let report = try gray.loadEncoderWeights(url: try Self.write(fx["module_pth"], "encoder_rgb.pth"))
        XCTAssertTrue(report.load.isExact, "\(report)")
        XCTAssertEqual(report.adaptedInputChannels?.from, 3)
        XCTAssertEqual(report.adaptedInputChannels?.to, 1)
        let rgb = try FixtureSupport.tensor((fx["state"] as! [String: Any])["patch_embed.proj.weight"])
        try FixtureSupport.assertClose(gray.patchEmbed.proj.weight, rgb.sum(dims: [1], keepDim: true), rtol: 1e-6, atol: 1e-7, "gray kernel")
        // Five channels: tiled RGB kernels scaled by 3/5 (timm's adapt_input_conv).
        let five = try VisionTransformer.adaptInputChannels(rgb, to: 5)
        XCTAssertEqual(five.shape, [c["dim"]!, 5, c["p"]!, c["p"]!])
        try FixtureSupport.assertClose(five.narrow(dim: 1, start: 3, length: 2), rgb.narrow(dim: 1, start: 0, length: 2) * 0.6,
                                       rtol: 1e-6, atol: 1e-7, "tiled kernel")
    }

    func testWrongShapedFileReportsTheMismatchAndChangesNothing() throws {
        let fx = try fixtures.json("setr_weights.json")
        let vit = try Self.smallEncoder(fx)
        let before = try vit.blocks[0].attn.qkv.weight.clone()
        let url = try Self.write(fx["wrong_pth"], "encoder_wrong.pth")
        XCTAssertThrowsError(try vit.loadEncoderWeights(url: url)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("shape mismatch for blocks.1.mlp.fc1.weight: model has [16, 8], weights have [24, 8]"), text)
            XCTAssertTrue(text.contains("unexpected keys (1): head.weight"), text)
            XCTAssertTrue(text.contains("encoder_wrong.pth"), text)
        }
        XCTAssertTrue(try vit.blocks[0].attn.qkv.weight.equal(before), "a failed load must leave the weights alone")
    }

    func testSafetensorsWithPrefixesUnexpectedKeysAndResampledPosEmbed() throws {
        let fx = try fixtures.json("setr_weights.json")
        let vit = try Self.smallEncoder(fx)
        let state = fx["state"] as! [String: Any]
        var dict = StateDict()
        for (name, _) in vit.namedStateTensors() { dict.set("backbone." + name, try FixtureSupport.tensor(state[name])) }
        // A pos_embed for a 3x3 grid (image 24) of the same width, and a classifier head.
        let pos3 = try Tensor.randn([1, 10, vit.config.hidden])
        dict.set("backbone.pos_embed", pos3)
        dict.set("backbone.head.weight", try Tensor.randn([5, vit.config.hidden]))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("setr-enc-\(ProcessInfo.processInfo.processIdentifier).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Safetensors.save(dict, to: url)

        let report = try vit.loadEncoderWeights(url: url)
        XCTAssertTrue(report.isComplete, "\(report)")
        XCTAssertEqual(report.load.unexpectedKeys, ["head.weight"])
        XCTAssertEqual(report.strippedPrefixes, ["backbone."])
        XCTAssertEqual(report.resampledPosEmbed?.from, [1, 10, 8])
        XCTAssertEqual(report.resampledPosEmbed?.to, [1, 5, 8])
        let expected = try VisionTransformer.resamplePositionEmbedding(pos3, from: (3, 3), to: (2, 2))
        try FixtureSupport.assertClose(vit.posEmbed, expected, rtol: 1e-6, atol: 1e-7, "resampled pos_embed")
        XCTAssertTrue("\(report)".contains("unexpected keys (1): head.weight"))
        // strict refuses the extra key.
        XCTAssertThrowsError(try vit.loadEncoderWeights(url: url, strict: true))
    }

    func testFrozenEncoderRecordsNoGraphAndBadInputsAreClear() throws {
        let model = try SETRMLA(.init(encoder: .init(imageSize: 16, patchSize: 8, hidden: 8, depth: 4, heads: 2, mlpDim: 16),
                                      classes: 2, mlaChannels: 4, headChannels: 4))
        let optimizerParams = model.trainableParameters()
        XCTAssertEqual(optimizerParams.count, model.parameters().count - model.encoder.parameters().count)
        let y = try model(Tensor.randn([2, 3, 16, 24]))
        XCTAssertEqual(y.shape, [2, 2, 16, 24])
        XCTAssertThrowsError(try model(Tensor.randn([1, 3, 20, 16]))) { XCTAssertTrue("\($0)".contains("multiples of the patch size 8"), "\($0)") }
        XCTAssertThrowsError(try SETRMLA(.init(encoder: .init(depth: 3), taps: [1, 2, 3, 4])))
        XCTAssertThrowsError(try VisionTransformer(.init(hidden: 10, heads: 3)))
    }
}
