// swift-tools-version: 6.0
import PackageDescription

// Data path: image (ImageIO) → tensor (TensorCore) → model on a backend (Models + BackendDNNL)
// → tensor → image; Pipeline composes them (tiling, faces, batches); EnhanceCLI is the command surface.
let package = Package(
    name: "Enhance",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "enhance", targets: ["enhance"]),
        .library(name: "ImageIO", targets: ["ImageIO"]),
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "Checkpoint", targets: ["Checkpoint"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Pipeline", targets: ["Pipeline"]),
        .library(name: "EnhanceKit", targets: ["EnhanceKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // C libraries from Debian (scripts/setup installs them).
        .systemLibrary(name: "CDNNL", pkgConfig: nil, providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CWebP", pkgConfig: "libwebp", providers: [.apt(["libwebp-dev"])]),

        // image files ⇄ pixels
        .target(name: "ImageIO", dependencies: ["CPNG", "CTurboJPEG", "CWebP"]),
        // tensors, the backend protocol and the plain-Swift reference backend (the test oracle)
        .target(name: "TensorCore", exclude: ["API.md"]),
        // the oneDNN CPU backend
        .target(name: "BackendDNNL", dependencies: ["TensorCore", "CDNNL"]),
        // .pth (zip + legacy), safetensors and ncnn readers; architecture detection
        .target(name: "Checkpoint"),
        // RRDBNet, SRVGGNetCompact, GPEN, RetinaFace, ParseNet on any Backend
        .target(name: "Models", dependencies: ["TensorCore", "Checkpoint"]),
        // RealESRGANer semantics, face pipeline, batch processing
        .target(name: "Pipeline", dependencies: ["Models", "ImageIO", "TensorCore", "Checkpoint"]),
        // `enhance bench`: scenes, subprocess measurement, quality metrics, reports
        .target(name: "Bench", dependencies: ["ImageIO", "Pipeline", "Checkpoint"]),
        // the composition root front ends share: typed configurations → backends, upscalers, restorers, detectors;
        // model registry, lookup and manager (fetch, resume, verify); categorised errors
        .target(name: "EnhanceKit", dependencies: [
            "Models", "Pipeline", "BackendDNNL", "TensorCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // commands as a library so tests can drive them
        .target(name: "EnhanceCLI", dependencies: [
            "EnhanceKit", "Bench", "Pipeline", "Models", "ImageIO", "Checkpoint", "TensorCore", "BackendDNNL",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "enhance", dependencies: ["EnhanceCLI"]),

        // helpers shared by test targets (a loopback HTTP server)
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO"]),
        .testTarget(name: "EngineTests", dependencies: ["TensorCore", "BackendDNNL"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "TensorCore", "BackendDNNL", "Checkpoint"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "ImageIO", "Models", "BackendDNNL", "TensorCore"]),
        .testTarget(name: "BenchTests", dependencies: ["Bench", "ImageIO", "Pipeline", "Checkpoint", "Models", "TensorCore"]),
        .testTarget(name: "CLITests", dependencies: ["EnhanceCLI", "enhance", "TestSupport"]),
        .testTarget(name: "EnhanceKitTests", dependencies: ["EnhanceKit", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
