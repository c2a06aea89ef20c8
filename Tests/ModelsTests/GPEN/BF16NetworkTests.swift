import BackendDNNL
import Checkpoint
import Foundation
import Testing
import TensorCore
@testable import Models

/// `--precision bf16` on whole networks (committed fixtures of the upstream implementations): the outputs stay within
/// bf16's error of the upstream f32 outputs, and differ from them by more than f32 rounding (bf16 really ran).
/// Native with avx512_bf16/AMX, else oneDNN's emulation on any AVX-512 CPU; skipped on the AVX2 path, where the
/// backend refuses bf16 (DNNLBackendTests).
@Suite struct BF16NetworkTests {
    typealias S = FaceModelsTestSupport
    static let fixtures = S.repoRoot.appendingPathComponent("Tests/Fixtures/models")
    static let backend: DNNLBackend? = try? DNNLBackend(options: .init(threads: 2, precision: .bf16, bf16Emulation: true))

    static func relative(_ a: [Float], _ b: [Float]) -> Double { esrganErrors(a, b).rel }

    /// (network, relative L2 error of each output) on the bf16 backend.
    static func errors(_ be: DNNLBackend) throws -> [(String, Double)] {
        var out: [(String, Double)] = []
        for name in ["rrdbnet_x4", "srvgg_prelu_x4"] {
            let d = fixtures.appendingPathComponent(name)
            let m = try RealESRGANLoader.load(d.appendingPathComponent("weights.pth"), backend: be)
            let y = try be.download(m.network.forward(be.upload(S.host(S.npy(d, "input_0")))))
            out.append((name, relative(y.data, try S.npy(d, "output_0").floats())))
        }
        for name in ["gpen_s32", "gpen_s64_cm2"] {
            let d = fixtures.appendingPathComponent(name)
            let g = try GPENGenerator(contentsOf: d.appendingPathComponent("weights.pth"), backend: be)
            let y = try be.download(g.forward(be.upload(S.host(S.npy(d, "input")))))
            out.append((name, relative(y.data, try S.npy(d, "output").floats())))
        }
        let pd = fixtures.appendingPathComponent("parsenet")
        let p = try ParseNet(contentsOf: pd.appendingPathComponent("weights.pth"), backend: be)
        let (mask, image) = try p.forward(be.upload(S.host(S.npy(pd, "input"))))
        out.append(("parsenet out_mask", relative(try be.download(mask).data, try S.npy(pd, "out_mask").floats())))
        out.append(("parsenet out_img", relative(try be.download(image).data, try S.npy(pd, "out_img").floats())))
        let rd = fixtures.appendingPathComponent("retinaface_mnet")
        let r = try RetinaFace(contentsOf: rd.appendingPathComponent("weights.pth"), backend: be)
        let raw = try r.forward(be.upload(S.host(S.npy(rd, "input"))))
        out.append(("retinaface loc", relative(raw.loc, try S.npy(rd, "loc").floats())))
        out.append(("retinaface conf", relative(raw.conf, try S.npy(rd, "conf").floats())))
        return out
    }

    @Test func networksStayWithinBF16Error() throws {
        guard let be = Self.backend else {
            #expect(!CPUInfo.isa.hasPrefix("avx512"), "bf16 (emulated) must be available on \(CPUInfo.isa)")
            return
        }
        for (name, e) in try Self.errors(be) {
            print("bf16 \(name): relative L2 error \(e)")
            // The random-weight mobilenet (BN folded, 27 convs, loc regressions near zero) amplifies rounding:
            // measured 0.26 (loc) and 0.045 (conf). The real RetinaFace-mnet025 on a real photo moves boxes and
            // landmarks by < 1 px in bf16 (docs/bench.md).
            let bound = name.hasPrefix("retinaface") ? (name.hasSuffix("loc") ? 0.5 : 0.1) : 2e-2
            #expect(e > 1e-5 && e < bound, "\(name): relative L2 error \(e)")
        }
    }
}
