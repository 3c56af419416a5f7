import Foundation
import XCTest
@testable import MedSegData

/// nnU-Net's channel file names, parsed and made in one place.
final class ChannelFileNameTests: XCTestCase {
    func testParsesTheCaseAndChannelOfAStem() {
        XCTAssertEqual(ChannelFileName.parse("liver_7_0001")?.identifier, "liver_7")
        XCTAssertEqual(ChannelFileName.parse("liver_7_0001")?.channel, 1)
        XCTAssertEqual(ChannelFileName.parse("a_0000")?.identifier, "a")
        for stem in ["_0000", "liver_7", "liver0001", "liver_+001", "liver_00a1", "liver_０００１", "liver_001"] {
            XCTAssertNil(ChannelFileName.parse(stem), stem)
        }
    }

    func testNamesEveryChannelOfACase() {
        XCTAssertEqual(ChannelFileName.name("BRATS_001", channel: 3, ending: ".nii.gz"), "BRATS_001_0003.nii.gz")
        let folder = URL(fileURLWithPath: "/data/imagesTr")
        XCTAssertEqual(ChannelFileName.files("c", channels: 2, ending: ".png", in: folder).map(\.lastPathComponent), ["c_0000.png", "c_0001.png"])
        let name = ChannelFileName.name("case_12", channel: 11, ending: ".nrrd")
        XCTAssertEqual(ChannelFileName.parse(String(name.dropLast(5)))?.channel, 11)
    }
}
