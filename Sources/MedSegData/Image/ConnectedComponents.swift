/// Connected components of a boolean mask on a voxel grid (2D and 3D in practice, any rank works).
/// Face connectivity (the default): two voxels touch when they differ by one step along exactly
/// one axis (4 neighbours in 2D, 6 in 3D), scipy.ndimage.label's default; diagonal contact does
/// not join. Full connectivity: any voxel of the 3^n block around one touches it (8 in 2D, 26 in
/// 3D), skimage.measure.label's default, which nnU-Net v2's post-processing uses.
public struct ConnectedComponents: Sendable {
    public enum Connectivity: String, Codable, Sendable { case face, full }

    /// Component per voxel, in the mask's memory order: 0 outside the mask, else 1...count,
    /// numbered in the order in which each component's first voxel appears in memory.
    public let labels: [Int32]
    /// Voxel count of component `id` at index `id - 1`.
    public let sizes: [Int]

    public var count: Int { sizes.count }

    /// Labels `mask`, laid out x fastest over `size` (x first, like `MedicalImage.size`).
    /// O(voxels) time; memory is the label array plus a stack no deeper than the largest component.
    public init(mask: [Bool], size: [Int], connectivity: Connectivity = .face) {
        precondition(!size.isEmpty && size.allSatisfy { $0 > 0 }, "grid size must be positive along every axis")
        precondition(mask.count == size.reduce(1, *), "mask count \(mask.count) does not match size \(size)")
        precondition(mask.count < Int(Int32.max), "grid too large for 32-bit component ids")
        var strides: [Int] = []
        var stride = 1
        for n in size { strides.append(stride); stride *= n }

        // Full connectivity: every offset of the 3^n block but the centre, as per-axis steps.
        let blockOffsets: [[Int]] = connectivity == .face ? [] : (0..<Self.power3(size.count)).compactMap { code in
            var c = code
            let steps = size.indices.map { _ -> Int in defer { c /= 3 }; return c % 3 - 1 }
            return steps.allSatisfy { $0 == 0 } ? nil : steps
        }
        var coordinates = [Int](repeating: 0, count: size.count)
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
                        if !blockOffsets.isEmpty {
                            for axis in size.indices { coordinates[axis] = (voxel / strides[axis]) % size[axis] }
                            neighbours: for steps in blockOffsets {
                                var neighbour = voxel
                                for axis in steps.indices where steps[axis] != 0 {
                                    let c = coordinates[axis] + steps[axis]
                                    guard c >= 0, c < size[axis] else { continue neighbours }
                                    neighbour += steps[axis] * strides[axis]
                                }
                                if inside[neighbour], label[neighbour] == 0 {
                                    label[neighbour] = id
                                    stack.append(neighbour)
                                }
                            }
                            continue
                        }
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

    /// `mask` with every component but the largest cleared (an empty mask stays empty). Of
    /// components of equal largest size, `keepingTies` keeps all (nnU-Net v2's
    /// remove_all_but_largest_component), else the first in memory order.
    public static func largestComponentMask(_ mask: [Bool], size: [Int], connectivity: Connectivity = .face,
                                            keepingTies: Bool = false) -> [Bool] {
        let components = ConnectedComponents(mask: mask, size: size, connectivity: connectivity)
        guard let keep = components.largest else { return mask }
        guard keepingTies else { return components.labels.map { $0 == keep } }
        let largest = components.sizes[Int(keep) - 1]
        let kept = Set(components.sizes.indices.filter { components.sizes[$0] == largest }.map { Int32($0 + 1) })
        return components.labels.map { kept.contains($0) }
    }

    private static func power3(_ n: Int) -> Int { (0..<n).reduce(1) { acc, _ in acc * 3 } }
}
