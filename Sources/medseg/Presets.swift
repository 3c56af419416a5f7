/// The seed recipes as named training presets (YAML, like a user's --config file).
enum Presets {
    static let yaml: [String: String] = [
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

    static var names: [String] { yaml.keys.sorted() }
}
