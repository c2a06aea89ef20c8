import BackendDNNL
import Checkpoint
import Foundation
import Models
import Testing
import TensorCore
import TestSupport
@testable import Pipeline

/// Tiny random-weight face models (real checkpoint format through the safetensors reader) for pipeline tests.
enum TinyFaceModels {
    static let gpenConfig = GPENConfiguration(size: 32, styleDim: 16, nMLP: 2, channelMultiplier: 1, narrow: 0.03125)
    static let parseConfig = ParseNetConfiguration(baseCh: 4, parsingCh: 19, resDepth: 1, downSteps: 4, upSteps: 4,
                                                   normType: "bn", reluType: "LeakyReLU", chRange: [4, 16])
    static let backend: any Backend = try! DNNLBackend(options: DNNLBackend.Options(threads: 2))

    static func gpen() throws -> GPENGenerator {
        try GPENGenerator(stateDict: SyntheticCheckpoint.stateDict(SyntheticCheckpoint.gpen(gpenConfig)), backend: backend)
    }
    static func retina() throws -> RetinaFace {
        try RetinaFace(stateDict: SyntheticCheckpoint.stateDict(SyntheticCheckpoint.retinaFace(
            RetinaFaceConfiguration(backbone: .mobilenet025, outChannel: 64))), backend: backend)
    }
    static func parser() throws -> ParseNet {
        try ParseNet(stateDict: SyntheticCheckpoint.stateDict(SyntheticCheckpoint.parseNet(parseConfig)), backend: backend)
    }

    /// A smooth synthetic photo with some texture, BGR, layout H·W·C.
    static func photo(width: Int = 128, height: Int = 128) throws -> FaceImage {
        var img = try FaceImage(width: width, height: height)
        for y in 0..<height { for x in 0..<width {
            img[y, x, 0] = UInt8((x * 255) / max(1, width - 1))
            img[y, x, 1] = UInt8((y * 255) / max(1, height - 1))
            img[y, x, 2] = UInt8(((x / 8 + y / 8) % 2) * 120 + 60)
        } }
        return img
    }
}

/// A detector returning a fixed list (pipeline logic without detector randomness).
struct FixedDetector: FaceDetecting {
    let detections: [FaceDetection]
    func detect(_ image: FaceImage) throws -> [FaceDetection] { detections }
}

func face(at c: SIMD2<Double>, eye: Double, score: Double, box: Double = 120) -> FaceDetection {
    FaceDetection(box: SIMD4(c.x - box / 2, c.y - box / 2, c.x + box / 2, c.y + box / 2), score: score,
                  landmarks: [c + SIMD2(-eye, -eye * 0.8), c + SIMD2(eye, -eye * 0.8), c, c + SIMD2(-eye * 0.7, eye), c + SIMD2(eye * 0.7, eye)])
}

@Suite(.serialized) struct FaceRestorerTests {
    /// Whole photo with the tiny detector/GPEN/parser: deterministic, one face, pixels outside the warped mask unchanged.
    @Test func wholePhotoDeterministicAndOnlyMaskedPixelsChange() throws {
        let gpen = try TinyFaceModels.gpen()
        var o = RestoreOptions(); o.parserSize = 64
        let restorer = try FaceRestorer(gpen: gpen, detector: RetinaFaceDetector(TinyFaceModels.retina()), parser: TinyFaceModels.parser(),
                                        options: o)
        #expect(restorer.effectiveMask == .parse)
        let img = try TinyFaceModels.photo()
        let a = try restorer.restore(img)
        let b = try restorer.restore(img)
        #expect(a.image == b.image, "two runs must be bitwise equal")
        // The synthetic detector scores every stride-32 anchor-0 prior (4×4 grid of 256 px boxes, centres 32 px apart)
        // as a face; with the +1 IoU, boxes 3 steps apart overlap by 0.378 ≤ 0.4, so NMS keeps 3 of the 16.
        #expect(a.detections == 3)
        #expect(a.faces.count == 3)
        #expect(a.notes.isEmpty)
        #expect(a.faces.first?.detection.box == SIMD4(-16, -16, 240, 240))
        // The union (max) of the warped paste masks decides which pixels may change.
        var warped = try FaceMask(width: 128, height: 128)
        for f in a.faces {
            #expect(f.crop.width == 32 && f.restored.width == 32)
            let mask = try restorer.pasteMask(for: f.restored)
            let (_, inv) = try FaceAlignment.transforms(landmarks: f.detection.landmarks, cropSize: 32)
            let w = try FaceWarp.warpAffine(mask, inv, width: 128, height: 128)
            for i in 0..<w.values.count { warped.values[i] = max(warped.values[i], w.values[i]) }
        }
        var changedOutside = 0, changedInside = 0
        for i in 0..<(128 * 128) {
            let differs = (0..<3).contains { a.image.pixels[i * 3 + $0] != img.pixels[i * 3 + $0] }
            if warped.values[i] == 0 && differs { changedOutside += 1 }
            if warped.values[i] > 0.5 && differs { changedInside += 1 }
        }
        #expect(changedOutside == 0)
        #expect(changedInside > 0, "the restored face must show up inside the mask")
    }

    /// Score threshold, detector order and --only-center-face with a fixed detector.
    @Test func thresholdAndCenterFace() throws {
        let gpen = try TinyFaceModels.gpen()
        let dets = [face(at: SIMD2(40, 40), eye: 8, score: 0.99), face(at: SIMD2(70, 66), eye: 8, score: 0.95),
                    face(at: SIMD2(100, 100), eye: 8, score: 0.85)]
        let all = try FaceRestorer(gpen: gpen, detector: FixedDetector(detections: dets), parser: nil)
        let r = try all.restore(TinyFaceModels.photo())
        #expect(r.detections == 3)
        #expect(r.faces.map(\.detection.score) == [0.99, 0.95])
        #expect(r.notes.contains { $0.contains("rectangular") })
        var o = RestoreOptions(); o.onlyCenterFace = true
        let center = try FaceRestorer(gpen: gpen, detector: FixedDetector(detections: dets), parser: nil, options: o)
        let c = try center.restore(TinyFaceModels.photo())
        #expect(c.faces.map(\.detection.score) == [0.95])
        // Small-face rule reaches paste-back: boxes of 120 px are not small, so the 3×3 filter is off.
        #expect(!dets[0].isSmall)
    }

    /// --aligned: the input is the face; --upscale with the bilinear background doubles the size.
    @Test func alignedAndUpscale() throws {
        let gpen = try TinyFaceModels.gpen()
        var o = RestoreOptions(); o.aligned = true
        let r = try FaceRestorer(gpen: gpen, detector: nil, parser: nil, options: o)
        let faceImg = try TinyFaceModels.photo(width: 32, height: 32)
        let out = try r.restore(faceImg)
        #expect(out.image.width == 32 && out.image.height == 32)
        #expect(out.image.pixels == (try gpen.restore(bgr: faceImg.pixels)))
        o.upscale = 2
        let r2 = try FaceRestorer(gpen: gpen, detector: nil, parser: nil, background: BilinearUpsampler(), options: o)
        #expect(try r2.restore(faceImg).image.width == 64)
        var w = RestoreOptions(); w.upscale = 2
        let whole = try FaceRestorer(gpen: gpen, detector: FixedDetector(detections: [face(at: SIMD2(120, 120), eye: 16, score: 0.99)]),
                                     parser: nil, background: BilinearUpsampler(), options: w)
        let big = try whole.restore(TinyFaceModels.photo())
        #expect(big.image.width == 256 && big.image.height == 256 && big.faces.count == 1)
    }

    /// Several faces in one GPEN pass give the same bytes as one at a time (both backends' batch-N paths).
    @Test func faceBatchMatchesSingle() throws {
        let dets = [face(at: SIMD2(40, 40), eye: 8, score: 0.99), face(at: SIMD2(70, 66), eye: 8, score: 0.95),
                    face(at: SIMD2(90, 40), eye: 6, score: 0.97)]
        let gpen = try TinyFaceModels.gpen()
        let single = try FaceRestorer(gpen: gpen, detector: FixedDetector(detections: dets), parser: nil).restore(TinyFaceModels.photo())
        var o = RestoreOptions(); o.faceBatch = 2
        let batched = try FaceRestorer(gpen: gpen, detector: FixedDetector(detections: dets), parser: nil, options: o).restore(TinyFaceModels.photo())
        #expect(batched.faces.count == 3)
        // Equal up to float rounding: a batch-N convolution may sum in another order and move a truncated byte by 1.
        func maxDiff(_ a: [UInt8], _ b: [UInt8]) -> Int { zip(a, b).map { abs(Int($0) - Int($1)) }.max() ?? 0 }
        #expect(zip(single.faces, batched.faces).allSatisfy { maxDiff($0.restored.pixels, $1.restored.pixels) <= 1 })
        #expect(maxDiff(single.image.pixels, batched.image.pixels) <= 1)
        let ref = try GPENGenerator(stateDict: SyntheticCheckpoint.stateDict(SyntheticCheckpoint.gpen(TinyFaceModels.gpenConfig)),
                                    backend: ReferenceBackend())
        let crops = single.faces.map(\.crop.pixels)
        #expect(try ref.restore(batch: crops) == crops.map { try ref.restore(bgr: $0) })
    }

    /// A device that cannot hold two faces' activations at once (an allocator capped at 1.5× the single-face peak):
    /// `--face-batch 2` runs out of memory, the restorer goes on one face per GPEN pass, says so in the notes, and gives
    /// the one-at-a-time bytes.
    @Test func aFaceBatchTooLargeForTheDeviceRunsSmaller() throws {
        let dets = [face(at: SIMD2(40, 40), eye: 8, score: 0.99), face(at: SIMD2(70, 66), eye: 8, score: 0.95),
                    face(at: SIMD2(90, 40), eye: 6, score: 0.97)]
        func restorer(capacity: Int?, batch: Int) throws -> (FaceRestorer, BufferPool) {
            let pool = BufferPool(allocator: CappedAllocator(capacity: capacity))
            let be = ReferenceBackend(sharing: pool, constants: BufferPool(countsInScopes: false), identity: ObjectIdentifier(pool))
            let gpen = try GPENGenerator(stateDict: SyntheticCheckpoint.stateDict(SyntheticCheckpoint.gpen(TinyFaceModels.gpenConfig)), backend: be)
            var o = RestoreOptions(); o.faceBatch = batch
            return (try FaceRestorer(gpen: gpen, detector: FixedDetector(detections: dets), parser: nil, options: o), pool)
        }
        let (one, onePool) = try restorer(capacity: nil, batch: 1)
        let single = try one.restore(TinyFaceModels.photo())
        let capacity = onePool.memoryStats.peakReservedBytes * 3 / 2
        let (two, _) = try restorer(capacity: capacity, batch: 2)
        let r = try two.restore(TinyFaceModels.photo())
        #expect(r.notes.contains { $0.hasPrefix("--face-batch 2 is out of memory (allocation of ") && $0.hasSuffix("): 1 face per GPEN pass") }, "\(r.notes)")
        #expect(r.faces.count == 3)
        #expect(r.image == single.image)
    }

    @Test func optionErrors() throws {
        let gpen = try TinyFaceModels.gpen()
        var o = RestoreOptions(); o.alpha = 1.5
        #expect(throws: RestoreError.self) { _ = try FaceRestorer(gpen: gpen, detector: FixedDetector(detections: []), parser: nil, options: o) }
        o = RestoreOptions(); o.upscale = 2
        #expect(throws: RestoreError.invalidOption("--upscale 2 needs a background upsampler (--bg-upsampler bilinear or a model)")) {
            _ = try FaceRestorer(gpen: gpen, detector: FixedDetector(detections: []), parser: nil, options: o)
        }
        #expect(throws: RestoreError.self) { _ = try FaceRestorer(gpen: gpen, detector: nil, parser: nil) }
        // No faces: the photo comes back unchanged.
        let r = try FaceRestorer(gpen: gpen, detector: FixedDetector(detections: []), parser: nil)
        let img = try TinyFaceModels.photo()
        #expect(try r.restore(img).image == img)
    }

    @Test func bilinearResizeGeometry() throws {
        // Upscaling a 2×1 ramp by 2 follows OpenCV's half-pixel rule: 0, 64, 191, 255.
        let img = try FaceImage(width: 2, height: 1, channels: 1, pixels: [0, 255])
        let up = try ImageResize.bilinear(img, width: 4, height: 1)
        #expect(up.pixels == [0, 64, 191, 255])
    }
}

