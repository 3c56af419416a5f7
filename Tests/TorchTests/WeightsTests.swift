import Foundation
import XCTest
import TestSupport
@testable import Torch

/// Weight files against what PyTorch and Python wrote (Fixtures/weights, made by
/// scripts/fixtures/make_weights_fixtures.py with the values in expected.json), and files MedSeg
/// writes read back by Python.
final class WeightsTests: XCTestCase {
    private var expected: [String: Any] = [:]
    private var temp: URL!

    override func setUpWithError() throws {
        expected = try fixtures.json("weights/expected.json")
        temp = try makeTemporaryFolder("weights")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    private func url(_ name: String) -> URL { fixtures.root.appendingPathComponent("weights/\(name)") }

    /// A PyTorch .pth handed to the safetensors reader (e.g. as a checkpoint) is named as such.
    func testAPyTorchFileIsNotReadAsSafetensors() throws {
        XCTAssertThrowsError(try Safetensors.load(url("ddp_nested.pth"))) {
            XCTAssertTrue("\($0)".contains("is a PyTorch checkpoint (.pth/.pt), not a safetensors file"), "\($0)")
        }
    }

    /// `WeightsFile` tells the formats apart by content, whatever the file is called.
    func testWeightsFileChoosesTheReaderByContent() throws {
        let renamedPyTorch = temp.appendingPathComponent("really_a_pth.safetensors")
        try FileManager.default.copyItem(at: url("plain.pth"), to: renamedPyTorch)
        let fromPyTorch = try WeightsFile.read(renamedPyTorch)
        try assertMatches(fromPyTorch.tensors, "plain")
        XCTAssertEqual(fromPyTorch.metadata, [:])
        let safetensors = temp.appendingPathComponent("weights.bin")
        try Safetensors.save(fromPyTorch.tensors, metadata: ["format": "test"], to: safetensors)
        let back = try WeightsFile.read(safetensors)
        XCTAssertEqual(back.tensors.keys, fromPyTorch.tensors.keys)
        XCTAssertEqual(back.metadata["format"], "test")
        let text = temp.appendingPathComponent("notes.pth")
        try Data("not weights".utf8).write(to: text)
        XCTAssertThrowsError(try WeightsFile.read(text)) { XCTAssertTrue("\($0)".contains(text.path), "\($0)") }
    }

    /// Names, dtypes, shapes and values exactly as torch had them. Values travel as decimal text
    /// (Python's repr of the float64 value, which every float16/bfloat16/float32/int32 value is
    /// exactly; int64 as the integer), since JSON number parsing may round the last bit.
    private func assertTensor(_ t: Tensor?, _ e: [String: Any], _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let t = try XCTUnwrap(t, "\(name) is missing", file: file, line: line)
        XCTAssertEqual(t.shape, e["shape"] as? [Int], "\(name): shape", file: file, line: line)
        XCTAssertEqual(t.dtype.description, e["dtype"] as? String, "\(name): dtype", file: file, line: line)
        let text = e["values"] as! [String]
        let same: [Bool]
        if t.dtype == .int64 {
            same = try zip(t.toArray(Int64.self), text).map { $0 == Int64($1) }
        } else {
            same = try zip(t.to(dtype: .float64).toArray(Double.self), text).map { a, b in
                let v = Double(b)!
                return a.bitPattern == v.bitPattern || (a.isNaN && v.isNaN)
            }
        }
        XCTAssertEqual(t.count, text.count, "\(name): element count", file: file, line: line)
        if let i = same.firstIndex(of: false) {
            let got = try t.to(dtype: .float64).toArray(Double.self)[i]
            XCTFail("\(name)[\(i)]: \(got) != \(text[i])", file: file, line: line)
        }
    }

    private func assertMatches(_ dict: StateDict, _ key: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let table = expected[key] as! [String: [String: Any]]
        XCTAssertEqual(Set(dict.keys), Set(table.keys), "\(key): names", file: file, line: line)
        for (name, e) in table { try assertTensor(dict[name], e, name, file: file, line: line) }
    }

    private func tensors(_ value: PickleValue) -> StateDict {
        var dict = StateDict()
        for (k, v) in value.pairs ?? [] { if let name = k.string, let t = v.tensor { dict.set(name, t) } }
        return dict
    }

    // MARK: torch.save checkpoints

    func testStateDictSavedByTorch() throws {
        let dict = try PyTorchCheckpoint.stateDict(from: url("plain.pth"))
        try assertMatches(dict, "plain")
        XCTAssertEqual(dict.keys, expected["plain_order"] as? [String], "the file's order is kept")
        XCTAssertEqual(dict["1.num_batches_tracked"]?.dtype, .int64)
        XCTAssertEqual(try dict["1.num_batches_tracked"]?.itemInt(), 7)
        XCTAssertEqual(dict["0.weight"]?.shape, [3, 2, 3, 3])
    }

    func testNestedDDPCheckpointStripsModulePrefix() throws {
        let dict = try PyTorchCheckpoint.stateDict(from: url("ddp_nested.pth"))
        try assertMatches(dict, "plain")
        XCTAssertEqual(dict.keys, expected["plain_order"] as? [String])
        XCTAssertFalse(dict.keys.contains { $0.hasPrefix("module.") })

        let top = try PyTorchCheckpoint.load(url("ddp_nested.pth"))
        XCTAssertEqual(top["epoch"]?.int, 3)
        XCTAssertEqual(top["best_dice"]?.double, 0.875)
        XCTAssertEqual(top["optimizer"]?["param_groups"]?.items?.first?["lr"]?.double, 0.01)
        XCTAssertEqual(top["optimizer"]?["param_groups"]?.items?.first?["params"]?.items?.compactMap(\.int), [0, 1, 2])
        XCTAssertEqual(top["state_dict"]?.pairs?.first?.0.string, "module.0.weight")
    }

    func testNonContiguousViewsOffsetsAndEveryDType() throws {
        let top = try PyTorchCheckpoint.load(url("views.pth"))
        let dict = tensors(top)
        try assertMatches(dict, "views")
        // Spelled out for the views, independent of expected.json: base = arange(24).reshape(4, 6).
        XCTAssertEqual(try dict["transposed"]?.toArray(Float.self).prefix(8), [0, 6, 12, 18, 1, 7, 13, 19])
        XCTAssertEqual(try dict["offset_slice"]?.toArray(Float.self), [8, 9, 10, 14, 15, 16])
        XCTAssertEqual(try dict["every_other"]?.toArray(Float.self), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22])
        XCTAssertEqual(try dict["row_at_offset"]?.toArray(Float.self), [18, 19, 20, 21, 22, 23])
        XCTAssertEqual(try dict["expanded"]?.toArray(Float.self), [0, 1, 2, 0, 1, 2])
        XCTAssertEqual(dict["permuted"]?.shape, [4, 2, 3])
        XCTAssertEqual(try dict["permuted"]?.toArray(Int64.self).prefix(6), [0, 4, 8, 12, 16, 20])
        XCTAssertEqual(try dict["uint8"]?.toArray(UInt8.self), [0, 200, 255])
        XCTAssertEqual(try dict["flags"]?.toArray(Bool.self), [true, false, true])
        XCTAssertEqual(dict["scalar"]?.shape, [])
        XCTAssertEqual(dict["empty"]?.shape, [0, 3])
        XCTAssertEqual(dict["bfloat"]?.dtype, .bfloat16)
        XCTAssertEqual(dict["half_t"]?.dtype, .float16)
        XCTAssertTrue(dict["transposed"]?.isContiguous ?? false, "views come back as contiguous tensors")
    }

    func testProtocol4SharedObjectsParametersAndPythonValues() throws {
        let top = try PyTorchCheckpoint.load(url("proto4.pth"))
        XCTAssertEqual(top["epoch"]?.int, 12)
        try assertMatches(tensors(try XCTUnwrap(top["model"])), "proto4_model")
        // "ema" is the same dict object as "model": the pickle refers back to it through the memo.
        try assertMatches(tensors(try XCTUnwrap(top["ema"])), "proto4_model")
        try assertTensor(top["param"]?.tensor, expected["proto4_param"] as! [String: Any], "param (an nn.Parameter)")
        guard case .call(.global("argparse", "Namespace"), let args, let state?)? = top["args"] else {
            return XCTFail("args: \(String(describing: top["args"]))")
        }
        XCTAssertTrue(args.isEmpty)
        XCTAssertEqual(state["lr"]?.double, 0.01)
        XCTAssertEqual(state["name"]?.string, "unet")
        XCTAssertEqual(state["folds"]?.items?.compactMap(\.int), [0, 1])
        guard case .bigInt(let big)? = top["big"] else { return XCTFail("2**70 is not a bigInt") }
        XCTAssertEqual(hex(big), expected["proto4_big"] as? String)
        XCTAssertEqual(top["scores"].map(render), "(f(\(Double(0.5).bitPattern)),i(-1),N,T)")

        let dict = try PyTorchCheckpoint.stateDict(from: url("proto4.pth"))
        try assertMatches(dict, "proto4_model")
    }

    func testWholePickledModule() throws {
        let dict = try PyTorchCheckpoint.stateDict(from: url("whole_model.pth"))
        try assertMatches(dict, "whole_model")
        XCTAssertEqual(dict.keys, expected["whole_model_order"] as? [String], "state_dict() order, non-persistent buffer left out")
        XCTAssertNil(dict["scratch"])
    }

    func testBigEndianArchive() throws {
        let top = try PyTorchCheckpoint.load(url("big_endian.pth"))
        try assertMatches(tensors(top), "big_endian")
    }

    // MARK: Pickle reader

    func testPickleProtocols2To5MatchPython() throws {
        for case let c as [String: Any] in expected["pickles"] as! [Any] {
            let proto = c["protocol"] as! Int
            var reader = PickleReader(Data(base64Encoded: c["pickle"] as! String)!)
            let value = try reader.load()
            let got = render(value), want = c["expected"] as! String
            if got != want {
                let common = zip(got, want).prefix { $0 == $1 }.count
                XCTFail("protocol \(proto): differs at character \(common):\n  got  …\(got.dropFirst(max(0, common - 40)).prefix(160))\n"
                        + "  want …\(want.dropFirst(max(0, common - 40)).prefix(160))")
            }
        }
    }

    func testPickleErrorsGiveTheByteOffset() throws {
        var unknown = PickleReader(Data([0x80, 0x02, 0xff]))
        XCTAssertThrowsError(try unknown.load()) { XCTAssertTrue("\($0)".contains("byte 2") && "\($0)".contains("0xff"), "\($0)") }

        let full = Data(base64Encoded: ((expected["pickles"] as! [Any])[0] as! [String: Any])["pickle"] as! String)!
        var truncated = PickleReader(full.prefix(full.count - 7))
        XCTAssertThrowsError(try truncated.load()) { XCTAssertTrue("\($0)".contains("truncated") && "\($0)".contains("byte "), "\($0)") }

        // BINUNICODE claiming 1 GB.
        var long = PickleReader(Data([0x80, 0x02, 0x58, 0x00, 0x00, 0x00, 0x40, 0x61, 0x2e]))
        XCTAssertThrowsError(try long.load()) { XCTAssertTrue("\($0)".contains("byte 3") && "\($0)".contains("truncated"), "\($0)") }

        var underflow = PickleReader(Data([0x80, 0x02, 0x85, 0x2e]))   // TUPLE1 on an empty stack
        XCTAssertThrowsError(try underflow.load()) { XCTAssertTrue("\($0)".contains("underflow"), "\($0)") }

        // Nesting: deep but plausible decodes; absurdly deep is refused, not a stack overflow.
        func nested(_ depth: Int) -> Data {
            Data([0x80, 0x02] + [UInt8](repeating: 0x5d, count: depth) + [UInt8](repeating: 0x61, count: depth - 1) + [0x2e])
        }
        var deep = PickleReader(nested(500))
        var value = try deep.load(), levels = 0
        while case .list(let inner) = value, let first = inner.first { value = first; levels += 1 }
        XCTAssertEqual(levels, 499)
        var tooDeep = PickleReader(nested(200_000))
        XCTAssertThrowsError(try tooDeep.load()) { XCTAssertTrue("\($0)".contains("nested more than"), "\($0)") }

        var missingMemo = PickleReader(Data([0x80, 0x02, 0x68, 0x05, 0x2e]))   // BINGET 5
        XCTAssertThrowsError(try missingMemo.load()) { XCTAssertTrue("\($0)".contains("memo key 5"), "\($0)") }
    }

    /// Damaged input must fail with an error, never crash: random byte changes and cuts of real
    /// pickles, safetensors headers and tensor views (a fixed seed, so failures reproduce).
    func testDamagedInputThrowsInsteadOfCrashing() throws {
        var rng: UInt64 = 0x9e3779b97f4a7c15
        func next(_ n: Int) -> Int {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return Int((rng >> 33) % UInt64(max(n, 1)))
        }
        let cases = (expected["pickles"] as! [[String: Any]]).map { Data(base64Encoded: $0["pickle"] as! String)! }
        for i in 0..<3000 {
            var bytes = cases[i % cases.count]
            for _ in 0..<(1 + next(4)) { bytes[next(bytes.count)] = UInt8(next(256)) }
            if next(3) == 0 { bytes = bytes.prefix(next(bytes.count)) }
            var reader = PickleReader(bytes)
            _ = try? reader.load()
        }
        let file = try Data(contentsOf: url("python.safetensors"))
        let damaged = temp.appendingPathComponent("damaged.safetensors")
        for _ in 0..<300 {
            var bytes = file
            for _ in 0..<(1 + next(3)) { bytes[next(min(bytes.count, 400))] = UInt8(next(256)) }
            try bytes.write(to: damaged)
            _ = try? Safetensors.load(damaged)
        }
        let storage = Data(count: 64)
        for _ in 0..<2000 {
            let rank = next(4)
            let size = (0..<rank).map { _ in next(6) - 1 }, stride = (0..<rank).map { _ in next(40) - 2 }
            _ = try? PyTorchCheckpoint.strided(storage, dtype: .float32, offset: next(20) - 2, size: size, stride: stride, file: "x")
        }
        _ = try? PyTorchCheckpoint.strided(storage, dtype: .float32, offset: Int.max - 2, size: [3], stride: [1], file: "x")
        _ = try? PyTorchCheckpoint.strided(storage, dtype: .float32, offset: 0, size: [Int.max, 4], stride: [Int.max, 1], file: "x")
    }

    // MARK: safetensors

    func testSafetensorsWrittenByPython() throws {
        let (dict, metadata) = try Safetensors.load(url("python.safetensors"))
        try assertMatches(dict, "safetensors")
        XCTAssertEqual(dict.keys, ["a", "b", "c", "bf", "d", "i32", "i16", "i8", "u8", "flags", "scalar", "empty"], "file order")
        XCTAssertEqual(metadata, ["producer": "python", "epoch": "7"])
    }

    func testSafetensorsWrittenByTheSafetensorsPackage() throws {
        guard expected["library_safetensors"] != nil else {
            throw XCTSkip("the generator found no interpreter with the safetensors package")
        }
        let (dict, metadata) = try Safetensors.load(url("library.safetensors"))
        try assertMatches(dict, "library_safetensors")
        XCTAssertEqual(metadata["producer"], "safetensors")
    }

    private func everyDType() throws -> StateDict {
        let values: [Double] = [0, 1.5, 2, 3.25, 100, 7.75]
        var dict = StateDict()
        for dtype in DType.allCases {
            dict.set("t_\(dtype)", try Tensor(values, shape: [2, 3]).to(dtype: dtype))
        }
        dict.set("negative", try Tensor([-1.5, -2, 1e-3] as [Float]))
        dict.set("scalar", try Tensor(scalar: 4.5, dtype: .float64))
        dict.set("empty", try Tensor.zeros([0, 4], dtype: .int32))
        dict.set("transposed", try Tensor((0..<6).map(Float.init), shape: [2, 3]).transpose(0, 1))
        return dict
    }

    func testSafetensorsRoundTripEveryDType() throws {
        let dict = try everyDType()
        let out = temp.appendingPathComponent("roundtrip.safetensors")
        try Data("old contents".utf8).write(to: out)
        try Safetensors.save(dict, metadata: ["epoch": "4", "note": "ünïcode"], to: out)
        let (back, meta) = try Safetensors.load(out)
        XCTAssertEqual(meta, ["epoch": "4", "note": "ünïcode"])
        XCTAssertEqual(back.keys, dict.keys)
        for (name, t) in dict {
            let b = try XCTUnwrap(back[name], name)
            XCTAssertEqual(b.dtype, t.dtype, name)
            XCTAssertEqual(b.shape, t.shape, name)
            XCTAssertTrue(try b.equal(t), name)
        }
        let bytes = try Data(contentsOf: out)
        let headerLength = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        XCTAssertEqual(headerLength % 8, 0, "header padded to 8 bytes")
        XCTAssertEqual(bytes[8], UInt8(ascii: "{"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temp.path), ["roundtrip.safetensors"], "no temporary file left")

        let empty = temp.appendingPathComponent("empty.safetensors")
        try Safetensors.save(StateDict(), to: empty)
        XCTAssertEqual(try Safetensors.load(empty).tensors.count, 0)

        XCTAssertThrowsError(try Safetensors.save(dict, to: temp.appendingPathComponent("no/such/folder/x.safetensors"))) {
            XCTAssertTrue("\($0)".contains("x.safetensors") && "\($0)".contains("does not exist"), "\($0)")
        }
    }

    /// The file MedSeg writes, parsed in Python from the format's description (struct + json) and
    /// compared with torch's own casts of the same values.
    func testSafetensorsWrittenBySwiftLoadInPython() throws {
        let out = temp.appendingPathComponent("swift.safetensors")
        try Safetensors.save(try everyDType(), metadata: ["format": "medseg"], to: out)
        let script = """
        import json, struct, sys, torch
        raw = open(sys.argv[1], "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        assert n % 8 == 0, "header length %d is not a multiple of 8" % n
        text = raw[8:8 + n].decode("utf-8")
        assert text == text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" "))), "padding is not spaces"
        header = json.loads(text)
        data = raw[8 + n:]
        assert header.pop("__metadata__") == {"format": "medseg"}
        dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
                  "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                  "U8": torch.uint8, "BOOL": torch.bool}
        got = {}
        for name, e in header.items():
            b, end = e["data_offsets"]
            dt = dtypes[e["dtype"]]
            chunk = bytearray(data[b:end])
            t = torch.frombuffer(chunk, dtype=dt) if chunk else torch.empty(0, dtype=dt)
            got[name] = t.reshape(e["shape"])
        assert max(e["data_offsets"][1] for e in header.values()) == len(data)
        values = torch.tensor([0, 1.5, 2, 3.25, 100, 7.75], dtype=torch.float64).reshape(2, 3)
        names = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float64: "float64",
                 torch.int64: "int64", torch.int32: "int32", torch.int16: "int16", torch.int8: "int8",
                 torch.uint8: "uint8", torch.bool: "bool"}
        want = {"t_" + s: values.to(d) for d, s in names.items()}
        want["negative"] = torch.tensor([-1.5, -2, 1e-3], dtype=torch.float32)
        want["scalar"] = torch.tensor(4.5, dtype=torch.float64)
        want["empty"] = torch.zeros(0, 4, dtype=torch.int32)
        want["transposed"] = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()
        assert set(got) == set(want), (sorted(got), sorted(want))
        for k, w in want.items():
            g = got[k]
            assert g.dtype == w.dtype and g.shape == w.shape and torch.equal(g, w), (k, g, w)
        print("ok", len(got))
        """
        let output = try Python.run(script, [out.path], interpreter: "/usr/bin/python3")
        XCTAssertEqual(output.trimmingCharacters(in: .whitespacesAndNewlines), "ok 14")
    }

    /// The same file through the safetensors package (scripts/setup.sh installs it for python3).
    func testSafetensorsWrittenBySwiftLoadWithTheSafetensorsPackage() throws {
        guard (try? Python.run("import safetensors, numpy")) != nil else {
            throw XCTSkip("python3 has no safetensors package (scripts/setup.sh installs it)")
        }
        let out = temp.appendingPathComponent("swift.safetensors")
        var dict = try everyDType()
        dict.remove("t_bfloat16")   // numpy has no bfloat16
        try Safetensors.save(dict, metadata: ["format": "medseg"], to: out)
        let script = """
        import sys
        from safetensors import safe_open
        from safetensors.numpy import load_file
        d = load_file(sys.argv[1])
        with safe_open(sys.argv[1], "np") as f:
            meta = f.metadata()
        print(meta["format"], len(d), d["t_float32"].dtype, d["t_float32"].shape, d["t_float32"].sum(), d["t_int8"].tolist(),
              d["t_bool"].tolist(), d["transposed"].tolist(), d["empty"].shape)
        """
        XCTAssertEqual(try Python.run(script, [out.path]).trimmingCharacters(in: .whitespacesAndNewlines),
                       "medseg 13 float32 (2, 3) 114.5 [[0, 1, 2], [3, 100, 7]] [[False, True, True], [True, True, True]] "
                       + "[[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]] (0, 4)")
    }

    private func assertRejected(_ bytes: Data, _ file: String, _ phrase: String, line: UInt = #line) throws {
        let path = temp.appendingPathComponent(file)
        try bytes.write(to: path)
        XCTAssertThrowsError(try Safetensors.load(path), line: line) {
            let message = "\($0)"
            XCTAssertTrue(message.hasPrefix(path.path + ": "), "the message starts with the file: \(message)", line: line)
            XCTAssertTrue(message.contains(phrase), "'\(phrase)' in: \(message)", line: line)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", line: line)
        }
    }

    private func safetensors(_ header: String, data: Int, pad: Bool = true) -> Data {
        var json = Data(header.utf8)
        if pad { json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8)) }
        var out = Data(count: 8)
        out.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(json.count).littleEndian, as: UInt64.self) }
        return out + json + Data(count: data)
    }

    func testMalformedSafetensorsNameTheFileAndTheProblem() throws {
        try assertRejected(Data([1, 2, 3]), "short.safetensors", "truncated")
        try assertRejected(Data([0xff, 0xff, 0, 0, 0, 0, 0, 0]) + Data("{}".utf8), "huge.safetensors", "header length")
        let good = try Data(contentsOf: url("python.safetensors"))
        try assertRejected(good.prefix(good.count - 4), "cut.safetensors", "outside")
        try assertRejected(safetensors("{\"a\": [", data: 0), "json.safetensors", "not valid JSON")
        try assertRejected(safetensors(#"{"a": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}"#, data: 1),
                           "dtype.safetensors", "unknown or unsupported dtype 'F8_E4M3'")
        try assertRejected(safetensors(#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}"#, data: 8),
                           "range.safetensors", "outside")
        try assertRejected(safetensors(#"{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, data: 8),
                           "size.safetensors", "needs 12")
        try assertRejected(safetensors(#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, data: 8),
                           "overlap.safetensors", "overlaps")
        try assertRejected(safetensors(#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, data: 8),
                           "trailing.safetensors", "account for 4")
        try assertRejected(safetensors(#"{"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}"#, data: 4),
                           "shape.safetensors", "shape")
        try assertRejected(safetensors(#"{"__metadata__": {"k": 1}}"#, data: 0), "meta.safetensors", "not a string")
        XCTAssertThrowsError(try Safetensors.load(temp.appendingPathComponent("absent.safetensors"))) {
            XCTAssertTrue("\($0)".contains("absent.safetensors") && "\($0)".contains("no such file"), "\($0)")
        }
    }

    // MARK: Malformed checkpoints

    private func assertCheckpointRejected(_ path: URL, _ phrase: String, line: UInt = #line) {
        XCTAssertThrowsError(try PyTorchCheckpoint.stateDict(from: path), line: line) {
            let message = "\($0)"
            XCTAssertTrue(message.hasPrefix(path.path + ": "), "the message starts with the file: \(message)", line: line)
            XCTAssertTrue(message.contains(phrase), "'\(phrase)' in: \(message)", line: line)
        }
    }

    func testMalformedCheckpointsNameTheFileAndTheProblem() throws {
        let garbage = temp.appendingPathComponent("garbage.pth")
        try Data("not a checkpoint at all".utf8).write(to: garbage)
        assertCheckpointRejected(garbage, "not a zip archive")
        assertCheckpointRejected(url("no_pickle.pth"), "no ARCHIVE/data.pkl")
        assertCheckpointRejected(url("missing_storage.pth"), "data/0 is missing")
        assertCheckpointRejected(url("truncated_storage.pth"), "data/0 is truncated")
        assertCheckpointRejected(url("legacy.pth"), "legacy .pth format")
        assertCheckpointRejected(url("legacy.pth"), "torch>=1.6")
        assertCheckpointRejected(temp.appendingPathComponent("absent.pth"), "no such file")

        let cut = temp.appendingPathComponent("cut.pth")
        let pth = try Data(contentsOf: url("plain.pth"))
        try pth.prefix(pth.count / 2).write(to: cut)
        assertCheckpointRejected(cut, "zip archive")

        // A flipped byte inside a storage record fails the zip checksum.
        let flipped = temp.appendingPathComponent("flipped.pth")
        var damaged = pth
        let plain = expected["plain"] as! [String: [String: Any]]
        var first = Float(Double((plain["0.weight"]!["values"] as! [String])[0])!)
        let stored = try XCTUnwrap(damaged.range(of: Data(bytes: &first, count: 4)), "the first conv weight's bytes")
        damaged[stored.lowerBound + 1] ^= 0x55
        try damaged.write(to: flipped)
        assertCheckpointRejected(flipped, "damaged")
    }

    // MARK: StateDict

    func testStateDictKeepsOrderAndStripsPrefixes() throws {
        let a = try Tensor([1] as [Float]), b = try Tensor([2] as [Float]), c = try Tensor([3] as [Float])
        var dict = StateDict([("module.x", a), ("module.y", b)])
        dict.set("module.z", c)
        dict.set("module.x", c)
        XCTAssertEqual(dict.keys, ["module.x", "module.y", "module.z"], "replacing keeps the position")
        XCTAssertTrue(dict["module.x"] === c)
        XCTAssertEqual(dict.strippingPrefix("module.").keys, ["x", "y", "z"])
        XCTAssertEqual(dict.addingPrefix("model.").keys.first, "model.module.x")
        dict["module.y"] = nil
        XCTAssertEqual(dict.keys, ["module.x", "module.z"])
        XCTAssertTrue(dict["module.z"] === c)
        XCTAssertEqual(dict.map(\.name), ["module.x", "module.z"])
        XCTAssertEqual(dict.count, 2)
    }
}

private func hex(_ data: Data) -> String { data.map { String(format: "%02x", $0) }.joined() }

/// The rendering the fixture generator writes for each pickle (see make_weights_fixtures.py).
private func render(_ v: PickleValue) -> String {
    switch v {
    case .none: return "N"
    case .bool(let b): return b ? "T" : "F"
    case .int(let i): return "i(\(i))"
    case .bigInt(let d): return "I(\(hex(d)))"
    case .float(let f): return "f(\(Int64(bitPattern: f.bitPattern)))"
    case .string(let s): return "s(\(hex(Data(s.utf8))))"
    case .bytes(let d): return "b(\(hex(d)))"
    case .list(let items): return "[" + items.map(render).joined(separator: ",") + "]"
    case .tuple(let items): return "(" + items.map(render).joined(separator: ",") + ")"
    case .dict(let pairs): return "{" + pairs.map { render($0.0) + ":" + render($0.1) }.joined(separator: ",") + "}"
    case .set(let items): return "set(" + items.map(render).joined(separator: ",") + ")"
    case .global(let m, let n): return "g(\(m).\(n))"
    case .call(let f, let args, let state): return "c(\(render(f));\(args.map(render).joined(separator: ","));\(state.map(render) ?? "N"))"
    case .persistent(let p): return "p(\(render(p)))"
    case .tensor(let t): return "t(\(t.dtype);\(t.shape))"
    }
}
