import Foundation
import TestSupport

/// This target's fixtures (Tests/TorchTests/Fixtures).
let fixtures = FixtureSupport(bundle: .module)
