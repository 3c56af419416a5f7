import Foundation

/// A network trained on several outputs: deep-supervision heads at lower resolutions or
/// auxiliary heads. The first output is the prediction `forward(_:)` returns; training adds the
/// loss of every output times its weight (labels are resized to each output's size).
public protocol MultiOutputModel: Module {
    func outputs(_ x: Tensor) throws -> [Tensor]
    /// One weight per output of `outputs(_:)`.
    var outputWeights: [Double] { get }
}
