/// The networks MedSeg builds; the raw value is the name used on the command line, in configs
/// and in checkpoints.
public enum ModelName: String, Codable, CaseIterable, Sendable {
    case unet, unetpp, plainunet, resencunet, ultralight_vmunet, setr_mla, segresnet, swinunetr, swinunetr_v2, mednext, primus, primus_v2, primus_v3

    /// The published width of each network: what `--features` means when it is not given
    /// (classic U-Net 64, nnU-Net's plain and residual-encoder U-Nets 32, UltraLight VM-UNet's [8, 16, 24, 32, 48, 64], ViT-B/16 768,
    /// SegResNet's 8 initial filters as MONAI's, SwinUNETR's feature size 48 as its paper's).
    public var defaultFeatures: Int {
        switch self {
        case .unet: return 64
        case .unetpp, .plainunet, .resencunet: return 32
        case .ultralight_vmunet, .segresnet: return 8
        case .setr_mla: return 768
        case .swinunetr, .swinunetr_v2: return 48
        case .mednext: return 32
        case .primus, .primus_v2, .primus_v3: return 8  // its patch embedding per axis (fixed; the width is --model-size's)
        }
    }

    /// Levels (U-Nets) or transformer blocks (setr_mla) when `--depth` is not given.
    public var defaultDepth: Int {
        switch self {
        case .unet, .unetpp: return 5
        case .plainunet, .resencunet: return 5
        case .ultralight_vmunet: return 6
        case .setr_mla: return 12
        case .segresnet: return 4
        case .swinunetr, .swinunetr_v2: return 4  // its four Swin stages (fixed)
        case .mednext: return 4  // its four levels (fixed; the size is --model-size)
        case .primus, .primus_v2, .primus_v3: return 4  // its patch embedding and three decoder stages (fixed; the EVA blocks are --model-size's)
        }
    }

    /// The implementation each network follows (its state_dict names, its parameter count).
    public var reference: String {
        switch self {
        case .unet: return "the classic U-Net of Ronneberger et al., seed 004's"
        case .unetpp: return "UNet++ of Zhou et al. on nnU-Net's blocks, seed 001's"
        case .plainunet: return "dynamic_network_architectures' PlainConvUNet, nnU-Net's"
        case .resencunet: return "dynamic_network_architectures' ResidualEncoderUNet, nnU-Net's ResEnc"
        case .ultralight_vmunet: return "UltraLight VM-UNet, seed 000's"
        case .setr_mla: return "SETR-MLA on a timm ViT-B/16, seed 002's"
        case .segresnet: return "MONAI's SegResNet"
        case .swinunetr: return "MONAI's SwinUNETR"
        case .swinunetr_v2: return "MONAI's SwinUNETR with use_v2"
        case .mednext: return "MedNeXt v1 as MONAI's create_mednext"
        case .primus: return "dynamic_network_architectures' PrimusS...PrimusL"
        case .primus_v2: return "dynamic_network_architectures' PrimusV2S...PrimusV2L"
        case .primus_v3: return "dynamic_network_architectures' PrimusV3S...PrimusV3L"
        }
    }

    /// Every network with its reference, for help texts.
    public static var described: String { allCases.map { "\($0.rawValue) (\($0.reference))" }.joined(separator: ", ") }

    /// Parses a name with an error that lists the choices.
    public init(parsing name: String) throws {
        guard let model = ModelName(rawValue: name) else {
            throw ChoiceError(key: "model", value: name, choices: Self.allCases.map(\.rawValue))
        }
        self = model
    }
}

/// The published size of a network that comes in sizes (MedNeXt's S, B, M, L as `create_mednext`,
/// Primus's as `dynamic_network_architectures`' `PrimusS`...`PrimusL`).
public enum ModelSize: String, Codable, CaseIterable, Sendable { case S, B, M, L }

/// A value outside a fixed set of choices; the message lists them.
public struct ChoiceError: Error, CustomStringConvertible {
    public let key: String
    public let value: String
    public let choices: [String]
    public init(key: String, value: String, choices: [String]) { self.key = key; self.value = value; self.choices = choices }
    public var description: String { "'\(value)' is not a \(key); choose one of \(choices.joined(separator: ", "))" }
}
