import Foundation
import Testing
import BackendDNNL
import Checkpoint
import TensorCore
@testable import Models

/// Raw forwards against outputs of upstream BasicSR / Real-ESRGAN (float32 PyTorch) in `shared/golden` (skipped
/// when it is absent; the committed fixtures are covered by `RealESRGANFixtureTests`).
/// Tolerances: reference backend and oneDNN direct: relative L2 ≤ 1e-5 and max abs ≤ 1e-4;
/// oneDNN Winograd: relative L2 ≤ 1e-4 and max abs ≤ 1e-3.
@Suite("RealESRGAN golden forwards")
struct RealESRGANGoldenTests {
    static let cases: [(String, String)] = [("rrdbnet_x4", "0"), ("rrdbnet_x4", "1"), ("rrdbnet_x2", "0"), ("srvgg_x4", "0")]
        .filter { ESRGANPaths.caseDirectory($0.0) != nil }

    @Test("reference backend", .enabled(if: ESRGANPaths.hasGolden, "needs ../shared/golden"), arguments: cases)
    func reference(_ name: String, _ index: String) throws {
        try check(name, index, backend: ReferenceBackend(), rel: 1e-5, abs: 1e-4)
    }

    @Test("oneDNN direct", .enabled(if: ESRGANPaths.hasGolden, "needs ../shared/golden"), arguments: cases)
    func dnnlDirect(_ name: String, _ index: String) throws {
        try check(name, index, backend: DNNLBackend(options: .init(threads: 2, winograd: false)), rel: 1e-5, abs: 1e-4)
    }

    @Test("oneDNN Winograd", .enabled(if: ESRGANPaths.hasGolden, "needs ../shared/golden"), arguments: cases)
    func dnnlWinograd(_ name: String, _ index: String) throws {
        try check(name, index, backend: DNNLBackend(options: .init(threads: 2, winograd: true)), rel: 1e-4, abs: 1e-3)
    }

    func check(_ name: String, _ index: String, backend: any Backend, rel: Double, abs: Float) throws {
        let dir = try #require(ESRGANPaths.caseDirectory(name))
        let model = try RealESRGANLoader.load(dir.appendingPathComponent("weights.pth"), backend: backend)
        let input = try NPYArray(contentsOf: dir.appendingPathComponent("input_\(index).npy"))
        let expected = try NPYArray(contentsOf: dir.appendingPathComponent("output_\(index).npy"))
        let x = try backend.upload(HostTensor(shape: input.shape, data: input.floats()))
        let y = try backend.download(model.network.forward(x))
        #expect(y.shape == expected.shape)
        let (maxAbs, r) = esrganErrors(y.data, expected.floats())
        print("golden \(name)/\(index) on \(backend.name): max abs \(maxAbs), rel \(r)")
        #expect(maxAbs <= abs)
        #expect(r <= rel)
    }
}

/// Strict loading, DNI and backend parity on tiny random models built in memory.
@Suite("RealESRGAN loading")
struct RealESRGANLoadingTests {
    @Test func detectsAndBuildsTinyModels() throws {
        let rrdb = try RealESRGANLoader.build(TinyModels.load(TinyModels.rrdb(scale: 2, nf: 8, blocks: 1, gc: 4)), backend: ReferenceBackend())
        #expect(rrdb.network.architectureName == "RRDBNet")
        #expect(rrdb.network.scale == 2)
        #expect(rrdb.network.inputMultiple == 2)
        let sr = try RealESRGANLoader.build(TinyModels.load(TinyModels.srvgg(nf: 8, numConv: 2, upscale: 4)), backend: ReferenceBackend())
        #expect(sr.network.architectureName == "SRVGGNetCompact")
        #expect(sr.network.receptiveFieldRadius == 4)
    }

    @Test func shapeMismatchNamesKeyAndBothShapes() throws {
        var t = TinyModels.srvgg(nf: 8, numConv: 2, upscale: 4)
        let c = try RRDBNetOrSRVGG.srvggConfig(t)
        // corrupt body.2.weight to [8, 7, 3, 3]
        let i = t.firstIndex { $0.0 == "body.2.weight" }!
        t[i] = ("body.2.weight", [8, 7, 3, 3], [Float](repeating: 0, count: 8 * 7 * 9))
        let ck = try TinyModels.load(t)
        do {
            _ = try RealESRGANLoader.network(.srvggNet(c), weights: ck.stateDict, backend: ReferenceBackend(), file: "tiny.safetensors")
            Issue.record("expected an error")
        } catch let e as RealESRGANError {
            let m = e.description
            #expect(m.contains("tiny.safetensors"))
            #expect(m.contains("body.2.weight"))
            #expect(m.contains("[8, 8, 3, 3]"))
            #expect(m.contains("[8, 7, 3, 3]"))
        }
    }

    @Test func missingAndUnexpectedKeysAreErrors() throws {
        let base = TinyModels.srvgg(nf: 8, numConv: 2, upscale: 4)
        let c = try RRDBNetOrSRVGG.srvggConfig(base)
        let missing = try TinyModels.load(base.filter { $0.0 != "body.3.weight" })
        #expect(throws: RealESRGANError.weights(file: "f", reason: CheckpointError.missingKey("body.3.weight").description)) {
            _ = try RealESRGANLoader.network(.srvggNet(c), weights: missing.stateDict, backend: ReferenceBackend(), file: "f")
        }
        let extra = try TinyModels.load(base + [("body.99.weight", [2], [1, 2])])
        #expect(throws: RealESRGANError.weights(file: "f", reason: CheckpointError.unexpectedKeys(["body.99.weight"]).description)) {
            _ = try RealESRGANLoader.network(.srvggNet(c), weights: extra.stateDict, backend: ReferenceBackend(), file: "f")
        }
    }

    @Test func wrongArchitectureIsNamed() throws {
        let ck = try TinyModels.load([("encoder.weight", [2, 2], [1, 2, 3, 4])])
        #expect(throws: RealESRGANError.self) { _ = try RealESRGANLoader.build(ck, backend: ReferenceBackend()) }
    }

    @Test func dniBlendsEveryTensor() throws {
        let a = TinyModels.srvgg(nf: 8, numConv: 1, upscale: 2, seed: 5)
        let b = TinyModels.srvgg(nf: 8, numConv: 1, upscale: 2, seed: 6)
        let blended = zip(a, b).map { x, y in (x.0, x.1, zip(x.2, y.2).map { 0.3 * $0 + 0.7 * $1 }) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("esrgan-dni-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ua = dir.appendingPathComponent("a.safetensors"), ub = dir.appendingPathComponent("b.safetensors")
        try Data(SafeTensorsWriter.bytes(a)).write(to: ua)
        try Data(SafeTensorsWriter.bytes(b)).write(to: ub)
        let be = ReferenceBackend()
        let dni = try RealESRGANLoader.loadDNI(ua, ub, wa: 0.3, wb: 0.7, backend: be)
        let ref = try RealESRGANLoader.build(TinyModels.load(blended), backend: be)
        var r = TestRNG(state: 9)
        let x = try be.upload(HostTensor(shape: [1, 3, 6, 5], data: (0..<90).map { _ in r.uniform(0, 1) }))
        let y1 = try be.download(dni.network.forward(x)).data, y2 = try be.download(ref.network.forward(x)).data
        #expect(esrganErrors(y1, y2).maxAbs < 1e-5)
        let plainA = try RealESRGANLoader.build(TinyModels.load(a), backend: be)
        #expect(esrganErrors(try be.download(plainA.network.forward(x)).data, y2).maxAbs > 1e-3)
    }

    @Test("oneDNN matches the reference backend", arguments: [
        (2, 16, 8), (4, 16, 16), (1, 16, 16),
    ])
    func rrdbParity(_ scale: Int, _ nf: Int, _ gc: Int) throws {
        let ck = try TinyModels.load(TinyModels.rrdb(scale: scale, nf: nf, blocks: 1, gc: gc))
        let ref = ReferenceBackend()
        let dnnl = try DNNLBackend(options: .init(threads: 2, winograd: false))
        let a = try RealESRGANLoader.build(ck, backend: ref).network
        ck.stateDict.resetUsage()
        let b = try RealESRGANLoader.build(ck, backend: dnnl).network
        var r = TestRNG(state: 3)
        let host = try HostTensor(shape: [1, 3, 12, 8], data: (0..<(3 * 96)).map { _ in r.uniform(0, 1) })
        let ya = try ref.download(a.forward(ref.upload(host)))
        let yb = try dnnl.download(b.forward(dnnl.upload(host)))
        #expect(ya.shape == [1, 3, 12 * scale, 8 * scale])
        let (m, rel) = esrganErrors(yb.data, ya.data)
        #expect(m < 1e-4)
        #expect(rel < 1e-5)
    }
}

/// Helpers to read a configuration back from a tiny state dict.
enum RRDBNetOrSRVGG {
    static func srvggConfig(_ t: [(String, [Int], [Float])]) throws -> SRVGGNetConfiguration {
        guard case let .srvggNet(c) = ArchitectureDetector.detect(try TinyModels.load(t).stateDict) else {
            throw RealESRGANError.unsupportedConfiguration("not detected")
        }
        return c
    }
}
