import Foundation
import ImageIO
import Testing
@testable import Pipeline

/// `FaceReport`: the JSON `enhance detect --json` prints and the annotated copy it writes.
@Suite struct FaceReportTests {
    static let face = FaceDetection(box: SIMD4(10.004, 12.5, 30.25, 40), score: 0.99987654,
                                    landmarks: [SIMD2(15, 20), SIMD2(25, 20), SIMD2(20, 26), SIMD2(16, 33), SIMD2(24.126, 33)])

    @Test func jsonHoldsBoxesScoresAndLandmarks() throws {
        let r = FaceReport(input: "dir/\"odd\" name.png", width: 48, height: 50, faces: [Self.face])
        #expect(!r.json.contains("\n"))
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.json.utf8)) as? [String: Any])
        #expect(obj["input"] as? String == "dir/\"odd\" name.png")
        #expect(obj["width"] as? Int == 48 && obj["height"] as? Int == 50)
        let f = try #require((obj["faces"] as? [[String: Any]])?.first)
        #expect(f["box"] as? [Double] == [10, 12.5, 30.25, 40])
        #expect(f["score"] as? Double == 0.999877)
        #expect(f["landmarks"] as? [[Double]] == [[15, 20], [25, 20], [20, 26], [16, 33], [24.13, 33]])
        let empty = FaceReport(input: "x.png", width: 1, height: 1, faces: [])
        #expect(empty.json == "{\"input\": \"x.png\", \"width\": 1, \"height\": 1, \"faces\": []}")
        #expect(r.table.hasPrefix("dir/\"odd\" name.png: 48×50, 1 face\n"))
    }

    @Test func annotatedCopyDrawsTheBoxAndLandmarksOnly() throws {
        let w = 48, h = 50
        let gray = try Image(width: w, height: h, layout: .gray, storage: .u8([UInt8](repeating: 128, count: w * h)))
        let out = try FaceReport(input: "x", width: w, height: h, faces: [Self.face]).annotated(gray)
        #expect(out.layout == .rgb && out.width == w && out.height == h)
        let px = out.samples8
        func at(_ x: Int, _ y: Int) -> [UInt8] { Array(px[(3 * (y * w + x))..<(3 * (y * w + x) + 3)]) }
        #expect(at(20, 13) == [0, 255, 0])      // top edge (y1 = 12.5 rounds to 13)
        #expect(at(10, 30) == [0, 255, 0])      // left edge
        #expect(at(15, 20) == [255, 0, 0])      // left eye
        #expect(at(20, 26) == [255, 0, 255])    // nose
        #expect(at(2, 2) == [128, 128, 128])    // untouched outside
        #expect(at(20, 17) == [128, 128, 128])  // untouched inside, away from the landmarks
    }
}
