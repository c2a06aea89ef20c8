import Bench
import Foundation
import ImageIO
import TensorCore
import TestSupport

/// Paths and conversions for the upscale tests.
enum UpscalePaths {
    static let root = Repository.root
    static let golden = Repository.golden
    static let fixtures = Repository.fixtures
    static var assets: URL { Repository.assets }
    static func exists(_ u: URL) -> Bool { FileManager.default.fileExists(atPath: u.path) }
    static var hasGolden: Bool { exists(golden.appendingPathComponent("realesrganer_x2/config.json")) }
    /// Weights of the RealESRGANer fixture cases (tiny ×2 RRDBNet, nf 8, 2 blocks, gc 4).
    static var realesrganerWeights: URL { fixtures.appendingPathComponent("models/rrdbnet_x2/weights.pth") }
    /// A ×2 RRDBNet (nf 32, 1 block, gc 16: every channel count a multiple of 16) with synthetic weights, written once
    /// per test process: on oneDNN its 3×3 layers run the own Winograd kernel above a map size and direct
    /// convolutions below it on either block size (the fixture's 8/12/… channels take direct convolutions throughout
    /// with AVX-512 blocks of 16).
    static let wideRRDBWeights: Result<URL, any Error> = Result {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("wide-rrdb-\(UUID().uuidString).safetensors")
        try SyntheticWeights.writeSafetensors(SyntheticWeights.rrdbNet(scale: 2, blocks: 1, feat: 32, grow: 16), to: url, metadata: [:])
        return url
    }
}

/// Converts between OpenCV-style HWC BGR(A)/gray arrays and ImageIO images (RGB order).
enum BGR {
    static func image(_ a: NPYArray) throws -> Image {
        let h = a.shape[0], w = a.shape[1], c = a.shape.count == 3 ? a.shape[2] : 1
        let layout: ChannelLayout = c == 1 ? .gray : c == 3 ? .rgb : .rgba
        switch a.dtype {
        case .uint8: return try Image(width: w, height: h, layout: layout, storage: .u8(swap(try a.uint8s(), c)))
        case .uint16: return try Image(width: w, height: h, layout: layout, storage: .u16(swap(try a.uint16s(), c)))
        default: throw NPYError.unsupported("dtype \(a.dtype.rawValue)")
        }
    }

    /// Swaps channels 0 and 2 of interleaved samples (no-op for gray).
    static func swap<T>(_ s: [T], _ c: Int) -> [T] {
        guard c >= 3 else { return s }
        var s = s
        for i in stride(from: 0, to: s.count, by: c) { s.swapAt(i, i + 2) }
        return s
    }

    /// The image's samples in BGR(A) order as Ints.
    static func samples(_ img: Image) -> [Int] {
        switch img.storage {
        case .u8(let a): return swap(a, img.channels).map(Int.init)
        case .u16(let a): return swap(a, img.channels).map(Int.init)
        }
    }
}
