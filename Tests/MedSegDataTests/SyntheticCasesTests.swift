import XCTest
@testable import MedSegData

final class SyntheticCasesTests: XCTestCase {
    func testCasesAreDeterministicAndLearnable() throws {
        let synth = try SyntheticCases(.init(dims: 2, size: [64, 48], classes: 2, seed: 3))
        let a = synth.makeCase(0), b = synth.makeCase(0), c = synth.makeCase(1)
        XCTAssertEqual(a.image.voxels, b.image.voxels)
        XCTAssertNotEqual(a.image.voxels, c.image.voxels)
        XCTAssertEqual(a.image.size, [64, 48])
        XCTAssertEqual(Set(a.label.voxels).isSubset(of: [0, 1, 2]), true)
        // Foreground occupies a real but minority fraction of the image in every case.
        for i in 0..<10 {
            let (image, label) = synth.makeCase(i)
            let fg = label.voxels.filter { $0 > 0 }.count
            XCTAssertGreaterThan(fg, 20, "case \(i)")
            XCTAssertLessThan(Double(fg), 0.6 * Double(label.voxelCount), "case \(i)")
            // Classes differ from background by more than the noise: mean contrast of several noise SDs.
            let bg = zip(image.voxels, label.voxels).filter { $0.1 == 0 }.map { Double($0.0) }
            let mean = { (v: [Double]) in v.reduce(0, +) / Double(v.count) }
            for cls in Set(label.voxels) where cls > 0 {
                let values = zip(image.voxels, label.voxels).filter { $0.1 == cls }.map { Double($0.0) }
                XCTAssertGreaterThan(abs(mean(values) - mean(bg)), 10, "case \(i) class \(cls)")
            }
        }
    }

    func testThreeDimensionalCasesAreAnisotropic() throws {
        let synth = try SyntheticCases(.init(dims: 3, size: [32, 32, 16]))
        let (image, label) = synth.makeCase(2)
        XCTAssertEqual(image.geometry.spacing, [0.8, 0.8, 2.5])
        XCTAssertEqual(label.voxelCount, 32 * 32 * 16)
        XCTAssertTrue(label.voxels.contains(2) || label.voxels.contains(1))
    }

    func testInvalidOptionsAreRejected() {
        XCTAssertThrowsError(try SyntheticCases(.init(dims: 2, size: [8, 8])))
        XCTAssertThrowsError(try SyntheticCases(.init(dims: 4)))
        XCTAssertThrowsError(try SyntheticCases(.init(dims: 2, classes: 0)))
    }
}
