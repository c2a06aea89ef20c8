import Checkpoint
import Foundation
import Models
import TensorCore

/// Errors of the restore pipeline; each names the problem and what to do.
public enum RestoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// An option value is out of range or two options conflict.
    case invalidOption(String)
    /// A model needed for the requested mode was not given.
    case missingModel(String)
    /// The background upsampler failed or is not available in this build.
    case backgroundUpsampler(String)

    public var description: String {
        switch self {
        case let .invalidOption(m): return "restore: \(m)"
        case let .missingModel(m): return "restore: \(m)"
        case let .backgroundUpsampler(m): return "restore: background upsampler: \(m)"
        }
    }
}

/// Upscales the whole image for the background (upstream's `--use_sr` RealESRNet pass, or a plain resize).
public protocol BackgroundUpsampler: Sendable {
    /// A short name for logs ("bilinear", a model name, …).
    var name: String { get }
    /// Returns `image` upscaled by `scale` (output size = scale × input size), BGR(A), layout H·W·C.
    func upsample(_ image: FaceImage, scale: Int) throws -> FaceImage
}

/// Bilinear background upscaling (OpenCV INTER_LINEAR geometry, float arithmetic, rounded).
public struct BilinearUpsampler: BackgroundUpsampler {
    /// Creates the upsampler.
    public init() {}
    public var name: String { "bilinear" }
    public func upsample(_ image: FaceImage, scale: Int) throws -> FaceImage {
        try ImageResize.bilinear(image, width: image.width * scale, height: image.height * scale)
    }
}

/// A face detector for the restore pipeline (RetinaFace, or a fixed list in tests).
public protocol FaceDetecting: Sendable {
    /// Detections of a BGR image (3 channels), in the order the pipeline should process them.
    func detect(_ image: FaceImage) throws -> [FaceDetection]
}

/// RetinaFace with upstream GPEN's `detect()` settings as a `FaceDetecting`.
public struct RetinaFaceDetector: FaceDetecting, @unchecked Sendable {
    /// The network.
    public let net: RetinaFace
    /// Detection settings (score threshold 0.9 and NMS 0.4 by default).
    public let options: RetinaFaceDetectOptions
    private let lock = NSLock()
    /// Wraps a loaded RetinaFace.
    public init(_ net: RetinaFace, options: RetinaFaceDetectOptions = RetinaFaceDetectOptions()) { self.net = net; self.options = options }
    public func detect(_ image: FaceImage) throws -> [FaceDetection] {
        let bgr = image.channels == 3 ? image : try ImageResize.toBGR(image)
        let dets = try lock.withLock { try net.detect(bgr: bgr.pixels, width: bgr.width, height: bgr.height, options: options) }
        // Non-finite coordinates (possible with broken weights) are dropped rather than warped.
        return dets.filter { d in
            d.score.isFinite && (0..<4).allSatisfy { d.box[$0].isFinite }
                && (d.landmarkX + d.landmarkY).allSatisfy(\.isFinite)
        }.map { d in
            FaceDetection(box: SIMD4(Double(d.box[0]), Double(d.box[1]), Double(d.box[2]), Double(d.box[3])), score: Double(d.score),
                          landmarks: (0..<5).map { SIMD2(Double(d.landmarkX[$0]), Double(d.landmarkY[$0])) })
        }
    }
}

/// Which paste mask to use.
public enum RestoreMaskKind: String, Sendable, CaseIterable {
    /// ParseNet face-parsing mask (upstream GPEN).
    case parse
    /// Feathered rectangle (no parser needed).
    case rect
}

/// Options of `FaceRestorer` (defaults = upstream GPEN `FaceEnhancement` with alpha 1 and no SR).
public struct RestoreOptions: Sendable, Equatable {
    /// Per-face blend restored·alpha + original·(1 − alpha), 0...1.
    public var alpha: Double = 1
    /// Requested mask; `.parse` falls back to `.rect` when no parser is loaded (reported in `RestoreResult.notes`).
    public var mask: RestoreMaskKind = .parse
    /// The input is already an aligned face: no detection, no paste-back.
    public var aligned = false
    /// Restore only the face whose box centre is closest to the image centre.
    public var onlyCenterFace = false
    /// Match the restored face's colour statistics to the original crop (Lab).
    public var colorMatch = false
    /// Detection score threshold (faces with score < threshold are skipped; upstream 0.9).
    public var threshold: Double = 0.9
    /// Output scale (1 = same size); > 1 needs a background upsampler.
    public var upscale: Int = 1
    /// Faces per GPEN forward pass (N×3×S×S); results equal one-at-a-time up to float rounding, memory grows with N.
    public var faceBatch: Int = 1
    /// Side of the parser input (upstream always 512, where the mask post-processing is exact; other sizes scale
    /// the border and blur, for small test models).
    public var parserSize: Int = 512
    /// Defaults.
    public init() {}
}

/// One restored face.
public struct RestoredFace: Sendable {
    /// The detection it came from (coordinates in the working image: upscaled when `upscale` > 1).
    public var detection: FaceDetection
    /// The aligned S×S input crop, BGR.
    public var crop: FaceImage
    /// The GPEN output, S×S, BGR.
    public var restored: FaceImage
}

/// The outcome of restoring one photo.
public struct RestoreResult: Sendable {
    /// The output image (BGR, 3 channels), upscale × the input size.
    public var image: FaceImage
    /// Every restored face in detector order.
    public var faces: [RestoredFace]
    /// Number of detections before the score threshold.
    public var detections: Int
    /// Remarks for the log (e.g. the rect-mask fallback).
    public var notes: [String]
    /// Seconds per stage: detect, restore, parse, paste, upsample.
    public var timings: [String: Double]
}

/// GPEN's whole-photo face restoration (`FaceEnhancement.process`): optional background upscaling, RetinaFace
/// detection, alignment to the GPEN size, GPEN, ParseNet (or rectangular) mask, paste-back with max compositing.
public final class FaceRestorer: @unchecked Sendable {
    /// The generator.
    public let gpen: GPENGenerator
    /// The detector (required unless `options.aligned`).
    public let detector: (any FaceDetecting)?
    /// The parser (nil → rectangular mask).
    public let parser: ParseNet?
    /// The background upsampler used when `options.upscale` > 1.
    public let background: (any BackgroundUpsampler)?
    /// The options.
    public let options: RestoreOptions

    /// Creates a restorer; throws when options and models do not fit together.
    public init(gpen: GPENGenerator, detector: (any FaceDetecting)?, parser: ParseNet?, background: (any BackgroundUpsampler)? = nil,
                options: RestoreOptions = RestoreOptions()) throws {
        guard (0...1).contains(options.alpha) else { throw RestoreError.invalidOption("--alpha \(options.alpha) must be in 0...1") }
        guard (1...8).contains(options.upscale) else { throw RestoreError.invalidOption("--upscale \(options.upscale) must be in 1...8") }
        guard options.threshold >= 0, options.threshold <= 1 else { throw RestoreError.invalidOption("threshold \(options.threshold) must be in 0...1") }
        if options.upscale > 1 && background == nil {
            throw RestoreError.invalidOption("--upscale \(options.upscale) needs a background upsampler (--bg-upsampler bilinear or a model)")
        }
        if !options.aligned && detector == nil {
            throw RestoreError.missingModel("whole-photo mode needs a RetinaFace detector (--detector FILE), or use --aligned")
        }
        guard (1...64).contains(options.faceBatch) else { throw RestoreError.invalidOption("--face-batch \(options.faceBatch) must be in 1...64") }
        guard options.parserSize >= 32, options.parserSize <= 2048 else { throw RestoreError.invalidOption("parser size \(options.parserSize)") }
        self.gpen = gpen; self.detector = detector; self.parser = parser; self.background = background; self.options = options
    }

    /// The forwards that can be recorded and replayed (CUDA graphs) or merged across photos: GPEN and the parser (one
    /// shape per batch size, so after the first face every forward can be a replay), a Real-ESRGAN background.
    /// RetinaFace stays eager: its input size follows the photo and it decodes on the host.
    public var replays: [ReplayedForward] {
        [gpen.replay, parser?.replay, (background as? RealESRGANBackground)?.upscaler.replay].compactMap { $0 }
    }

    /// The mask actually used (`.rect` when `.parse` was asked for but no parser is loaded).
    public var effectiveMask: RestoreMaskKind { options.mask == .parse && parser == nil ? .rect : options.mask }

    static func seconds(_ start: ContinuousClock.Instant) -> Double {
        secondsSince(start)
    }

    /// GPEN on an S×S BGR crop (FaceGAN.process).
    public func restoreFace(_ crop: FaceImage) throws -> FaceImage {
        let s = gpen.size
        var c = crop
        if c.channels != 3 { c = try ImageResize.toBGR(c) }
        if c.width != s || c.height != s { c = try ImageResize.bilinear(c, width: s, height: s) }
        let out = try gpen.restore(bgr: c.pixels)
        return try FaceImage(width: s, height: s, channels: 3, pixels: out)
    }

    /// The paste mask of one restored face in crop space (S×S, values 0...1).
    public func pasteMask(for restored: FaceImage) throws -> FaceMask {
        let s = gpen.size
        guard effectiveMask == .parse, let parser else { return try FaceMasks.rectangular(size: s) }
        let p = options.parserSize
        let face = restored.width == p ? restored : try ImageResize.bilinear(restored, width: p, height: p)
        let classes = try parser.parse(bgr: face.pixels, width: p, height: p)
        let parse = try FaceMasks.parseMask(classes: classes, width: p, height: p)
        // Upstream's post-processing is defined at 512 (26 px border, 101×101 σ 4 blur); other parser sizes scale it.
        let f = Double(p) / 512
        let k = max(3, Int((101 * f).rounded()) | 1)
        let post = try FaceMasks.postprocess(parse: parse, width: p, height: p, border: Int((26 * f).rounded()),
                                             kernelSize: k, sigma: 4 * f)
        return try FaceMasks.resize(post, width: s, height: s)
    }

    /// Detections of `image` (BGR, 3 channels) as the face pipeline consumes them.
    public func detect(_ image: FaceImage) throws -> [FaceDetection] {
        guard let detector else { throw RestoreError.missingModel("no detector loaded") }
        return try detector.detect(image)
    }

    /// Restores one photo (BGR or BGRA or gray; the output is 3-channel BGR, upscale × the input size). GPEN and the
    /// parser run one forward at a time (their `replay`s are serial); photos restored at once are sessions of both,
    /// so with `mergeLimit` > 1 their faces share forwards.
    public func restore(_ input: FaceImage) throws -> RestoreResult {
        try gpen.replay.session { try (parser?.replay).map { p in try p.session { try restoreOne(input) } } ?? restoreOne(input) }
    }

    private func restoreOne(_ input: FaceImage) throws -> RestoreResult {
        var timings: [String: Double] = [:]
        var notes: [String] = []
        if options.mask == .parse && parser == nil && !options.aligned {
            notes.append("no parser weights given: using the rectangular mask (--mask rect)")
        }
        let image = input.channels == 3 ? input : try ImageResize.toBGR(input)
        if options.aligned {
            var t = ContinuousClock.now
            let crop = image.width == gpen.size && image.height == gpen.size ? image : try ImageResize.bilinear(image, width: gpen.size, height: gpen.size)
            let restored = try restoreFace(crop)
            var out = restored
            timings["restore"] = Self.seconds(t)
            if options.upscale > 1, let background {
                t = ContinuousClock.now
                out = try background.upsample(out, scale: options.upscale)
                timings["upsample"] = Self.seconds(t)
            }
            let det = FaceDetection(box: SIMD4(0, 0, Double(image.width), Double(image.height)), score: 1,
                                    landmarks: [SIMD2<Double>](repeating: .zero, count: 5))
            return RestoreResult(image: out, faces: [RestoredFace(detection: det, crop: crop, restored: restored)],
                                 detections: 1, notes: notes, timings: timings)
        }

        // SR first: the background is upscaled, detection and crops use a bilinear enlargement of the input.
        var work = image
        var bg = image
        if options.upscale > 1, let background {
            let t = ContinuousClock.now
            bg = try background.upsample(image, scale: options.upscale)
            work = background is BilinearUpsampler ? bg : try ImageResize.bilinear(image, width: bg.width, height: bg.height)
            timings["upsample"] = Self.seconds(t)
        }
        var t = ContinuousClock.now
        var dets = try detect(work)
        timings["detect"] = Self.seconds(t)
        let total = dets.count
        if options.onlyCenterFace {
            let kept = dets.enumerated().filter { $0.element.score >= options.threshold }
            let cx = Double(work.width) / 2, cy = Double(work.height) / 2
            if let best = kept.min(by: { a, b in
                func dist(_ d: FaceDetection) -> Double {
                    let x = (d.box.x + d.box.z) / 2 - cx, y = (d.box.y + d.box.w) / 2 - cy
                    return x * x + y * y
                }
                return dist(a.element) < dist(b.element)
            }) { dets = [best.element] } else { dets = [] }
        }
        let aligned = try FaceCrops.align(work, detections: dets, cropSize: gpen.size, threshold: options.threshold)
        var faces: [RestoredFace] = []
        var paste: [PasteFace] = []
        var tRestore = 0.0, tParse = 0.0
        t = ContinuousClock.now
        var restoredAll: [FaceImage] = []
        var start = 0, batch = options.faceBatch
        while start < aligned.count {
            let chunk = aligned[start..<min(aligned.count, start + batch)]
            if chunk.count == 1 { restoredAll.append(try restoreFace(chunk.first!.crop)) } else {
                do {
                    let outs = try gpen.restore(batch: chunk.map(\.crop.pixels))
                    for o in outs { restoredAll.append(try FaceImage(width: gpen.size, height: gpen.size, channels: 3, pixels: o)) }
                } catch let e as TensorError where e.isAllocationFailure {
                    // the device cannot hold this many faces at once: half as many from now on (one at a time last)
                    batch = chunk.count / 2
                    notes.append("--face-batch \(chunk.count) is out of memory (\(e)): \(batch) face\(batch == 1 ? "" : "s") per GPEN pass")
                    continue
                }
            }
            start += chunk.count
        }
        tRestore = Self.seconds(t)
        for (a, restored) in zip(aligned, restoredAll) {
            t = ContinuousClock.now
            let mask = try pasteMask(for: restored)
            tParse += Self.seconds(t)
            faces.append(RestoredFace(detection: dets[a.detectionIndex], crop: a.crop, restored: restored))
            paste.append(PasteFace(restored: restored, original: a.crop, mask: mask, inverse: a.inverse, smallFace: a.smallFace))
        }
        timings["restore"] = tRestore
        timings["parse"] = tParse
        t = ContinuousClock.now
        let out = try PasteBack.composite(background: bg, faces: paste,
                                          options: PasteOptions(alpha: options.alpha, colorMatch: options.colorMatch ? .lab : nil))
        timings["paste"] = Self.seconds(t)
        return RestoreResult(image: out, faces: faces, detections: total, notes: notes, timings: timings)
    }
}
