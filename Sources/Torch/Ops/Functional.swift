import CTorch

/// Loss reductions, as in torch.nn.functional.
public enum Reduction: Int32, Codable, Sendable {
    case none = 0, mean = 1, sum = 2
}

/// Interpolation modes of `F.interpolate`.
public enum InterpolationMode: Int32, Sendable {
    case nearest = 0, linear, bilinear, trilinear, bicubic
}

/// Sampling options of `F.gridSample`.
public enum GridSampleMode: Int32, Sendable { case bilinear = 0, nearest, bicubic }
public enum GridPaddingMode: Int32, Sendable { case zeros = 0, border, reflection }

/// Functions in the spirit of `torch.nn.functional`.
public enum F {
    static func ints(_ v: [Int], count: Int, name: String) throws -> [Int64] {
        if v.count == count { return v.map(Int64.init) }
        if v.count == 1 { return Array(repeating: Int64(v[0]), count: count) }
        throw TorchError("\(name) needs 1 or \(count) values, got \(v.count)")
    }

    // MARK: convolution

    /// N-d convolution (N = input rank - 2), or its transpose.
    public static func conv(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: [Int] = [1], padding: [Int] = [0],
                            dilation: [Int] = [1], groups: Int = 1, transposed: Bool = false, outputPadding: [Int] = [0]) throws -> Tensor {
        let n = weight.rank - 2
        guard n >= 1 && n <= 3 else { throw TorchError("convolution weight must have 3 to 5 dimensions, got \(weight.rank)") }
        let s = try ints(stride, count: n, name: "stride"), p = try ints(padding, count: n, name: "padding")
        let d = try ints(dilation, count: n, name: "dilation"), o = try ints(outputPadding, count: n, name: "output_padding")
        let y = try wrap(mt_convolution(x.handle, weight.handle, bias?.handle, s, p, d, transposed ? 1 : 0, o, n, Int64(groups)))
        FLOPCounter.convolution(input: x, weight: weight, output: y, transposed: transposed)
        return y
    }

    public static func conv1d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: [Int] = [1], padding: [Int] = [0], dilation: [Int] = [1], groups: Int = 1) throws -> Tensor {
        try conv(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: [Int] = [1], padding: [Int] = [0], dilation: [Int] = [1], groups: Int = 1) throws -> Tensor {
        try conv(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }
    public static func conv3d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: [Int] = [1], padding: [Int] = [0], dilation: [Int] = [1], groups: Int = 1) throws -> Tensor {
        try conv(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }
    public static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: [Int] = [1], padding: [Int] = [0], outputPadding: [Int] = [0], groups: Int = 1, dilation: [Int] = [1]) throws -> Tensor {
        try conv(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups, transposed: true, outputPadding: outputPadding)
    }
    public static func convTranspose3d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: [Int] = [1], padding: [Int] = [0], outputPadding: [Int] = [0], groups: Int = 1, dilation: [Int] = [1]) throws -> Tensor {
        try conv(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups, transposed: true, outputPadding: outputPadding)
    }

    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        let y = try wrap(mt_linear(x.handle, weight.handle, bias?.handle))
        FLOPCounter.product(output: y, inner: weight.shape.last ?? 1)
        return y
    }

    // MARK: pooling (spatial dimensions = input rank - 2)

    public static func maxPool(_ x: Tensor, kernel: [Int], stride: [Int]? = nil, padding: [Int] = [0], dilation: [Int] = [1], ceilMode: Bool = false) throws -> Tensor {
        let n = x.rank - 2
        let k = try ints(kernel, count: n, name: "kernel_size"), s = try ints(stride ?? kernel, count: n, name: "stride")
        let p = try ints(padding, count: n, name: "padding"), d = try ints(dilation, count: n, name: "dilation")
        return try wrap(mt_max_pool(x.handle, n, k, s, p, d, ceilMode ? 1 : 0))
    }
    public static func maxPool2d(_ x: Tensor, kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> Tensor {
        try maxPool(x, kernel: [kernel], stride: [stride ?? kernel], padding: [padding])
    }
    public static func maxPool3d(_ x: Tensor, kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> Tensor {
        try maxPool(x, kernel: [kernel], stride: [stride ?? kernel], padding: [padding])
    }

    public static func avgPool(_ x: Tensor, kernel: [Int], stride: [Int]? = nil, padding: [Int] = [0], ceilMode: Bool = false, countIncludePad: Bool = true) throws -> Tensor {
        let n = x.rank - 2
        let k = try ints(kernel, count: n, name: "kernel_size"), s = try ints(stride ?? kernel, count: n, name: "stride")
        let p = try ints(padding, count: n, name: "padding")
        return try wrap(mt_avg_pool(x.handle, n, k, s, p, ceilMode ? 1 : 0, countIncludePad ? 1 : 0))
    }
    public static func avgPool2d(_ x: Tensor, kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> Tensor {
        try avgPool(x, kernel: [kernel], stride: [stride ?? kernel], padding: [padding])
    }
    public static func avgPool3d(_ x: Tensor, kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> Tensor {
        try avgPool(x, kernel: [kernel], stride: [stride ?? kernel], padding: [padding])
    }

    public static func adaptiveAvgPool(_ x: Tensor, outputSize: [Int]) throws -> Tensor {
        let n = x.rank - 2
        return try wrap(mt_adaptive_avg_pool(x.handle, n, try ints(outputSize, count: n, name: "output_size")))
    }
    public static func adaptiveMaxPool(_ x: Tensor, outputSize: [Int]) throws -> Tensor {
        let n = x.rank - 2
        return try wrap(mt_adaptive_max_pool(x.handle, n, try ints(outputSize, count: n, name: "output_size")))
    }

    // MARK: normalization

    public static func batchNorm(_ x: Tensor, runningMean: Tensor?, runningVar: Tensor?, weight: Tensor?, bias: Tensor?,
                                 training: Bool, momentum: Double = 0.1, eps: Double = 1e-5) throws -> Tensor {
        try wrap(mt_batch_norm(x.handle, weight?.handle, bias?.handle, runningMean?.handle, runningVar?.handle, training ? 1 : 0, momentum, eps))
    }

    public static func instanceNorm(_ x: Tensor, runningMean: Tensor? = nil, runningVar: Tensor? = nil, weight: Tensor? = nil, bias: Tensor? = nil,
                                    useInputStats: Bool = true, momentum: Double = 0.1, eps: Double = 1e-5) throws -> Tensor {
        try wrap(mt_instance_norm(x.handle, weight?.handle, bias?.handle, runningMean?.handle, runningVar?.handle, useInputStats ? 1 : 0, momentum, eps))
    }

    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Double = 1e-5) throws -> Tensor {
        try wrap(mt_group_norm(x.handle, Int64(groups), weight?.handle, bias?.handle, eps))
    }

    public static func layerNorm(_ x: Tensor, normalizedShape: [Int], weight: Tensor? = nil, bias: Tensor? = nil, eps: Double = 1e-5) throws -> Tensor {
        let s = normalizedShape.map(Int64.init)
        return try wrap(mt_layer_norm(x.handle, s, s.count, weight?.handle, bias?.handle, eps))
    }

    // MARK: resampling

    /// Resizes the spatial dimensions to `size`, or by `scaleFactor` (floor of size x factor).
    public static func interpolate(_ x: Tensor, size: [Int]? = nil, scaleFactor: [Double]? = nil,
                                   mode: InterpolationMode = .nearest, alignCorners: Bool = false) throws -> Tensor {
        let n = x.rank - 2
        guard n >= 1 else { throw TorchError("interpolate needs an (N, C, spatial...) input, got shape \(x.shape)") }
        let spatial = Array(x.shape.suffix(n))
        let out: [Int64]
        if let size {
            out = try ints(size, count: n, name: "size")
        } else if let scaleFactor {
            let f = scaleFactor.count == 1 ? Array(repeating: scaleFactor[0], count: n) : scaleFactor
            guard f.count == n else { throw TorchError("scale_factor needs 1 or \(n) values") }
            out = zip(spatial, f).map { Int64((Double($0) * $1).rounded(.down)) }
        } else {
            throw TorchError("interpolate needs either size or scaleFactor")
        }
        return try wrap(mt_interpolate(x.handle, out, n, mode.rawValue, alignCorners ? 1 : 0))
    }

    /// Sampling grid for `gridSample` from batched affine matrices (N, 2, 3) or (N, 3, 4).
    public static func affineGrid(_ theta: Tensor, size: [Int], alignCorners: Bool = false) throws -> Tensor {
        let s = size.map(Int64.init)
        return try wrap(mt_affine_grid(theta.handle, s, s.count, alignCorners ? 1 : 0))
    }

    public static func gridSample(_ x: Tensor, grid: Tensor, mode: GridSampleMode = .bilinear,
                                  paddingMode: GridPaddingMode = .zeros, alignCorners: Bool = false) throws -> Tensor {
        try wrap(mt_grid_sample(x.handle, grid.handle, mode.rawValue, paddingMode.rawValue, alignCorners ? 1 : 0))
    }

    public static func oneHot(_ x: Tensor, numClasses: Int = -1) throws -> Tensor { try wrap(mt_one_hot(x.handle, Int64(numClasses))) }

    // MARK: activations

    public static func relu(_ x: Tensor) throws -> Tensor { try x.unary(.relu) }
    public static func leakyRelu(_ x: Tensor, negativeSlope: Double = 0.01) throws -> Tensor { try wrap(mt_leaky_relu(x.handle, negativeSlope)) }
    /// GELU, exact (erf) by default. Carries the gradient-layout fix for libtorch 1.13's CPU kernel.
    public static func gelu(_ x: Tensor, approximateTanh: Bool = false) throws -> Tensor { try wrap(mt_gelu(x.handle, approximateTanh ? 1 : 0)) }
    /// libtorch's GELU without the workaround, kept so a test can show the defect it avoids.
    static func geluUnpatched(_ x: Tensor) throws -> Tensor { try wrap(mt_gelu_unpatched(x.handle)) }
    public static func silu(_ x: Tensor) throws -> Tensor { try x.unary(.silu) }
    public static func sigmoid(_ x: Tensor) throws -> Tensor { try x.unary(.sigmoid) }
    public static func tanh(_ x: Tensor) throws -> Tensor { try x.unary(.tanh) }
    public static func elu(_ x: Tensor, alpha: Double = 1) throws -> Tensor { try wrap(mt_elu(x.handle, alpha)) }
    public static func softplus(_ x: Tensor, beta: Double = 1, threshold: Double = 20) throws -> Tensor { try wrap(mt_softplus(x.handle, beta, threshold)) }
    public static func softmax(_ x: Tensor, dim: Int) throws -> Tensor { try wrap(mt_softmax(x.handle, Int64(dim))) }
    public static func logSoftmax(_ x: Tensor, dim: Int) throws -> Tensor { try wrap(mt_log_softmax(x.handle, Int64(dim))) }
    public static func dropout(_ x: Tensor, p: Double = 0.5, training: Bool = true) throws -> Tensor { try wrap(mt_dropout(x.handle, p, training ? 1 : 0)) }
    /// Zeroes whole channels (Dropout2d/3d).
    public static func featureDropout(_ x: Tensor, p: Double = 0.5, training: Bool = true) throws -> Tensor { try wrap(mt_feature_dropout(x.handle, p, training ? 1 : 0)) }

    // MARK: losses

    public static func binaryCrossEntropyWithLogits(_ x: Tensor, target: Tensor, weight: Tensor? = nil, posWeight: Tensor? = nil, reduction: Reduction = .mean) throws -> Tensor {
        try wrap(mt_bce_with_logits(x.handle, target.handle, weight?.handle, posWeight?.handle, reduction.rawValue))
    }
    public static func binaryCrossEntropy(_ x: Tensor, target: Tensor, weight: Tensor? = nil, reduction: Reduction = .mean) throws -> Tensor {
        try wrap(mt_bce(x.handle, target.handle, weight?.handle, reduction.rawValue))
    }
    /// Cross-entropy over class dimension 1; `target` holds class indices (int64).
    public static func crossEntropy(_ x: Tensor, target: Tensor, weight: Tensor? = nil, reduction: Reduction = .mean,
                                    ignoreIndex: Int = -100, labelSmoothing: Double = 0) throws -> Tensor {
        try wrap(mt_cross_entropy(x.handle, target.handle, weight?.handle, reduction.rawValue, Int64(ignoreIndex), labelSmoothing))
    }
    public static func nllLoss(_ x: Tensor, target: Tensor, weight: Tensor? = nil, reduction: Reduction = .mean, ignoreIndex: Int = -100) throws -> Tensor {
        try wrap(mt_nll_loss(x.handle, target.handle, weight?.handle, reduction.rawValue, Int64(ignoreIndex)))
    }
    public static func mseLoss(_ x: Tensor, target: Tensor, reduction: Reduction = .mean) throws -> Tensor {
        try wrap(mt_mse_loss(x.handle, target.handle, reduction.rawValue))
    }
    public static func l1Loss(_ x: Tensor, target: Tensor, reduction: Reduction = .mean) throws -> Tensor {
        try wrap(mt_l1_loss(x.handle, target.handle, reduction.rawValue))
    }
}

extension Tensor {
    public func relu() throws -> Tensor { try unary(.relu) }
    public func sigmoid() throws -> Tensor { try unary(.sigmoid) }
    public func tanh() throws -> Tensor { try unary(.tanh) }
    public func silu() throws -> Tensor { try unary(.silu) }
    public func gelu() throws -> Tensor { try F.gelu(self) }
    public func softmax(dim: Int) throws -> Tensor { try F.softmax(self, dim: dim) }
    public func logSoftmax(dim: Int) throws -> Tensor { try F.logSoftmax(self, dim: dim) }
}
