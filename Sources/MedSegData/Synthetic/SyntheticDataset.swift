import Foundation

extension SyntheticCases {
    /// Writes `training` labelled cases (imagesTr/labelsTr) and `test` cases (imagesTs, with
    /// their labels in labelsTs for evaluation) in the raw layout. 2D cases are 8-bit PNG
    /// (intensities clipped to 0-255), 3D cases NIfTI.
    @discardableResult
    public func write(to root: URL, training: Int, test: Int, fileEnding: String? = nil,
                      progress: ((Int, Int) -> Void)? = nil) throws -> DatasetDescription {
        let ending = fileEnding ?? (options.dims == 2 ? ".png" : ".nii.gz")
        var labels = ["background": 0]
        for c in 1...options.classes { labels[options.classes == 1 ? "foreground" : "class\(c)"] = c }
        let names = options.channels == 1 ? [options.dims == 2 ? "gray" : "MRI"] : (0..<options.channels).map { "channel\($0)" }
        let writer = try RawDatasetWriter(root: root, channelNames: names, labels: labels,
                                          fileEnding: ending, name: "Synthetic\(options.dims)D")
        let labelsTs = root.appendingPathComponent("labelsTs")
        for i in 0..<(training + test) {
            var (image, label) = makeCase(i)
            if ending == ".png" {
                image.voxels = image.voxels.map { min(255, max(0, $0.rounded())) }
                image.pixelType = .uint8
            }
            let id = String(format: "synth_%03d", i)
            if i < training {
                try writer.add(identifier: id, image: image, label: label)
            } else {
                try writer.add(identifier: id, image: image, label: nil)
                try FileManager.default.createDirectory(at: labelsTs, withIntermediateDirectories: true)
                try ImageIO.write(label, to: labelsTs.appendingPathComponent(id + ending))
            }
            progress?(i + 1, training + test)
        }
        return try writer.finish(description: "MedSeg synthetic \(options.dims)D data (seed \(options.seed)): blobs on textured background")
    }
}
