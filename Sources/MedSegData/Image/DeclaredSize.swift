import Foundation

/// Sizes a file's header declares, checked before any arithmetic or allocation: a lying header
/// (negative sizes, products that overflow, more bytes than the data can hold) is a "corrupt
/// header" error naming the file instead of a trap or an allocation of terabytes.
enum DeclaredSize {
    /// Deflate expands at most about 1032:1; more declared content than that is a lie.
    static let maximumInflation = 1032

    /// The product of `sizes`, each at least 1.
    static func elements(_ sizes: [Int], file: URL, what: String = "dimensions") throws -> Int {
        var product = 1
        for s in sizes {
            guard s >= 1 else { throw DataError(file: file, "corrupt header: \(what) \(sizes) include \(s)") }
            let (next, overflow) = product.multipliedReportingOverflow(by: s)
            guard !overflow else { throw DataError(file: file, "corrupt header: \(what) \(sizes) are too large") }
            product = next
        }
        return product
    }

    /// `count` * `size` + `extra` bytes, or a corrupt-header error when it overflows.
    static func bytes(_ count: Int, of size: Int, plus extra: Int = 0, file: URL) throws -> Int {
        let (product, o1) = count.multipliedReportingOverflow(by: size)
        let (total, o2) = product.addingReportingOverflow(extra)
        guard !o1, !o2, extra >= 0 else { throw DataError(file: file, "corrupt header: \(count) values of \(size) bytes at offset \(extra) cannot be addressed") }
        return total
    }

    /// Refuses a declared size (in `unit`s) larger than `available` (the units the data can hold;
    /// for `compressed` data, `maximumInflation` times its bytes).
    static func refuseUnless(_ declared: Int, fitsIn available: Int, compressed: Bool = false, file: URL, unit: String = "bytes") throws {
        let (capacity, overflow) = available.multipliedReportingOverflow(by: compressed ? maximumInflation : 1)
        guard overflow || declared <= capacity else {
            throw DataError(file: file, "corrupt header: it declares \(declared) \(unit), more than \(available) bytes\(compressed ? " of compressed data" : "") can hold")
        }
    }
}
