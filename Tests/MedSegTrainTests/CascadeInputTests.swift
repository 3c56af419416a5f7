import Foundation
import XCTest
@testable import MedSegData
@testable import MedSegTrain

final class CascadeInputTests: XCTestCase {
    /// A preprocessed 2D case: raw 4 x 4 (x, y), cropped to y in 1..<3 and x in 2..<4 (the box is
    /// in array order, y first), no resampling.
    private func properties() -> PreprocessedCase.Properties {
        PreprocessedCase.Properties(identifier: "c", shape: [1, 2, 2], spacing: [1, 1], originalSpacing: [1, 1],
                                    geometry: ImageGeometry(spacing: [1, 1]), shapeBeforeCropping: [4, 4],
                                    bboxUsedForCropping: [[1, 3], [2, 4]], shapeAfterCroppingAndBeforeResampling: [2, 2],
                                    classLocations: [:], normalization: [.zscore], useMaskForNorm: [false], targetSpacing: [1, 1])
    }

    func testPreviousSegmentationBecomesOneHotChannelsOfTheCroppedGrid() throws {
        // Rows (y) of x values; the crop keeps rows 1-2, columns 2-3: [[2, 0], [2, 1]].
        let rows: [[Float]] = [[2, 2, 1, 0],
                               [0, 1, 2, 0],
                               [1, 0, 2, 1],
                               [0, 0, 0, 0]]
        let previous = MedicalImage(size: [4, 4], voxels: rows.flatMap { $0 }, pixelType: .uint8)
        let channels = try CascadeInput.channels(previous: previous, properties: properties(), classes: 2)
        XCTAssertEqual(channels, [0, 0, 0, 1,   // label 1
                                  1, 0, 1, 0])  // label 2
    }

    func testASegmentationOfAnotherSizeIsAClearError() throws {
        let previous = MedicalImage(size: [3, 4], voxels: Array(repeating: 0, count: 12), pixelType: .uint8)
        XCTAssertThrowsError(try CascadeInput.channels(previous: previous, properties: properties(), classes: 2)) {
            XCTAssertTrue("\($0)".contains("case c") && "\($0)".contains("[3, 4]"), "\($0)")
        }
    }
}
