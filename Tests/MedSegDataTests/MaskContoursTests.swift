import XCTest
@testable import MedSegData

/// Contours of 2D masks: filled again by the even-odd rule at the pixel centres, they give back
/// the mask exactly, islands, holes and diagonal neighbours included.
final class MaskContoursTests: XCTestCase {
    func testOnePixelIsADiamondAroundItsCentre() {
        let rings = MaskContours.polygons(mask: [false, false, false, false, true, false, false, false, false], width: 3, height: 3)
        XCTAssertEqual(rings.count, 1)
        XCTAssertEqual(Set(rings[0].map { [$0.x, $0.y] }), [[0.5, 1], [1, 0.5], [1.5, 1], [1, 1.5]])
    }

    func testAHoleIsARingOfItsOwnTurningTheOtherWay() {
        // A 5 x 5 square with its centre pixel missing.
        let mask = (0..<49).map { i -> Bool in let (x, y) = (i % 7, i / 7); return (1...5).contains(x) && (1...5).contains(y) && !(x == 3 && y == 3) }
        let rings = MaskContours.polygons(mask: mask, width: 7, height: 7)
        XCTAssertEqual(rings.count, 2)
        let areas = rings.map(MaskContours.signedArea)
        XCTAssertTrue(areas[0] * areas[1] < 0, "outer ring and hole turn opposite ways: \(areas)")
        XCTAssertEqual(rings.map(\.count).sorted(), [4, 8], "collinear vertices merged: a diamond hole, an octagon outside")
        XCTAssertEqual(MaskContours.rasterize(rings, width: 7, height: 7), mask)
    }

    func testRandomMasksComeBackExactly() {
        var generator = SystemRandomNumberGenerator()
        for (width, height, density) in [(9, 7, 0.5), (31, 17, 0.3), (40, 40, 0.7), (1, 5, 0.5), (12, 1, 0.6)] {
            for _ in 0..<20 {
                let mask = (0..<(width * height)).map { _ in Double.random(in: 0..<1, using: &generator) < density }
                let rings = MaskContours.polygons(mask: mask, width: width, height: height)
                XCTAssertEqual(MaskContours.rasterize(rings, width: width, height: height), mask, "\(width) x \(height)")
                XCTAssertTrue(rings.allSatisfy { $0.count >= 4 }, "every ring closes around at least one pixel")
            }
        }
        XCTAssertTrue(MaskContours.polygons(mask: [Bool](repeating: false, count: 12), width: 4, height: 3).isEmpty)
        let full = MaskContours.polygons(mask: [Bool](repeating: true, count: 12), width: 4, height: 3)
        XCTAssertEqual(full.count, 1)
        XCTAssertEqual(full[0].count, 8, "a full slice is an octagon through its edge pixels' sides")
    }
}
