import Foundation
import Testing
@testable import Pipeline

/// Properties of the face geometry that need no golden data.
struct FaceGeometryTests {
    /// A deterministic pseudo-random image (xorshift).
    static func noise(width: Int, height: Int, channels: Int = 3, seed: UInt64 = 0x9E3779B97F4A7C15) throws -> FaceImage {
        var s = seed
        var px = [UInt8](repeating: 0, count: width * height * channels)
        for i in 0..<px.count {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            px[i] = UInt8(truncatingIfNeeded: s >> 24)
        }
        return try FaceImage(width: width, height: height, channels: channels, pixels: px)
    }

    @Test func umeyamaRecoversKnownSimilarity() throws {
        let src: [SIMD2<Double>] = [SIMD2(10, 20), SIMD2(50, 22), SIMD2(31, 40), SIMD2(15, 60), SIMD2(47, 61)]
        // scale 2, 90° rotation, translation (8, −4): recovered up to the float32 SVD that upstream (and we) use
        let t = AffineMatrix(0, -2, 8, 2, 0, -4)
        let (est, scale) = try FaceAlignment.umeyama(from: src, to: src.map(t.apply))
        #expect(abs(scale - 2) < 1e-6)
        for (a, b) in zip(est.m, t.m) { #expect(abs(a - b) <= 1e-5, "\(est) vs \(t)") }
        // general angle and scale: exact up to the float32 rounding of the points
        let th = 0.3, s = 1.7
        let t2 = AffineMatrix(s * cos(th), -s * sin(th), 120.5, s * sin(th), s * cos(th), -33.25)
        let (est2, scale2) = try FaceAlignment.umeyama(from: src, to: src.map(t2.apply))
        #expect(abs(scale2 - s) < 1e-5)
        for (a, b) in zip(est2.m, t2.m) { #expect(abs(a - b) < 1e-3, "\(est2) vs \(t2)") }
    }

    @Test func inverseComposesToIdentity() throws {
        let lm = FacesGolden.astronautLandmarks
        let (fwd, inv) = try FaceAlignment.transforms(landmarks: lm, cropSize: 512)
        for p in lm + [SIMD2(0, 0), SIMD2(511, 511)] {
            let q = inv.apply(fwd.apply(p))
            #expect(abs(q.x - p.x) < 1e-3 && abs(q.y - p.y) < 1e-3)
        }
        // and the OpenCV-style analytic inverse agrees with the fitted one
        let ai = fwd.inverted()
        for (a, b) in zip(ai.m, inv.m) { #expect(abs(a - b) < 1e-4) }
        // landmarks land near the reference points (least squares over 5 real landmarks: within 25 px of 512)
        let ref = try FaceAlignment.referencePoints(size: 512)
        for (p, r) in zip(lm, ref) { #expect(((fwd.apply(p) - r) * (fwd.apply(p) - r)).sum().squareRoot() < 25) }
    }

    @Test func neverAReflection() throws {
        // mirrored landmarks are best fitted by a reflection; Umeyama's fix d = diag(1, −1) keeps a proper rotation
        let src: [SIMD2<Double>] = [SIMD2(10, 20), SIMD2(50, 22), SIMD2(31, 40), SIMD2(15, 60), SIMD2(47, 61)]
        let mirrored = src.map { SIMD2(100 - $0.x, $0.y) }
        let (t, scale) = try FaceAlignment.umeyama(from: src, to: mirrored)
        #expect(t.m[0] * t.m[4] - t.m[1] * t.m[3] > 0)
        #expect(abs(t.m[0] - t.m[4]) < 1e-9 && abs(t.m[1] + t.m[3]) < 1e-9)  // s·[[cos, −sin], [sin, cos]]
        #expect(scale > 0 && scale < 1)  // (s1 − s2)/σ²: the reflection part cannot be fitted
    }

    @Test func degenerateLandmarksThrow() throws {
        let same = [SIMD2<Double>](repeating: SIMD2(5, 5), count: 5)
        #expect(throws: FaceGeometryError.self) { try FaceAlignment.transforms(landmarks: same, cropSize: 512) }
        #expect(throws: FaceGeometryError.self) { try FaceAlignment.transforms(landmarks: [SIMD2(1, 2)], cropSize: 512) }
        let nan = [SIMD2<Double>(.nan, 1)] + FacesGolden.astronautLandmarks.dropFirst()
        #expect(throws: FaceGeometryError.self) { try FaceAlignment.transforms(landmarks: nan, cropSize: 512) }
        #expect(throws: FaceGeometryError.self) { try FaceAlignment.referencePoints(size: 0) }
    }

    @Test func identityWarpIsIdentity() throws {
        let img = try Self.noise(width: 37, height: 23)
        #expect(try FaceWarp.warpAffine(img, .identity, width: 37, height: 23) == img)
        let m = try FaceMask(width: 37, height: 23, values: img.pixels.prefix(37 * 23).map { Float($0) / 255 })
        #expect(try FaceWarp.warpAffine(m, .identity, width: 37, height: 23) == m)
    }

    @Test func integerShiftMovesPixelsWithBlackBorder() throws {
        let img = try Self.noise(width: 20, height: 16, channels: 1)
        // dst = src + (3, −2): dst(x, y) = src(x − 3, y + 2)
        let out = try FaceWarp.warpAffine(img, AffineMatrix(1, 0, 3, 0, 1, -2), width: 20, height: 16)
        for y in 0..<16 {
            for x in 0..<20 {
                let sx = x - 3, sy = y + 2
                let want: UInt8 = (0..<20).contains(sx) && (0..<16).contains(sy) ? img[sy, sx, 0] : 0
                #expect(out[y, x, 0] == want)
            }
        }
    }

    @Test func halfPixelShiftAveragesNeighbours() throws {
        let img = try FaceImage(width: 4, height: 1, channels: 1, pixels: [10, 20, 31, 40])
        // dst(x) = src(x + 0.5): (10+20)/2 = 15, (20+31)/2 = 25.5 → 26 (half to even), 35.5 → 36, (40 + 0)/2 = 20
        let out = try FaceWarp.warpAffine(img, AffineMatrix(1, 0, 0.5, 0, 1, 0), width: 4, height: 1, inverseMap: true)
        #expect(out.pixels == [15, 26, 36, 20])
    }

    @Test func convertScaleAbsRounding() {
        #expect([0.5, 1.5, 2.5, -3.2, 254.5, 255.5, 300, -0.4].map { FaceWarp.saturateU8(abs(Float($0))) }
                == [0, 2, 2, 3, 254, 255, 255, 0])
    }

    @Test func gaussianKernelIsNormalisedAndSymmetric() throws {
        let k = try FaceMasks.gaussianKernel(size: 101, sigma: 4)
        #expect(abs(k.reduce(0, +) - 1) < 1e-12)
        for i in 0..<50 { #expect(k[i] == k[100 - i]) }
        #expect(k[50] == k.max())
        #expect(throws: FaceGeometryError.self) { try FaceMasks.gaussianKernel(size: 100, sigma: 4) }
    }

    @Test func masksAreInUnitRangeAndSymmetric() throws {
        for size in [512, 256, 97] {
            let r = try FaceMasks.rectangular(size: size)
            #expect(r.values.allSatisfy { (0...1).contains($0) })
            #expect(r[0, 0] == 0 && r[size / 2, size / 2] == 1)
            for y in 0..<size {
                for x in 0..<size {
                    #expect(r[y, x] == r[size - 1 - y, x] && r[y, x] == r[y, size - 1 - x] && r[y, x] == r[x, y])
                }
            }
            // no hard edge: neighbouring values never jump by more than a small step
            var maxStep: Float = 0
            for y in 0..<size { for x in 1..<size { maxStep = max(maxStep, abs(r[y, x] - r[y, x - 1])) } }
            #expect(maxStep < 4 / (Float(size) / 8) * 1.5 / 2 + 1e-3, "rect mask step \(maxStep) at size \(size)")
        }
        // post-processing of a symmetric parse mask (a centred disc) is symmetric, in [0,1], 0 near the border
        var parse = [UInt8](repeating: 0, count: 512 * 512)
        for y in 0..<512 { for x in 0..<512 where (x - 255) * (x - 255) + (y - 255) * (y - 255) < 180 * 180 { parse[y * 512 + x] = 255 } }
        let m = try FaceMasks.postprocess(parse: parse)
        #expect(m.values.allSatisfy { $0 >= 0 && $0 <= 1 + 1e-6 })
        #expect(m[255, 255] > 0.999 && m[0, 0] == 0 && m[255, 2] < 1e-5)
        var asym: Float = 0
        for y in 0..<511 { for x in 0..<511 { asym = max(asym, abs(m[y, x] - m[510 - y, x]), abs(m[y, x] - m[x, y])) } }
        #expect(asym < 1e-6)
    }

    @Test func featherEdgesZeroesTheBorderOnly() throws {
        let ones = try FaceMask(width: 64, height: 64, repeating: 1)
        let f = try FaceMasks.featherEdges(ones, width: 8)
        #expect(f[0, 32] < 0.02 && f[32, 0] < 0.02 && f[32, 32] == 1 && f[10, 32] == 1)
    }

    @Test func maskResize() throws {
        let m = try FaceMask(width: 4, height: 4, values: (0..<16).map { Float($0) })
        let half = try FaceMasks.resize(m, width: 2, height: 2)
        #expect(half.values == [2.5, 4.5, 10.5, 12.5])
        let up = try FaceMasks.resize(try FaceMask(width: 2, height: 1, values: [0, 1]), width: 4, height: 1)
        #expect(up.values == [0, 0.25, 0.75, 1])
    }

    @Test func pasteOfTheBackgroundItselfChangesNothing() throws {
        let bg = try Self.noise(width: 64, height: 48)
        // the "face" is the whole background with the identity transform and a graded mask
        var mask = try FaceMask(width: 64, height: 48)
        for i in 0..<mask.values.count { mask.values[i] = Float(i % 97) / 96 }
        let face = PasteFace(restored: bg, original: bg, mask: mask, inverse: .identity, smallFace: false)
        #expect(try PasteBack.composite(background: bg, faces: [face]) == bg)
        #expect(try PasteBack.composite(background: bg, faces: [face], options: PasteOptions(alpha: 0.3)) == bg)
        // no faces: unchanged
        #expect(try PasteBack.composite(background: bg, faces: []) == bg)
    }

    @Test func maxCompositingPicksTheLargerMask() throws {
        let bg = try FaceImage(width: 8, height: 1, channels: 1, pixels: [UInt8](repeating: 100, count: 8))
        let a = try FaceImage(width: 8, height: 1, channels: 1, pixels: [UInt8](repeating: 200, count: 8))
        let b = try FaceImage(width: 8, height: 1, channels: 1, pixels: [UInt8](repeating: 0, count: 8))
        let ma = try FaceMask(width: 8, height: 1, values: [1, 1, 0.5, 0.5, 0, 0, 0.25, 0.5])
        let mb = try FaceMask(width: 8, height: 1, values: [0, 0.5, 0.5, 1, 1, 0, 0.5, 0.25])
        let out = try PasteBack.composite(background: bg, faces: [
            PasteFace(restored: a, original: a, mask: ma, inverse: .identity, smallFace: false),
            PasteFace(restored: b, original: b, mask: mb, inverse: .identity, smallFace: false)])
        // ties keep the first face (strictly larger wins); blend 100·(1−m) + face·m
        #expect(out.pixels == [200, 200, 150, 0, 0, 100, 50, 150])
    }

    @Test func alphaBlendAndSmallFaceFilter() throws {
        let a = try FaceImage(width: 3, height: 1, channels: 1, pixels: [200, 11, 255])
        let b = try FaceImage(width: 3, height: 1, channels: 1, pixels: [100, 10, 255])
        // 0.5·200 + 0.5·100 = 150; 0.5·11 + 0.5·10 = 10.5 → 10 (half to even); 255
        #expect(try PasteBack.addWeighted(a, 0.5, b, 0.5).pixels == [150, 10, 255])
        // filter2D with the binomial kernel: constant stays constant, an impulse spreads 4/16, 2/16, 1/16
        var imp = try FaceImage(width: 5, height: 5, channels: 1)
        imp[2, 2, 0] = 160
        let f = PasteBack.smallFaceFilter(imp)
        #expect(f[2, 2, 0] == 40 && f[1, 2, 0] == 20 && f[1, 1, 0] == 10 && f[0, 0, 0] == 0)
        let flat = try FaceImage(width: 6, height: 4, channels: 3, pixels: [UInt8](repeating: 77, count: 72))
        #expect(PasteBack.smallFaceFilter(flat) == flat)
    }

    @Test(arguments: FaceColor.Space.allCases)
    func colourMatchingMovesTheMeanToTheTarget(space: FaceColor.Space) throws {
        // restored: a bluish, low-contrast copy of the reference
        let ref = try Self.noise(width: 32, height: 32)
        var restored = ref
        for i in stride(from: 0, to: restored.pixels.count, by: 3) {
            restored.pixels[i] = UInt8(min(255, 60 + Int(ref.pixels[i]) / 2))
            restored.pixels[i + 1] = UInt8(Int(ref.pixels[i + 1]) / 2 + 40)
            restored.pixels[i + 2] = UInt8(Int(ref.pixels[i + 2]) / 2 + 20)
        }
        let w = try FaceMask(width: 32, height: 32, repeating: 1)
        let before = try FaceColor.statistics(restored, weights: w, space: space)
        let target = try FaceColor.statistics(ref, weights: w, space: space)
        let matched = try FaceColor.matchStatistics(restored, to: ref, weights: w, space: space)
        let after = try FaceColor.statistics(matched, weights: w, space: space)
        func dist(_ a: SIMD3<Double>, _ b: SIMD3<Double>) -> Double { max(abs(a.x - b.x), abs(a.y - b.y), abs(a.z - b.z)) }
        let dBefore = dist(before.mean, target.mean), dAfter = dist(after.mean, target.mean)
        #expect(dBefore > 5)
        #expect(dAfter < dBefore / 4, "\(space): mean distance \(dBefore) → \(dAfter)")
        // zero weights: unchanged
        let none = try FaceMask(width: 32, height: 32)
        #expect(try FaceColor.matchStatistics(restored, to: ref, weights: none, space: space) == restored)
    }

    @Test func badInputsThrowWithNames() throws {
        do {
            _ = try FaceImage(width: 4, height: 4, channels: 3, pixels: [0, 1])
            Issue.record("expected a throw")
        } catch let e as FaceGeometryError {
            #expect(e.description.contains("48 bytes"))
        }
        #expect(throws: FaceGeometryError.self) { try FaceImage(width: 1 << 20, height: 1 << 20) }
        #expect(throws: FaceGeometryError.self) { try FaceImage(width: 4, height: 4, channels: 5) }
        #expect(throws: FaceGeometryError.self) { try FaceMasks.postprocess(parse: [0, 1, 2]) }
        let img = try FaceImage(width: 8, height: 8)
        let small = try FaceMask(width: 4, height: 4)
        #expect(throws: FaceGeometryError.self) {
            try PasteBack.composite(background: img, faces: [PasteFace(restored: img, original: img, mask: small,
                                                                       inverse: .identity, smallFace: false)])
        }
        #expect(throws: FaceGeometryError.self) {
            try PasteBack.composite(background: img, faces: [], options: PasteOptions(alpha: 2))
        }
    }

    @Test func channelOrderRoundTrip() throws {
        let rgb: [UInt8] = [1, 2, 3, 4, 5, 6]
        let im = try FaceImage(interleaved: rgb, width: 2, height: 1, channels: 3, order: .rgb)
        #expect(im.pixels == [3, 2, 1, 6, 5, 4])
        #expect(im.interleaved(order: .rgb) == rgb)
    }
}

struct FaceCropsTests {
    @Test func thresholdOrderAndSmallFaces() throws {
        let img = try FaceGeometryTests.noise(width: 128, height: 128)
        let lm = FacesGolden.astronautLandmarks.map { $0 * 0.4 }
        let dets = [
            FaceDetection(box: SIMD4(10, 10, 100, 130), score: 0.99, landmarks: lm),
            FaceDetection(box: SIMD4(0, 0, 120, 120), score: 0.85, landmarks: lm),   // skipped: score < 0.9
            FaceDetection(box: SIMD4(0, 0, 150, 180), score: 0.9, landmarks: lm),    // kept: score == 0.9
        ]
        let faces = try FaceCrops.align(img, detections: dets, cropSize: 64)
        #expect(faces.map(\.detectionIndex) == [0, 2])
        #expect(faces.map(\.smallFace) == [true, false])
        #expect(faces[0].crop.width == 64 && faces[0].crop.height == 64)
        let (fwd, _) = try FaceAlignment.transforms(landmarks: lm, cropSize: 64)
        #expect(faces[0].forward == fwd)
    }

    @Test func parsePasteMaskResizes() throws {
        let m512 = try #require(FacesFixtureTests.postMask)
        let parse = try FacesFixtureTests.parseMask()
        let m256 = try FaceCrops.parsePasteMask(parse: parse, cropSize: 256)
        #expect(m256.width == 256)
        // 2× reduction = 2×2 block means
        for (y, x) in [(50, 60), (128, 128), (10, 10)] {
            let s = m512[2 * y, 2 * x] + m512[2 * y, 2 * x + 1] + m512[2 * y + 1, 2 * x] + m512[2 * y + 1, 2 * x + 1]
            #expect(abs(m256[y, x] - s * 0.25) < 1e-7)
        }
    }
}

struct PasteBackRegionTests {
    /// Upstream's loop verbatim on full-frame buffers (the reference for the region-restricted composite).
    static func referenceComposite(_ bg: FaceImage, _ faces: [PasteFace]) throws -> FaceImage {
        let w = bg.width, h = bg.height, cn = bg.channels
        var fullMask = try FaceMask(width: w, height: h)
        var fullImg = try FaceImage(width: w, height: h, channels: cn)
        for f in faces {
            let tm = try FaceWarp.warpAffine(f.mask, f.inverse, width: w, height: h)
            var ef = f.smallFace ? PasteBack.smallFaceFilter(f.restored) : f.restored
            ef = try PasteBack.addWeighted(ef, 1, f.original, 0)
            let ti = try FaceWarp.warpAffine(ef, f.inverse, width: w, height: h)
            for i in 0..<(w * h) where tm.values[i] - fullMask.values[i] > 0 {
                fullMask.values[i] = tm.values[i]
                for c in 0..<cn { fullImg.pixels[i * cn + c] = ti.pixels[i * cn + c] }
            }
        }
        var out = bg
        for i in 0..<(w * h) {
            for c in 0..<cn {
                let j = i * cn + c
                out.pixels[j] = FaceWarp.saturateU8(abs(Float(bg.pixels[j]) * (1 - fullMask.values[i]) + Float(fullImg.pixels[j]) * fullMask.values[i]))
            }
        }
        return out
    }

    @Test func regionRestrictedCompositeEqualsFullFrame() throws {
        let bg = try FaceGeometryTests.noise(width: 90, height: 70, seed: 7)
        let crop = try FaceGeometryTests.noise(width: 32, height: 32, seed: 11)
        var rest = crop
        rest.pixels = crop.pixels.map { 255 - $0 }
        let mask = try FaceMasks.rectangular(size: 32, margin: 0, feather: 6)
        let lm = FacesGolden.astronautLandmarks
        var faces: [PasteFace] = []
        // faces inside, over the left/top edge, over the bottom-right corner, rotated, and entirely outside
        for (k, shift) in [SIMD2<Double>(-150, -60), SIMD2(-215, -95), SIMD2(-165, -45), SIMD2(500, 500)].enumerated() {
            let pts = lm.map { ($0 + shift) * 0.5 }
            let (_, inv) = try FaceAlignment.transforms(landmarks: pts, cropSize: 32)
            faces.append(PasteFace(restored: rest, original: crop, mask: mask, inverse: inv, smallFace: k == 1))
        }
        let rot = AffineMatrix(cos(0.4) * 1.3, -sin(0.4) * 1.3, 40, sin(0.4) * 1.3, cos(0.4) * 1.3, 5)
        faces.append(PasteFace(restored: rest, original: crop, mask: mask, inverse: rot, smallFace: false))
        let mine = try PasteBack.composite(background: bg, faces: faces)
        let ref = try Self.referenceComposite(bg, faces)
        #expect(mine == ref)
        #expect(mine != bg)
        // a face entirely outside the frame changes nothing
        #expect(try PasteBack.composite(background: bg, faces: [faces[3]]) == bg)
    }
}

struct PasteExtensionsTests {
    /// Largest jump between horizontally or vertically adjacent values of channel 0.
    static func maxStep(_ im: FaceImage) -> Int {
        var m = 0
        for y in 0..<im.height {
            for x in 0..<im.width {
                if x > 0 { m = max(m, abs(Int(im[y, x, 0]) - Int(im[y, x - 1, 0]))) }
                if y > 0 { m = max(m, abs(Int(im[y, x, 0]) - Int(im[y - 1, x, 0]))) }
            }
        }
        return m
    }

    @Test func edgeFeatherRemovesTheRectangle() throws {
        let bg = try FaceImage(width: 80, height: 80)  // black
        let face = try FaceImage(width: 32, height: 32, channels: 3, pixels: [UInt8](repeating: 200, count: 32 * 32 * 3))
        let ones = try FaceMask(width: 32, height: 32, repeating: 1)  // a mask touching the crop border: hard edge
        let inv = AffineMatrix(1.5, 0, 16, 0, 1.5, 16)
        let p = PasteFace(restored: face, original: face, mask: ones, inverse: inv, smallFace: false)
        let hard = try PasteBack.composite(background: bg, faces: [p])
        let soft = try PasteBack.composite(background: bg, faces: [p], options: PasteOptions(edgeFeather: 8))
        #expect(Self.maxStep(hard) >= 100)
        #expect(Self.maxStep(soft) <= 200 / 8)  // smoothstep over 8 crop px × 1.5 scale: ≤ 1.5·200/(8·1.5) per px
        #expect(soft[40, 40, 0] == 200)  // centre untouched
        // the default rectangular mask has no step either
        let rect = try FaceMasks.rectangular(size: 32)
        let r = try PasteBack.composite(background: bg, faces: [PasteFace(restored: face, original: face, mask: rect,
                                                                          inverse: inv, smallFace: false)])
        #expect(Self.maxStep(r) <= 200 / 4)
    }

    @Test func colourMatchInCompositeRemovesAShift() throws {
        let orig = try FaceGeometryTests.noise(width: 32, height: 32, seed: 3)
        var shifted = orig  // restoration that turned the face blue and dark
        for i in stride(from: 0, to: shifted.pixels.count, by: 3) {
            shifted.pixels[i] = UInt8(min(255, Int(orig.pixels[i]) / 2 + 100))
            shifted.pixels[i + 1] = orig.pixels[i + 1] / 2
            shifted.pixels[i + 2] = orig.pixels[i + 2] / 2
        }
        let bg = try FaceImage(width: 32, height: 32)
        let ones = try FaceMask(width: 32, height: 32, repeating: 1)
        let p = PasteFace(restored: shifted, original: orig, mask: ones, inverse: .identity, smallFace: false)
        func meanAbs(_ a: FaceImage, _ b: FaceImage) -> Double {
            Double(zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +)) / Double(a.pixels.count)
        }
        let plain = try PasteBack.composite(background: bg, faces: [p])
        let matched = try PasteBack.composite(background: bg, faces: [p], options: PasteOptions(colorMatch: .lab))
        #expect(meanAbs(matched, orig) < meanAbs(plain, orig) / 2, "\(meanAbs(matched, orig)) vs \(meanAbs(plain, orig))")
    }
}

struct FaceColorSpaceTests {
    @Test(arguments: FaceColor.Space.allCases)
    func colourSpaceRoundTrip(space: FaceColor.Space) throws {
        let im = try FaceGeometryTests.noise(width: 64, height: 16, seed: 5)
        var worst = 0.0
        for i in 0..<(64 * 16) {
            let p = FaceColor.pixel(im, i)
            let q = FaceColor.fromSpace(FaceColor.toSpace(p, space), space)
            worst = max(worst, abs(p.x - q.x), abs(p.y - q.y), abs(p.z - q.z))
        }
        #expect(worst < 0.01, "\(space) round trip error \(worst)")
        // matching an image to itself changes nothing
        let w = try FaceMask(width: 64, height: 16, repeating: 0.5)
        #expect(try FaceColor.matchStatistics(im, to: im, weights: w, space: space) == im)
    }
}
