import CTorch

/// Where a tensor lives.
public enum Device: Equatable, Hashable, Codable, Sendable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    public var isCUDA: Bool { self != .cpu }

    var typeCode: Int32 {
        switch self {
        case .cpu: return 0
        case .cuda: return 1
        }
    }

    var indexCode: Int32 {
        switch self {
        case .cpu: return -1
        case .cuda(let i): return Int32(i)
        }
    }

    init(typeCode: Int32, index: Int32) {
        self = typeCode == 1 ? .cuda(Int(max(index, 0))) : .cpu
    }

    /// Parses "cpu", "cuda" and "cuda:N".
    public init(parsing text: String) throws {
        let lower = text.lowercased()
        if lower == "cpu" { self = .cpu; return }
        if lower == "cuda" { self = .cuda(0); return }
        if lower.hasPrefix("cuda:"), let i = Int(lower.dropFirst(5)), i >= 0 { self = .cuda(i); return }
        throw TorchError("unknown device '\(text)' (expected cpu, cuda or cuda:N)")
    }

    /// A device as the command line names it, for the process of local rank `localRank`:
    /// "auto" is cuda:LOCAL_RANK where CUDA is available, else the CPU; "cuda" is cuda:LOCAL_RANK.
    /// A CUDA device this machine does not have is an error here, in one line, rather than
    /// libtorch's dispatcher dump at the first tensor.
    public static func resolve(_ text: String, localRank: Int = 0) throws -> Device {
        let device: Device
        switch text.lowercased() {
        case "auto":
            guard Torch.cudaAvailable else { return .cpu }
            device = .cuda(localRank)
        case "cuda": device = .cuda(localRank)
        default: device = try Device(parsing: text)
        }
        if case .cuda(let index) = device {
            guard Torch.cudaAvailable else {
                throw TorchError("\(Setting.named("device", value: text)): no CUDA device is visible to this MedSeg (a CPU build, or no GPU and driver); use \(Setting.named("device", value: "cpu")) or auto (`medseg doctor` shows the engine)")
            }
            guard index < Torch.cudaDeviceCount else {
                throw TorchError("\(Setting.named("device", value: text)): cuda:\(index) does not exist; this machine has \(Torch.cudaDeviceCount) CUDA device(s), cuda:0 to cuda:\(Torch.cudaDeviceCount - 1)")
            }
        }
        return device
    }

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let i): return "cuda:\(i)"
        }
    }
}
