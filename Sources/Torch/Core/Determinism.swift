import CTorch

extension Torch {
    /// Deterministic algorithms only (torch.use_deterministic_algorithms): an operation without a
    /// deterministic implementation throws instead of running; cuDNN picks deterministic
    /// convolutions and leaves its benchmark mode; cuBLAS gets its fixed workspace (when set
    /// before the first CUDA matrix product).
    public static func setDeterministic(_ enabled: Bool) throws {
        initialize()
        try check(mt_set_deterministic(enabled ? 1 : 0))
    }

    public static var deterministic: Bool { initialize(); return mt_deterministic() == 1 }
}
