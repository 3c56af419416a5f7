import Foundation

/// How a library message names a setting the user can change to get past it: by its key
/// (`previous_stage`, as config files spell it), and the command-line tool, which installs its
/// own `render`, by its flag (`--previous-stage`). Libraries say what is wrong and which setting
/// helps; only the command layer knows the flags.
public enum Setting {
    /// Renders a key, with the value the message suggests, if any.
    public typealias Renderer = @Sendable (_ key: String, _ value: String?) -> String

    private static let lock = NSLock()
    nonisolated(unsafe) private static var renderer: Renderer = { key, value in "`\(key)" + (value.map { ": \($0)" } ?? "") + "`" }

    /// Replaces how settings are named (the CLI names flags); process-wide.
    public static func render(with renderer: @escaping Renderer) {
        lock.lock()
        self.renderer = renderer
        lock.unlock()
    }

    /// `key`, with `value` when the message suggests one, as the current renderer names it.
    public static func named(_ key: String, value: String? = nil) -> String {
        lock.lock()
        defer { lock.unlock() }
        return renderer(key, value)
    }
}
