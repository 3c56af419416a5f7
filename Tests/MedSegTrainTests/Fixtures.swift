import Foundation
import TestSupport

/// This target's fixtures (Tests/MedSegTrainTests/Fixtures).
let fixtures = FixtureSupport(bundle: .module)
