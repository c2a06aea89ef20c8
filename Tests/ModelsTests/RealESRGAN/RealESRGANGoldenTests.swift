import Foundation
import Testing
import Checkpoint
import TensorCore
@testable import Models

/// Raw forwards against the golden outputs of upstream BasicSR / Real-ESRGAN (float32 PyTorch).
/// Tolerance: relative L2 error ≤ 1e-5 and max abs ≤ 1e-4 (float32 noise observed upstream is ~1e-6).
@Suite("RealESRGAN golden forwards")
struct RealESRGANGoldenTests {
    static let cases: [(String, String)] = [
        ("rrdbnet_x4", "0"), ("rrdbnet_x4", "1"), ("rrdbnet_x2", "0"), ("srvgg_x4", "0"),
    ]

    @Test("reference backend matches golden", .enabled(if: ESRGANPaths.hasGolden, "needs ../shared/golden"),
          arguments: cases)
    func referenceForward(_ name: String, _ index: String) throws {
        try check(name, index, backend: ReferenceBackend())
    }

    func check(_ name: String, _ index: String, backend: any Backend) throws {
        let dir = ESRGANPaths.golden.appendingPathComponent(name)
        let model = try RealESRGANLoader.load(dir.appendingPathComponent("weights.pth"), backend: backend)
        let input = try NPYArray(contentsOf: dir.appendingPathComponent("input_\(index).npy"))
        let expected = try NPYArray(contentsOf: dir.appendingPathComponent("output_\(index).npy"))
        let x = try backend.upload(HostTensor(shape: input.shape, data: input.floats()))
        let y = try backend.download(model.network.forward(x))
        #expect(y.shape == expected.shape)
        let (maxAbs, rel) = esrganErrors(y.data, expected.floats())
        print("golden \(name)/\(index) on \(backend.name): max abs \(maxAbs), rel \(rel)")
        #expect(maxAbs <= 1e-4)
        #expect(rel <= 1e-5)
    }
}
