import Foundation
import Testing
import TensorCore
@testable import Pipeline

/// Upstream parity on the committed windows of Tests/Fixtures/faces-geometry (runs without ../shared).
struct FacesFixtureTests {
    static let dir = FacesGolden.repoRoot.appendingPathComponent("Tests/Fixtures/faces-geometry")
    static func npy(_ n: String) throws -> NPYArray { try NPYArray(contentsOf: dir.appendingPathComponent(n + ".npy")) }
    static func ints(_ n: String) throws -> [Int] { try npy(n).doubles().map { Int($0) } }

    /// The 512×512 image, zero except for the committed window.
    static func sparseImage() throws -> FaceImage {
        let o = try ints("window_origin")
        let win = try npy("image_window")
        let bytes = try win.uint8s()
        let (h, w) = (win.shape[0], win.shape[1])
        var img = try FaceImage(width: 512, height: 512)
        for y in 0..<h { for x in 0..<w { for c in 0..<3 { img[o[0] + y, o[1] + x, c] = bytes[(y * w + x) * 3 + c] } } }
        return img
    }

    static func parseMask() throws -> [UInt8] {
        let bits = try npy("parse_mask_bits").uint8s()
        var m = [UInt8](repeating: 0, count: 512 * 512)
        for y in 0..<512 { for x in 0..<512 where bits[y * 64 + x / 8] & (0x80 >> UInt8(x % 8)) != 0 { m[y * 512 + x] = 255 } }
        return m
    }

    /// `mask_postprocess` of the fixture parse mask, computed once for all tests.
    static let postMask: FaceMask? = try? FaceMasks.postprocess(parse: parseMask())

    static func window(_ im: FaceImage, y: Int, x: Int, h: Int, w: Int) -> [UInt8] {
        var out: [UInt8] = []
        for yy in y..<(y + h) { for xx in x..<(x + w) { for c in 0..<im.channels { out.append(im[yy, xx, c]) } } }
        return out
    }

    @Test func referencePointsAndTransformsMatchFixtures() throws {
        for s in [512, 256] {
            #expect(try FaceAlignment.referencePoints(size: s).flatMap { [$0.x, $0.y] } == (try Self.npy("ref_pts_\(s)").doubles()))
            let (fwd, inv) = try FaceAlignment.transforms(landmarks: FacesGolden.astronautLandmarks, cropSize: s)
            #expect(fwd.m == (try Self.npy("face_\(s)_tfm").doubles()), "forward \(s)")
            #expect(inv.m == (try Self.npy("face_\(s)_tfm_inv").doubles()), "inverse \(s)")
        }
    }

    @Test func cropWindowMatches() throws {
        let img = try Self.sparseImage()
        let (crop, _, _) = try FaceAlignment.alignAndCrop(img, landmarks: FacesGolden.astronautLandmarks, cropSize: 512)
        let o = try Self.ints("crop_origin")
        let mine = Self.window(crop, y: o[0], x: o[1], h: 48, w: 48)
        let d = byteDiff(mine, try Self.npy("face_512_crop_window").uint8s())
        #expect(d.count == 0, "crop window: max \(d.max), \(d.count) values differ")
    }

    @Test func maskPostWindowsMatch() throws {
        let mask = try #require(Self.postMask)
        let golden = try Self.npy("mask_post_windows").floats()
        let o = try Self.ints("mask_post_origins")
        var maxd: Float = 0
        for k in 0..<2 {
            for y in 0..<64 {
                for x in 0..<64 {
                    let g = golden[k * 4096 + y * 64 + x]
                    maxd = max(maxd, abs(mask[o[2 * k] + y, o[2 * k + 1] + x] - g))
                }
            }
        }
        #expect(maxd == 0, "mask_post windows: max abs diff \(maxd)")
    }

    @Test func compositeWindowsMatch() throws {
        let img = try Self.sparseImage()
        let mask = try #require(Self.postMask)
        func face(_ lm: [SIMD2<Double>], small: Bool) throws -> PasteFace {
            let (crop, _, inv) = try FaceAlignment.alignAndCrop(img, landmarks: lm, cropSize: 512)
            var restored = crop
            restored.pixels = crop.pixels.map { 255 - $0 }
            return PasteFace(restored: restored, original: crop, mask: mask, inverse: inv, smallFace: small)
        }
        let f0 = try face(FacesGolden.astronautLandmarks, small: true)
        let f1 = try face(FacesGolden.shiftedLandmarks, small: false)
        let o = try Self.ints("window_origin")
        for (faces, name) in [([f0], "single_smallface"), ([f0, f1], "two_faces")] {
            let out = try PasteBack.composite(background: img, faces: faces)
            let d = byteDiff(Self.window(out, y: o[2], x: o[3], h: 64, w: 64),
                             try Self.npy("\(name)_composite_window").uint8s())
            #expect(d.count == 0, "\(name) composite window: max \(d.max), \(d.count) values differ")
        }
    }
}
