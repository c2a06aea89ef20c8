import Foundation
import Testing
@testable import Bench

/// A deterministic test pattern: smooth gradients plus a checkerboard, values in 0…255.
func pattern(_ w: Int, _ h: Int) throws -> RGBImage {
    var px = [Float](repeating: 0, count: w * h * 3)
    for y in 0..<h {
        for x in 0..<w {
            let i = (y * w + x) * 3
            px[i] = Float(x * 255 / max(1, w - 1))
            px[i + 1] = Float(y * 255 / max(1, h - 1))
            px[i + 2] = ((x / 4 + y / 4) % 2 == 0) ? 40 : 210
        }
    }
    return try RGBImage(width: w, height: h, pixels: px)
}

func variance(_ xs: [Float]) -> Double {
    let m = xs.reduce(0.0) { $0 + Double($1) } / Double(xs.count)
    return xs.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / Double(xs.count)
}

@Suite struct ImageOpsTests {
    @Test func areaShrinkAveragesBlocks() throws {
        // 4×2 image, one channel pattern repeated: shrinking to 2×1 averages each 2×2 block.
        let vals: [Float] = [0, 10, 20, 30, 40, 50, 60, 70]
        let img = try RGBImage(width: 4, height: 2, pixels: vals.flatMap { [$0, $0, $0] })
        let out = try img.resized(width: 2, height: 1, filter: .area)
        #expect(out.pixels[0] == 25)   // (0 + 10 + 40 + 50) / 4
        #expect(out.pixels[3] == 45)   // (20 + 30 + 60 + 70) / 4
    }

    @Test func areaShrinkByNonIntegerFactorWeighsOverlap() throws {
        // 3 → 2: output 0 covers samples 0 (weight 1) and 1 (weight 0.5), normalised by 1.5.
        let img = try RGBImage(width: 3, height: 1, pixels: [0, 0, 0, 30, 30, 30, 90, 90, 90])
        let out = try img.resized(width: 2, height: 1, filter: .area)
        #expect(abs(out.pixels[0] - 10) < 1e-4)
        #expect(abs(out.pixels[3] - 70) < 1e-4)
    }

    @Test func bilinearEnlargeInterpolatesWithHalfPixelCentres() throws {
        let img = try RGBImage(width: 2, height: 1, pixels: [0, 0, 0, 100, 100, 100])
        let out = try img.resized(width: 4, height: 1, filter: .bilinear)
        // Output centres map to source x = -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1).
        #expect(out.pixels.enumerated().filter { $0.offset % 3 == 0 }.map(\.element) == [0, 25, 75, 100])
    }

    @Test func filtersKeepConstantImagesConstant() throws {
        let img = try RGBImage(width: 17, height: 11, fill: 123)
        for out in [try img.gaussianBlurred(sigma: 1.5), try img.motionBlurred(length: 9, angle: 30),
                    try img.resized(width: 29, height: 7, filter: .bilinear), try img.resized(width: 5, height: 4, filter: .area)] {
            #expect(out.pixels.allSatisfy { abs($0 - 123) < 1e-3 })
        }
    }

    @Test func blursReduceDetail() throws {
        let img = try pattern(48, 40)
        let v0 = variance(img.pixels)
        #expect(variance(try img.gaussianBlurred(sigma: 2).pixels) < v0)
        #expect(variance(try img.motionBlurred(length: 11, angle: 0).pixels) < v0)
        #expect(try img.motionBlurred(length: 1, angle: 45) == img)  // a 1-tap line is the identity
    }

    @Test func motionKernelIsNormalisedAndAlongTheLine() {
        let taps = motionKernel(length: 7, angle: 0)
        #expect(abs(taps.map { Double($0.weight) }.reduce(0, +) - 1) < 1e-5)
        #expect(taps.allSatisfy { $0.dy == 0 })
        #expect(Set(taps.map(\.dx)) == Set(-3...3))
        let vertical = motionKernel(length: 5, angle: 90)
        #expect(vertical.allSatisfy { $0.dx == 0 })
    }

    @Test func jpegRoundTripIsLossyButClose() throws {
        let img = try pattern(32, 32)
        let q30 = try img.jpegRoundTrip(quality: 30)
        #expect(q30.width == 32 && q30.height == 32)
        #expect(q30 != img)
        #expect(try Quality.psnr(q30, img) > 15)
        #expect(throws: BenchError.self) { try img.jpegRoundTrip(quality: 0) }
    }

    @Test func badArgumentsThrowInsteadOfCrashing() throws {
        let img = try pattern(8, 8)
        #expect(throws: BenchError.self) { try img.cropped(x: 4, y: 4, width: 8, height: 8) }
        #expect(throws: BenchError.self) { try img.resized(width: 0, height: 3, filter: .area) }
        #expect(throws: BenchError.self) { try img.gaussianBlurred(sigma: -1) }
        #expect(throws: BenchError.self) { try RGBImage(width: 2, height: 2, pixels: [1, 2, 3]) }
        #expect(throws: BenchError.self) { try RGBImage(width: 1 << 20, height: 1 << 20, fill: 0) }
    }

    @Test func seededNoiseIsReproducible() throws {
        let img = try RGBImage(width: 8, height: 8, fill: 100)
        #expect(try img.addingGaussianNoise(sigma: 3, seed: 7) == img.addingGaussianNoise(sigma: 3, seed: 7))
        #expect(try img.addingGaussianNoise(sigma: 3, seed: 7) != img.addingGaussianNoise(sigma: 3, seed: 8))
    }
}
