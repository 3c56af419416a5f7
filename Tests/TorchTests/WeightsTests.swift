import Foundation
import XCTest
import TestSupport
@testable import Torch

/// Weight files against what PyTorch wrote (Fixtures/weights, expected.json) and read back by Python.
final class WeightsTests: XCTestCase {
    private var expected: [String: Any] = [:]
    private var temp: URL!

    override func setUpWithError() throws {
        expected = try fixtures.json("weights/expected.json")
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("weights-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    private func url(_ name: String) -> URL { fixtures.root.appendingPathComponent("weights/\(name)") }

    private func assertMatches(_ dict: StateDict, _ key: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let table = expected[key] as! [String: [String: Any]]
        XCTAssertEqual(Set(dict.keys), Set(table.keys), file: file, line: line)
        for (name, e) in table {
            let t = try XCTUnwrap(dict[name], name, file: file, line: line)
            XCTAssertEqual(t.shape, e["shape"] as! [Int], name, file: file, line: line)
            XCTAssertEqual(t.dtype.description, e["dtype"] as! String, name, file: file, line: line)
            // Foundation's JSON parser may round the last bit of a double; any real misread is far larger.
            let values = (e["values"] as! [NSNumber]).map(\.doubleValue)
            let got = try t.to(dtype: .float64).toArray(Double.self)
            XCTAssertEqual(got.count, values.count, name, file: file, line: line)
            for (a, b) in zip(got, values) where abs(a - b) > 1e-12 * max(1, abs(b)) {
                XCTFail("\(name): \(a) != \(b)", file: file, line: line)
                break
            }
        }
    }

    func testStateDictSavedByTorch() throws {
        let dict = try PyTorchCheckpoint.stateDict(from: url("plain.pth"))
        try assertMatches(dict, "plain")
        XCTAssertEqual(dict.keys, expected["plain_order"] as! [String], "file order is kept")
        XCTAssertEqual(try dict["1.num_batches_tracked"]?.itemInt(), 7)
    }

    func testNestedDDPCheckpoint() throws {
        let dict = try PyTorchCheckpoint.stateDict(from: url("ddp_nested.pth"))
        try assertMatches(dict, "plain")
        guard case .dict(let top) = try PyTorchCheckpoint.load(url("ddp_nested.pth")) else { return XCTFail("not a dict") }
        XCTAssertEqual(top.first { $0.0.string == "epoch" }?.1.int, 3)
    }

    func testViewsOffsetsAndDTypes() throws {
        guard case .dict(let pairs) = try PyTorchCheckpoint.load(url("views.pth")) else { return XCTFail("not a dict") }
        var dict = StateDict()
        for (k, v) in pairs { if case .tensor(let t) = v { dict.set(k.string!, t) } }
        try assertMatches(dict, "views")
    }

    func testSafetensorsFromPythonAndRoundTrip() throws {
        let (dict, metadata) = try Safetensors.load(url("python.safetensors"))
        try assertMatches(dict, "safetensors")
        XCTAssertEqual(metadata["producer"], "python")

        let out = temp.appendingPathComponent("roundtrip.safetensors")
        var mine = dict
        mine.set("flags", try Tensor([true, false]))
        mine.set("bf", try Tensor([1.5, -2] as [Float]).to(dtype: .bfloat16))
        try Safetensors.save(mine, metadata: ["epoch": "4"], to: out)
        let (back, meta) = try Safetensors.load(out)
        XCTAssertEqual(meta["epoch"], "4")
        for (name, t) in mine { XCTAssertTrue(try t.equal(XCTUnwrap(back[name])), name) }
        XCTAssertEqual(try Data(contentsOf: out).prefix(8).withUnsafeBytes { $0.load(as: UInt64.self) } % 8, 0, "header padded to 8 bytes")
    }

    /// A file MedSeg writes is read by the safetensors package and by PyTorch.
    func testSafetensorsWrittenBySwiftLoadInPython() throws {
        let out = temp.appendingPathComponent("swift.safetensors")
        try Safetensors.save(StateDict([("w", try Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])),
                                        ("n", try Tensor([7, 8] as [Int64]))]), to: out)
        let script = """
        import sys
        from safetensors.numpy import load_file
        d = load_file(sys.argv[1])
        print(d["w"].dtype, d["w"].shape, d["w"].sum(), d["n"].tolist())
        """
        XCTAssertEqual(try Python.run(script, [out.path]).trimmingCharacters(in: .whitespacesAndNewlines), "float32 (2, 3) 21.0 [7, 8]")
    }

    func testMalformedFilesNameTheFileAndTheProblem() throws {
        let truncated = temp.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3]).write(to: truncated)
        XCTAssertThrowsError(try Safetensors.load(truncated)) { XCTAssertTrue("\($0)".contains("short.safetensors") && "\($0)".contains("truncated"), "\($0)") }

        let huge = temp.appendingPathComponent("huge.safetensors")
        var bytes = Data([0xff, 0xff, 0, 0, 0, 0, 0, 0])
        bytes.append(Data("{}".utf8))
        try bytes.write(to: huge)
        XCTAssertThrowsError(try Safetensors.load(huge)) { XCTAssertTrue("\($0)".contains("huge.safetensors") && "\($0)".contains("header length"), "\($0)") }

        let cut = temp.appendingPathComponent("cut.safetensors")
        let full = try Data(contentsOf: url("python.safetensors"))
        try full.prefix(full.count - 4).write(to: cut)
        XCTAssertThrowsError(try Safetensors.load(cut)) { XCTAssertTrue("\($0)".contains("cut.safetensors"), "\($0)") }

        let garbage = temp.appendingPathComponent("garbage.pth")
        try Data("not a checkpoint at all".utf8).write(to: garbage)
        XCTAssertThrowsError(try PyTorchCheckpoint.load(garbage)) { XCTAssertTrue("\($0)".contains("garbage.pth") && "\($0)".contains("zip"), "\($0)") }

        let legacy = temp.appendingPathComponent("legacy.pth")
        try Data([0x80, 0x02, 0x8a]).write(to: legacy)
        XCTAssertThrowsError(try PyTorchCheckpoint.load(legacy)) { XCTAssertTrue("\($0)".contains("legacy"), "\($0)") }

        let truncatedPth = temp.appendingPathComponent("truncated.pth")
        let pth = try Data(contentsOf: url("plain.pth"))
        try pth.prefix(pth.count / 2).write(to: truncatedPth)
        XCTAssertThrowsError(try PyTorchCheckpoint.load(truncatedPth)) { XCTAssertTrue("\($0)".contains("truncated.pth"), "\($0)") }
    }

    func testPickleReaderRejectsUnknownOpcodesWithTheOffset() {
        var reader = PickleReader(Data([0x80, 0x02, 0xff]))
        XCTAssertThrowsError(try reader.load()) { XCTAssertTrue("\($0)".contains("byte 2") && "\($0)".contains("0xff"), "\($0)") }
    }
}
