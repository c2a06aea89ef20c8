import Foundation
import Testing
@testable import Pipeline

/// Timings of the face geometry (prints numbers; asserts nothing about speed). Run with
/// `ENHANCE_BENCH=1 swift test -c release --filter FacesBenchmark`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["ENHANCE_BENCH"] != nil, "set ENHANCE_BENCH=1"))
struct FacesBenchmark {
    static func time(_ label: String, repeats: Int = 5, _ body: () throws -> Void) rethrows {
        // wall time and this thread's CPU time (the machine is shared: CPU time is the steadier number)
        func cpuNow() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) * 1e3 + Double(ts.tv_nsec) / 1e6
        }
        var best = Double.infinity, bestCPU = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds, c0 = cpuNow()
            try body()
            bestCPU = min(bestCPU, cpuNow() - c0)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        print(String(format: "faces-bench %-40@ best of %2d: wall %9.3f ms, cpu %9.3f ms", label as NSString, repeats,
                     best, bestCPU))
    }

    @Test func geometryTimings() throws {
        let img512 = try FaceGeometryTests.noise(width: 512, height: 512)
        let lm = FacesGolden.astronautLandmarks
        var parse = [UInt8](repeating: 0, count: 512 * 512)
        for y in 100..<420 { for x in 110..<400 where (x - 255) * (x - 255) / 2 + (y - 260) * (y - 260) / 3 < 9000 { parse[y * 512 + x] = 255 } }
        try Self.time("transforms (2x Umeyama)", repeats: 50) { _ = try FaceAlignment.transforms(landmarks: lm, cropSize: 512) }
        try Self.time("alignAndCrop 512 from 512x512") { _ = try FaceAlignment.alignAndCrop(img512, landmarks: lm, cropSize: 512) }
        try Self.time("mask postprocess 512 (2x blur 101)") { _ = try FaceMasks.postprocess(parse: parse) }
        try Self.time("rectangular mask 512") { _ = try FaceMasks.rectangular(size: 512) }
        let mask = try FaceMasks.postprocess(parse: parse)
        let (crop, _, inv) = try FaceAlignment.alignAndCrop(img512, landmarks: lm, cropSize: 512)
        let face = PasteFace(restored: crop, original: crop, mask: mask, inverse: inv, smallFace: true)
        try Self.time("composite 1 face into 512x512") { _ = try PasteBack.composite(background: img512, faces: [face]) }
        try Self.time("colour match (lab) 512") {
            _ = try FaceColor.matchStatistics(crop, to: crop, weights: mask, space: .lab)
        }
        // a 12 MP photo with 4 faces: the paste-back warps only each face's reach
        let big = try FaceImage(width: 4000, height: 3000)
        var faces: [PasteFace] = []
        for k in 0..<4 {
            let shifted = lm.map { $0 + SIMD2(Double(k) * 900, Double(k) * 600) }
            let (_, inv) = try FaceAlignment.transforms(landmarks: shifted, cropSize: 512)
            faces.append(PasteFace(restored: crop, original: crop, mask: mask, inverse: inv, smallFace: false))
        }
        try Self.time("composite 4 faces into 4000x3000", repeats: 3) { _ = try PasteBack.composite(background: big, faces: faces) }
    }
}
