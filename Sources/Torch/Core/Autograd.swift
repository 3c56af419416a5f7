import CTorch

extension Tensor {
    /// Whether autograd records operations on this tensor.
    public var requiresGrad: Bool {
        get { mt_requires_grad(handle) == 1 }
        set { _ = mt_set_requires_grad(handle, newValue ? 1 : 0) }
    }

    @discardableResult
    public func requiresGrad(_ flag: Bool) throws -> Tensor {
        try check(mt_set_requires_grad(handle, flag ? 1 : 0))
        return self
    }

    /// Points this tensor at `source`'s data (any device or dtype) while keeping its identity,
    /// so modules and optimizers holding it see the change.
    public func setData(_ source: Tensor) throws { try check(mt_set_data(handle, source.handle)) }

    public var isLeaf: Bool { mt_is_leaf(handle) == 1 }

    /// The accumulated gradient, or nil when none has been computed.
    public var grad: Tensor? {
        get { mt_grad(handle).map { Tensor(handle: $0) } }
        set { _ = mt_set_grad(handle, newValue?.handle) }
    }

    /// Back-propagates from this tensor; `gradient` is required unless the tensor has one element.
    public func backward(_ gradient: Tensor? = nil, retainGraph: Bool = false) throws {
        try check(mt_backward(handle, gradient?.handle, retainGraph ? 1 : 0))
    }
}
