import Foundation
import TestSupport

/// This target's fixtures (Tests/MedSegModelsTests/Fixtures).
let fixtures = FixtureSupport(bundle: .module)
