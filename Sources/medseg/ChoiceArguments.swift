import ArgumentParser
import MedSegModels
import MedSegTrain
import Torch

// Choices parsed by ArgumentParser: a bad value fails before anything loads, and --help lists them.
extension ModelName: ExpressibleByArgument {}
extension ModelSize: ExpressibleByArgument {}
extension OptimizerName: ExpressibleByArgument {
    /// Also "sophia", as seed 000 names it.
    public init?(argument: String) {
        self.init(rawValue: argument.lowercased() == "sophia" ? "sophiag" : argument.lowercased())
    }
}
extension SchedulerName: ExpressibleByArgument {}
extension LossName: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}

/// A floating-point storage type chosen on the command line.
enum FloatChoice: String, ExpressibleByArgument, CaseIterable {
    case float32, float16

    var dtype: DType { self == .float16 ? .float16 : .float32 }
}

/// `predict --accumulate`: a type, or auto (nil: by the size of the slab buffer).
enum AccumulationChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, float32, float16

    var dtype: DType? { self == .auto ? nil : FloatChoice(rawValue: rawValue)!.dtype }
}
