import Foundation

/// libtorch's OpenMP workers spin after each parallel region by default, and on a machine with
/// few cores they take the cores from OpenBLAS's own threads and from the other processes: small
/// 3D networks step 1.3x slower, whole-volume validation 1.8x, and 20x under load from other
/// processes (measured here, 2 cores). libgomp reads OMP_WAIT_POLICY only once, when it loads,
/// before `main`, so medseg starts itself again with passive waiting unless the user chose a
/// policy; the big convolutions of large networks are as fast either way.
enum OpenMPWaitPolicy {
    static func applyOnce() {
        guard ProcessInfo.processInfo.environment["OMP_WAIT_POLICY"] == nil else { return }
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1)
        // Only returns when the new image could not start; then this one carries on as it is.
        execv(SelfLaunch.executablePath, CommandLine.unsafeArgv)
    }
}
