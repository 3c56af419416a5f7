import Foundation
import MedSegData
import Torch

/// nnU-Net v2's post-processing files, as `nnUNetv2_determine_postprocessing` writes them beside
/// the cross-validation predictions: `postprocessing.pkl` (a pickled pair of the functions and
/// their keyword arguments, what `nnUNetv2_predict -pp_pkl_file` reads) and the JSON written with
/// it (`postprocessing_fns`, `postprocessing_kwargs`). Each step removes all but the largest
/// component of a label, a region (its labels together) or a list of them, with skimage's full
/// connectivity; read as `Postprocessing.keep_largest_of`.
enum NNUNetPostprocessingFile {
    static let function = "remove_all_but_largest_component_from_segmentation"

    /// nil where `data` is not nnU-Net's JSON (MedSeg's own postprocessing.json).
    static func postprocessing(json data: Data, source: String) throws -> Postprocessing? {
        guard let root = (try? JSONDecoder().decode(JSONValue.self, from: data))?.any as? [String: Any],
              let functions = root["postprocessing_fns"] else { return nil }
        guard let names = functions as? [String], let kwargs = root["postprocessing_kwargs"] as? [Any], kwargs.count == names.count else {
            throw ConfigError("\(source): postprocessing_fns and postprocessing_kwargs must be lists of the same length")
        }
        return try steps(names.enumerated().map { index, name in
            (name, kwargs[index] as? [String: Any] ?? [:])
        }, source: source) { value in
            // JSON has no tuples: a region and a list of labels both read as lists, and either
            // means the voxels of those labels together.
            try labels(value, source: source) { item in
                if let number = item as? Double {
                    guard number == number.rounded(), abs(number) <= Double(Postprocessing.largestLabel) else { return .invalid(number) }
                    return .label(Int(number))
                }
                if let list = item as? [Any] { return .list(list) }
                return nil
            }
        }
    }

    static func postprocessing(pickle data: Data, source: String) throws -> Postprocessing {
        var reader = PickleReader(data)
        let root: PickleValue
        do { root = try reader.load() } catch {
            throw ConfigError("\(source): not a readable nnU-Net postprocessing.pkl (\(error))")
        }
        guard let pair = root.items, pair.count == 2, let functions = pair[0].items, let kwargs = pair[1].items, functions.count == kwargs.count else {
            throw ConfigError("\(source): not nnU-Net's postprocessing.pkl (a pair of lists: functions, keyword arguments)")
        }
        let named: [(String, [String: Any])] = try zip(functions, kwargs).map { function, arguments in
            guard case .global(_, let name) = function else { throw ConfigError("\(source): a step is \(function), not a function") }
            var dict: [String: Any] = [:]
            for (key, value) in arguments.pairs ?? [] { if let key = key.string { dict[key] = value } }
            return (name, dict)
        }
        return try steps(named, source: source) { value in
            try labels(value, source: source) { item in
                guard let pickled = item as? PickleValue else { return nil }
                if let number = pickled.int {
                    guard abs(Double(number)) <= Double(Postprocessing.largestLabel) else { return .invalid(Double(number)) }
                    return .label(Int(number))
                }
                return pickled.items.map { .list($0) }
            }
        }
    }

    private enum Item { case label(Int), list([Any]), invalid(Double) }

    /// The most labels a file's steps may name in all, counting each time a shared list is named
    /// again (a pickle's memo makes lists that name each other cheap to write and exponential to
    /// expand), and how deep lists may nest.
    static let maxLabelReferences = 100_000
    static let maxNesting = 16

    /// The labels a `labels_or_regions` value names: a label, a region, or a list of either.
    private static func labels(_ value: Any, source: String, _ read: (Any) -> Item?) throws -> [Int] {
        var budget = maxLabelReferences
        func expand(_ value: Any, depth: Int) throws -> [Int] {
            guard depth <= maxNesting else { throw ConfigError("\(source): labels_or_regions nests lists more than \(maxNesting) deep") }
            switch read(value) {
            case .label(let label):
                budget -= 1
                guard budget >= 0 else { throw ConfigError("\(source): its steps name more than \(maxLabelReferences) labels") }
                return [label]
            case .list(let items):
                budget -= 1
                guard budget >= 0 else { throw ConfigError("\(source): its steps name more than \(maxLabelReferences) labels") }
                return Array(Set(try items.flatMap { try expand($0, depth: depth + 1) }))
            case .invalid(let number):
                throw ConfigError("\(source): labels_or_regions holds \(number), not a label (0 to \(Postprocessing.largestLabel))")
            case nil:
                throw ConfigError("\(source): labels_or_regions holds \(String("\(value)".prefix(100))), not a label, a region or a list of them")
            }
        }
        return try expand(value, depth: 0)
    }

    private static func steps(_ named: [(String, [String: Any])], source: String, labelsOf: (Any) throws -> [Int]) throws -> Postprocessing {
        var sets: [[Int]] = []
        guard named.count <= Postprocessing.maxSteps else {
            throw ConfigError("\(source): \(named.count) steps; nnU-Net writes one per label or region (at most \(Postprocessing.maxSteps) here)")
        }
        for (index, (name, kwargs)) in named.enumerated() {
            guard name == function else {
                throw ConfigError("\(source): step \(index + 1) is \(name); MedSeg applies nnU-Net's \(function)")
            }
            if let background = kwargs["background_label"], !isZero(background) {
                throw ConfigError("\(source): step \(index + 1) sets background_label \(background); MedSeg's background is 0")
            }
            guard let value = kwargs["labels_or_regions"] else { throw ConfigError("\(source): step \(index + 1) names no labels_or_regions") }
            let labels = try labelsOf(value)
            guard !labels.isEmpty, labels.allSatisfy({ $0 > 0 }) else {
                throw ConfigError("\(source): step \(index + 1) keeps the largest component of \(labels), which are not foreground labels")
            }
            sets.append(Array(Set(labels)).sorted())
        }
        return Postprocessing(keep_largest_of: sets, connectivity: .full)
    }

    private static func isZero(_ value: Any) -> Bool {
        if let number = value as? Double { return number == 0 }
        if let pickled = value as? PickleValue { return pickled.int == 0 }
        return false
    }
}
