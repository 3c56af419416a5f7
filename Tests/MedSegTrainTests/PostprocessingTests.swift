import Foundation
import XCTest
import MedSegData
import MedSegTrain
import TestSupport

final class PostprocessingTests: XCTestCase {
    /// A 2D label map drawn as rows (y) of digits (x); '.' is background.
    private func labels(_ rows: [String]) -> MedicalImage {
        let voxels = rows.flatMap { $0.map { Float(String($0)) ?? 0 } }
        return MedicalImage(size: [rows[0].count, rows.count], voxels: voxels, pixelType: .uint8)
    }

    /// A 2D label map of `width` x `height` with rectangles (label, x range, y range) painted in order.
    private func canvas(_ width: Int, _ height: Int, _ boxes: [(Int, ClosedRange<Int>, ClosedRange<Int>)]) -> MedicalImage {
        var voxels = [Float](repeating: 0, count: width * height)
        for (label, xs, ys) in boxes {
            for y in ys { for x in xs { voxels[y * width + x] = Float(label) } }
        }
        return MedicalImage(size: [width, height], voxels: voxels, pixelType: .uint8)
    }

    private var temporaryFolder: URL!

    override func setUpWithError() throws {
        temporaryFolder = try makeTemporaryFolder("postprocessing")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: temporaryFolder)
    }

    // MARK: - apply

    func testApplyForegroundAsOneKeepsTheLargestComponentOfAllLabelsTogether() {
        let image = labels(["11..1",
                            "12...",
                            ".2..2",
                            "....2"])
        let result = Postprocessing(foreground_as_one: true).apply(to: image)
        // Labels 1 and 2 touching at the left form one component of 5; the two smaller ones go.
        XCTAssertEqual(result.voxels, labels(["11...",
                                              "12...",
                                              ".2...",
                                              "....."]).voxels)
    }

    /// nnU-Net v2's components (what find-best now chooses with): diagonal contact joins, and
    /// components that tie for the largest all stay; face connectivity keeps the first only.
    func testFullConnectivityJoinsDiagonalsAndKeepsTies() {
        let image = labels(["11...",
                            "..1..",
                            ".....",
                            "22.33"])
        XCTAssertEqual(Postprocessing(foreground_as_one: true, connectivity: .full).apply(to: image).voxels,
                       labels(["11...",
                               "..1..",
                               ".....",
                               "....."]).voxels)
        XCTAssertEqual(Postprocessing(foreground_as_one: true).apply(to: image).voxels,
                       labels(["11...",
                               ".....",
                               ".....",
                               "....."]).voxels, "face: the first of the three two-voxel components")
        let ties = labels(["1...1", ".....", "1...."])
        XCTAssertEqual(Postprocessing(keep_largest_component: [1], connectivity: .full).apply(to: ties).voxels, ties.voxels)
    }

    func testApplyKeepLargestComponentPerLabelLeavesOtherLabelsAlone() {
        let image = labels(["11.22",
                            "1....",
                            "...1.",
                            "2...2"])
        let result = Postprocessing(keep_largest_component: [1]).apply(to: image)
        XCTAssertEqual(result.voxels, labels(["11.22",
                                              "1....",
                                              ".....",
                                              "2...2"]).voxels)
        let both = Postprocessing(keep_largest_component: [1, 2]).apply(to: image)
        XCTAssertEqual(both.voxels, labels(["11.22",
                                            "1....",
                                            ".....",
                                            "....."]).voxels)
    }

    func testApplyIn3DKeepsABlobJoinedThroughZ() {
        // z = 0: two label-1 voxels and a lone one; z = 1: a bar above the first two, joining them.
        let slice0: [Float] = [1, 0, 1, 0,
                               0, 0, 0, 1]
        let slice1: [Float] = [1, 1, 1, 0,
                               0, 0, 0, 0]
        let image = MedicalImage(size: [4, 2, 2], voxels: slice0 + slice1, pixelType: .uint8,
                                 geometry: ImageGeometry(spacing: [0.5, 0.5, 2]))
        let result = Postprocessing(keep_largest_component: [1]).apply(to: image)
        XCTAssertEqual(result.voxels, [1, 0, 1, 0,
                                       0, 0, 0, 0,
                                       1, 1, 1, 0,
                                       0, 0, 0, 0])
        XCTAssertEqual(result.size, image.size)
        XCTAssertEqual(result.geometry, image.geometry)
        XCTAssertEqual(result.pixelType, image.pixelType)
    }

    func testWriteLoadAndApplyRoundTrip() throws {
        let chosen = Postprocessing(foreground_as_one: true, keep_largest_component: [2, 1])
        let url = temporaryFolder.appendingPathComponent(Postprocessing.fileName)
        try chosen.write(to: url)
        XCTAssertEqual(url.lastPathComponent, "postprocessing.json")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        XCTAssertEqual(json["foreground_as_one"] as? Bool, true)
        XCTAssertEqual(json["keep_largest_component"] as? [Int], [2, 1])
        let loaded = try Postprocessing.load(url)
        XCTAssertEqual(loaded, chosen)

        let image = labels(["22.1",
                            "2...",
                            "...2",
                            "11.2"])
        let once = loaded.apply(to: image)
        XCTAssertEqual(once.voxels, chosen.apply(to: image).voxels)
        XCTAssertEqual(once.voxels, labels(["22..",
                                            "2...",
                                            "....",
                                            "...."]).voxels)
        XCTAssertEqual(loaded.apply(to: once).voxels, once.voxels, "applying again changes nothing")
        XCTAssertEqual(Postprocessing().apply(to: image).voxels, image.voxels)
        XCTAssertTrue(Postprocessing().isIdentity)
    }

    func testLoadErrorsNameTheFile() throws {
        let missing = temporaryFolder.appendingPathComponent("missing-postprocessing.json")
        XCTAssertThrowsError(try Postprocessing.load(missing)) { error in
            XCTAssertTrue("\(error)".contains("missing-postprocessing.json"), "\(error)")
        }
        let broken = temporaryFolder.appendingPathComponent("broken-postprocessing.json")
        try Data(#"{"foreground_as_one": "yes"}"#.utf8).write(to: broken)
        XCTAssertThrowsError(try Postprocessing.load(broken)) { error in
            XCTAssertTrue("\(error)".contains("broken-postprocessing.json"), "\(error)")
            XCTAssertTrue("\(error)".contains("not a valid post-processing file"), "\(error)")
        }
        let background = temporaryFolder.appendingPathComponent("background-postprocessing.json")
        try Data(#"{"foreground_as_one": false, "keep_largest_component": [0]}"#.utf8).write(to: background)
        XCTAssertThrowsError(try Postprocessing.load(background)) { error in
            XCTAssertTrue("\(error)".contains("background-postprocessing.json"), "\(error)")
        }
    }

    /// nnU-Net v2's own files: the pickle `nnUNetv2_predict -pp_pkl_file` reads and the JSON written
    /// beside it, with a list of labels, one label and a region (a tuple) as steps. Applied as
    /// nnU-Net applies them: full connectivity, ties all kept (scipy.ndimage.label with a 3^3 block
    /// as the reference, which is what skimage's label does).
    func testNNUNetsPostprocessingFilesApplyAsNNUNetDoes() throws {
        guard (try? Python.run("import scipy.ndimage, numpy", interpreter: "/usr/bin/python3")) != nil else {
            throw XCTSkip("/usr/bin/python3 has no scipy (optional reference check)")
        }
        let size = [14, 12, 9]
        var generator = SplitMix64(seed: 5)
        let voxels = (0..<size.reduce(1, *)).map { _ -> Float in
            let r = generator.next() % 100
            return r < 12 ? 1 : r < 22 ? 2 : 0
        }
        let image = MedicalImage(size: size, voxels: voxels, pixelType: .uint8)
        let labelsFile = temporaryFolder.appendingPathComponent("labels.u8"), reference = temporaryFolder.appendingPathComponent("reference.u8")
        try Data(voxels.map { UInt8($0) }).write(to: labelsFile)
        let pkl = temporaryFolder.appendingPathComponent("postprocessing.pkl"), json = temporaryFolder.appendingPathComponent("postprocessing.json")
        _ = try Python.run("""
        import json, pickle, sys, types, numpy as np, scipy.ndimage
        labels_file, out, pkl, js = sys.argv[1:5]
        # nnU-Net's function under its own module name, so the pickle names it as nnU-Net's does.
        name = "nnunetv2.postprocessing.remove_connected_components"
        module = types.ModuleType(name)
        def remove_all_but_largest_component_from_segmentation(segmentation, labels_or_regions, background_label=0):
            raise RuntimeError("not called")
        remove_all_but_largest_component_from_segmentation.__module__ = name
        module.remove_all_but_largest_component_from_segmentation = remove_all_but_largest_component_from_segmentation
        sys.modules[name] = module
        kwargs = [{"labels_or_regions": [1, 2]}, {"labels_or_regions": 1}, {"labels_or_regions": (1, 2)}]
        with open(pkl, "wb") as f:
            pickle.dump(([remove_all_but_largest_component_from_segmentation] * 3, kwargs), f)
        with open(js, "w") as f:
            json.dump({"postprocessing_fns": [remove_all_but_largest_component_from_segmentation.__name__] * 3,
                       "postprocessing_kwargs": kwargs}, f)
        seg = np.fromfile(labels_file, dtype=np.uint8).reshape(9, 12, 14)
        for step in kwargs:
            lr = step["labels_or_regions"]
            mask = np.isin(seg, np.array(lr).ravel())
            components, n = scipy.ndimage.label(mask, structure=np.ones((3, 3, 3)))
            sizes = np.bincount(components.ravel())[1:]
            keep = np.isin(components, np.flatnonzero(sizes == sizes.max()) + 1) if n else mask
            seg[mask & ~keep] = 0
        seg.astype(np.uint8).tofile(out)
        """, [labelsFile.path, reference.path, pkl.path, json.path], interpreter: "/usr/bin/python3")
        let expected = try Data(contentsOf: reference).map(Float.init)
        XCTAssertNotEqual(expected, voxels, "the steps remove something")
        for file in [pkl, json] {
            let post = try Postprocessing.load(file)
            XCTAssertEqual(post.keep_largest_of, [[1, 2], [1], [1, 2]], file.lastPathComponent)
            XCTAssertEqual(post.connectivity, .full)
            XCTAssertEqual(post.apply(to: image).voxels, expected, file.lastPathComponent)
        }
        // Another step function, or another background, is refused naming the file.
        try Data(#"{"postprocessing_fns": ["fill_holes"], "postprocessing_kwargs": [{}]}"#.utf8).write(to: json)
        XCTAssertThrowsError(try Postprocessing.load(json)) { XCTAssertTrue("\($0)".contains("\(json.path): step 1 is fill_holes"), "\($0)") }
        try Data(#"{"postprocessing_fns": ["remove_all_but_largest_component_from_segmentation"], "postprocessing_kwargs": [{"labels_or_regions": 1, "background_label": 3}]}"#.utf8).write(to: json)
        XCTAssertThrowsError(try Postprocessing.load(json)) { XCTAssertTrue("\($0)".contains("background_label 3"), "\($0)") }
    }

    // MARK: - choose

    func testChooseKeepsTheLargestComponentWhenThePredictionHasASpuriousBlob() throws {
        // Reference: a 6x6 square. Prediction: the same square plus a spurious 2x2 blob.
        let reference = canvas(20, 20, [(1, 2...7, 2...7)])
        let prediction = canvas(20, 20, [(1, 2...7, 2...7), (1, 15...16, 15...16)])
        let second = canvas(20, 20, [(1, 10...13, 3...5)])   // predicted perfectly
        let (chosen, report) = try Postprocessing.choose(cases: [(prediction, reference), (second, second)], labels: [1])
        XCTAssertEqual(chosen, Postprocessing(foreground_as_one: true, keep_largest_component: [], connectivity: .full))
        // Dice of the first case 2*36 / (36 + 40) before, 1 after; the second case is 1 throughout.
        let before = String(format: "%.5f", (72.0 / 76.0 + 1) / 2)
        XCTAssertTrue(report[0].contains("\(before) -> 1.00000"), report.joined(separator: "\n"))
        XCTAssertTrue(report[0].hasSuffix("kept") && !report[0].contains("not kept"), report[0])
    }

    func testChooseRejectsWhenTheReferenceItselfHasTwoComponents() throws {
        // Both reference and prediction have two separate blobs: keeping one halves the overlap.
        let reference = canvas(20, 20, [(1, 1...4, 1...4), (1, 12...15, 12...15)])
        let prediction = canvas(20, 20, [(1, 1...4, 1...5), (1, 12...15, 12...15)])
        let (chosen, report) = try Postprocessing.choose(cases: [(prediction, reference)], labels: [1])
        XCTAssertEqual(chosen, Postprocessing(connectivity: .full))
        XCTAssertTrue(report[0].contains("not kept"), report[0])
    }

    func testChoosePerLabelKeepsOnlyTheLabelWhoseDiceRises() throws {
        // Label 1: a square plus a spurious blob. Label 2: two separate blobs in the reference too.
        let reference = canvas(30, 30, [(1, 2...7, 2...7), (2, 2...4, 20...22), (2, 20...22, 20...22)])
        let prediction = canvas(30, 30, [(1, 2...7, 2...7), (1, 20...21, 2...3), (2, 2...4, 20...22), (2, 20...22, 20...22)])
        let (chosen, report) = try Postprocessing.choose(cases: [(prediction, reference)], labels: [1, 2])
        // Foreground as one would drop both label-2 blobs: mean (72/76 + 1)/2 -> (1 + 0)/2.
        XCTAssertFalse(chosen.foreground_as_one)
        XCTAssertEqual(chosen.keep_largest_component, [1])
        XCTAssertEqual(report.count, 3, report.joined(separator: "\n"))
        XCTAssertTrue(report[1].contains("label 1") && report[1].contains("0.94737 -> 1.00000: kept"), report[1])
        // Label 2's two blobs tie at 9 voxels: nnU-Net v2 keeps both, so nothing changes for it.
        XCTAssertTrue(report[2].contains("label 2") && report[2].contains("1.00000 -> 1.00000: not kept"), report[2])
    }

    func testChooseRejectsForegroundAsOneWhenAnyLabelGetsWorse() throws {
        // Label 2 touches the label-1 square, plus a lone reference voxel predicted correctly;
        // label 1 has a large spurious blob. Foreground as one raises the mean (label 1 gains far
        // more than label 2 loses) but lowers label 2, so nnU-Net's rule rejects it.
        let reference = canvas(30, 30, [(1, 2...7, 2...7), (2, 8...13, 2...7), (2, 25...25, 25...25)])
        let prediction = canvas(30, 30, [(1, 2...7, 2...7), (2, 8...13, 2...7), (2, 25...25, 25...25),
                                         (1, 20...23, 10...14)])
        let (chosen, report) = try Postprocessing.choose(cases: [(prediction, reference)], labels: [1, 2])
        XCTAssertFalse(chosen.foreground_as_one, report.joined(separator: "\n"))
        XCTAssertTrue(report[0].contains("Dice fell for label 2 1.00000 -> 0.98630"), report[0])
        XCTAssertEqual(chosen.keep_largest_component, [1])
    }

    func testChooseLeavesLabelsAbsentFromBothOutOfTheMean() throws {
        // Label 2 appears in neither map: its Dice is undefined and must not count as 0 or 1.
        let reference = canvas(20, 20, [(1, 2...7, 2...7)])
        let prediction = canvas(20, 20, [(1, 2...7, 2...7), (1, 15...16, 15...16)])
        let (chosen, report) = try Postprocessing.choose(cases: [(prediction, reference)], labels: [1, 2])
        XCTAssertTrue(chosen.foreground_as_one)
        XCTAssertTrue(report[0].contains("0.94737 -> 1.00000: kept"), report[0])
        XCTAssertTrue(report[2].contains("label 2") && report[2].contains("undefined -> undefined: not kept"), report[2])
    }

    func testChooseRejectsMismatchedSizesAndEmptyInput() {
        XCTAssertThrowsError(try Postprocessing.choose(cases: [], labels: [1]))
        XCTAssertThrowsError(try Postprocessing.choose(cases: [(canvas(4, 4, []), canvas(4, 5, []))], labels: [1]))
        XCTAssertThrowsError(try Postprocessing.choose(cases: [(canvas(4, 4, []), canvas(4, 4, []))], labels: [0]))
    }
}
