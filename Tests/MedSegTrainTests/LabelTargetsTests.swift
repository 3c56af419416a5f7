import Foundation
import XCTest
import Torch
import TestSupport
@testable import MedSegTrain

/// Ignore label and regions against nnU-Net v2's own losses (DC_and_CE_loss, DC_and_BCE_loss with
/// MemoryEfficientSoftDiceLoss, as nnUNetTrainer builds them), run with python3's torch.
final class LabelTargetsTests: XCTestCase {
    private func values(_ n: Int, seed: Double) -> [Float] { (0..<n).map { Float(sin(Double($0) * 0.73 + seed) * 2.5) } }

    /// nnU-Net's loss of `logits` for `labels` (both as flat lists with shapes), regions or not.
    private func reference(logits: [Float], logitShape: [Int], labels: [Int], labelShape: [Int], regions: [[Int]]?, ignore: Int?) throws -> Double {
        let script = """
        import json, sys, torch
        from nnunetv2.training.loss.compound_losses import DC_and_CE_loss, DC_and_BCE_loss
        from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
        a = json.loads(sys.argv[1])
        x = torch.tensor(a['logits'], dtype=torch.float32).reshape(a['ls'])
        y = torch.tensor(a['labels'], dtype=torch.int64).reshape(a['ys'])
        ignore = a['ignore']
        if a['regions'] is None:
            loss = DC_and_CE_loss({'batch_dice': True, 'smooth': 1e-5, 'do_bg': False, 'ddp': False}, {}, weight_ce=1, weight_dice=1,
                                  ignore_label=ignore, dice_class=MemoryEfficientSoftDiceLoss)
            print(json.dumps(float(loss(x, y))))
        else:
            chans = [sum((y == v) for v in r).clamp(max=1) for r in a['regions']]
            if ignore is not None:
                chans.append(y == ignore)
            t = torch.cat(chans, 1).float()
            loss = DC_and_BCE_loss({}, {'batch_dice': True, 'do_bg': True, 'smooth': 1e-5, 'ddp': False},
                                   use_ignore_label=ignore is not None, dice_class=MemoryEfficientSoftDiceLoss)
            print(json.dumps(float(loss(x, t))))
        """
        let arg: [String: Any] = ["logits": logits, "ls": logitShape, "labels": labels, "ys": labelShape,
                                  "regions": regions as Any? ?? NSNull(), "ignore": ignore as Any? ?? NSNull()]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: arg), as: UTF8.self)
        return try JSONDecoder().decode(Double.self, from: Data(try Python.run(script, [json], interpreter: "/usr/bin/python3").utf8))
    }

    func testIgnoreLabelMasksCrossEntropyAndDice() throws {
        let data = #"{"labels": {"background": 0, "liver": 1, "tumor": 2, "ignore": 3}}"#
        let t = try layout(data)
        XCTAssertEqual(t.ignoreLabel, 3)
        XCTAssertFalse(t.usesRegions)
        XCTAssertEqual(t.outputChannels, 3)
        let shape = [2, 3, 4, 5]
        let logits = values(shape.reduce(1, *), seed: 0.3)
        let labels = (0..<40).map { ($0 * 7 + $0 / 3) % 4 }
        let swiftLoss = try t.loss(Tensor(logits, shape: shape), t.target(from: Tensor(labels.map(Int64.init), shape: [2, 1, 4, 5])))
        let ref = try reference(logits: logits, logitShape: shape, labels: labels, labelShape: [2, 1, 4, 5], regions: nil, ignore: 3)
        // nnU-Net's Dice term is -Dice, MedSeg's 1 - Dice (same gradient).
        XCTAssertEqual(try swiftLoss.item(), ref + 1, accuracy: 1e-5)
        // Without the ignore label (no voxel 3) the loss is nnU-Net's plain one.
        let plain = try layout(#"{"labels": {"background": 0, "a": 1, "b": 2}}"#)
        let labels3 = labels.map { $0 % 3 }
        let l2 = try plain.loss(Tensor(logits, shape: shape), plain.target(from: Tensor(labels3.map(Int64.init), shape: [2, 1, 4, 5])))
        XCTAssertEqual(try l2.item(), try reference(logits: logits, logitShape: shape, labels: labels3, labelShape: [2, 1, 4, 5],
                                                   regions: nil, ignore: nil) + 1, accuracy: 1e-5)
    }

    func testRegionsWithAndWithoutIgnoreLabel() throws {
        let text = #"{"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing": [3], "ignore": 4},"#
            + #" "regions_class_order": [1, 2, 3]}"#
        let t = try layout(text)
        XCTAssertTrue(t.usesRegions)
        XCTAssertEqual(t.regions, [[1, 2, 3], [2, 3], [3]])
        XCTAssertEqual(t.regionsClassOrder, [1, 2, 3])
        XCTAssertEqual(t.ignoreLabel, 4)
        let shape = [2, 3, 4, 5]
        let logits = values(shape.reduce(1, *), seed: 1.1)
        let labels = (0..<40).map { ($0 * 5 + $0 / 4) % 5 }
        let target = try t.target(from: Tensor(labels.map(Int64.init), shape: [2, 1, 4, 5]))
        XCTAssertEqual(target.shape, [2, 4, 4, 5])
        let ref = try reference(logits: logits, logitShape: shape, labels: labels, labelShape: [2, 1, 4, 5], regions: t.regions, ignore: 4)
        XCTAssertEqual(try t.loss(Tensor(logits, shape: shape), target).item(), ref + 1, accuracy: 1e-5)

        var noIgnore = t
        noIgnore.ignoreLabel = nil
        let labels4 = labels.map { $0 % 4 }
        let ref2 = try reference(logits: logits, logitShape: shape, labels: labels4, labelShape: [2, 1, 4, 5], regions: t.regions, ignore: nil)
        let l2 = try noIgnore.loss(Tensor(logits, shape: shape), noIgnore.target(from: Tensor(labels4.map(Int64.init), shape: [2, 1, 4, 5])))
        XCTAssertEqual(try l2.item(), ref2 + 1, accuracy: 1e-5)
    }

    func testRegionsBackToLabelsInRegionsClassOrder() throws {
        let text = #"{"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing": [3]}, "regions_class_order": [1, 2, 3]}"#
        let t = try layout(text)
        // Four voxels: nothing, whole tumor only, whole + core, all three.
        let probs: [Float] = [0.1, 0.9, 0.8, 0.7,   0.2, 0.3, 0.6, 0.9,   0.4, 0.1, 0.2, 0.51]
        let labels = try LabelTargets.paint(Tensor(probs, shape: [1, 3, 4]), regionsClassOrder: t.regionsClassOrder)
        XCTAssertEqual(try labels.toArray(Int64.self), [0, 1, 2, 3])
        // And the round trip of a label map through the region targets.
        let map: [Int64] = [0, 1, 2, 3, 3, 2]
        let target = try t.target(from: Tensor(map, shape: [1, 1, 6]))
        XCTAssertEqual(try LabelTargets.paint(target, regionsClassOrder: t.regionsClassOrder).toArray(Int64.self), map)
        // Softmax labels: argmax mapped to the label values.
        let plain = try layout(#"{"labels": {"background": 0, "a": 1, "b": 2}}"#)
        let logits: [Float] = [3, 0, 0,   0, 3, 0,   0, 0, 3]
        XCTAssertEqual(try plain.labels(fromLogits: Tensor(logits, shape: [1, 3, 3])).toArray(Int64.self), [0, 1, 2])
    }

    func testInvalidLayoutsAreNamed() {
        XCTAssertThrowsError(try layout(#"{"labels": {"background": 0, "a": 2, "ignore": 1}}"#)) {
            XCTAssertTrue("\($0)".contains("ignore label (1) must be higher"), "\($0)")
        }
        XCTAssertThrowsError(try layout(#"{"labels": {"background": 0, "a": [1, 2]}}"#)) {
            XCTAssertTrue("\($0)".contains("regions_class_order"), "\($0)")
        }
        XCTAssertThrowsError(try layout(#"{"labels": {"background": 0, "a": "x"}}"#)) {
            XCTAssertTrue("\($0)".contains("labels"), "\($0)")
        }
    }

    /// A dataset.json's text with `labelsJSON`'s keys and the required others.
    private func layout(_ labelsJSON: String) throws -> LabelTargets {
        try LabelTargets.parse(datasetJSON: Data(("{\"channel_names\": {\"0\": \"CT\"}, \"numTraining\": 1, \"file_ending\": \".nii.gz\", "
                                                  + labelsJSON.dropFirst()).utf8))
    }
}
