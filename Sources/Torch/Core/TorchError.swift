import CTorch

/// An error raised inside libtorch (or by the Swift layer's own argument checks).
public struct TorchError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// The message libtorch left for this thread by the call that just failed.
    static func last() -> TorchError {
        TorchError(String(cString: mt_last_error()))
    }
}

/// Turns a C status code into a thrown error.
@inline(__always)
func check(_ status: Int32) throws {
    if status != 0 { throw TorchError.last() }
}

/// Wraps a returned handle, or throws the last error when it is null.
@inline(__always)
func wrap(_ handle: mt_tensor_t?) throws -> Tensor {
    guard let handle else { throw TorchError.last() }
    return Tensor(handle: handle)
}

/// Unpacks a C list of tensors into Swift tensors and frees the list.
func unpack(_ list: mt_list_t?) throws -> [Tensor] {
    guard let list else { throw TorchError.last() }
    defer { mt_list_free(list) }
    return try (0..<mt_list_size(list)).map { try wrap(mt_list_get(list, $0)) }
}
