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
        .library(name: "EnhanceServer", targets: ["EnhanceServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/multipart-kit", from: "4.7.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // C libraries from Debian (scripts/setup installs them).
        .systemLibrary(name: "CDNNL", pkgConfig: nil, providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CWebP", pkgConfig: "libwebp", providers: [.apt(["libwebp-dev"])]),
        // CUDA driver, NVRTC and cuDNN reached with dlopen at run time (a header and a loader; builds with no CUDA installed)
        .target(name: "CCUDA", linkerSettings: [.linkedLibrary("dl")]),

        // image files ⇄ pixels
        .target(name: "ImageIO", dependencies: ["CPNG", "CTurboJPEG", "CWebP"]),
        // tensors, the backend protocol and the plain-Swift reference backend (the test oracle)
        .systemLibrary(name: "CMemory"),
        .target(name: "TensorCore", dependencies: ["CMemory"], exclude: ["API.md"]),
        // Winograd F(4×4,3×3) on channel-blocked activations (AVX2 / AVX-512 transforms, oneDNN's matmul); optimised
        // in debug builds too, so the test suite's networks do not crawl through -O0 vector code
        .target(name: "CWinograd", exclude: ["kernels.inc"], cSettings: [.unsafeFlags(["-O2"])],
                linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        // the oneDNN CPU backend
        .target(name: "BackendDNNL", dependencies: ["TensorCore", "CDNNL", "CWinograd"]),
        // the NVIDIA GPU backend: cuDNN convolutions + NVRTC kernels (kernels.cu, embedded)
        .target(name: "BackendCUDA", dependencies: ["TensorCore", "CCUDA"], resources: [.embedInCode("kernels.cu")]),
        // .pth (zip + legacy), safetensors and ncnn readers; architecture detection
        .target(name: "Checkpoint"),
        // RRDBNet, SRVGGNetCompact, GPEN, RetinaFace, ParseNet on any Backend
        .target(name: "Models", dependencies: ["TensorCore", "Checkpoint"]),
        // RealESRGANer semantics, face pipeline, batch processing
        .target(name: "Pipeline", dependencies: ["Models", "ImageIO", "TensorCore", "Checkpoint"]),
        // `enhance bench`: scenes, subprocess measurement, quality metrics, reports; the service load test
        .target(name: "Bench", dependencies: ["ImageIO", "Pipeline", "Models", "Checkpoint", "TensorCore", "CCUDA",
                                              .product(name: "AsyncHTTPClient", package: "async-http-client")]),
        // the composition root front ends share: typed configurations → backends, upscalers, restorers, detectors;
        // model registry, lookup and manager (fetch, resume, verify); categorised errors
        .target(name: "EnhanceKit", dependencies: [
            "Models", "Pipeline", "BackendDNNL", "BackendCUDA", "TensorCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // `enhance serve`: the HTTP service (Hummingbird) over EnhanceKit — memory admission, metrics, the web page —
        // and its load benchmark client
        .target(name: "EnhanceServer", dependencies: [
            "EnhanceKit", "Pipeline", "ImageIO", "Models", "TensorCore",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "MultipartKit", package: "multipart-kit"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ], resources: [.embedInCode("Web/index.html")]),
        // commands as a library so tests can drive them
        .target(name: "EnhanceCLI", dependencies: [
            "EnhanceKit", "EnhanceServer", "Bench", "Pipeline", "Models", "ImageIO", "Checkpoint", "TensorCore", "BackendDNNL", "BackendCUDA",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "enhance", dependencies: ["EnhanceCLI"]),

        // helpers shared by test targets (a loopback HTTP server)
        .target(name: "TestSupport", dependencies: ["Checkpoint", "TensorCore"], path: "Tests/TestSupport"),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO", "TestSupport"]),
        .testTarget(name: "EngineTests", dependencies: ["TensorCore", "BackendDNNL", "BackendCUDA", "EnhanceKit", "TestSupport"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "TensorCore", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "TensorCore", "BackendDNNL", "Checkpoint", "TestSupport"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "ImageIO", "Models", "BackendDNNL", "TensorCore", "Checkpoint", "TestSupport", "Bench"]),
        .testTarget(name: "BenchTests", dependencies: ["Bench", "ImageIO", "Pipeline", "Checkpoint", "Models", "TensorCore", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["EnhanceCLI", "enhance", "TestSupport"]),
        .testTarget(name: "EnhanceKitTests", dependencies: ["EnhanceKit", "TestSupport"]),
        .testTarget(name: "EnhanceServerTests", dependencies: ["EnhanceServer", "EnhanceKit", "ImageIO", "Models", "Checkpoint", "Bench", "Pipeline", "enhance", "TestSupport",
                                                                .product(name: "AsyncHTTPClient", package: "async-http-client")]),
    ],
    swiftLanguageModes: [.v6]
)
