/// Children run in order; they are named "0", "1", ... as in torch.nn.Sequential.
public final class Sequential: Module {
    public private(set) var layers: [Module] = []

    public init(_ layers: [Module]) {
        super.init()
        for layer in layers { append(layer) }
    }

    public convenience init(_ layers: Module...) { self.init(layers) }

    public func append(_ layer: Module) {
        registerModule(String(layers.count), layer)
        layers.append(layer)
    }

    public var count: Int { layers.count }
    public subscript(_ i: Int) -> Module { layers[i] }

    public override func forward(_ x: Tensor) throws -> Tensor {
        try layers.reduce(x) { try $1.forward($0) }
    }
}

/// An indexed list of modules, named "0", "1", ... as in torch.nn.ModuleList.
public final class ModuleList<M: Module>: Module, RandomAccessCollection {
    public private(set) var modules: [M] = []

    public init(_ modules: [M] = []) {
        super.init()
        for m in modules { append(m) }
    }

    public func append(_ module: M) {
        registerModule(String(modules.count), module)
        modules.append(module)
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { modules.count }
    public subscript(_ i: Int) -> M { modules[i] }
}
