import XCTest
@testable import MedSegTrain
import Torch

/// Each option is declared once, in `TrainingConfig`; these check what the declarations give.
final class TrainingOptionTests: XCTestCase {
    /// The declarations are exactly the keys config files hold, each with help.
    func testEveryStoredKeyIsADeclaredOptionWithHelp() throws {
        var c = TrainingConfig()
        c.features = 16  // optional options are written only when set
        c.depth = 4
        let written = Set(try c.mapping().keys)
        XCTAssertEqual(Set(TrainingConfig.options.map(\.key)), written)
        for (key, option) in TrainingConfig.options { XCTAssertFalse(option.help.isEmpty, "\(key) has help") }
        XCTAssertEqual(TrainingConfig.option("fold")?.aliasWords, ["all"])
        XCTAssertEqual(TrainingConfig.option("optimizer")?.choices, ["sgd", "adam", "adamw", "sophiag"])
        XCTAssertEqual(TrainingConfig.option("epochs")?.defaultText, "20")
        XCTAssertTrue(TrainingConfig.option("deep_supervision")?.isFlag ?? false)
        XCTAssertFalse(TrainingConfig.option("dims")?.onCommandLine ?? true, "dims follows the patch size")
    }

    /// A declaration's check runs on every config, decoded ones included, and names the key.
    func testDeclaredChecksRunOnDecodedConfigs() throws {
        for (yaml, message) in [("epochs: 0\n", "key 'epochs': must be positive, got 0"),
                                ("gamma: 2\n", "key 'gamma': must be in [0, 1], got 2.0"),
                                ("momentum: 1\n", "key 'momentum': must be in [0, 1)"),
                                ("depth: 1\n", "key 'depth': must be 2 to 32"),
                                ("workers: -1\n", "key 'workers': cannot be negative")] {
            XCTAssertThrowsError(try TrainingConfig().merging(yaml: yaml, source: "a.yaml"), yaml) {
                XCTAssertTrue("\($0)".hasPrefix("a.yaml: \(message)"), "\($0)")
            }
        }
        XCTAssertNoThrow(try TrainingConfig().merging(yaml: "epochs: 1\ngamma: 1\ndepth: 2\n", source: "a.yaml"))
    }

    /// Command-line words become values as config files hold them: choices as their words, lists, aliases.
    func testCommandLineWordsBecomeConfigValues() throws {
        XCTAssertEqual(TrainingConfig.option("fold")?.configValue("all") as? Int, -1)
        XCTAssertEqual(TrainingConfig.option("fold")?.configValue("3") as? Int, 3)
        XCTAssertEqual(TrainingConfig.option("patch_size")?.configValue("64x32") as? [Int], [64, 32])
        XCTAssertEqual(TrainingConfig.option("optimizer")?.configValue("sophia") as? String, "sophiag")
        XCTAssertEqual(TrainingConfig.option("features")?.configValue("24") as? Int, 24)
        XCTAssertNil(TrainingConfig.option("epochs")?.configValue("many"))
        XCTAssertNil(TrainingConfig.option("model")?.configValue("resnet"))
        let set = try TrainingConfig().setting(["optimizer": "sgd", "patch_size": [32, 32, 32], "dims": 3, "features": 8], source: "test")
        XCTAssertEqual(set.optimizer, .sgd)
        XCTAssertEqual(set.features, 8)
        XCTAssertEqual(set.dims, 3)
    }

    /// An optional option left unset is absent from the file and reads back as unset.
    func testUnsetOptionalOptionsStayAbsent() throws {
        let yaml = try TrainingConfig().yaml()
        XCTAssertFalse(yaml.contains("features:"), yaml)
        XCTAssertNil(try TrainingConfig().merging(yaml: yaml, source: "config.yaml").features)
        var c = TrainingConfig()
        c.depth = 4
        XCTAssertEqual(try TrainingConfig().merging(yaml: c.yaml(), source: "config.yaml").depth, 4)
    }
}

/// Options added since the options are declared once reach what they set.
final class AdamOptionTests: XCTestCase {
    func testBetasAndEpsReachAdamW() throws {
        var c = try TrainingConfig().merging(yaml: "optimizer: adamw\nbeta2: 0.98\neps: 0.0001\n", source: "a.yaml")
        let group = try TrainingSetup.makeOptimizer(c, [Tensor.zeros([2])]).paramGroups[0]
        XCTAssertEqual(group[option: "betas"], .pair(0.9, 0.98))
        XCTAssertEqual(group[option: "eps"], .number(1e-4))
        c.beta1 = 1
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("key 'beta1': must be in [0, 1)"), "\($0)") }
    }
}
