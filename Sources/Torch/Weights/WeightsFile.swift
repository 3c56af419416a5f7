import Foundation

/// A weights file of either format, told apart by its first bytes rather than its name: a zip
/// (`torch.save` since PyTorch 1.6: .pth, .pt, .bin, .ckpt, ...) is read as a PyTorch checkpoint,
/// anything else as safetensors (whose reader names what it finds instead).
public enum WeightsFile {
    /// Every tensor, and the safetensors `__metadata__` (empty for PyTorch files). A PyTorch
    /// checkpoint's state dict is found as `PyTorchCheckpoint.stateDict(from:)` finds it.
    public static func read(_ url: URL) throws -> (tensors: StateDict, metadata: [String: String]) {
        if isPyTorchArchive(url) { return (try PyTorchCheckpoint.stateDict(from: url), [:]) }
        return try Safetensors.load(url)
    }

    /// Whether the file starts as a zip archive does ("PK\u{3}\u{4}").
    static func isPyTorchArchive(_ url: URL) -> Bool {
        guard RegularFile.problem(url) == nil, let handle = try? FileHandle(forReadingFrom: url) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data([0x50, 0x4B, 0x03, 0x04])
    }
}
