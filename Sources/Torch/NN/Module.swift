import Foundation

/// A neural-network building block with named parameters, buffers and child modules, in the spirit
/// of `torch.nn.Module`. Names follow PyTorch's state_dict keys (`encoder.0.weight`,
/// `bn.running_mean`), so weights move both ways between MedSeg and PyTorch.
///
/// Subclasses register what they own in their initializer and keep typed references to it:
/// ```
/// let conv = registerModule("conv", Conv2d(1, 8, kernelSize: 3))
/// ```
/// Registered tensors are never replaced: loading and moving change them in place, so such
/// references stay valid.
open class Module {
    public private(set) var namedDirectParameters: [(name: String, tensor: Tensor)] = []
    public private(set) var namedDirectBuffers: [(name: String, tensor: Tensor, persistent: Bool)] = []
    public private(set) var namedChildren: [(name: String, module: Module)] = []
    public private(set) var isTraining = true

    public init() {}

    // MARK: registration

    @discardableResult
    public func registerParameter(_ name: String, _ tensor: Tensor) -> Tensor {
        precondition(!name.contains("."), "parameter names cannot contain '.'")
        tensor.requiresGrad = true
        namedDirectParameters.removeAll { $0.name == name }
        namedDirectParameters.append((name, tensor))
        return tensor
    }

    /// A buffer is state that is saved but not trained (running statistics, counters).
    @discardableResult
    public func registerBuffer(_ name: String, _ tensor: Tensor, persistent: Bool = true) -> Tensor {
        precondition(!name.contains("."), "buffer names cannot contain '.'")
        namedDirectBuffers.removeAll { $0.name == name }
        namedDirectBuffers.append((name, tensor, persistent))
        return tensor
    }

    @discardableResult
    public func registerModule<M: Module>(_ name: String, _ module: M) -> M {
        precondition(!name.contains("."), "module names cannot contain '.'")
        namedChildren.removeAll { $0.name == name }
        namedChildren.append((name, module))
        return module
    }

    // MARK: forward

    /// The single-input forward pass; modules with other signatures define their own methods.
    open func forward(_ x: Tensor) throws -> Tensor {
        throw TorchError("\(type(of: self)) does not define forward(_:)")
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try forward(x) }

    // MARK: traversal

    /// This module and every descendant with its dotted path ("" for self).
    public func namedModules(prefix: String = "") -> [(name: String, module: Module)] {
        var out: [(String, Module)] = [(prefix, self)]
        for (name, child) in namedChildren {
            out += child.namedModules(prefix: prefix.isEmpty ? name : "\(prefix).\(name)")
        }
        return out
    }

    public func namedParameters() -> [(name: String, tensor: Tensor)] {
        namedModules().flatMap { path, module in
            module.namedDirectParameters.map { (path.isEmpty ? $0.name : "\(path).\($0.name)", $0.tensor) }
        }
    }

    public func parameters() -> [Tensor] { namedParameters().map(\.tensor) }

    /// Parameters that currently require gradients (what an optimizer should update).
    public func trainableParameters() -> [Tensor] { parameters().filter(\.requiresGrad) }

    public func namedBuffers(persistentOnly: Bool = false) -> [(name: String, tensor: Tensor)] {
        namedModules().flatMap { path, module in
            module.namedDirectBuffers.filter { !persistentOnly || $0.persistent }
                .map { (path.isEmpty ? $0.name : "\(path).\($0.name)", $0.tensor) }
        }
    }

    /// Parameters and persistent buffers in PyTorch's state_dict order (per module: parameters, then buffers).
    public func namedStateTensors() -> [(name: String, tensor: Tensor)] {
        namedModules().flatMap { path, module -> [(name: String, tensor: Tensor)] in
            let key = { (n: String) in path.isEmpty ? n : "\(path).\(n)" }
            return module.namedDirectParameters.map { (key($0.name), $0.tensor) }
                + module.namedDirectBuffers.filter(\.persistent).map { (key($0.name), $0.tensor) }
        }
    }

    /// Number of parameter elements (only those requiring gradients when `trainableOnly`).
    public func parameterCount(trainableOnly: Bool = false) -> Int {
        parameters().filter { !trainableOnly || $0.requiresGrad }.reduce(0) { $0 + $1.count }
    }

    // MARK: modes

    /// Training mode (dropout active, batch statistics used and tracked) for this module and its children.
    public func train(_ on: Bool = true) {
        for (_, m) in namedModules() { m.isTraining = on }
    }

    public func eval() { train(false) }

    /// Freezes (false) or unfreezes (true) every parameter.
    public func requiresGrad(_ flag: Bool) {
        for p in parameters() { p.requiresGrad = flag }
    }

    /// Moves every parameter and buffer in place (their identities are kept).
    public func to(device: Device? = nil, dtype: DType? = nil) throws {
        try withNoGrad {
            for p in parameters() { try p.setData(p.to(device: device, dtype: p.dtype.isFloatingPoint ? dtype : nil)) }
            for (_, b) in namedBuffers() { try b.setData(b.to(device: device, dtype: b.dtype.isFloatingPoint ? dtype : nil)) }
        }
    }

    public func zeroGrad() {
        for p in parameters() { p.grad = nil }
    }
}
