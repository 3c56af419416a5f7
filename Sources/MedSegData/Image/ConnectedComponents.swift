/// Connected components of a boolean mask on a voxel grid (2D and 3D in practice, any rank works)
/// with face connectivity: two voxels touch when they differ by one step along exactly one axis
/// (4 neighbours in 2D, 6 in 3D), scipy.ndimage.label's default. Diagonal contact does not join.
public struct ConnectedComponents: Sendable {
    /// Component per voxel, in the mask's memory order: 0 outside the mask, else 1...count,
    /// numbered in the order in which each component's first voxel appears in memory.
    public let labels: [Int32]
    /// Voxel count of component `id` at index `id - 1`.
    public let sizes: [Int]

    public var count: Int { sizes.count }

    /// Labels `mask`, laid out x fastest over `size` (x first, like `MedicalImage.size`).
    /// O(voxels) time; memory is the label array plus a stack no deeper than the largest component.
    public init(mask: [Bool], size: [Int]) {
        precondition(!size.isEmpty && size.allSatisfy { $0 > 0 }, "grid size must be positive along every axis")
        precondition(mask.count == size.reduce(1, *), "mask count \(mask.count) does not match size \(size)")
        precondition(mask.count < Int(Int32.max), "grid too large for 32-bit component ids")
        var strides: [Int] = []
        var stride = 1
        for n in size { strides.append(stride); stride *= n }

        var labels = [Int32](repeating: 0, count: mask.count)
        var sizes: [Int] = []
        // Flood fill from an explicit stack: recursion would overflow on a 512^3 component.
        var stack: [Int] = []
        mask.withUnsafeBufferPointer { inside in
            labels.withUnsafeMutableBufferPointer { label in
                for seed in 0..<inside.count where inside[seed] && label[seed] == 0 {
                    let id = Int32(sizes.count + 1)
                    label[seed] = id
                    stack.append(seed)
                    var voxels = 0
                    while let voxel = stack.popLast() {
                        voxels += 1
                        for axis in 0..<size.count {
                            let step = strides[axis]
                            // The coordinate guards keep a row's last voxel from touching the next row's first.
                            let coordinate = (voxel / step) % size[axis]
                            if coordinate > 0, inside[voxel - step], label[voxel - step] == 0 {
                                label[voxel - step] = id
                                stack.append(voxel - step)
                            }
                            if coordinate + 1 < size[axis], inside[voxel + step], label[voxel + step] == 0 {
                                label[voxel + step] = id
                                stack.append(voxel + step)
                            }
                        }
                    }
                    sizes.append(voxels)
                }
            }
        }
        self.labels = labels
        self.sizes = sizes
    }

    /// Id of the largest component, nil for an empty mask. Ties go to the component found first
    /// in memory order, so the choice does not depend on anything but the mask.
    public var largest: Int32? {
        var best: Int?
        for (index, voxels) in sizes.enumerated() where best.map({ voxels > sizes[$0] }) ?? true {
            best = index
        }
        return best.map { Int32($0 + 1) }
    }

    /// `mask` with its holes filled: every component of the background that does not reach the
    /// grid's border becomes part of the mask (scipy.ndimage.binary_fill_holes, face connectivity).
    public static func fillingHoles(_ mask: [Bool], size: [Int]) -> [Bool] {
        let background = ConnectedComponents(mask: mask.map { !$0 }, size: size)
        guard background.count > 0 else { return mask }
        var reachesBorder = [Bool](repeating: false, count: background.count + 1)
        var strides: [Int] = []
        var stride = 1
        for n in size { strides.append(stride); stride *= n }
        for (voxel, id) in background.labels.enumerated() where id > 0 && !reachesBorder[Int(id)] {
            for axis in 0..<size.count {
                let coordinate = (voxel / strides[axis]) % size[axis]
                if coordinate == 0 || coordinate == size[axis] - 1 { reachesBorder[Int(id)] = true; break }
            }
        }
        return zip(mask, background.labels).map { inside, id in inside || !reachesBorder[Int(id)] }
    }

    /// `mask` with every component but the largest cleared (an empty mask stays empty).
    public static func largestComponentMask(_ mask: [Bool], size: [Int]) -> [Bool] {
        let components = ConnectedComponents(mask: mask, size: size)
        guard let keep = components.largest else { return mask }
        return components.labels.map { $0 == keep }
    }
}
