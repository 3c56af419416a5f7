import Foundation
import XCTest
import TestSupport
@testable import MedSegData

/// `medseg data import`: every kind against a tiny replica of its published layout, built here
/// (JPEG, GIF and NIfTI-4D sources by Pillow/nibabel, the rest by ImageIO).
final class ImportTests: XCTestCase {
    private var root: URL!

    override func setUpWithError() throws {
        root = try makeTemporaryFolder("import")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: root) }

    // MARK: helpers

    /// Python helpers: rgb(path, seed) a smooth colour image, mask(path) a 0/255 rectangle.
    private let prelude = """
    import sys, os, json
    import numpy as np
    from PIL import Image
    root = sys.argv[1]
    def mk(path):
        path = os.path.join(root, path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path
    def rgb(path, seed, w=24, h=20, **kw):
        y, x = np.mgrid[0:h, 0:w]
        a = np.stack([(x * 9 + seed * 7) % 256, (y * 11 + seed * 5) % 256, ((x + y) * 4 + seed * 3) % 256], -1).astype(np.uint8)
        Image.fromarray(a).save(mk(path), **kw)
    def mask(path, w=24, h=20, value=255, mode='L', **kw):
        m = np.zeros((h, w), np.uint8)
        m[5:12, 6:15] = value
        im = Image.fromarray(m)
        if mode == '1': im = im.convert('1')
        im.save(mk(path), **kw)

    """

    private func python(_ body: String) throws {
        _ = try Python.run(prelude + body, [root.path])
    }

    private func url(_ path: String) -> URL { root.appendingPathComponent(path) }

    private func names(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: url(path).path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    private func write(_ image: MedicalImage, _ path: String) throws {
        try FileManager.default.createDirectory(at: url(path).deletingLastPathComponent(), withIntermediateDirectories: true)
        try ImageIO.write(image, to: url(path))
    }

    /// An RGB image whose channels all vary.
    private func colour(_ w: Int, _ h: Int, seed: Int) -> MedicalImage {
        let n = w * h
        var v = [Float](repeating: 0, count: 3 * n)
        for y in 0..<h {
            for x in 0..<w {
                v[y * w + x] = Float((x * 9 + seed * 7) % 256)
                v[n + y * w + x] = Float((y * 11 + seed * 5) % 256)
                v[2 * n + y * w + x] = Float(((x + y) * 4 + seed * 3) % 256)
            }
        }
        return MedicalImage(size: [w, h], channels: 3, voxels: v, pixelType: .rgb8)
    }

    private func gray(_ w: Int, _ h: Int, pages: Int = 1, seed: Int) -> MedicalImage {
        let n = w * h * pages
        return MedicalImage(size: pages > 1 ? [w, h, pages] : [w, h], voxels: (0..<n).map { Float(($0 * 7 + seed * 13) % 251) }, pixelType: .uint8)
    }

    /// A 0/`value` mask with a rectangle at x 6..<15, y 5..<12.
    private func rectangle(_ w: Int, _ h: Int, value: Float = 255) -> MedicalImage {
        var v = [Float](repeating: 0, count: w * h)
        for y in 5..<12 { for x in 6..<15 { v[y * w + x] = value } }
        return MedicalImage(size: [w, h], voxels: v, pixelType: .uint8)
    }

    private func load(_ out: URL) throws -> DatasetDescription {
        try DatasetDescription.load(out.appendingPathComponent("dataset.json"))
    }

    private func assertChecked(_ out: URL, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(DatasetChecker.check(out).map(\.description), [], file: file, line: line)
    }

    private func assertError(_ body: () throws -> Void, contains words: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("no error", file: file, line: line)
        } catch {
            let text = "\(error)"
            for w in words { XCTAssertTrue(text.contains(w), "'\(w)' in: \(text)", file: file, line: line) }
        }
    }

    private func skippedFiles(_ report: ImportReport) -> [String] { report.skipped.map(\.file).sorted() }

    // MARK: ISIC

    func testISIC2017() throws {
        try python("""
        for i in (0, 1, 2):
            rgb('isic/ISIC-2017_Training_Data/ISIC_000000%d.jpg' % i, i, quality=95)
        mask('isic/ISIC-2017_Training_Data/ISIC_0000000_superpixels.png')
        open(mk('isic/ISIC-2017_Training_Data/ISIC-2017_Training_Data_metadata.csv'), 'w').write('image_id,age\\n')
        for i in (0, 1, 9):
            mask('isic/ISIC-2017_Training_Part1_GroundTruth/ISIC_000000%d_segmentation.png' % i)
        rgb('isic/ISIC-2017_Validation_Data/ISIC_0000010.jpg', 10, quality=95)
        mask('isic/ISIC-2017_Validation_Part1_GroundTruth/ISIC_0000010_segmentation.png')
        rgb('isic/ISIC-2017_Test_v2_Data/ISIC_0000020.jpg', 20, w=30, h=26, quality=95)
        """)
        let out = url("out2017")
        let report = try DatasetImporter.run(kind: .isic2017, source: url("isic"), out: out)
        let d = try load(out)
        XCTAssertEqual(d.labels, ["background": 0, "lesion": 1])
        XCTAssertEqual(d.channel_names, ["0": "R", "1": "G", "2": "B"])
        XCTAssertEqual(d.numTraining, 2)
        XCTAssertEqual(d.file_ending, ".png")
        XCTAssertEqual(names("out2017/labelsTr"), ["ISIC_0000000.png", "ISIC_0000001.png"])
        XCTAssertEqual(names("out2017/imagesTr"), ["ISIC_0000000_0000.png", "ISIC_0000000_0001.png", "ISIC_0000000_0002.png",
                                                   "ISIC_0000001_0000.png", "ISIC_0000001_0001.png", "ISIC_0000001_0002.png"])
        // Validation and test splits are held out; validation's masks go to labelsTs.
        XCTAssertEqual(names("out2017/imagesTs").filter { $0.hasSuffix("_0000.png") }, ["ISIC_0000010_0000.png", "ISIC_0000020_0000.png"])
        XCTAssertEqual(names("out2017/labelsTs"), ["ISIC_0000010.png"])
        XCTAssertEqual(report.trainingCases, 2)
        XCTAssertEqual(report.testCases, 2)
        XCTAssertEqual(report.testLabels, 1)
        XCTAssertEqual(skippedFiles(report), ["ISIC-2017_Training_Data/ISIC_0000002.jpg",
                                              "ISIC-2017_Training_Part1_GroundTruth/ISIC_0000009_segmentation.png"])
        XCTAssertTrue(report.skipped.contains { $0.reason.contains("no mask ISIC_0000002_segmentation.png") }, "\(report)")
        XCTAssertTrue(report.skipped.contains { $0.reason.contains("mask without image") }, "\(report)")

        // Channels are the JPEG's decoded R, G, B; the mask's 255 became 1 inside the rectangle.
        let source = try ImageIO.read(url("isic/ISIC-2017_Training_Data/ISIC_0000001.jpg"))
        for c in 0..<3 {
            let channel = try ImageIO.read(out.appendingPathComponent("imagesTr/ISIC_0000001_000\(c).png"))
            XCTAssertEqual(channel.channels, 1)
            XCTAssertEqual(channel.size, [24, 20])
            XCTAssertEqual(channel.voxels, source.channel(c).voxels, "channel \(c)")
        }
        let label = try ImageIO.read(out.appendingPathComponent("labelsTr/ISIC_0000001.png"))
        XCTAssertEqual(label.size, [24, 20])
        XCTAssertEqual(Set(label.voxels), [0, 1])
        XCTAssertEqual(label.voxels[8 * 24 + 10], 1)
        XCTAssertEqual(label.voxels[0], 0)
        XCTAssertEqual(label.voxels.reduce(0, +), 63)
        XCTAssertEqual(try ImageIO.read(out.appendingPathComponent("imagesTs/ISIC_0000020_0002.png")).size, [30, 26])
        assertChecked(out)

        // The labelled validation split can join training instead.
        var options = ImportOptions(validationAsTraining: true)
        assertError({ _ = try DatasetImporter.run(kind: .isic2017, source: url("isic"), out: out, options: options) },
                    contains: ["out2017", "`overwrite: true`"])
        options.overwrite = true
        let merged = try DatasetImporter.run(kind: .isic2017, source: url("isic"), out: out, options: options)
        XCTAssertEqual(merged.trainingCases, 3)
        XCTAssertEqual(try load(out).numTraining, 3)
        XCTAssertEqual(names("out2017/labelsTs"), [])
        XCTAssertEqual(names("out2017/imagesTs"), ["ISIC_0000020_0000.png", "ISIC_0000020_0001.png", "ISIC_0000020_0002.png"])
        assertChecked(out)
    }

    func testISIC2018AndWrongLayout() throws {
        try python("""
        for i in (3, 4):
            rgb('isic/ISIC2018_Task1-2_Training_Input/ISIC_000000%d.jpg' % i, i, quality=90)
            mask('isic/ISIC2018_Task1_Training_GroundTruth/ISIC_000000%d_segmentation.png' % i)
        open(mk('isic/ISIC2018_Task1-2_Training_Input/LICENSE.txt'), 'w').write('CC-BY-NC')
        rgb('isic/ISIC2018_Task1-2_Validation_Input/ISIC_0000030.jpg', 30, quality=90)
        """)
        let out = url("out2018")
        let report = try DatasetImporter.run(kind: .isic2018, source: url("isic"), out: out)
        XCTAssertEqual(report.skipped, [])
        let d = try load(out)
        XCTAssertEqual(d.numTraining, 2)
        XCTAssertEqual(d.labels, ["background": 0, "lesion": 1])
        XCTAssertEqual(names("out2018/labelsTr"), ["ISIC_0000003.png", "ISIC_0000004.png"])
        XCTAssertEqual(names("out2018/imagesTs").count, 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("labelsTs").path))
        assertChecked(out)

        // An ISIC 2018 folder is not an ISIC 2017 one: the error names the folder expected.
        assertError({ _ = try DatasetImporter.run(kind: .isic2017, source: url("isic"), out: url("wrong")) },
                    contains: [url("isic").path, "ISIC-2017_Training_Data"])
    }

    // MARK: PH2

    func testPH2() throws {
        let base = "PH2Dataset/PH2 Dataset images"
        for (i, id) in ["IMD002", "IMD003", "IMD004"].enumerated() {
            try write(colour(24, 20, seed: i), "\(base)/\(id)/\(id)_Dermoscopic_Image/\(id).bmp")
            if id != "IMD004" { try write(rectangle(24, 20), "\(base)/\(id)/\(id)_lesion/\(id)_lesion.bmp") }
            try write(rectangle(24, 20), "\(base)/\(id)/\(id)_roi/\(id)_R1_Label4.bmp")
        }
        try Data("PH2 descriptions".utf8).write(to: url("PH2Dataset/PH2_dataset.txt"))
        let out = url("ph2")
        let report = try DatasetImporter.run(kind: .ph2, source: url("PH2Dataset"), out: out)
        let d = try load(out)
        XCTAssertEqual(d.labels, ["background": 0, "lesion": 1])
        XCTAssertEqual(d.channel_names, ["0": "R", "1": "G", "2": "B"])
        XCTAssertEqual(d.numTraining, 2)
        XCTAssertEqual(d.file_ending, ".png")
        XCTAssertEqual(names("ph2/labelsTr"), ["IMD002.png", "IMD003.png"])
        XCTAssertEqual(skippedFiles(report), ["PH2 Dataset images/IMD004"])
        XCTAssertTrue(report.skipped[0].reason.contains("IMD004_lesion/IMD004_lesion.bmp"), report.skipped[0].reason)
        // BMP is lossless: the channels are exact.
        let expected = colour(24, 20, seed: 1)
        for c in 0..<3 {
            XCTAssertEqual(try ImageIO.read(out.appendingPathComponent("imagesTr/IMD003_000\(c).png")).voxels, expected.channel(c).voxels)
        }
        XCTAssertEqual(try ImageIO.read(out.appendingPathComponent("labelsTr/IMD003.png")).voxels, rectangle(24, 20, value: 1).voxels)
        assertChecked(out)

        // SRC may also be "PH2 Dataset images" itself; an unrelated folder names what was expected.
        XCTAssertEqual(try DatasetImporter.run(kind: .ph2, source: url(base), out: url("ph2b")).trainingCases, 2)
        try FileManager.default.createDirectory(at: url("empty/other"), withIntermediateDirectories: true)
        assertError({ _ = try DatasetImporter.run(kind: .ph2, source: url("empty"), out: url("ph2c")) },
                    contains: [url("empty").path, "PH2 Dataset images"])
    }

    // MARK: ISBI 2012

    func testISBI2012() throws {
        let volume = gray(16, 12, pages: 3, seed: 1)
        var labels = gray(16, 12, pages: 3, seed: 2)
        labels.voxels = labels.voxels.map { $0 > 100 ? 255 : 0 }
        try write(volume, "isbi/train-volume.tif")
        try write(labels, "isbi/train-labels.tif")
        try write(gray(16, 12, pages: 2, seed: 3), "isbi/test-volume.tif")
        let out = url("isbi-out")
        let report = try DatasetImporter.run(kind: .isbi2012, source: url("isbi"), out: out)
        let d = try load(out)
        XCTAssertEqual(d.labels, ["background": 0, "cell": 1])
        XCTAssertEqual(d.channel_names, ["0": "EM"])
        XCTAssertEqual(d.numTraining, 3)
        XCTAssertEqual(d.file_ending, ".png")
        XCTAssertEqual(report.skipped, [])
        XCTAssertEqual(names("isbi-out/labelsTr"), ["train_00.png", "train_01.png", "train_02.png"])
        XCTAssertEqual(names("isbi-out/imagesTs"), ["test_00_0000.png", "test_01_0000.png"])
        // Page 1 of each stack is case train_01.
        let plane = 16 * 12
        let image = try ImageIO.read(out.appendingPathComponent("imagesTr/train_01_0000.png"))
        XCTAssertEqual(image.size, [16, 12])
        XCTAssertEqual(image.voxels, Array(volume.voxels[plane..<(2 * plane)]))
        let label = try ImageIO.read(out.appendingPathComponent("labelsTr/train_01.png"))
        XCTAssertEqual(label.voxels, labels.voxels[plane..<(2 * plane)].map { $0 == 255 ? 1 : 0 })
        assertChecked(out)

        // A label stack with fewer pages: the unlabelled page is skipped and named.
        try write(MedicalImage(size: [16, 12, 2], voxels: Array(labels.voxels[0..<(2 * plane)]), pixelType: .uint8), "isbi2/train-labels.tif")
        try write(volume, "isbi2/train-volume.tif")
        let short = try DatasetImporter.run(kind: .isbi2012, source: url("isbi2"), out: url("isbi2-out"))
        XCTAssertEqual(short.trainingCases, 2)
        XCTAssertEqual(short.skipped.map(\.description), ["train-volume.tif: page 2 has no label page (train-labels.tif has 2)"])

        try write(volume, "isbi3/volume.tif")
        assertError({ _ = try DatasetImporter.run(kind: .isbi2012, source: url("isbi3"), out: url("isbi3-out")) },
                    contains: [url("isbi3").path, "train-volume.tif"])
        // --overwrite with a source of the wrong layout leaves the old data set in place.
        assertError({ _ = try DatasetImporter.run(kind: .isbi2012, source: url("isbi3"), out: out, options: ImportOptions(overwrite: true)) },
                    contains: ["train-volume.tif"])
        XCTAssertEqual(try load(out).numTraining, 3)
    }

    /// `medseg data import` prints the summary and checks the result.
    func testCommandLineImportPrintsTheSummaryAndChecksTheResult() throws {
        guard Executables.medseg() != nil else { throw XCTSkip("medseg executable not built") }
        let (_, help) = try medseg(["data", "--help"], expectSuccess: false)
        XCTAssertTrue(help.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("import ") }, help)
        var labels = gray(16, 12, pages: 2, seed: 2)
        labels.voxels = labels.voxels.map { $0 > 100 ? 255 : 0 }
        try write(gray(16, 12, pages: 3, seed: 1), "cli/train-volume.tif")
        try write(labels, "cli/train-labels.tif")
        let (status, output) = try medseg(["data", "import", "isbi2012", url("cli").path, "--out", url("cli-out").path], expectSuccess: false)
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("2 training case(s)"), output)
        XCTAssertTrue(output.contains("train-volume.tif: page 2 has no label page"), output)
        XCTAssertTrue(output.contains("check: \(url("cli-out").path) OK"), output)
        let (failed, message) = try medseg(["data", "import", "drive", url("cli").path, "--out", url("cli-drive").path], expectSuccess: false)
        XCTAssertNotEqual(failed, 0)
        XCTAssertTrue(message.contains("training/images/"), message)
    }

    // MARK: DRIVE

    func testDRIVE() throws {
        for (i, id) in ["21", "22", "23"].enumerated() { try write(colour(24, 20, seed: i), "DRIVE/training/images/\(id)_training.tif") }
        try write(colour(24, 20, seed: 9), "DRIVE/test/images/01_test.tif")
        try python("""
        for i in ('21', '22'):
            mask('DRIVE/training/1st_manual/%s_manual1.gif' % i)
            mask('DRIVE/training/mask/%s_training_mask.gif' % i, mode='1')
        mask('DRIVE/training/1st_manual/40_manual1.gif')
        mask('DRIVE/test/1st_manual/01_manual1.gif', w=24, h=20)
        mask('DRIVE/test/mask/01_test_mask.gif', mode='1')
        """)
        let out = url("drive")
        let report = try DatasetImporter.run(kind: .drive, source: url("DRIVE"), out: out)
        let d = try load(out)
        XCTAssertEqual(d.labels, ["background": 0, "vessel": 1])
        XCTAssertEqual(d.channel_names, ["0": "R", "1": "G", "2": "B"])
        XCTAssertEqual(d.numTraining, 2)
        XCTAssertEqual(names("drive/labelsTr"), ["21_training.png", "22_training.png"])
        XCTAssertEqual(names("drive/imagesTs"), ["01_test_0000.png", "01_test_0001.png", "01_test_0002.png"])
        XCTAssertEqual(names("drive/labelsTs"), ["01_test.png"])
        XCTAssertEqual(names("drive/fovTr"), ["21_training.png", "22_training.png"])
        XCTAssertEqual(names("drive/fovTs"), ["01_test.png"])
        XCTAssertEqual(skippedFiles(report), ["training/1st_manual/40_manual1.gif", "training/images/23_training.tif"])
        // The GIF annotation decoded: 255 inside the rectangle became 1.
        XCTAssertEqual(try ImageIO.read(out.appendingPathComponent("labelsTr/22_training.png")).voxels, rectangle(24, 20, value: 1).voxels)
        XCTAssertEqual(try ImageIO.read(out.appendingPathComponent("fovTr/22_training.png")).voxels, rectangle(24, 20, value: 1).voxels)
        XCTAssertEqual(try ImageIO.read(out.appendingPathComponent("imagesTr/22_training_0001.png")).voxels, colour(24, 20, seed: 1).channel(1).voxels)
        assertChecked(out)

        assertError({ _ = try DatasetImporter.run(kind: .drive, source: url("DRIVE/training"), out: url("drive2")) },
                    contains: ["DRIVE/training", "training/images/"])
    }

    /// GIF decoding against Pillow: an interlaced 256-colour frame (long LZW codes, table resets)
    /// and a small non-interlaced gray one.
    func testGIFReaderMatchesPillow() throws {
        try python("""
        rng = np.random.default_rng(3)
        a = rng.integers(0, 256, (61, 97), dtype=np.uint8)
        a[:20, :40] = 7
        im = Image.fromarray(a, 'P')
        im.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tolist())
        im.save(mk('noise.gif'), optimize=False)
        back = Image.open(mk('noise.gif'))
        Image.fromarray(np.array(back)).save(mk('noise_indices.png'))
        back.convert('RGB').save(mk('noise_rgb.png'))
        g = Image.fromarray((np.arange(70).reshape(7, 10) * 3).astype(np.uint8), 'L')
        g.save(mk('small.gif'))
        g.save(mk('small.png'))
        """)
        let indices = try GIFImage.read(url("noise.gif"), palette: .indices)
        XCTAssertEqual(indices.size, [97, 61])
        XCTAssertEqual(indices.voxels, try ImageIO.read(url("noise_indices.png")).voxels)
        let colours = try GIFImage.read(url("noise.gif"))
        XCTAssertEqual(colours.channels, 3)
        XCTAssertEqual(colours.voxels, try ImageIO.read(url("noise_rgb.png")).voxels)
        let small = try GIFImage.read(url("small.gif"))
        XCTAssertEqual(small.channels, 1)
        XCTAssertEqual(small.voxels, try ImageIO.read(url("small.png")).voxels)
        // A truncated file is a one-line error naming it.
        let bytes = try Data(contentsOf: url("noise.gif"))
        try bytes.prefix(bytes.count / 2).write(to: url("cut.gif"))
        assertError({ _ = try GIFImage.read(url("cut.gif")) }, contains: ["cut.gif", "truncated"])
    }

    // MARK: MSD

    func testMSD() throws {
        try python("""
        import nibabel as nib
        def save(a, path, affine):
            nib.save(nib.Nifti1Image(a, affine), mk(path))
        aff = np.diag([0.8, 0.8, 2.5, 1.0]); aff[:3, 3] = [-10, 20, 5]
        rng = np.random.default_rng(0)
        labels = {'0': 'background', '1': 'liver', '2': 'cancer'}
        for i in (0, 1):
            save(rng.normal(0, 100, (10, 9, 6)).astype(np.int16), 'Task03_Liver/imagesTr/liver_%d.nii.gz' % i, aff)
            l = np.zeros((10, 9, 6), np.uint8); l[2:6, 2:6, 1:4] = 1; l[3:4, 3:4, 2] = 2
            save(l, 'Task03_Liver/labelsTr/liver_%d.nii.gz' % i, aff)
            open(mk('Task03_Liver/imagesTr/._liver_%d.nii.gz' % i), 'wb').write(b'\\x00\\x05\\x16\\x07')
        save(rng.normal(0, 100, (10, 9, 6)).astype(np.int16), 'Task03_Liver/imagesTs/liver_132.nii.gz', aff)
        json.dump({'name': 'Liver', 'description': 'Liver and tumour segmentation', 'reference': 'IRCAD', 'licence': 'CC-BY-SA 4.0',
                   'tensorImageSize': '3D', 'modality': {'0': 'CT'}, 'labels': labels, 'numTraining': 3, 'numTest': 1,
                   'training': [{'image': './imagesTr/liver_%d.nii.gz' % i, 'label': './labelsTr/liver_%d.nii.gz' % i} for i in (0, 1, 7)],
                   'test': ['./imagesTs/liver_132.nii.gz']}, open(mk('Task03_Liver/dataset.json'), 'w'))
        # 4D: two modalities per case.
        aff2 = np.diag([0.6, 0.6, 3.6, 1.0])
        for i in (0, 1):
            a = np.stack([np.full((8, 7, 5), 100.0 * i) + rng.normal(0, 1, (8, 7, 5)), rng.normal(500, 50, (8, 7, 5))], -1).astype(np.float32)
            save(a, 'Task05_Prostate/imagesTr/prostate_%02d.nii.gz' % i, aff2)
            if i == 1: np.save(mk('expected_adc.npy'), a[..., 1])
            l = np.zeros((8, 7, 5), np.uint8); l[1:4, 1:4, 1:3] = 1; l[4:6, 4:6, 2:4] = 2
            save(l, 'Task05_Prostate/labelsTr/prostate_%02d.nii.gz' % i, aff2)
        json.dump({'name': 'Prostate', 'modality': {'0': 'T2', '1': 'ADC'}, 'labels': {'0': 'background', '1': 'PZ', '2': 'TZ'},
                   'training': [{'image': './imagesTr/prostate_%02d.nii.gz' % i, 'label': './labelsTr/prostate_%02d.nii.gz' % i} for i in (0, 1)],
                   'test': []}, open(mk('Task05_Prostate/dataset.json'), 'w'))
        """)
        let out = url("Dataset003_Liver")
        let report = try DatasetImporter.run(kind: .msd, source: url("Task03_Liver"), out: out)
        let d = try load(out)
        XCTAssertEqual(d.labels, ["background": 0, "liver": 1, "cancer": 2])
        XCTAssertEqual(d.channel_names, ["0": "CT"])
        XCTAssertEqual(d.numTraining, 2)
        XCTAssertEqual(d.file_ending, ".nii.gz")
        XCTAssertEqual(d.name, "Liver")
        XCTAssertEqual(d.licence, "CC-BY-SA 4.0")
        XCTAssertEqual(names("Dataset003_Liver/imagesTr"), ["liver_0_0000.nii.gz", "liver_1_0000.nii.gz"])
        XCTAssertEqual(names("Dataset003_Liver/imagesTs"), ["liver_132_0000.nii.gz"])
        XCTAssertEqual(skippedFiles(report), ["imagesTr/liver_7.nii.gz"])
        XCTAssertTrue(report.skipped[0].reason.contains("missing"))
        let source = try ImageIO.read(url("Task03_Liver/imagesTr/liver_1.nii.gz"))
        let image = try ImageIO.read(out.appendingPathComponent("imagesTr/liver_1_0000.nii.gz"))
        XCTAssertEqual(image.size, [10, 9, 6])
        XCTAssertEqual(image.voxels, source.voxels)
        XCTAssertEqual(image.pixelType, .int16)
        XCTAssertEqual(image.geometry.spacing.map { ($0 * 1000).rounded() / 1000 }, [0.8, 0.8, 2.5])
        XCTAssertEqual(image.geometry.niftiAffine, source.geometry.niftiAffine)
        let label = try ImageIO.read(out.appendingPathComponent("labelsTr/liver_1.nii.gz"))
        XCTAssertEqual(Set(label.voxels), [0, 1, 2])
        XCTAssertEqual(label.geometry, image.geometry)
        assertChecked(out)

        // 4D images are split into one file per modality.
        let prostate = url("Dataset005_Prostate")
        XCTAssertEqual(try DatasetImporter.run(kind: .msd, source: url("Task05_Prostate"), out: prostate).trainingCases, 2)
        let p = try load(prostate)
        XCTAssertEqual(p.channel_names, ["0": "T2", "1": "ADC"])
        XCTAssertEqual(p.labels, ["background": 0, "PZ": 1, "TZ": 2])
        XCTAssertEqual(names("Dataset005_Prostate/imagesTr"), ["prostate_00_0000.nii.gz", "prostate_00_0001.nii.gz",
                                                               "prostate_01_0000.nii.gz", "prostate_01_0001.nii.gz"])
        let adc = try ImageIO.read(prostate.appendingPathComponent("imagesTr/prostate_01_0001.nii.gz"))
        let four = try ImageIO.read(url("Task05_Prostate/imagesTr/prostate_01.nii.gz"))
        XCTAssertEqual(four.channels, 2)
        XCTAssertEqual(adc.channels, 1)
        XCTAssertEqual(adc.size, [8, 7, 5])
        XCTAssertEqual(adc.voxels, four.channel(1).voxels)
        XCTAssertEqual(adc.voxels.reduce(0, +) / Float(adc.voxelCount), 500, accuracy: 10)
        assertChecked(prostate)

        assertError({ _ = try DatasetImporter.run(kind: .msd, source: url("Task03_Liver/imagesTr"), out: url("msd-wrong")) },
                    contains: ["Task03_Liver/imagesTr", "dataset.json"])
    }

    // MARK: folder

    /// An instance map (one value per nucleus, more than 32 values) becomes foreground = value > 0,
    /// with a warning naming the file; before, values above half the maximum were kept (most
    /// nuclei vanished). Several small values are kept or binarized as --labels says.
    func testFolderInstanceMasksAndLabelsOption() throws {
        var instances = MedicalImage(size: [40, 30], voxels: Array(repeating: 0, count: 1200), pixelType: .uint16)
        for k in 0..<60 {
            let x = (k % 10) * 4, y = (k / 10) * 5
            for dy in 0..<2 { for dx in 0..<2 { instances.voxels[(y + dy) * 40 + x + dx] = Float(k + 1) } }
        }
        try write(gray(40, 30, seed: 1), "inst/images/n1.png")
        try write(instances, "inst/masks/n1.png")
        let out = url("inst-out")
        let report = try DatasetImporter.run(kind: .folder, source: url("inst"), out: out)
        let label = try ImageIO.read(out.appendingPathComponent("labelsTr/n1.png"))
        XCTAssertEqual(label.voxels, instances.voxels.map { $0 > 0 ? 1 : 0 })
        XCTAssertEqual(label.voxels.filter { $0 == 1 }.count, 240)
        XCTAssertEqual(try load(out).labels, ["background": 0, "foreground": 1])
        XCTAssertTrue(report.warnings.contains { $0.contains("n1.png") && $0.contains("instance map") }, "\(report.warnings)")
        assertChecked(out)

        // 0/2/5 with --labels binary: foreground > 0; 0/255 needs no option.
        var small = MedicalImage(size: [8, 6], voxels: Array(repeating: 0, count: 48), pixelType: .uint8)
        small.voxels[3] = 2
        small.voxels[10] = 5
        try write(gray(8, 6, seed: 2), "few/images/a.png")
        try write(small, "few/masks/a.png")
        try write(gray(8, 6, seed: 3), "few/images/b.png")
        var white = small
        white.voxels = (0..<48).map { $0 % 5 == 0 ? 255 : 0 }
        try write(white, "few/masks/b.png")
        assertError({ _ = try DatasetImporter.run(kind: .folder, source: url("few"), out: url("few-none")) },
                    contains: ["masks/a.png", "0, 2, 5", "`labels: multiclass`"])
        let few = url("few-out")
        _ = try DatasetImporter.run(kind: .folder, source: url("few"), out: few, options: ImportOptions(labels: .binary))
        XCTAssertEqual(try ImageIO.read(few.appendingPathComponent("labelsTr/a.png")).voxels, small.voxels.map { $0 > 0 ? 1 : 0 })
        XCTAssertEqual(try ImageIO.read(few.appendingPathComponent("labelsTr/b.png")).voxels, white.voxels.map { $0 > 0 ? 1 : 0 })
    }

    /// Case folders of DICOM series pair with NIfTI masks by name and become NIfTI in the series'
    /// geometry; a case folder of two series is left out with the series to choose from.
    func testFolderOfDICOMSeries() throws {
        var masks: [String: MedicalImage] = [:]
        for (id, orientation) in [("p1", "axial"), ("p2", "oblique")] {
            let folder = url("dcm/images/\(id)")
            try DICOMFixtures.writeSeries(folder, ["--orientation", orientation, "--shuffle", "--seed", id == "p1" ? "1" : "2"])
            var mask = try ImageIO.read(folder)
            mask.voxels = mask.voxels.map { $0 > 500 ? 1 : 0 }
            mask.pixelType = .uint8
            try write(mask, "dcm/masks/\(id).nii.gz")
            masks[id] = mask
        }
        try DICOMFixtures.writeSeries(url("dcm/images/p3"), ["--prefix", "A"])
        try DICOMFixtures.writeSeries(url("dcm/images/p3"), ["--prefix", "B", "--series-number", "4"])
        try write(masks["p1"]!, "dcm/masks/p3.nii.gz")
        let out = url("dcm-out")
        let report = try DatasetImporter.run(kind: .folder, source: url("dcm"), out: out)
        XCTAssertEqual(report.trainingCases, 2)
        XCTAssertEqual(names("dcm-out/imagesTr"), ["p1_0000.nii.gz", "p2_0000.nii.gz"])
        XCTAssertTrue(report.skipped.contains { $0.file.contains("p3") && $0.reason.contains("holds 2 DICOM series") }, "\(report.skipped)")
        for id in ["p1", "p2"] {
            let image = try ImageIO.read(out.appendingPathComponent("imagesTr/\(id)_0000.nii.gz"))
            let series = try DICOM.read(folder: url("dcm/images/\(id)"))
            XCTAssertEqual(image.voxels, series.voxels, id)
            for (a, b) in zip(image.geometry.origin + image.geometry.direction, series.geometry.origin + series.geometry.direction) {
                XCTAssertEqual(a, b, accuracy: 1e-5, id)
            }
            XCTAssertEqual(try ImageIO.read(out.appendingPathComponent("labelsTr/\(id).nii.gz")).voxels, masks[id]!.voxels, id)
        }
        assertChecked(out)
    }

    /// `data import folder --images --masks` needs no SRC; a subcommand's error shows its own usage.
    func testFolderCommandLineWithoutSourceAndUsageOnError() throws {
        guard Executables.medseg() != nil else { throw XCTSkip("medseg executable not built") }
        try write(gray(8, 6, seed: 4), "cli/img/a.png")
        try write(MedicalImage(size: [8, 6], voxels: (0..<48).map { $0 % 3 == 0 ? 255 : 0 }, pixelType: .uint8), "cli/msk/a.png")
        let out = url("cli-out")
        let (status, output) = try Executables.runMedSeg(["data", "import", "folder", "--images", url("cli/img").path,
                                                          "--masks", url("cli/msk").path, "--out", out.path], expectSuccess: false)
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(names("cli-out/labelsTr"), ["a.png"])
        let (bad, message) = try Executables.runMedSeg(["data", "import", "folder", "--images", url("cli/img").path], expectSuccess: false)
        XCTAssertNotEqual(bad, 0)
        XCTAssertTrue(message.contains("Usage: medseg data import"), message)
        let (noSource, text) = try Executables.runMedSeg(["data", "import", "folder", "--out", url("cli-none").path], expectSuccess: false)
        XCTAssertNotEqual(noSource, 0)
        XCTAssertTrue(text.contains("Usage: medseg data import") && text.contains("<source>"), text)
    }

    func testFolder() throws {
        // 2D gray PNGs with 0/255 masks named <stem>_mask; one image and one mask without partner.
        for (i, id) in ["a", "b", "c"].enumerated() { try write(gray(24, 20, seed: i), "set/images/\(id).png") }
        try write(rectangle(24, 20), "set/masks/a_mask.png")
        try write(rectangle(24, 20), "set/masks/b_mask.png")
        try write(rectangle(24, 20), "set/masks/z_mask.png")
        let out = url("set-out")
        let report = try DatasetImporter.run(kind: .folder, source: url("set"), out: out)
        var d = try load(out)
        XCTAssertEqual(d.labels, ["background": 0, "foreground": 1])
        XCTAssertEqual(d.channel_names, ["0": "gray"])
        XCTAssertEqual(d.numTraining, 2)
        XCTAssertEqual(names("set-out/labelsTr"), ["a.png", "b.png"])
        XCTAssertEqual(skippedFiles(report), ["images/c.png", "masks/z_mask.png"])
        XCTAssertEqual(try ImageIO.read(out.appendingPathComponent("labelsTr/b.png")).voxels, rectangle(24, 20, value: 1).voxels)
        XCTAssertEqual(try ImageIO.read(out.appendingPathComponent("imagesTr/b_0000.png")).voxels, gray(24, 20, seed: 1).voxels)
        assertChecked(out)

        // Multi-class masks keep their values; --mask-suffix and test images.
        for id in ["p", "q"] {
            try write(gray(24, 20, seed: 5), "multi/img/\(id).png")
            var m = rectangle(24, 20, value: 1)
            m.voxels[0] = 3
            try write(m, "multi/lab/\(id)-seg.png")
        }
        try write(gray(24, 20, seed: 6), "multi/test/r.png")
        let multi = url("multi-out")
        var options = ImportOptions(images: url("multi/img"), masks: url("multi/lab"), testImages: url("multi/test"), maskSuffixes: ["-seg"])
        // Values 0, 1, 3 could be classes or not: without --labels the import names the file and its values.
        assertError({ _ = try DatasetImporter.run(kind: .folder, source: url("multi"), out: url("multi-ambiguous"), options: options) },
                    contains: ["-seg.png", "0, 1, 3", "`labels: multiclass`"])
        options.labels = .multiclass
        XCTAssertEqual(try DatasetImporter.run(kind: .folder, source: url("multi"), out: multi, options: options).trainingCases, 2)
        d = try load(multi)
        XCTAssertEqual(d.labels, ["background": 0, "label_1": 1, "label_2": 2, "label_3": 3])
        XCTAssertEqual(Set(try ImageIO.read(multi.appendingPathComponent("labelsTr/p.png")).voxels), [0, 1, 3])
        XCTAssertEqual(names("multi-out/imagesTs"), ["r_0000.png"])
        assertChecked(multi)

        // JPEG masks with artefacts are binarized above half their maximum; RGB JPEG images.
        try python("""
        for i in ('u', 'v'):
            rgb('jpg/images/%s.jpg' % i, ord(i), quality=90)
            m = np.zeros((20, 24), np.uint8); m[5:12, 6:15] = 255
            m[0, 0] = 40
            Image.fromarray(m).save(mk('jpg/masks/%s_segmentation.jpg' % i), quality=60)
        """)
        let jpg = url("jpg-out")
        let jpgReport = try DatasetImporter.run(kind: .folder, source: url("jpg"), out: jpg)
        XCTAssertEqual(jpgReport.trainingCases, 2)
        XCTAssertEqual(try load(jpg).channel_names, ["0": "R", "1": "G", "2": "B"])
        XCTAssertEqual(try ImageIO.read(jpg.appendingPathComponent("labelsTr/u.png")).voxels, rectangle(24, 20, value: 1).voxels)
        XCTAssertTrue(jpgReport.warnings.contains { $0.contains("binarized") }, "\(jpgReport.warnings)")
        assertChecked(jpg)

        // A colour-palette PNG mask (VOC style) is read as its indices; a gray GIF mask by value.
        try python("""
        for i in ('x', 'y'):
            Image.fromarray((np.arange(480).reshape(20, 24) % 200).astype(np.uint8)).save(mk('pal/images/%s.png' % i))
        m = np.zeros((20, 24), np.uint8); m[5:12, 6:15] = 1; m[0:2, 0:2] = 2
        p = Image.fromarray(m, 'P'); p.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759); p.save(mk('pal/masks/x.png'))
        mask('pal/masks/y.gif')
        """)
        let pal = url("pal-out")
        XCTAssertEqual(try DatasetImporter.run(kind: .folder, source: url("pal"), out: pal).trainingCases, 2)
        XCTAssertEqual(try load(pal).labels, ["background": 0, "label_1": 1, "label_2": 2])
        XCTAssertEqual(Set(try ImageIO.read(pal.appendingPathComponent("labelsTr/x.png")).voxels), [0, 1, 2])
        XCTAssertEqual(try ImageIO.read(pal.appendingPathComponent("labelsTr/y.png")).voxels, rectangle(24, 20, value: 1).voxels)
        assertChecked(pal)

        // 3D NIfTI images and masks: written as .nii.gz with their geometry.
        let geometry = ImageGeometry(spacing: [0.7, 0.7, 3], origin: [1, 2, 3])
        var volume = MedicalImage(size: [8, 6, 4], voxels: (0..<192).map { Float($0) - 50 }, pixelType: .int16, geometry: geometry)
        try write(volume, "vol/images/s1.nii.gz")
        volume.voxels = volume.voxels.map { $0 > 60 ? 1 : 0 }
        volume.pixelType = .uint8
        try write(volume, "vol/masks/s1_label.nii.gz")
        let vol = url("vol-out")
        _ = try DatasetImporter.run(kind: .folder, source: url("vol"), out: vol)
        XCTAssertEqual(try load(vol).file_ending, ".nii.gz")
        XCTAssertEqual(try load(vol).channel_names, ["0": "image"])
        let s1 = try ImageIO.read(vol.appendingPathComponent("imagesTr/s1_0000.nii.gz"))
        XCTAssertEqual(s1.size, [8, 6, 4])
        XCTAssertEqual(s1.voxels.first, -50)
        XCTAssertEqual(s1.geometry.spacing.map { ($0 * 1000).rounded() / 1000 }, [0.7, 0.7, 3])
        assertChecked(vol)

        assertError({ _ = try DatasetImporter.run(kind: .folder, source: url("set/masks"), out: url("f-wrong")) },
                    contains: ["set/masks", "images/"])
    }
}
