// swift-tools-version:5.9
import PackageDescription
import Foundation

// libtorch comes from Debian's libtorch-dev (1.13, CPU) by default; LIBTORCH=/path selects an
// unpacked libtorch 2.x distribution instead (CUDA libraries are linked when it ships them).
let env = ProcessInfo.processInfo.environment
let libtorch = env["LIBTORCH"].flatMap { $0.isEmpty ? nil : $0 }
// MEDSEG_RELOCATABLE=1 (make gpu-bundle): no absolute run path into LIBTORCH's folders; the
// binaries find libtorch and the CUDA libraries of the machine they run on through the bundle's
// launcher (LD_LIBRARY_PATH), and the libraries packed beside them through $ORIGIN/../lib.
let relocatable = env["MEDSEG_RELOCATABLE"] == "1"

var cxxFlags: [String] = ["-Wno-deprecated-declarations", "-Wno-unused-parameter", "-fPIC",
                          // c10d's headers need these to expose the process groups libtorch was built with.
                          "-DUSE_DISTRIBUTED", "-DUSE_C10D_GLOO", "-DMT_WITH_GLOO=1"]
var linkFlags: [String] = []
var torchLibs = ["torch", "torch_cpu", "c10"]
var cxxStandard = CXXLanguageStandard.cxx17

if let root = libtorch {
    // The C++ string ABI must match the one libtorch was built with: its CMake config says which
    // (pip wheels before 2.7 use the old one); LIBTORCH_CXX11_ABI=0/1 overrides.
    let config = (try? String(contentsOfFile: "\(root)/share/cmake/Torch/TorchConfig.cmake", encoding: .utf8)) ?? ""
    let abi = env["LIBTORCH_CXX11_ABI"] ?? (config.contains("_GLIBCXX_USE_CXX11_ABI=0") ? "0" : "1")
    cxxFlags += ["-I\(root)/include", "-I\(root)/include/torch/csrc/api/include", "-D_GLIBCXX_USE_CXX11_ABI=\(abi)"]
    // Full paths, so that a system libtorch on the default search path cannot win.
    torchLibs = []
    linkFlags += ["\(root)/lib/libtorch.so", "\(root)/lib/libtorch_cpu.so", "\(root)/lib/libc10.so"]
    // -rpath is recorded in the binaries; -rpath-link only lets the linker resolve libtorch's own
    // dependencies now.
    let runPath = relocatable ? "-rpath-link" : "-rpath"
    linkFlags += ["-Xlinker", runPath, "-Xlinker", "\(root)/lib"]
    // The test runner links the Swift runtime dynamically (XCTest is only a shared library): the
    // bundle carries it in lib/swift, instead of the toolchain's absolute path.
    if relocatable {
        // libtorch's assertion messages name its headers: by their path inside the wheel, not this machine's.
        cxxFlags += ["-ffile-prefix-map=\(URL(fileURLWithPath: root).deletingLastPathComponent().path)/="]
        linkFlags += ["-Xlinker", "-rpath", "-Xlinker", "$ORIGIN/../lib", "-Xlinker", "-rpath", "-Xlinker", "$ORIGIN/../lib/swift",
                      "-no-toolchain-stdlib-rpath"]
    }
    // Recent libtorch headers refuse anything older than C++20.
    let aten = (try? String(contentsOfFile: "\(root)/include/ATen/ATen.h", encoding: .utf8)) ?? ""
    if aten.contains("C++20") { cxxStandard = .cxx20 }
    if FileManager.default.fileExists(atPath: "\(root)/lib/libtorch_cuda.so") {
        // Without --no-as-needed the CUDA backend is dropped at link time and CUDA looks absent.
        cxxFlags += ["-DMT_WITH_CUDA=1"]
        linkFlags += ["-Xlinker", "--no-as-needed", "\(root)/lib/libtorch_cuda.so", "\(root)/lib/libc10_cuda.so", "-Xlinker", "--as-needed"]
        // A pip wheel's CUDA runtime (cudart, cuDNN, cuBLAS, NCCL, NVRTC...) lives in nvidia/*/lib
        // beside torch/: on the rpath, so the binaries start without LD_LIBRARY_PATH.
        let nvidia = URL(fileURLWithPath: root).deletingLastPathComponent().appendingPathComponent("nvidia").path
        for package in ((try? FileManager.default.contentsOfDirectory(atPath: nvidia)) ?? []).sorted()
        where FileManager.default.fileExists(atPath: "\(nvidia)/\(package)/lib") {
            linkFlags += ["-Xlinker", runPath, "-Xlinker", "\(nvidia)/\(package)/lib"]
        }
        // NCCL for CUDA tensors: its process group needs the CUDA, cuBLAS, cuSPARSE, cuSOLVER and
        // NCCL headers: CUDA_INCLUDE (folders separated by ':'), a pip wheel's nvidia/*/include
        // beside torch/ (CUDA 13's wheels: nvidia/cu13/include, with crt/ and nv/ from the
        // nvidia-cuda-crt and nvidia-cuda-cccl wheels, which the set-up adds), or
        // /usr/local/cuda/include. Nothing else in MedSeg includes a CUDA header.
        let fm = FileManager.default
        if fm.fileExists(atPath: "\(root)/include/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp") {
            var includes = (env["CUDA_INCLUDE"] ?? "").split(separator: ":").map(String.init)
            let wheel = URL(fileURLWithPath: root).deletingLastPathComponent().appendingPathComponent("nvidia").path
            for package in ((try? fm.contentsOfDirectory(atPath: wheel)) ?? []).sorted() where fm.fileExists(atPath: "\(wheel)/\(package)/include") {
                includes.append("\(wheel)/\(package)/include")
            }
            if fm.fileExists(atPath: "/usr/local/cuda/include") { includes.append("/usr/local/cuda/include") }
            cxxFlags += ["-DMT_WITH_NCCL=1", "-DUSE_C10D_NCCL"] + includes.map { "-I\($0)" }
        }
    }
} else {
    cxxFlags += ["-I/usr/include/torch/csrc/api/include"]
}

// Last on the include path: stand-ins for headers a libtorch distribution may lack.
cxxFlags += ["-idirafter", Context.packageDirectory + "/Sources/CTorch/compat"]

let package = Package(
    name: "MedSeg",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "medseg", targets: ["medseg"]),
        .library(name: "Torch", targets: ["Torch"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .target(
            name: "CTorch",
            exclude: ["compat"],
            cxxSettings: [.unsafeFlags(cxxFlags)],
            linkerSettings: torchLibs.map { .linkedLibrary($0) } + [.linkedLibrary("dl"), .unsafeFlags(linkFlags)]
        ),
        .target(
            name: "Torch",
            dependencies: ["CTorch", .product(name: "ZIPFoundation", package: "ZIPFoundation")]
        ),
        .target(
            name: "CImageCodecs",
            // Optimized in debug builds too: tests walk images of a billion voxels through it.
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [.linkedLibrary("png"), .linkedLibrary("jpeg"), .linkedLibrary("tiff"), .linkedLibrary("gif"), .linkedLibrary("z")]
        ),
        // DICOM series through GDCM (Debian's libgdcm-dev), behind a C interface.
        .target(
            name: "CDicom",
            cxxSettings: [.unsafeFlags(["-I/usr/include/gdcm-3.0", "-Wno-deprecated-declarations"])],
            linkerSettings: ["gdcmMSFF", "gdcmDSED", "gdcmDICT", "gdcmIOD", "gdcmCommon"].map { .linkedLibrary($0) }
        ),
        // DICOM Segmentation (SEG) objects through DCMTK's dcmseg (Debian's libdcmtk-dev), behind a C interface.
        .target(
            name: "CDicomSeg",
            cxxSettings: [.unsafeFlags(["-Wno-deprecated-declarations"])],
            linkerSettings: ["dcmseg", "dcmrt", "dcmfg", "dcmiod", "dcmdata", "oflog", "ofstd"].map { .linkedLibrary($0) }
        ),
        .target(name: "MedSegData", dependencies: ["Torch", "CImageCodecs", "CDicom", "CDicomSeg"]),
        .target(name: "MedSegModels", dependencies: ["Torch"]),
        .target(name: "MedSegDist", dependencies: ["Torch"]),
        .target(name: "MedSegTrain", dependencies: ["MedSegDist", "MedSegModels", "MedSegData", "Torch", .product(name: "Yams", package: "Yams"),
                                                   .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        .executableTarget(
            name: "medseg",
            dependencies: ["MedSegTrain", "MedSegDist", "MedSegModels", "MedSegData", "Torch", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(name: "TestSupport", dependencies: ["Torch", "MedSegDist"], path: "Tests/TestSupport"),
        .testTarget(
            name: "TorchTests",
            dependencies: ["Torch", "TestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "MedSegDataTests",
            dependencies: ["MedSegData", "Torch", "TestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "MedSegTrainTests",
            dependencies: ["MedSegTrain", "MedSegModels", "MedSegData", "Torch", "TestSupport"],
            resources: [.copy("Fixtures")]
        ),
        // Whole workflows through the medseg executable (synthesize, plan, train, resume, predict).
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["MedSegTrain", "MedSegModels", "MedSegData", "Torch", "TestSupport"]
        ),
        .testTarget(
            name: "MedSegDistTests",
            dependencies: ["MedSegDist", "MedSegTrain", "MedSegData", "Torch", "TestSupport"]
        ),
        .testTarget(
            name: "MedSegModelsTests",
            dependencies: ["MedSegModels", "Torch", "TestSupport"],
            resources: [.copy("Fixtures")]
        ),
    ],
    cxxLanguageStandard: cxxStandard
)
