import Foundation
import Torch

/// nnU-Net's preprocessing of training cases: crop to the non-zero region, normalize (before
/// resampling, as nnU-Net does), resample to the target spacing (images cubic B-spline, labels
/// per-label linear, separate z for anisotropic data), and store as `PreprocessedCase` files.
public struct Preprocessor {
    /// Target spacing in array order ((z,) y, x), as the fingerprint's spacings.
    public var targetSpacing: [Double]
    /// Per channel (the last one repeats for further channels).
    public var normalization: [IntensityNormalization]
    public var fingerprint: DatasetFingerprint
    /// Per channel nnU-Net's `use_mask_for_norm`; by default the planner's rule on the fingerprint.
    public var useMaskForNorm: [Bool]
    /// Interpolation of images and labels (and of logits back to the raw grid at inference), as
    /// the plans' resampling settings say; nnU-Net's defaults.
    public var orders = Resampling.Orders()
    /// Class locations kept per label.
    public var maxClassLocations = 10_000

    public init(targetSpacing: [Double], normalization: [IntensityNormalization], fingerprint: DatasetFingerprint, useMaskForNorm: [Bool]? = nil) {
        self.targetSpacing = targetSpacing
        self.normalization = normalization
        self.fingerprint = fingerprint
        let channels = max(fingerprint.channels, normalization.count)
        let schemes = (0..<channels).map { normalization.isEmpty ? .none : normalization[min($0, normalization.count - 1)] }
        self.useMaskForNorm = useMaskForNorm
            ?? PreprocessingNormalization.useMaskForNorm(schemes, medianRelativeSizeAfterCropping: fingerprint.medianRelativeSizeAfterCropping)
    }

    public init(targetSpacing: [Double], normalization: IntensityNormalization, fingerprint: DatasetFingerprint) {
        self.init(targetSpacing: targetSpacing, normalization: [normalization], fingerprint: fingerprint)
    }

    /// What a run did.
    public struct Summary: Equatable, Sendable {
        public var processed: [String]
        public var skipped: [String]
    }

    /// Preprocesses every training case of `dataset` into `out` on `workers` threads, skipping
    /// cases whose stored files are newer than their inputs and were made with the same settings.
    /// `progress(done, total)` is called (serialized) after each case.
    @discardableResult
    public func run(dataset: RawDataset, out: URL, workers: Int = 1, progress: ((Int, Int) -> Void)? = nil) throws -> Summary {
        // What `data check` refuses is not preprocessed (nor trained on).
        try DatasetChecker.refuseProblems(in: dataset.root, workers: workers)
        let cases = try dataset.trainingCases()
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let lock = NSLock()
        var done = 0
        let skipped = try Parallel.map(cases.count, workers: workers) { index -> Bool in
            let files = cases[index]
            let skip = isUpToDate(files, in: out)
            if !skip {
                let result = try process(files)
                try PreprocessedCase.write(image: result.image, label: result.label, properties: result.properties, to: out)
                // Once Torch is set up (preprocessing inside `train`), freed blocks stay on the heap
                // (its mallopt): a case's gigabytes go back before the next, one case per worker.
                Torch.releaseFreeMemory()
            }
            lock.lock()
            done += 1
            progress?(done, cases.count)
            lock.unlock()
            return skip
        }
        return Summary(processed: zip(cases, skipped).filter { !$0.1 }.map { $0.0.identifier },
                       skipped: zip(cases, skipped).filter { $0.1 }.map { $0.0.identifier })
    }

    /// Whether `out` holds this case, written after its inputs last changed, with these settings.
    public func isUpToDate(_ files: CaseFiles, in out: URL) -> Bool {
        let (imageURL, labelURL, propertiesURL) = PreprocessedCase.files(files.identifier, in: out)
        let fm = FileManager.default
        func modified(_ url: URL) -> Date? { (try? fm.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date }
        guard let written = modified(propertiesURL), fm.fileExists(atPath: imageURL.path) else { return false }
        if files.label != nil && !fm.fileExists(atPath: labelURL.path) { return false }
        for input in files.images + (files.label.map { [$0] } ?? []) {
            guard let date = modified(input), date <= written else { return false }
        }
        guard let data = try? Data(contentsOf: propertiesURL),
              let stored = try? JSONDecoder().decode(PreprocessedCase.Properties.self, from: data) else { return false }
        return stored.targetSpacing == targetSpacing && stored.normalization == normalization
            && stored.useMaskForNorm == Array(useMaskForNorm.prefix(stored.channels)) && stored.ctStatistics == ctStatistics
            && (stored.resampling ?? Resampling.Orders()).preprocessesLike(orders)
    }

    /// What CT normalization clips and scales with, where any channel uses it.
    var ctStatistics: [IntensityStatistics]? { normalization.contains(.ct) ? fingerprint.intensityStatistics : nil }

    /// Label value of background voxels outside the non-zero mask (nnU-Net's `nonzero_label`).
    public static let outsideNonZeroLabel: Float = -1

    /// One case, preprocessed in memory: image [C, (Z,) Y, X] values, int8 label, properties.
    public func process(_ files: CaseFiles) throws -> (image: [Float], label: [Int8]?, properties: PreprocessedCase.Properties) {
        // 1. Read and crop to the non-zero region. Only the raw header is kept past this: the raw
        // voxels go as soon as the crop exists (one copy of the case at a time, not two).
        var image: MedicalImage, label: MedicalImage?, box: CropBox
        let rawSize: [Int], rawGeometry: ImageGeometry, caseSpacing: [Double]
        do {
            let (raw, rawLabel) = try CaseVolumes.read(files)
            // A 2D configuration of volumes (nnU-Net's 2d) resamples in plane only: each case keeps
            // its own slice spacing.
            guard targetSpacing.count == raw.dims || (raw.dims == 3 && targetSpacing.count == 2) else {
                throw DataError(file: files.images[0], "target spacing \(targetSpacing) does not have the image's \(raw.dims) dimensions")
            }
            caseSpacing = targetSpacing.count == raw.dims ? targetSpacing : [raw.geometry.spacing[2]] + targetSpacing
            rawSize = raw.size
            rawGeometry = raw.geometry
            (image, label, box) = Cropping.cropToNonZero(image: raw, label: rawLabel)
        }
        // As nnU-Net's cropping: background outside the (hole-filled) non-zero mask is -1 in the
        // label (training reads it as 0: `PreprocessedCase.labelTensor`).
        let nonZero = Cropping.nonZeroMask(image)
        if var l = label, l.voxelCount == nonZero.count {
            label = nil   // the only reference, so that marking does not copy the voxels
            for i in 0..<nonZero.count where !nonZero[i] && l.voxels[i] == 0 { l.voxels[i] = Self.outsideNonZeroLabel }
            label = l
        }
        // 2. Normalize (before resampling: nnU-Net resamples normalized intensities). A masked
        // z-score takes the voxels not marked outside (nnU-Net's `seg >= 0`).
        let masked = (0..<image.channels).contains { $0 < useMaskForNorm.count && useMaskForNorm[$0] }
        let normalizationMask = !masked ? nil : label.map { l in l.voxels.map { $0 >= 0 } } ?? nonZero
        try PreprocessingNormalization.normalize(&image, schemes: normalization, statistics: fingerprint.intensityStatistics,
                                                 useMask: useMaskForNorm, mask: normalizationMask, file: files.images[0])
        // 3. Resample (target spacing is array order, images are x first).
        let target = Array(caseSpacing.reversed())
        let croppedSize = image.size
        try Resampling.checkResampling(size: image.size, spacing: image.geometry.spacing, target: target, file: files.images[0])
        image = Resampling.resampleImage(image, to: target, order: orders.image, orderZ: orders.imageZ)
        label = label.map { Resampling.resampleLabel($0, to: target, order: orders.label, orderZ: orders.labelZ) }

        var labelValues: [Int8]? = nil
        var locations: [String: [Int]] = [:]
        if let label {
            labelValues = try Self.int8Labels(label, file: files.label!)
            locations = Self.classLocations(labelValues!, count: maxClassLocations)
        }
        let properties = PreprocessedCase.Properties(
            identifier: files.identifier, shape: [image.channels] + image.size.reversed(),
            spacing: image.geometry.spacing.reversed(), originalSpacing: rawGeometry.spacing.reversed(), geometry: rawGeometry,
            shapeBeforeCropping: rawSize.reversed(), bboxUsedForCropping: box.nnunetBoundingBox,
            shapeAfterCroppingAndBeforeResampling: croppedSize.reversed(), classLocations: locations,
            normalization: normalization, useMaskForNorm: Array(useMaskForNorm.prefix(image.channels)), targetSpacing: targetSpacing,
            ctStatistics: ctStatistics, resampling: orders)
        return (image.voxels, labelValues, properties)
    }

    /// The resampled label as the stored int8 class indices.
    static func int8Labels(_ label: MedicalImage, file: URL) throws -> [Int8] {
        var values = [Int8](repeating: 0, count: label.voxelCount)
        for (i, v) in label.voxels.enumerated() {
            let c = Int(v.rounded())
            guard c >= Int(Int8.min), c <= Int(Int8.max) else {
                throw DataError(file: file, "label value \(c) does not fit the int8 preprocessed label")
            }
            values[i] = Int8(c)
        }
        return values
    }

    /// Per foreground label, `count` of its voxels' flat indices, evenly spaced in index order
    /// (`DatasetFingerprint.evenlySpaced` of all of them), found by counting first and then
    /// picking: listing every foreground index of a CT would take gigabytes.
    static func classLocations(_ labels: [Int8], count: Int) -> [String: [Int]] {
        var totals = [Int](repeating: 0, count: Int(Int8.max) + 1)
        for v in labels where v > 0 { totals[Int(v)] += 1 }
        var selections = totals.map { EvenlySpacedSelection(total: $0, count: count) }
        var picked = [[Int]](repeating: [], count: totals.count)
        for (i, v) in labels.enumerated() where v > 0 && selections[Int(v)].keepsNext() { picked[Int(v)].append(i) }
        var locations: [String: [Int]] = [:]
        for c in picked.indices where totals[c] > 0 { locations[String(c)] = picked[c] }
        return locations
    }
}
