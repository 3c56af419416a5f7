import Foundation
import XCTest

/// MONAI 1.6's MedNeXt (`mednext.py`, `mednext_block.py`, fetched by scripts/setup.sh into
/// .deps/reference: they need only torch) run with Debian's /usr/bin/python3: `script` gets the
/// module as `mednext` (with `create_mednext`), its arguments from `sys.argv[2]` on.
public enum MedNeXtReference {
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".deps/reference/monai-1.6.0")

    private static let loader = """
    import importlib.util, sys, torch, warnings
    warnings.simplefilter("ignore")
    import monai.networks.blocks  # the installed MONAI's packages; 1.6's two MedNeXt files beside them
    def load(name, path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    root = sys.argv[1]
    load("monai.networks.blocks.mednext_block", root + "/monai/networks/blocks/mednext_block.py")
    mednext = load("monai_1_6_mednext", root + "/monai/networks/nets/mednext.py")

    """

    /// Runs `script` after loading the reference; fails the calling test when it is missing.
    public static func run(_ script: String, _ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        guard FileManager.default.fileExists(atPath: root.appendingPathComponent("monai/networks/nets/mednext.py").path) else {
            XCTFail("MONAI 1.6's MedNeXt is not in \(root.path): run scripts/setup.sh", file: file, line: line)
            return ""
        }
        return try Python.run(loader + script, [root.path] + arguments, interpreter: "/usr/bin/python3")
    }
}
