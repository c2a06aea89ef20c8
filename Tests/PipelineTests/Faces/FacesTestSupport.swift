import Foundation
import TensorCore
import TestSupport
@testable import Pipeline

/// Locations of the golden parity data (`<repo>/../shared/golden/align_paste`), found via #filePath.
enum FacesGolden {
    static let repoRoot = Repository.root
    /// `<golden>/align_paste` (`Repository.golden`: $ENHANCE_GOLDEN or ../shared/golden).
    static let dir = Repository.golden.appendingPathComponent("align_paste")
    static var available: Bool { FileManager.default.fileExists(atPath: dir.appendingPathComponent("config.json").path) }

    static func npy(_ name: String) throws -> NPYArray {
        try NPYArray(contentsOf: dir.appendingPathComponent(name + ".npy"))
    }
    static func image(_ name: String) throws -> FaceImage {
        let a = try npy(name)
        return try FaceImage(width: a.shape[1], height: a.shape[0], channels: a.shape.count > 2 ? a.shape[2] : 1,
                             pixels: try a.uint8s())
    }
    static func transform(_ name: String) throws -> AffineMatrix {
        try AffineMatrix(rowMajor: try npy(name).doubles())
    }

    /// Landmarks of the astronaut face (x1..x5, y1..y5 in config.json).
    static let astronautLandmarks: [SIMD2<Double>] = {
        let v: [Double] = [204.81, 247.38, 223.56, 202.49, 244.22, 100.78, 103.42, 129.24, 138.15, 140.56]
        // upstream passes float32 landmarks (detector output)
        let f = v.map { Double(Float($0)) }
        return (0..<5).map { SIMD2(f[$0], f[$0 + 5]) }
    }()
    /// The synthetic second face: +60 px in x, +75 px in y.
    static let shiftedLandmarks: [SIMD2<Double>] = {
        let v: [Double] = [264.81, 307.38, 283.56, 262.49, 304.22, 175.78, 178.42, 204.24, 213.15, 215.56]
        let f = v.map { Double(Float($0)) }
        return (0..<5).map { SIMD2(f[$0], f[$0 + 5]) }
    }()
}

/// Max |a−b| and the number of differing elements of two byte buffers.
func byteDiff(_ a: [UInt8], _ b: [UInt8]) -> (max: Int, count: Int) {
    precondition(a.count == b.count)
    var m = 0, n = 0
    for i in 0..<a.count where a[i] != b[i] {
        n += 1; m = max(m, abs(Int(a[i]) - Int(b[i])))
    }
    return (m, n)
}
