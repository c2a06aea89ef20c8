import Foundation
import Testing
@testable import Bench

@Suite struct QualityTests {
    @Test func identicalImagesGiveInfinitePSNRAndUnitSSIM() throws {
        let img = try pattern(40, 30)
        #expect(try Quality.psnr(img, img) == .infinity)
        #expect(abs(try Quality.ssim(img, img) - 1) < 1e-12)
        let s = try Quality.score(output: img, reference: img)
        #expect(s.referenceResize == "none" && s.psnr == .infinity)
    }

    @Test func knownNoiseLevelGivesExpectedPSNR() throws {
        // Unclamped Gaussian noise of σ 5: MSE ≈ 25, PSNR ≈ 20·log10(255/5) = 34.15 dB.
        let img = try RGBImage(width: 96, height: 96, fill: 128)
        let noisy = try img.addingGaussianNoise(sigma: 5, seed: 42)
        let p = try Quality.psnr(noisy, img)
        #expect(abs(p - 20 * log10(255.0 / 5)) < 0.15)
        // A uniform offset of 10 levels: MSE exactly 100, PSNR = 10·log10(255²/100).
        var shifted = img
        shifted.pixels = shifted.pixels.map { $0 + 10 }
        #expect(abs(try Quality.psnr(shifted, img) - 10 * log10(255.0 * 255 / 100)) < 1e-9)
    }

    @Test func ssimFallsWithNoiseAndIsSymmetric() throws {
        let img = try pattern(64, 64)
        let light = try img.addingGaussianNoise(sigma: 4, seed: 1)
        let heavy = try img.addingGaussianNoise(sigma: 30, seed: 1)
        let sLight = try Quality.ssim(light, img), sHeavy = try Quality.ssim(heavy, img)
        #expect(sLight < 1 && sLight > sHeavy && sHeavy > 0)
        #expect(abs(try Quality.ssim(img, light) - sLight) < 1e-12)
    }

    @Test func ssimOfAConstantShiftMatchesTheLuminanceTerm() throws {
        // Two flat images differ only in mean: SSIM = (2·μx·μy + C1) / (μx² + μy² + C1).
        let a = try RGBImage(width: 20, height: 20, fill: 100), b = try RGBImage(width: 20, height: 20, fill: 120)
        let c1: Double = 2.55 * 2.55
        let num: Double = 2 * 100 * 120 + c1
        let den: Double = 100 * 100 + 120 * 120 + c1
        let expected = num / den
        #expect(abs(try Quality.ssim(a, b) - expected) < 1e-6)
    }

    @Test func differentSizesResizeTheReference() throws {
        let ref = try RGBImage(width: 16, height: 16, fill: 77)
        let out = try RGBImage(width: 32, height: 32, fill: 77)
        let s = try Quality.score(output: out, reference: ref)
        #expect(s.referenceResize == "bilinear" && s.psnr == .infinity)
        let small = try RGBImage(width: 8, height: 8, fill: 77)
        #expect(try Quality.score(output: small, reference: ref).referenceResize == "area")
        #expect(throws: BenchError.self) { try Quality.psnr(out, ref) }
    }
}
