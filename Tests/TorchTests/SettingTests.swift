import Foundation
import XCTest
@testable import Torch

/// Library messages name settings by key; a renderer (the CLI's) names them by flag instead.
final class SettingTests: XCTestCase {
    func testSettingsAreNamedByKeyUntilARendererNamesThemOtherwise() {
        XCTAssertEqual(Setting.named("previous_stage"), "`previous_stage`")
        XCTAssertEqual(Setting.named("device", value: "cpu"), "`device: cpu`")
        Setting.render { key, value in "--" + key.replacingOccurrences(of: "_", with: "-") + (value.map { " " + $0 } ?? "") }
        defer { Setting.render { key, value in "`\(key)" + (value.map { ": \($0)" } ?? "") + "`" } }
        XCTAssertEqual(Setting.named("previous_stage", value: "EXP"), "--previous-stage EXP")
        XCTAssertThrowsError(try Device.resolve("cuda:7")) {
            XCTAssertTrue("\($0)".hasPrefix("--device cuda:7: "), "\($0)")
        }
    }
}
