import Foundation
import XCTest
@testable import MedSegTrain

/// The run's progress record: the EMA and best metric it keeps, early stopping's count, its keys at
/// the top level of a checkpoint's trainer state, and the run logger that records it.
final class TrainingProgressTests: XCTestCase {
    func testValidationsUpdateTheEMAAndTheBest() {
        var p = TrainingProgress()
        XCTAssertTrue(p.validated(epoch: 1, meanDice: 0.5, loss: 1.0, best: .dice))
        XCTAssertEqual(p.emaDice, 0.5)
        XCTAssertFalse(p.validated(epoch: 2, meanDice: 0.4, loss: 0.9, best: .dice), "EMA 0.49 is no better")
        XCTAssertEqual(p.emaDice!, 0.49, accuracy: 1e-12)
        XCTAssertEqual(p.bestEpoch, 1)
        XCTAssertTrue(p.validated(epoch: 3, meanDice: 0.9, loss: 0.8, best: .dice))
        XCTAssertEqual(p.bestEpoch, 3)
        XCTAssertNil(p.epochsWithoutImprovement(after: 4, patience: 2))
        XCTAssertEqual(p.epochsWithoutImprovement(after: 5, patience: 2), 2)
        XCTAssertNil(p.epochsWithoutImprovement(after: 50, patience: 0), "patience 0: never stops")

        var byLoss = TrainingProgress()
        XCTAssertTrue(byLoss.validated(epoch: 1, meanDice: 0.9, loss: 0.5, best: .loss))
        XCTAssertFalse(byLoss.validated(epoch: 2, meanDice: 0.95, loss: 0.6, best: .loss), "a higher loss is no better")
        XCTAssertEqual(byLoss.bestMetric, -0.5)
    }

    func testTheProgressKeysStayAtTheTopOfTheTrainerState() throws {
        let progress = TrainingProgress(epoch: 7, bestMetric: 0.8, bestEpoch: 5, emaDice: 0.75,
                                        history: [EpochRecord(epoch: 7, trainLoss: 0.3, learningRate: 1e-3, seconds: 2, imagesPerSecond: 10)])
        let encoded = try JSONEncoder().encode(progress)
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        XCTAssertEqual(Set(object.keys), ["epoch", "bestMetric", "bestEpoch", "emaDice", "history"])
        // A trainer state as checkpoints store it: the progress keys beside config, optimizer, ...
        let state = try JSONSerialization.jsonObject(with: JSONEncoder().encode(TrainingConfig())) as! [String: Any]
        object["config"] = state
        XCTAssertEqual(try JSONDecoder().decode(TrainingProgress.self, from: JSONSerialization.data(withJSONObject: object)), progress)
    }

    func testLinesSaidBeforeTheFolderExistsReachTheLog() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("logger-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let logger = RunLogger(console: false)
        logger.log("checking the data")
        try logger.record(EpochRecord(epoch: 1, trainLoss: 1, learningRate: 1, seconds: 1, imagesPerSecond: 1))
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path), "nothing is written before open")
        try logger.open(folder: folder, tensorBoard: false)
        logger.log("training")
        let text = try String(contentsOf: folder.appendingPathComponent("log.txt"), encoding: .utf8)
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].hasSuffix(" checking the data") && lines[1].hasSuffix(" training"), text)
    }
}
