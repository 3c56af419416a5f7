import CTorch

/// The floating-point precision a training run computes in: full float32, or mixed precision with
/// autocast to bfloat16 or float16 (float16 also needs a `GradScaler`).
public enum Precision: String, Codable, CaseIterable, Sendable, CustomStringConvertible {
    case fp32, bf16, fp16

    /// The dtype autocast computes in; nil for fp32 (no autocast).
    public var autocastDType: DType? {
        switch self {
        case .fp32: return nil
        case .bf16: return .bfloat16
        case .fp16: return .float16
        }
    }

    /// Whether the loss needs scaling (float16's narrow exponent range underflows small gradients).
    public var needsGradScaler: Bool { self == .fp16 }

    public var description: String { rawValue }
}

/// libtorch's autocast: inside `run`, ops on the lists of autocast (convolutions, matmuls, ...)
/// compute in the chosen lower precision and precision-sensitive ones (losses, norms, softmax) in
/// float32, as inside `torch.autocast(device_type, dtype)`. The state is thread-local: never
/// `await` inside the scope. Run only the forward pass and the loss inside; backward outside.
public enum Autocast {
    /// Whether autocast is on for the device's type on this thread.
    public static func isEnabled(_ device: Device) -> Bool { mt_autocast_is_enabled(device.typeCode) == 1 }

    /// The dtype autocast uses for the device's type on this thread.
    public static func dtype(_ device: Device) -> DType { DType(rawValue: mt_autocast_get_dtype(device.typeCode)) ?? .float32 }

    /// Runs `body` with autocast on (or, with `enabled: false`, off) for `device`'s type, restoring
    /// the previous state after; leaving the outermost scope clears the cache of cast weights.
    public static func run<R>(device: Device, dtype: DType, enabled: Bool = true, _ body: () throws -> R) throws -> R {
        Torch.initialize()
        guard dtype == .bfloat16 || dtype == .float16 else {
            throw TorchError("autocast computes in bfloat16 or float16, not \(dtype)")
        }
        if enabled, device == .cpu, dtype == .float16, Torch.version.hasPrefix("1.") {
            throw TorchError("autocast on CPU supports bfloat16 only in libtorch \(Torch.version) (float16 needs a CUDA device)")
        }
        let previousEnabled = isEnabled(device)
        let previousDType = Autocast.dtype(device)
        try check(mt_autocast_set(device.typeCode, enabled ? 1 : 0, dtype.rawValue))
        _ = mt_autocast_increment_nesting()
        defer {
            if mt_autocast_decrement_nesting() == 0 { _ = mt_autocast_clear_cache() }
            _ = mt_autocast_set(device.typeCode, previousEnabled ? 1 : 0, previousDType.rawValue)
        }
        return try body()
    }

    /// Runs `body` under autocast for a precision (fp32: plainly, without autocast).
    public static func run<R>(device: Device, precision: Precision, _ body: () throws -> R) throws -> R {
        guard let dtype = precision.autocastDType else { return try body() }
        return try run(device: device, dtype: dtype, body)
    }
}
