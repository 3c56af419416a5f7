import Foundation

/// Label maps hold small whole numbers. Before any of their values become integers (class
/// indices, array sizes), NaN, infinities, fractions, negatives and values beyond `largest` are
/// refused, naming the file.
public enum LabelValues {
    /// The largest label value MedSeg accepts (16-bit label maps).
    public static let largest = 65535

    /// Why `value` cannot be a label, or nil when it can.
    public static func problem(_ value: Float) -> String? {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return "\(value > 0 ? "+" : "-")infinity" }
        if value != value.rounded() { return "the fractional value \(value)" }
        if value < 0 { return "the negative value \(Int(value))" }
        if value > Float(largest) { return "the value \(value), above the largest label \(largest)" }
        return nil
    }

    /// Throws for the first voxel of `label` that is not a label value.
    public static func check(_ label: MedicalImage, file: URL) throws {
        for v in label.voxels where !(v >= 0 && v <= Float(largest) && v == v.rounded()) {
            guard let why = problem(v) else { continue }
            throw DataError(file: file, "a label map holds \(why); labels are whole numbers 0 to \(largest)")
        }
    }

    /// A value for messages: whole numbers without ".0", anything else as it is.
    public static func describe(_ value: Float) -> String {
        value.isFinite && abs(value) < 1e15 && value == value.rounded() ? String(Int64(value)) : String(value)
    }
}
