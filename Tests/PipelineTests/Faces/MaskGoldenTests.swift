import Foundation
import Testing
import TensorCore
@testable import Pipeline

@Suite("Face masks vs upstream golden", .enabled(if: FacesGolden.available, "needs ../shared/golden/align_paste"))
struct MaskGoldenTests {
    @Test func postprocessMatchesMaskPost() throws {
        let parse = try FacesGolden.npy("parse_mask").uint8s()
        let golden = try FacesGolden.npy("mask_post").floats()
        let mine = try FaceMasks.postprocess(parse: parse)
        var maxd: Float = 0, n = 0
        for i in 0..<golden.count where mine.values[i] != golden[i] {
            n += 1; maxd = max(maxd, abs(mine.values[i] - golden[i]))
        }
        print("mask_post: max abs diff \(maxd), differing \(n) of \(golden.count)")
        #expect(maxd <= 1e-7)  // observed: 0 (bit-exact)
    }
}
