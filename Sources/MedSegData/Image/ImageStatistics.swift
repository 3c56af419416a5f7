import CImageCodecs
import Foundation

/// Intensity statistics of an image's voxels: minimum, maximum and mean of the finite ones, the
/// count of NaN/infinite ones, and the count of each value when there are few (a label map).
/// Accumulated chunk by chunk from stored samples, so that an image is inspected without being
/// held whole.
public struct ImageStatistics: Sendable {
    var raw = mc_stats()

    public init() { mc_stats_init(&raw) }

    /// The statistics of values already read.
    public init(_ values: [Float]) {
        self.init()
        values.withUnsafeBytes { add($0, count: values.count, type: .float32) }
    }

    /// Adds `count` stored samples, each taken as its float32 value times `slope` plus `intercept`.
    mutating func add(_ samples: UnsafeRawBufferPointer, count: Int, type: SampleType, bigEndian: Bool = false,
                      slope: Double = 1, intercept: Double = 0) {
        precondition(count * type.byteCount <= samples.count)
        guard count > 0 else { return }
        let swap = bigEndian != (1.bigEndian == 1)
        mc_stats_add(&raw, samples.baseAddress, count, type.codecType, swap ? 1 : 0, slope, intercept)
    }

    public var finiteCount: Int { Int(raw.finite) }
    public var nonFiniteCount: Int { Int(raw.non_finite) }
    /// nil when no voxel is finite.
    public var minimum: Float? { raw.finite > 0 ? raw.minimum : nil }
    public var maximum: Float? { raw.finite > 0 ? raw.maximum : nil }
    public var mean: Double? { raw.finite > 0 ? raw.sum / Double(raw.finite) : nil }

    /// Each value and its count, ascending, when the finite voxels take at most 32 values.
    public var valueCounts: [(value: Float, count: Int)]? {
        guard raw.too_many_values == 0 else { return nil }
        let values = withUnsafeBytes(of: raw.values) { Array($0.bindMemory(to: Float.self)) }
        let counts = withUnsafeBytes(of: raw.counts) { Array($0.bindMemory(to: UInt64.self)) }
        return (0..<Int(raw.value_count)).map { (values[$0], Int(counts[$0])) }.sorted { $0.value < $1.value }
    }
}

extension SampleType {
    /// The codec library's code for this type.
    var codecType: Int32 {
        switch self {
        case .uint8: return Int32(MC_U8)
        case .int8: return Int32(MC_I8)
        case .uint16: return Int32(MC_U16)
        case .int16: return Int32(MC_I16)
        case .uint32: return Int32(MC_U32)
        case .int32: return Int32(MC_I32)
        case .uint64: return Int32(MC_U64)
        case .int64: return Int32(MC_I64)
        case .float32: return Int32(MC_F32)
        case .float64: return Int32(MC_F64)
        }
    }
}
