import Foundation
import XCTest
import TestSupport
@testable import MedSegTrain

final class TensorBoardTests: XCTestCase {
    func testCRC32CKnownValue() {
        XCTAssertEqual(CRC32C.checksum(Data("123456789".utf8)), 0xE306_9283)
    }

    func testEventFileIsReadableByTensorBoard() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tb-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try TensorBoardWriter(directory: dir)
        for step in 0..<5 {
            try writer.addScalar("train/loss", 1.0 / Double(step + 1), step: step)
        }
        try writer.addScalar("val/dice", 0.875, step: 4)
        try writer.flush()

        let script = """
        import sys
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        acc = EventAccumulator(sys.argv[1]); acc.Reload()
        for tag in sorted(acc.Tags()["scalars"]):
            for e in acc.Scalars(tag):
                print(tag, e.step, repr(e.value))
        """
        let output = try Python.run(script, [dir.path])
        let lines = output.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 6, output)
        XCTAssertEqual(lines.first, "train/loss 0 1.0")
        XCTAssertTrue(lines.contains("train/loss 3 0.25"), output)
        XCTAssertTrue(lines.contains("val/dice 4 0.875"), output)
    }
}
