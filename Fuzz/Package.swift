// swift-tools-version: 6.0
// libFuzzer targets for the Checkpoint parsers, plus a load benchmark. Build the fuzzers with
//   swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library --product FuzzTorch
// (scripts/fuzz does this) and the benchmark with a plain `swift build -c release --product LoadBench`.
import Foundation
import PackageDescription

// A path dependency's identity is its folder name (the checkout may be named anything).
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let rootIdentity = root.lastPathComponent.lowercased()

let checkpoint: Target.Dependency = .product(name: "Checkpoint", package: rootIdentity)

let package = Package(
    name: "EnhanceFuzz",
    dependencies: [.package(path: "..")],
    targets: [
        // SwiftPM links an executable's entry point as `<Target>_main`; each fuzzer defines it to call libFuzzer's driver.
        .target(name: "CFuzzDriver"),
        .executableTarget(name: "FuzzTorch", dependencies: [checkpoint, "CFuzzDriver"]),
        .executableTarget(name: "FuzzSafetensors", dependencies: [checkpoint, "CFuzzDriver"]),
        .executableTarget(name: "FuzzNCNN", dependencies: [checkpoint, "CFuzzDriver"]),
        .executableTarget(name: "LoadBench", dependencies: [checkpoint]),
    ],
    swiftLanguageModes: [.v6]
)
