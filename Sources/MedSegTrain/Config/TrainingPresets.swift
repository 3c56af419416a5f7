import Yams

/// The seed recipes as named training presets (YAML, like a user's --config file). Data-set
/// specific sizes (patch, batch) are the seeds'; override them on the command line as needed.
public enum TrainingPresets {
    public static let yaml: [String: String] = [
        // Seed 004: classic U-Net on ISBI 2012 cells; BCE, Adam 1e-4, batch 3, 40 epochs, best by validation loss.
        "isbi2012-unet": """
        model: unet
        dims: 2
        features: 64
        depth: 5
        patch_size: [256, 256]
        batch_size: 3
        epochs: 40
        iterations: 10
        optimizer: adam
        lr: 0.0001
        weight_decay: 0
        scheduler: constant
        loss: bce
        best_metric: loss
        augmentation: flip_rotate
        normalization: rgb
        """,
        // Seed 000: UltraLight VM-UNet on ISIC 2017/2018 (published config): 256x256, BCE + Dice,
        // AdamW 1e-3 wd 1e-2, cosine to 1e-5 over 50 epochs (of 250), batch 8, seed 42, flips,
        // rot90 and 20-80 degree rotations, best by validation loss.
        "isic-ultralight": """
        model: ultralight_vmunet
        dims: 2
        features: 8
        patch_size: [256, 256]
        batch_size: 8
        epochs: 250
        iterations: 250
        optimizer: adamw
        lr: 0.001
        weight_decay: 0.01
        scheduler: cosine
        eta_min: 0.00001
        loss: bce_dice
        best_metric: loss
        augmentation: flip_rotate
        normalization: rgb
        oversample_foreground: 0
        seed: 42
        """,
        // Seed 001: UNet++ 3D on MSD Task03 Liver via nnU-Net: Dice + CE with deep supervision,
        // SGD 0.01 momentum 0.99 Nesterov, poly 0.9, checkpoint every 50 epochs, CT normalization.
        "liver-unetpp-3d": """
        model: unetpp
        dims: 3
        features: 32
        depth: 5
        deep_supervision: true
        patch_size: [128, 128, 128]
        batch_size: 2
        epochs: 1000
        iterations: 250
        optimizer: sgd
        lr: 0.01
        momentum: 0.99
        nesterov: true
        weight_decay: 0.00003
        scheduler: poly
        grad_clip: 12
        loss: dice_ce
        save_every: 50
        augmentation: nnunet
        normalization: ct
        """,
        // Seed 002: SETR-MLA with a frozen ViT-B/16 on fundus vessels: per-GPU batch 4, 100 epochs,
        // lr 1e-4 cosine, flips, rotation, scaling, best by validation Dice; 0.4 auxiliary losses.
        "fundus-setr-mla": """
        model: setr_mla
        dims: 2
        features: 768
        depth: 12
        patch_size: [224, 224]
        batch_size: 4
        epochs: 100
        iterations: 50
        optimizer: adamw
        lr: 0.0001
        weight_decay: 0.01
        scheduler: cosine
        loss: bce_dice
        best_metric: dice
        augmentation: flip_rotate_scale
        normalization: rgb
        """,
        // Seed 003: nnU-Net's plain U-Net, 2D, on BraTS: batch 64, AdamW 1e-3, deep supervision,
        // 5 folds, fixed seed, bf16 mixed precision.
        "brats-nnunet-2d": """
        model: plainunet
        dims: 2
        features: 32
        depth: 6
        deep_supervision: true
        patch_size: [192, 160]
        batch_size: 64
        epochs: 1000
        iterations: 250
        optimizer: adamw
        lr: 0.001
        weight_decay: 0.01
        scheduler: poly
        loss: dice_ce
        augmentation: nnunet
        normalization: zscore
        precision: bf16
        seed: 1
        """,
        // MedNeXt (Roy et al. 2023) as MIC-DKFZ trains it (nnUNetTrainerV2_MedNeXt_B_kernel3): nnU-Net v2's
        // loop (1000 epochs of 250 iterations, poly, Dice + CE with deep supervision, weight decay 3e-5)
        // with AdamW at 1e-3 and its eps of 1e-4.
        "mednext-3d": """
        model: mednext
        model_size: B
        kernel_size: 3
        dims: 3
        deep_supervision: true
        patch_size: [128, 128, 128]
        batch_size: 2
        epochs: 1000
        iterations: 250
        optimizer: adamw
        lr: 0.001
        eps: 0.0001
        weight_decay: 0.00003
        scheduler: poly
        loss: dice_ce
        augmentation: nnunet
        """,
        // Primus-M (Wald et al. 2025) as nnU-Net's nnUNet_Primus_M_Trainer trains it: AdamW 3e-4, weight decay
        // 0.05, 50 epochs of linear warm-up then poly, gradient norm clipped at 1, Dice + CE without deep
        // supervision, stochastic depth 0.2 (built into the network), nnU-Net's 1000 epochs of 250 iterations.
        // AdamW's betas are (0.9, 0.98). The patch must be divisible by the patch embedding of 8.
        "primus-3d": """
        model: primus
        model_size: M
        dims: 3
        patch_size: [128, 128, 128]
        batch_size: 2
        epochs: 1000
        iterations: 250
        optimizer: adamw
        lr: 0.0003
        beta2: 0.98
        weight_decay: 0.05
        scheduler: poly
        warmup_epochs: 50
        grad_clip: 1
        loss: dice_ce
        augmentation: nnunet
        """,
        // The built-in synthetic 2D data set, small enough for a CPU demo.
        "synthetic-2d": """
        model: unet
        dims: 2
        features: 16
        depth: 4
        patch_size: [128, 128]
        batch_size: 4
        epochs: 12
        iterations: 25
        optimizer: adam
        lr: 0.003
        weight_decay: 0
        scheduler: poly
        augmentation: flip
        oversample_foreground: 0.33
        """,
    ]

    public static var names: [String] { yaml.keys.sorted() }

    /// The keys preset `name` sets.
    public static func keys(_ name: String) throws -> Set<String> {
        guard let text = yaml[name] else { throw ConfigError("unknown preset '\(name)'; available: \(names.joined(separator: ", "))") }
        return Set(((try Yams.load(yaml: text)) as? [String: Any] ?? [:]).keys)
    }

    /// The preset applied on top of the defaults.
    public static func config(_ name: String) throws -> TrainingConfig {
        guard let text = yaml[name] else { throw ConfigError("unknown preset '\(name)'; available: \(names.joined(separator: ", "))") }
        return try TrainingConfig().merging(yaml: text, source: "preset \(name)")
    }
}
