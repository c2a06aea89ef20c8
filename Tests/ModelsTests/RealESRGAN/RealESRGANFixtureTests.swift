import Foundation
import Testing
import BackendDNNL
import Checkpoint
import TensorCore
@testable import Models

/// Raw forwards against the project's committed fixtures (Tests/Fixtures/models, PyTorch reference of
/// scripts/reference): RRDBNet ×4/×2/×1 and SRVGGNetCompact with PReLU, LeakyReLU(0.1) and ReLU.
/// Tolerance: relative L2 ≤ 1e-5 and max abs ≤ 1e-4 on the reference backend and oneDNN.
@Suite("RealESRGAN committed fixtures")
struct RealESRGANFixtureTests {
    static let folders = ["rrdbnet_x4", "rrdbnet_x2", "rrdbnet_x1", "srvgg_prelu_x4", "srvgg_leakyrelu_x4", "srvgg_prelu_x2", "srvgg_relu_x2"]

    /// Builds the network from the folder's config.json (the activation of SRVGG cannot be told from the keys
    /// when it has no parameters) and checks that detection agrees on everything else.
    func network(_ dir: URL, backend: any Backend) throws -> any SuperResolutionNetwork {
        let cfg = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as? [String: Any])
        let c = try #require(cfg["config"] as? [String: Any])
        let ck = try CheckpointLoader.load(dir.appendingPathComponent("weights.pth"))
        #expect(ck.wrapper == "params_ema")
        let detected = ArchitectureDetector.detect(ck.stateDict)
        ck.stateDict.resetUsage()
        if let block = c["num_block"] as? Int {
            let conf = RRDBNetConfiguration(numInCh: c["num_in_ch"] as! Int, numOutCh: c["num_out_ch"] as! Int, scale: c["scale"] as! Int,
                                            numFeat: c["num_feat"] as! Int, numBlock: block, numGrowCh: c["num_grow_ch"] as! Int)
            #expect(detected == .rrdbNet(conf))
            return try RRDBNet(configuration: conf, weights: ck.stateDict, backend: backend)
        }
        let conf = SRVGGNetConfiguration(numInCh: c["num_in_ch"] as! Int, numOutCh: c["num_out_ch"] as! Int, numFeat: c["num_feat"] as! Int,
                                         numConv: c["num_conv"] as! Int, upscale: c["upscale"] as! Int, actType: c["act_type"] as! String)
        guard case let .srvggNet(d) = detected else { Issue.record("not detected as SRVGG"); throw RealESRGANError.invalidInput("") }
        #expect(d.numFeat == conf.numFeat && d.numConv == conf.numConv && d.upscale == conf.upscale)
        return try SRVGGNetCompact(configuration: conf, weights: ck.stateDict, backend: backend)
    }

    func check(_ folder: String, backend: any Backend) throws {
        let dir = ESRGANPaths.fixtures.appendingPathComponent(folder)
        let net = try network(dir, backend: backend)
        var i = 0
        while ESRGANPaths.exists(dir.appendingPathComponent("input_\(i).npy")) {
            let x = try NPYArray(contentsOf: dir.appendingPathComponent("input_\(i).npy"))
            let want = try NPYArray(contentsOf: dir.appendingPathComponent("output_\(i).npy"))
            let y = try backend.download(net.forward(backend.upload(HostTensor(shape: x.shape, data: x.floats()))))
            #expect(y.shape == want.shape)
            let (m, rel) = esrganErrors(y.data, want.floats())
            print("fixture \(folder)/\(i) on \(backend.name): max abs \(m), rel \(rel)")
            #expect(m <= 1e-4)
            #expect(rel <= 1e-5)
            i += 1
        }
        #expect(i >= 1)
    }

    @Test("reference backend", arguments: folders)
    func reference(_ folder: String) throws { try check(folder, backend: ReferenceBackend()) }

    @Test("oneDNN", arguments: folders)
    func dnnl(_ folder: String) throws { try check(folder, backend: DNNLBackend(options: .init(threads: 2))) }
}

/// RRDBNet's ×4 stage in row bands (each with a two-row halo) against the upstream fixtures and the unbanded forward:
/// bands of 1–3 LR rows put a band edge next to every row, so a halo one row too small would show.
@Suite("RRDBNet tail in row bands")
struct RRDBNetTailBandTests {
    func check(_ folder: String, backend: any Backend) throws {
        let dir = ESRGANPaths.fixtures.appendingPathComponent(folder)
        let net = try #require(try RealESRGANFixtureTests().network(dir, backend: backend) as? RRDBNet)
        var i = 0
        while ESRGANPaths.exists(dir.appendingPathComponent("input_\(i).npy")) {
            let x = try NPYArray(contentsOf: dir.appendingPathComponent("input_\(i).npy"))
            let want = try NPYArray(contentsOf: dir.appendingPathComponent("output_\(i).npy")).floats()
            let input = try backend.upload(HostTensor(shape: x.shape, data: x.floats()))
            net.tailBandBytes = 0
            let whole = try backend.download(net.forward(input)).data
            for rows in 1...3 {
                net.tailBandBytes = 1
                net.tailMinimumBandRows = rows
                let lr = input.shape.h / net.inputMultiple
                #expect(net.tailBandRows(TensorShape(n: 1, c: 1, h: lr, w: 1)) == rows)
                let banded = try backend.download(net.forward(input)).data
                let (m, rel) = esrganErrors(banded, want)
                let (mw, relw) = esrganErrors(banded, whole)
                print("tail bands of \(rows) rows, \(folder)/\(i) on \(backend.name): vs fixture max abs \(m), rel \(rel); vs whole \(mw), \(relw)")
                #expect(m <= 1e-4 && rel <= 1e-5)
                #expect(mw <= 1e-5)
            }
            i += 1
        }
        #expect(i >= 1)
    }

    @Test("reference backend", arguments: ["rrdbnet_x4", "rrdbnet_x2", "rrdbnet_x1"])
    func reference(_ folder: String) throws { try check(folder, backend: ReferenceBackend()) }

    @Test("oneDNN", arguments: ["rrdbnet_x4", "rrdbnet_x2", "rrdbnet_x1"])
    func dnnl(_ folder: String) throws { try check(folder, backend: DNNLBackend(options: .init(threads: 2))) }
}
