import BackendDNNL
import Checkpoint
import Foundation
import Testing
import TensorCore
@testable import Models

/// detect() geometry with the synthetic RetinaFace whose outputs are its head biases (boxes = priors).
struct RetinaFaceDetectTests {
    static func net() throws -> RetinaFace {
        try RetinaFace(stateDict: SyntheticCheckpoint.stateDict(SyntheticCheckpoint.retinaFace(
            RetinaFaceConfiguration(backbone: .mobilenet025, outChannel: 64))), backend: DNNLBackend(options: DNNLBackend.Options(threads: 2)))
    }

    /// Over 1500 px the image is detected at a longer side of 1000 and the results are divided by ss = 1000/1600,
    /// scores included (upstream's dets/ss quirk).
    @Test func largeImagesAreDetectedDownscaled() throws {
        let n = try Self.net()
        let (w, h) = (1600, 1200)
        let dets = try n.detect(bgr: [UInt8](repeating: 90, count: w * h * 3), width: w, height: h)
        #expect(!dets.isEmpty)
        let ss: Float = 1000.0 / 1600.0
        for d in dets {
            // stride-32 anchor-0 priors of the 1000×750 image: 256 px boxes centred at (j + 0.5)·32
            #expect(abs((d.box[2] - d.box[0]) - 256 / ss) < 0.05)
            let cx = (d.box[0] + d.box[2]) / 2 * ss
            #expect(abs((cx / 32 - 0.5).rounded() - (cx / 32 - 0.5)) < 1e-3)
            #expect(d.score > 1.5, "score \(d.score) is divided by ss too")
        }
        // At 1500 px there is no downscale.
        let same = try n.detect(bgr: [UInt8](repeating: 90, count: 1500 * 64 * 3), width: 1500, height: 64)
        #expect(same.allSatisfy { abs(($0.box[2] - $0.box[0]) - 256) < 0.01 && $0.score < 1 })
    }

    @Test func rejectsBadInput() throws {
        let n = try Self.net()
        #expect(throws: FaceModelError.self) { _ = try n.detect(bgr: [0, 0], width: 4, height: 4) }
        #expect(throws: FaceModelError.self) { _ = try n.forward(n.backend.zeros(TensorShape(n: 1, c: 4, h: 8, w: 8))) }
    }
}
