import Foundation

/// `DatasetFingerprint.evenlySpaced` met one item at a time: of `total` items (counted in a
/// first pass) it keeps item `k * total / count` for k < `count`, or every item when there are
/// at most `count`. The picks equal `evenlySpaced(allItems, count:)` without holding all items:
/// a CT's foreground can be 10^8 voxels, whose indices alone would take 800 MB.
public struct EvenlySpacedSelection {
    public let total: Int
    public let count: Int
    private var kept = 0
    private var seen = 0

    public init(total: Int, count: Int) {
        self.total = total
        self.count = count
    }

    /// Whether the next item is kept (call once per item, in order).
    public mutating func keepsNext() -> Bool {
        defer { seen += 1 }
        if total <= count { return true }
        // k * total / count grows by at least 1 per k (total > count): one item per pick.
        guard kept < count, seen == kept * total / count else { return false }
        kept += 1
        return true
    }
}
