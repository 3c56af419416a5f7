import Foundation
import TestSupport

/// This target's fixtures (Tests/MedSegDataTests/Fixtures).
let fixtures = FixtureSupport(bundle: .module)
