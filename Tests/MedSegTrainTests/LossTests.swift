import XCTest
import Torch
@testable import MedSegTrain

final class LossTests: XCTestCase {
    func testBinarySoftDiceByHand() throws {
        // probabilities p = sigmoid(logits); choose logits so p is 0.5 and ~1/~0.
        let logits = try Tensor([0, 20, -20, 0] as [Float], shape: [1, 1, 2, 2])
        let labels = try Tensor([1, 1, 0, 0] as [Float], shape: [1, 1, 2, 2])
        let loss = try SoftDiceLoss(smooth: 0, reduction: .batch, includeBackground: true)(logits, labels)
        // intersection = 0.5 + 1 = 1.5; sum p = 2, sum t = 2 -> dice = 3 / 4
        XCTAssertEqual(try loss.item(), 0.25, accuracy: 1e-6)
    }

    func testMultiClassDiceIgnoresBackgroundAndPerfectPredictionIsZero() throws {
        let labels = try Tensor([0, 1, 2, 1] as [Int64], shape: [1, 1, 2, 2])
        let perfect = try F.oneHot(labels.squeeze(dim: 1), numClasses: 3).permute([0, 3, 1, 2]).float() * 40
        XCTAssertEqual(try SoftDiceLoss()(perfect, labels).item(), 0, accuracy: 1e-5)
        XCTAssertEqual(try CompoundLoss.diceCE()(perfect, labels).item(), 0, accuracy: 1e-5)
        let uniform = try Tensor.zeros([1, 3, 2, 2])
        // softmax = 1/3 everywhere; class 1: I = 2/3, sums 4/3 + 2 -> dice 0.4; class 2: I = 1/3, 4/3 + 1 -> 2/7
        let expected = 1 - (0.4 + 2.0 / 7.0) / 2
        XCTAssertEqual(try SoftDiceLoss(smooth: 0)(uniform, labels).item(), expected, accuracy: 1e-6)
    }

    func testPerSampleDiceDiffersFromBatchDice() throws {
        let logits = try Tensor([9, 9, -9, -9, 9, -9, -9, -9] as [Float], shape: [2, 1, 2, 2])
        let labels = try Tensor([1, 1, 0, 0, 0, 0, 0, 1] as [Float], shape: [2, 1, 2, 2])
        let sample = try SoftDiceLoss(smooth: 0, reduction: .sample, includeBackground: true)(logits, labels).item()
        let batch = try SoftDiceLoss(smooth: 0, reduction: .batch, includeBackground: true)(logits, labels).item()
        XCTAssertEqual(sample, 0.5, accuracy: 1e-3)   // dice 1 and 0
        XCTAssertEqual(batch, 1 - 4.0 / 6.0, accuracy: 1e-3)
    }

    func testCompoundAndBCE() throws {
        let logits = try Tensor([0.3, -1.2, 2.0, 0.1] as [Float], shape: [1, 1, 2, 2])
        let labels = try Tensor([1, 0, 1, 0] as [Float], shape: [1, 1, 2, 2])
        let bce = try BCEWithLogitsLoss()(logits, labels).item()
        let manual = zip([0.3, -1.2, 2.0, 0.1], [1.0, 0, 1, 0]).map { x, y in
            max(x, 0) - x * y + Foundation.log(1 + Foundation.exp(-abs(x)))
        }.reduce(0, +) / 4
        XCTAssertEqual(bce, manual, accuracy: 1e-6)
        let dice = try SoftDiceLoss(smooth: 1, reduction: .sample, includeBackground: true)(logits, labels).item()
        XCTAssertEqual(try CompoundLoss.bceDice()(logits, labels).item(), bce + dice, accuracy: 1e-6)
    }

    func testDeepSupervisionWeightsAndDownsampledLabels() throws {
        XCTAssertEqual(DeepSupervisionLoss.defaultWeights(count: 3), [1 / 1.5, 0.5 / 1.5, 0])
        let labels = try Tensor([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] as [Float], shape: [1, 1, 4, 4])
        let full = try labels * 40 - 20
        let half = try F.maxPool2d(full, kernel: 2)
        let quarter = try Tensor.zeros([1, 1, 1, 1])
        let loss = try DeepSupervisionLoss(BCEWithLogitsLoss())([full, half, quarter], labels)
        XCTAssertLessThan(try loss.item(), 1e-6, "matching outputs at every weighted scale give ~0 loss")
    }
}
