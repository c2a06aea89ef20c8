import Checkpoint
import Foundation
import Testing
import TensorCore
@testable import Models

/// RetinaFace (MobileNet-0.25) parity with the upstream golden outputs: raw heads, priors and detect().
struct RetinaFaceGoldenTests {
    static let dir = FaceModelsTestSupport.goldenDir("retinaface_mnet")
    static let available = FaceModelsTestSupport.goldenAvailable("retinaface_mnet")
    typealias S = FaceModelsTestSupport

    /// The golden case (if present) and the committed fixture retinaface_mnet (96×144 photo crop).
    static let cases = S.cases(golden: "retinaface_mnet", fixtures: ["retinaface_mnet"])

    static func load(_ be: any Backend, _ d: URL = dir) throws -> RetinaFace {
        try RetinaFace(contentsOf: d.appendingPathComponent("weights.pth"), backend: be)
    }

    static func image(_ d: URL) throws -> (bgr: [UInt8], w: Int, h: Int) {
        let a = try S.npy(d, "image_bgr")
        return (try a.uint8s(), a.shape[1], a.shape[0])
    }

    @Test(arguments: cases)
    func priorsMatchExactly(_ dir: URL) throws {
        let (_, w, h) = try Self.image(dir)
        #expect(RetinaFace.priors(height: h, width: w) == (try S.npy(dir, "priors").floats()))
    }

    /// Heads within 1e-3·max(1, max|ref|) (golden README tolerance); input conversion exact.
    @Test(arguments: cases)
    func rawHeadsMatch(_ dir: URL) throws {
      for be in try S.backends() {
        let net = try Self.load(be, dir)
        #expect(net.configuration == RetinaFaceConfiguration(backbone: .mobilenet025, outChannel: 64))
        let (img, w, h) = try Self.image(dir)
        let x = RetinaFace.inputTensor(bgr: img.map { Float($0) }, width: w, height: h, mean: SIMD3(104, 117, 123))
        #expect(x.data == (try S.npy(dir, "input").floats()))
        let raw = try net.forward(be.upload(x))
        #expect(raw.count == (try S.npy(dir, "priors").shape[0]))
        for (name, got) in [("loc", raw.loc), ("conf", raw.conf), ("landms", raw.landms)] {
            let (d, m) = S.maxAbsDiff(got, try S.npy(dir, name).floats())
            #expect(d <= 1e-3 * max(1, m), "\(be.name) \(name): max |diff| \(d)")
        }
      }
    }

    /// Same detections in the same order, coordinates within 0.01 px.
    @Test(arguments: cases)
    func detectMatches(_ dir: URL) throws {
      for be in try S.backends() {
        let net = try Self.load(be, dir)
        let (img, w, h) = try Self.image(dir)
        let dets = try net.detect(bgr: img, width: w, height: h)
        let wantD = try S.npy(dir, "detect_dets").floats()
        let wantL = try S.npy(dir, "detect_landms").floats()
        #expect(dets.count == wantD.count / 5 && dets.count > 5)
        guard dets.count == wantD.count / 5 else { continue }
        var maxd: Float = 0
        for (i, d) in dets.enumerated() {
            for k in 0..<4 { maxd = max(maxd, abs(d.box[k] - wantD[i * 5 + k])) }
            #expect(abs(d.score - wantD[i * 5 + 4]) < 1e-4)
            for k in 0..<5 {
                maxd = max(maxd, abs(d.landmarkX[k] - wantL[i * 10 + k]), abs(d.landmarkY[k] - wantL[i * 10 + 5 + k]))
            }
        }
        #expect(maxd <= 0.01, "\(be.name): max coordinate diff \(maxd)")
      }
    }

    @Test(arguments: cases)
    func strictLoadAndWrongArchitecture(_ dir: URL) throws {
        let ck = try CheckpointLoader.load(dir.appendingPathComponent("weights.pth"))
        #expect(ck.strippedModulePrefix)
        #expect {
            _ = try RetinaFace(stateDict: ck.stateDict, configuration: RetinaFaceConfiguration(backbone: .mobilenet025, outChannel: 128),
                               backend: ReferenceBackend())
        } throws: { e in
            guard case let CheckpointError.shapeMismatch(key, expected, actual) = e else { return false }
            return key == "fpn.output1.0.weight" && expected == [128, 64, 1, 1] && actual == [64, 64, 1, 1]
        }
        #expect(throws: FaceModelError.self) {
            _ = try GPENGenerator(stateDict: ck.stateDict, backend: ReferenceBackend())
        }
    }

    @Test func nmsUsesPlusOneAreaAndThreshold() {
        // Two boxes: 10x10 (+1 → 11x11 = 121) overlapping by 11x6 = 66 → IoU 66/(121+121-66) = 0.375 ≤ 0.4: both kept.
        // A third box overlapping the first by more than 0.4 is suppressed.
        let priors: [Float] = [0.5, 0.5, 0.1, 0.1, 0.5, 0.55, 0.1, 0.1, 0.5, 0.51, 0.1, 0.1]
        let raw = RetinaFaceRawOutput(count: 3, loc: [Float](repeating: 0, count: 12), conf: [0.03, 0.97, 0.04, 0.96, 0.05, 0.95],
                                      landms: [Float](repeating: 0, count: 30))
        let d = RetinaFace.decode(raw, priors: priors, width: 100, height: 100)
        #expect(d.count == 2)
        #expect(d.map(\.score) == [0.97, 0.96])
        #expect(abs(d[1].box[1] - 50) < 1e-4 && abs(d[0].box[3] - 55) < 1e-4)
        // Without the +1 convention the pair would have IoU 50/150 = 0.333 too, so also check a boundary case:
        // boxes 10 px apart by 4 px: +1 IoU = 7·11/(242−77) = 0.467 > 0.4 (suppressed); plain IoU 60/140 = 0.43 too.
        let tight = RetinaFace.decode(RetinaFaceRawOutput(count: 2, loc: [Float](repeating: 0, count: 8), conf: [0.03, 0.97, 0.04, 0.96],
                                                          landms: [Float](repeating: 0, count: 20)),
                                      priors: [0.5, 0.5, 0.1, 0.1, 0.5, 0.54, 0.1, 0.1], width: 100, height: 100)
        #expect(tight.count == 1)
        // Score threshold is strict: exactly 0.9 is dropped.
        let edge = RetinaFace.decode(RetinaFaceRawOutput(count: 1, loc: [0, 0, 0, 0], conf: [0.1, 0.9], landms: [Float](repeating: 0, count: 10)),
                                     priors: [0.5, 0.5, 0.1, 0.1], width: 100, height: 100)
        #expect(edge.isEmpty)
    }
}
