import Foundation
import Testing
import ImageIO
import Models
import TensorCore
@testable import Pipeline

/// `Upscaler.enhance` against upstream `RealESRGANer.enhance` (tiny ×2 RRDBNet, 37×29 inputs).
/// 8-bit outputs: every sample within 1 and ≥ 99.9% identical (observed: bit-exact except 1 alpha sample).
/// 16-bit outputs: one 16-bit LSB is 1.5e-5, the size of float32 summation-order noise of the network, so samples
/// near a rounding boundary flip; required: every sample within 4 units (≪ one 8-bit step = 257) and ≥ 95% identical.
@Suite("RealESRGANer golden")
struct RealESRGANerGoldenTests {
    struct Case: Sendable, CustomStringConvertible {
        let dir: URL, weights: URL, input: String, output: String, outscale: Double, prePad: Int, tile: Int, tilePad: Int
        let alpha: AlphaUpsampler
        var description: String { "\(dir.lastPathComponent == "realesrganer_x2" && dir.path.contains("Fixtures") ? "fixture" : "golden")/\(output)" }
    }

    /// Cases of one config.json (upstream's alpha option "bicubic" runs bilinear, so it maps to `.bilinear`).
    static func cases(_ dir: URL, weights: URL) -> [Case] {
        guard let data = try? Data(contentsOf: dir.appendingPathComponent("config.json")),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let cases = obj["cases"] as? [[String: Any]] else { return [] }
        return cases.compactMap { c in
            guard let i = c["input"] as? String, let o = c["output"] as? String, let s = c["outscale"] as? Double,
                  let p = c["pre_pad"] as? Int, let t = c["tile"] as? Int else { return nil }
            let alpha: AlphaUpsampler = (c["alpha_upsampler"] as? String ?? "realesrgan") == "realesrgan" ? .network : .bilinear
            return Case(dir: dir, weights: weights, input: i, output: o, outscale: s, prePad: p, tile: t,
                        tilePad: c["tile_pad"] as? Int ?? 4, alpha: alpha)
        }.filter { UpscalePaths.exists(dir.appendingPathComponent($0.output)) }
    }

    static let fixtureCases = cases(UpscalePaths.fixtures.appendingPathComponent("models/realesrganer_x2"),
                                    weights: UpscalePaths.fixtures.appendingPathComponent("models/rrdbnet_x2/weights.pth"))
    static let goldenCases = UpscalePaths.hasGolden
        ? cases(UpscalePaths.golden.appendingPathComponent("realesrganer_x2"), weights: UpscalePaths.golden.appendingPathComponent("rrdbnet_x2/weights.pth"))
        : []

    @Test func fixtureCasesPresent() { #expect(Self.fixtureCases.count >= 13) }

    @Test("enhance matches upstream (committed fixtures and, when present, shared/golden)", arguments: fixtureCases + goldenCases)
    func golden(_ c: Case) throws {
        let dir = c.dir
        let model = try RealESRGANLoader.load(c.weights, backend: ReferenceBackend())
        var o = UpscaleOptions()
        o.tile = c.tile; o.tilePad = c.tilePad; o.prePad = c.prePad; o.outscale = c.outscale; o.alphaUpsampler = c.alpha
        let up = try Upscaler(network: model.network, options: o)
        let input = try BGR.image(NPYArray(contentsOf: dir.appendingPathComponent(c.input)))
        let expectedArray = try NPYArray(contentsOf: dir.appendingPathComponent(c.output))
        let out = try up.enhance(input)
        let expected = BGR.samples(try BGR.image(expectedArray))
        #expect(out.height == expectedArray.shape[0] && out.width == expectedArray.shape[1])
        #expect(out.channels == (expectedArray.shape.count == 3 ? expectedArray.shape[2] : 1))
        #expect(out.bitDepth == (expectedArray.dtype == .uint16 ? 16 : 8))
        let got = BGR.samples(out)
        try #require(got.count == expected.count)
        var maxDiff = 0, same = 0
        for i in 0..<got.count {
            let d = abs(got[i] - expected[i])
            maxDiff = max(maxDiff, d)
            if d == 0 { same += 1 }
        }
        let fraction = Double(same) / Double(got.count)
        print("realesrganer_x2 \(c): max abs diff \(maxDiff), identical \(String(format: "%.4f", fraction * 100))%")
        if out.bitDepth == 16 {
            #expect(maxDiff <= 4)
            #expect(fraction >= 0.95)
        } else {
            #expect(maxDiff <= 1)
            #expect(fraction >= 0.999)
        }
    }
}
