import Foundation
import Testing
import TensorCore
@testable import Pipeline

@Suite("Paste-back vs upstream golden", .enabled(if: FacesGolden.available, "needs ../shared/golden/align_paste"))
struct PasteBackGoldenTests {
    /// Upstream's injected restoration: 255 − crop.
    static func invert(_ im: FaceImage) -> FaceImage {
        var o = im
        o.pixels = im.pixels.map { 255 - $0 }
        return o
    }

    static func face(_ img: FaceImage, _ lm: [SIMD2<Double>], box: (Double, Double, Double, Double),
                     mask: FaceMask) throws -> (PasteFace, FaceImage) {
        let (crop, _, inv) = try FaceAlignment.alignAndCrop(img, landmarks: lm, cropSize: 512)
        let small = PasteFace.isSmall(box: (Double(Float(box.0)), Double(Float(box.1)),
                                            Double(Float(box.2)), Double(Float(box.3))))
        return (PasteFace(restored: invert(crop), original: crop, mask: mask, inverse: inv, smallFace: small), crop)
    }

    func changedPixels(_ a: FaceImage, _ b: FaceImage) -> Int {
        var n = 0
        for i in 0..<(a.width * a.height) {
            let j = i * a.channels
            if a.pixels[j] != b.pixels[j] || a.pixels[j + 1] != b.pixels[j + 1] || a.pixels[j + 2] != b.pixels[j + 2] { n += 1 }
        }
        return n
    }

    @Test func fixtureParseMaskIsTheGoldenOne() throws {
        #expect(try FacesFixtureTests.parseMask() == (try FacesGolden.npy("parse_mask").uint8s()))
    }

    @Test func singleSmallFace() throws {
        let img = try FacesGolden.image("image_bgr")
        let mask = try #require(FacesFixtureTests.postMask)  // same parse mask as the golden parse_mask.npy
        let (f0, crop0) = try Self.face(img, FacesGolden.astronautLandmarks, box: (177.93, 56.83, 273.12, 177.19), mask: mask)
        #expect(f0.smallFace)
        #expect(crop0 == (try FacesGolden.image("face_512_crop")))
        let out = try PasteBack.composite(background: img, faces: [f0])
        let golden = try FacesGolden.image("single_smallface_composite")
        let d = byteDiff(out.pixels, golden.pixels)
        let changed = changedPixels(out, img)
        print("single_smallface: max abs diff \(d.max), differing values \(d.count); changed pixels \(changed) (upstream 17771)")
        #expect(d.count == 0)  // observed: bit-exact
    }

    @Test func twoFacesMaxCompositing() throws {
        let img = try FacesGolden.image("image_bgr")
        let mask = try #require(FacesFixtureTests.postMask)  // same parse mask as the golden parse_mask.npy
        let (f0, _) = try Self.face(img, FacesGolden.astronautLandmarks, box: (177.93, 56.83, 273.12, 177.19), mask: mask)
        let (f1, crop1) = try Self.face(img, FacesGolden.shiftedLandmarks, box: (250, 150, 400, 330), mask: mask)
        #expect(!f1.smallFace)
        let dc = byteDiff(crop1.pixels, try FacesGolden.image("two_faces_crop1").pixels)
        print("two_faces_crop1: max abs diff \(dc.max), differing values \(dc.count)")
        #expect(dc.max == 0)
        let out = try PasteBack.composite(background: img, faces: [f0, f1])
        let golden = try FacesGolden.image("two_faces_composite")
        let d = byteDiff(out.pixels, golden.pixels)
        print("two_faces: max abs diff \(d.max), differing values \(d.count)")
        #expect(d.count == 0)  // observed: bit-exact
    }
}
