import Foundation
import Testing
import TensorCore
@testable import Pipeline

@Suite("Face alignment vs upstream golden", .enabled(if: FacesGolden.available, "needs ../shared/golden/align_paste"))
struct AlignmentGoldenTests {
    @Test func referencePointsMatchExactly() throws {
        for s in [512, 256] {
            let ref = try FacesGolden.npy("ref_pts_\(s)").doubles()
            let mine = try FaceAlignment.referencePoints(size: s).flatMap { [$0.x, $0.y] }
            #expect(mine == ref, "ref_pts_\(s)")
        }
    }

    @Test func transformsMatch() throws {
        for s in [512, 256] {
            let (fwd, inv) = try FaceAlignment.transforms(landmarks: FacesGolden.astronautLandmarks, cropSize: s)
            let gf = try FacesGolden.npy("face_\(s)_tfm").doubles()
            let gi = try FacesGolden.npy("face_\(s)_tfm_inv").doubles()
            let df = zip(fwd.m, gf).map { abs($0 - $1) }.max()!
            let di = zip(inv.m, gi).map { abs($0 - $1) }.max()!
            print("tfm \(s): max abs diff fwd \(df) inv \(di)")
            #expect(df <= 1e-12 && di <= 1e-12)  // observed: 0 and 0
        }
    }

    @Test func cropsMatch() throws {
        let img = try FacesGolden.image("image_bgr")
        for s in [512, 256] {
            let tfm = try FacesGolden.transform("face_\(s)_tfm")
            let crop = try FaceWarp.warpAffine(img, tfm, width: s, height: s)
            let golden = try FacesGolden.image("face_\(s)_crop")
            let d = byteDiff(crop.pixels, golden.pixels)
            print("crop \(s) with golden tfm: max \(d.max) count \(d.count)")
            let (mineCrop, _, _) = try FaceAlignment.alignAndCrop(img, landmarks: FacesGolden.astronautLandmarks, cropSize: s)
            let d2 = byteDiff(mineCrop.pixels, golden.pixels)
            print("crop \(s) with own tfm: max \(d2.max) count \(d2.count)")
            #expect(d.count == 0 && d2.count == 0)  // observed: bit-exact
        }
    }
}
