import Foundation
import XCTest
import MedSegData
import TestSupport

final class ConnectedComponentsTests: XCTestCase {
    /// A 2D mask drawn as rows (y) of characters (x), '#' inside; x fastest, like MedicalImage.
    private func mask(_ rows: [String]) -> (mask: [Bool], size: [Int]) {
        let width = rows[0].count
        precondition(rows.allSatisfy { $0.count == width })
        return (rows.flatMap { $0.map { $0 == "#" } }, [width, rows.count])
    }

    /// A 3D mask drawn as slices (z), each as rows (y) of characters (x).
    private func mask(_ slices: [[String]]) -> (mask: [Bool], size: [Int]) {
        let planes = slices.map { mask($0) }
        precondition(planes.allSatisfy { $0.size == planes[0].size })
        return (planes.flatMap(\.mask), planes[0].size + [slices.count])
    }

    func testDiagonalNeighboursAreSeparateIn2D() {
        let (m, size) = mask(["#..",
                              ".#.",
                              "..#"])
        let components = ConnectedComponents(mask: m, size: size)
        XCTAssertEqual(components.count, 3)
        XCTAssertEqual(components.sizes, [1, 1, 1])
        XCTAssertEqual(components.labels, [1, 0, 0,
                                           0, 2, 0,
                                           0, 0, 3])
    }

    func testFaceNeighboursJoinIn2DAndIdsFollowMemoryOrder() {
        let (m, size) = mask(["...##",
                              "#..#.",
                              "#....",
                              "###.#"])
        let components = ConnectedComponents(mask: m, size: size)
        // The top-right hook appears first in memory, then the L, then the lone voxel.
        XCTAssertEqual(components.sizes, [3, 5, 1])
        XCTAssertEqual(components.labels, [0, 0, 0, 1, 1,
                                           2, 0, 0, 1, 0,
                                           2, 0, 0, 0, 0,
                                           2, 2, 2, 0, 3])
    }

    func testRowEndsDoNotWrapIntoTheNextRow() {
        // (2, 0) and (0, 1) are neighbours in memory but not on the grid.
        let (m, size) = mask(["..#",
                              "#.."])
        XCTAssertEqual(ConnectedComponents(mask: m, size: size).sizes, [1, 1])
        // In 3D, (1, 1, 0) and (1, 0, 1) are one y-stride apart in memory but not neighbours either.
        let (v, size3) = mask([["...", ".#."],
                               [".#.", "..."]])
        XCTAssertEqual(ConnectedComponents(mask: v, size: size3).sizes, [1, 1])
    }

    func testBlobsJoinOnlyThroughZ() {
        let slices = [["##..##",
                       "##..##",
                       "......"],
                      ["......",
                       ".####.",
                       "......"]]
        let (v, size) = mask(slices)
        XCTAssertEqual(size, [6, 3, 2])
        let components = ConnectedComponents(mask: v, size: size)
        XCTAssertEqual(components.count, 1, "the bridge in z = 1 touches both blobs from above")
        XCTAssertEqual(components.sizes, [12])
        // Each slice alone: two blobs below, one bar above.
        XCTAssertEqual(ConnectedComponents(mask: mask(slices[0]).mask, size: [6, 3]).sizes, [4, 4])
        XCTAssertEqual(ConnectedComponents(mask: mask(slices[1]).mask, size: [6, 3]).sizes, [4])
    }

    func testEdgeAndCornerContactIn3DDoNotJoin() {
        // The even-parity corners of a 2x2x2 cube: every pair differs along two or three axes.
        let (even, size) = mask([["#.", ".#"],
                                 [".#", "#."]])
        XCTAssertEqual(ConnectedComponents(mask: even, size: size).sizes, [1, 1, 1, 1])
        // Adding (1, 1, 1) joins the three corners that share a face with it; (0, 0, 0) stays alone.
        let (joined, _) = mask([["#.", ".#"],
                                [".#", "##"]])
        let components = ConnectedComponents(mask: joined, size: size)
        XCTAssertEqual(components.sizes, [1, 4])
        XCTAssertEqual(components.labels, [1, 0, 0, 2,
                                           0, 2, 2, 2])
    }

    func testEmptyAndFullMasks() {
        let empty = ConnectedComponents(mask: Array(repeating: false, count: 24), size: [2, 3, 4])
        XCTAssertEqual(empty.count, 0)
        XCTAssertNil(empty.largest)
        XCTAssertEqual(ConnectedComponents.largestComponentMask(Array(repeating: false, count: 24), size: [2, 3, 4]),
                       Array(repeating: false, count: 24))
        let full = ConnectedComponents(mask: Array(repeating: true, count: 24), size: [2, 3, 4])
        XCTAssertEqual(full.sizes, [24])
    }

    func testLargestComponentMaskKeepsTheLargestAndTiesGoToTheFirst() {
        let (m, size) = mask(["##..#",
                              "....#",
                              "###.#"])
        XCTAssertEqual(ConnectedComponents.largestComponentMask(m, size: size),
                       mask(["....#",
                             "....#",
                             "....#"]).mask)
        let (tie, tieSize) = mask(["##...",
                                   "...##"])
        XCTAssertEqual(ConnectedComponents(mask: tie, size: tieSize).largest, 1)
        XCTAssertEqual(ConnectedComponents.largestComponentMask(tie, size: tieSize),
                       mask(["##...",
                             "....."]).mask)
    }

    func testLongSerpentineIsOneComponentWithoutRecursion() {
        // A one-voxel-wide path through a 301x301 grid: 45,451 voxels deep for a recursive fill.
        let width = 301, height = 301
        var m = [Bool](repeating: false, count: width * height)
        for y in 0..<height {
            if y % 2 == 0 {
                for x in 0..<width { m[y * width + x] = true }
            } else {
                m[y * width + (y % 4 == 1 ? width - 1 : 0)] = true
            }
        }
        let components = ConnectedComponents(mask: m, size: [width, height])
        XCTAssertEqual(components.sizes, [151 * width + 150])
    }

    /// Random masks labelled by scipy.ndimage.label must split into the same components: same
    /// count, and a one-to-one match between our ids and scipy's. Face connectivity is scipy's
    /// default structure; full connectivity its 3^n block of ones (skimage's default).
    func testAgreesWithScipyNdimageLabel() throws {
        guard (try? Python.run("import scipy.ndimage, numpy")) != nil else {
            throw XCTSkip("python3 has no scipy (optional reference check)")
        }
        var generator = SplitMix64(seed: 20240607)
        for (connectivity, density) in [(ConnectedComponents.Connectivity.face, UInt64(45)), (.full, 20)] {
            for size in [[17, 13], [11, 9, 7], [1, 30, 4]] {
                let count = size.reduce(1, *)
                let m = (0..<count).map { _ in generator.next() % 100 < density }
                let script = """
                import sys, numpy, scipy.ndimage
                shape = [int(s) for s in sys.argv[2].split(",")][::-1]
                mask = numpy.array([c == "1" for c in sys.argv[1]]).reshape(shape)
                structure = numpy.ones((3,) * mask.ndim) if sys.argv[3] == "full" else None
                labels, n = scipy.ndimage.label(mask, structure=structure)
                print(n)
                print(" ".join(str(v) for v in labels.ravel()))
                """
                let output = try Python.run(script, [m.map { $0 ? "1" : "0" }.joined(),
                                                     size.map(String.init).joined(separator: ","), connectivity.rawValue])
                let lines = output.split(separator: "\n")
                let scipyCount = try XCTUnwrap(Int(lines[0]))
                let scipyLabels = lines[1].split(separator: " ").map { Int32($0)! }
                let ours = ConnectedComponents(mask: m, size: size, connectivity: connectivity)
                XCTAssertEqual(ours.count, scipyCount, "size \(size)")
                XCTAssertGreaterThan(ours.count, 3, "the mask should be fragmented enough to test anything")
                XCTAssertEqual(scipyLabels.count, count)
                var toScipy: [Int32: Int32] = [:], fromScipy: [Int32: Int32] = [:]
                for i in 0..<count {
                    XCTAssertEqual(ours.labels[i] == 0, scipyLabels[i] == 0, "voxel \(i) of size \(size)")
                    guard ours.labels[i] != 0 else { continue }
                    XCTAssertEqual(toScipy[ours.labels[i], default: scipyLabels[i]], scipyLabels[i], "voxel \(i) of size \(size)")
                    XCTAssertEqual(fromScipy[scipyLabels[i], default: ours.labels[i]], ours.labels[i], "voxel \(i) of size \(size)")
                    toScipy[ours.labels[i]] = scipyLabels[i]
                    fromScipy[scipyLabels[i]] = ours.labels[i]
                }
            }
        }
        // Diagonal contact joins under full connectivity only; ties are all kept when asked.
        let diagonal = [true, false, false, true]
        XCTAssertEqual(ConnectedComponents(mask: diagonal, size: [2, 2], connectivity: .full).sizes, [2])
        XCTAssertEqual(ConnectedComponents.largestComponentMask([true, false, true], size: [3], keepingTies: true), [true, false, true])
        XCTAssertEqual(ConnectedComponents.largestComponentMask([true, false, true], size: [3]), [true, false, false])
    }

    /// Holes filled as scipy.ndimage.binary_fill_holes fills them (nnU-Net's non-zero mask), on
    /// random masks dense enough to enclose background.
    func testFillingHolesAgreesWithScipy() throws {
        guard (try? Python.run("import scipy.ndimage, numpy")) != nil else {
            throw XCTSkip("python3 has no scipy (optional reference check)")
        }
        var generator = SplitMix64(seed: 77)
        for size in [[19, 15], [9, 8, 7], [13, 11, 3]] {
            let count = size.reduce(1, *)
            let m = (0..<count).map { _ in generator.next() % 100 < 62 }
            let script = """
            import sys, numpy, scipy.ndimage
            shape = [int(s) for s in sys.argv[2].split(",")][::-1]
            mask = numpy.array([c == "1" for c in sys.argv[1]]).reshape(shape)
            print("".join("1" if v else "0" for v in scipy.ndimage.binary_fill_holes(mask).ravel()))
            """
            let output = try Python.run(script, [m.map { $0 ? "1" : "0" }.joined(), size.map(String.init).joined(separator: ",")])
            let expected = output.trimmingCharacters(in: .whitespacesAndNewlines).map { $0 == "1" }
            let filled = ConnectedComponents.fillingHoles(m, size: size)
            XCTAssertEqual(filled, expected, "size \(size)")
            XCTAssertGreaterThan(zip(filled, m).filter { $0 != $1 }.count, 0, "size \(size): some holes to fill")
        }
        let ring = [true, true, true, true, false, true, true, true, true]
        XCTAssertEqual(ConnectedComponents.fillingHoles(ring, size: [3, 3]), Array(repeating: true, count: 9))
    }
}
