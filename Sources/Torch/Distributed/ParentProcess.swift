import CTorch
import Foundation

/// This process's tie to its parent, for workers that must not outlive the process that started
/// them (data-parallel ranks and their launcher).
public enum ParentProcess {
    /// Asks the kernel to kill this process (SIGKILL) when its parent dies. Returns false when
    /// `expected` is already no longer the parent: it died before the request was made.
    public static func endWith(_ expected: Int32) throws -> Bool {
        switch mt_end_with_parent(expected) {
        case 0: return true
        case 1: return false
        default: throw TorchError("prctl(PR_SET_PDEATHSIG) failed: \(String(cString: strerror(errno)))")
        }
    }
}
