import Foundation
import Testing
import TensorCore
@testable import Pipeline

/// OpenCVResize against cv2.resize 5.0.0 outputs (Tests/Fixtures/realesrgan/opencv_resize, made by make.py):
/// Lanczos-4 on uint8 and uint16 (up, down, identity) within 1 step, INTER_LINEAR/INTER_CUBIC on float32 within 1e-5.
@Suite("OpenCV resize parity")
struct OpenCVResizeTests {
    static let dir = UpscalePaths.fixtures.appendingPathComponent("realesrgan/opencv_resize")
    static let sizes = [(31, 20), (45, 31), (5, 4), (13, 9), (26, 18)]

    @Test(arguments: sizes)
    func lanczos4(_ w: Int, _ h: Int) throws {
        let s8 = try NPYArray(contentsOf: Self.dir.appendingPathComponent("src_u8.npy"))
        let e8 = try NPYArray(contentsOf: Self.dir.appendingPathComponent("lanczos4_u8_\(w)x\(h).npy"))
        let g8 = OpenCVResize.lanczos4(try s8.uint8s(), width: 13, height: 9, channels: 3, toWidth: w, toHeight: h)
        let d8 = zip(g8, try e8.uint8s()).map { abs(Int($0) - Int($1)) }
        let s16 = try NPYArray(contentsOf: Self.dir.appendingPathComponent("src_u16.npy"))
        let e16 = try NPYArray(contentsOf: Self.dir.appendingPathComponent("lanczos4_u16_\(w)x\(h).npy"))
        let g16 = OpenCVResize.lanczos4(try s16.uint16s(), width: 13, height: 9, channels: 3, toWidth: w, toHeight: h)
        let d16 = zip(g16, try e16.uint16s()).map { abs(Int($0) - Int($1)) }
        print("lanczos4 \(w)x\(h): u8 max diff \(d8.max() ?? -1) (\(d8.filter { $0 > 0 }.count) differ), u16 max diff \(d16.max() ?? -1) (\(d16.filter { $0 > 0 }.count) differ)")
        #expect(g8.count == w * h * 3 && g16.count == w * h * 3)
        #expect((d8.max() ?? 99) <= 1)
        #expect((d16.max() ?? 99) <= 1)
    }

    @Test(arguments: sizes)
    func linearAndCubic(_ w: Int, _ h: Int) throws {
        let src = try NPYArray(contentsOf: Self.dir.appendingPathComponent("src_f32.npy")).floats()
        for (name, kind) in [("linear", OpenCVInterpolation.linear), ("cubic", .cubic)] {
            let e = try NPYArray(contentsOf: Self.dir.appendingPathComponent("\(name)_f32_\(w)x\(h).npy")).floats()
            let g = OpenCVResize.resizePlane(src, width: 13, height: 9, toWidth: w, toHeight: h, kind: kind)
            let d = zip(g, e).map { abs($0 - $1) }.max() ?? .infinity
            print("\(name) \(w)x\(h): max abs diff \(d)")
            #expect(g.count == e.count)
            #expect(d <= 1e-5)
        }
    }
}
