import Foundation
import Testing
import BackendDNNL
import Checkpoint
import ImageIO
@testable import Models
import TensorCore
@testable import Pipeline

/// Tiny SRVGGNetCompact weights (PReLU) written as a safetensors file, for fast upscaler tests.
enum TinySRVGG {
    static func file(nf: Int = 8, numConv: Int = 2, upscale: Int = 4, seed: UInt64 = 7) throws -> URL {
        var bits = SplitMix64(seed: seed)
        func rnd() -> Float { Float(bits.next() >> 40) / Float(1 << 24) * 2 - 1 }
        var t: [(String, [Int], [Float])] = []
        for k in 0...numConv {
            let i = k == 0 ? 3 : nf
            let s = (3 / Float(i * 9)).squareRoot()
            t.append(("body.\(2 * k).weight", [nf, i, 3, 3], (0..<(nf * i * 9)).map { _ in rnd() * s }))
            t.append(("body.\(2 * k).bias", [nf], (0..<nf).map { _ in rnd() * 0.05 }))
            t.append(("body.\(2 * k + 1).weight", [nf], (0..<nf).map { _ in 0.25 + rnd() * 0.1 }))
        }
        let o = 3 * upscale * upscale
        let s = 0.5 * (3 / Float(nf * 9)).squareRoot()
        t.append(("body.\(2 * numConv + 2).weight", [o, nf, 3, 3], (0..<(o * nf * 9)).map { _ in rnd() * s }))
        t.append(("body.\(2 * numConv + 2).bias", [o], (0..<o).map { _ in rnd() * 0.05 }))
        let bytes = SafeTensorsWriter.bytes(t)
        // One file per configuration (written atomically, so parallel tests may race harmlessly), not one per call:
        // a UUID name left hundreds of files in the temporary folder.
        let name = "enhance-tests-tiny-srvgg-\(nf)-\(numConv)-\(upscale)-\(seed).safetensors"
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(name)
        try Data(bytes).write(to: url, options: .atomic)
        return url
    }
}

/// A deterministic textured test image.
func testImage(width w: Int, height h: Int, layout: ChannelLayout = .rgb, sixteen: Bool = false) throws -> Image {
    let c = layout.channels
    var s = [Int](repeating: 0, count: w * h * c)
    for y in 0..<h { for x in 0..<w { for k in 0..<c {
        let v = 0.5 + 0.3 * sin(Double(x) * 0.37 + Double(k)) * cos(Double(y) * 0.23) + 0.15 * sin(Double(x * y) * 0.05)
        s[(y * w + x) * c + k] = Int((min(max(v, 0), 1) * (sixteen ? 65535 : 255)).rounded())
    } } }
    return try Image(width: w, height: h, layout: layout,
                     storage: sixteen ? .u16(s.map { UInt16($0) }) : .u8(s.map { UInt8($0) }))
}

func sampleDiff(_ a: Image, _ b: Image) -> (max: Int, differing: Int) {
    let x: [Int], y: [Int]
    switch (a.storage, b.storage) {
    case let (.u8(p), .u8(q)): x = p.map(Int.init); y = q.map(Int.init)
    case let (.u16(p), .u16(q)): x = p.map(Int.init); y = q.map(Int.init)
    default: return (Int.max, Int.max)
    }
    guard x.count == y.count else { return (Int.max, Int.max) }
    var m = 0, n = 0
    for i in 0..<x.count { let d = abs(x[i] - y[i]); m = max(m, d); if d > 0 { n += 1 } }
    return (m, n)
}

@Suite("Upscaler")
struct UpscalerTests {
    /// Seam-free guarantee: with tile_pad ≥ the network's receptive-field radius (SRVGGNetCompact: num_conv + 2
    /// input pixels; RRDBNet: (2 + 15·blocks + 2) LR pixels × the unshuffle factor), tiled and whole-image outputs
    /// agree within one 8-bit step. With tile_pad 0 they do not (hard-pasted seams, as upstream).
    @Test func tilingIsSeamFreeWithEnoughPad() throws {
        let be = try DNNLBackend(options: .init(threads: 2, winograd: false))
        let net = try RealESRGANLoader.load(TinySRVGG.file(), backend: be).network
        let img = try testImage(width: 45, height: 38)
        var o = UpscaleOptions()
        let whole = try Upscaler(network: net, options: o).enhance(img)
        o.tile = 16; o.tilePad = net.receptiveFieldRadius
        var report = UpscaleReport()
        let tiled = try Upscaler(network: net, options: o).enhance(img, report: &report)
        #expect(report.passes == 9)
        #expect(sampleDiff(tiled, whole).max <= 1)
        o.tilePad = 0
        let seams = try Upscaler(network: net, options: o).enhance(img)
        #expect(sampleDiff(seams, whole).max > 1)
    }

    @Test func rrdbX2TilingIsSeamFreeWithEnoughPad() throws {
        let be = try DNNLBackend(options: .init(threads: 2, winograd: false))
        let net = try RealESRGANLoader.load(UpscalePaths.realesrganerWeights, backend: be).network
        #expect(net.receptiveFieldRadius == 68)  // (2 + 15·2 + 2) LR px × 2
        let img = try testImage(width: 40, height: 34)
        var o = UpscaleOptions()
        o.prePad = 0
        let whole = try Upscaler(network: net, options: o).enhance(img)
        o.tile = 16; o.tilePad = 68
        let tiled = try Upscaler(network: net, options: o).enhance(img)
        #expect(sampleDiff(tiled, whole).max <= 1)
    }

    /// Issue 17's failing run on AVX-512 CPUs: a ×2 RRDBNet (pixel-unshuffle to 12 channels), 43×31, outscale 3.5,
    /// pre-pad 0, tile 14, tile-pad 6, with Winograd on. Tiles of several sizes pick different algorithms per layer;
    /// it must run and agree with the direct-convolution run within one 8-bit step.
    @Test func tiledWinogradUpscaleRunsOnEveryTileSize() throws {
        var o = UpscaleOptions()
        o.outscale = 3.5; o.prePad = 0; o.tile = 14; o.tilePad = 6
        let img = try testImage(width: 43, height: 31)
        var outputs: [Image] = []
        for winograd in [true, false] {
            let be = try DNNLBackend(options: .init(threads: 2, winograd: winograd))
            let net = try RealESRGANLoader.load(UpscalePaths.realesrganerWeights, backend: be).network
            var report = UpscaleReport()
            outputs.append(try Upscaler(network: net, options: o).enhance(img, report: &report))
            #expect(report.passes == 12)
        }
        #expect(outputs[0].width == 150 && outputs[0].height == 108)
        #expect(sampleDiff(outputs[0], outputs[1]).max <= 1)
    }

    /// `tileBatch`: tiles of equal padded size run N at a time (border tiles form their own groups); the image equals
    /// the one-tile-at-a-time run within one 8-bit step (on oneDNN, RRDBNet ×2 with the Winograd path: bit for bit
    /// here), the pass count is the tile count, and the tile chosen under a memory cap shrinks to fit N tiles.
    @Test(arguments: [true, false]) func batchedTilesGiveTheSameImage(_ winograd: Bool) throws {
        let be = try DNNLBackend(options: .init(threads: 2, winograd: winograd))
        let net = try RealESRGANLoader.load(UpscalePaths.realesrganerWeights, backend: be).network
        // 64×48, tile 16, pad 6: padded widths 22, 28, 28, 22 and heights 22, 28, 22 → 12 tiles in 4 sizes (4, 4, 2, 2)
        let img = try testImage(width: 64, height: 48)
        var o = UpscaleOptions()
        o.prePad = 0; o.tile = 16; o.tilePad = 6
        var one = UpscaleReport(), many = UpscaleReport()
        let single = try Upscaler(network: net, options: o).enhance(img, report: &one)
        o.tileBatch = 4
        let batched = try Upscaler(network: net, options: o).enhance(img, report: &many)
        #expect(one.passes == 12 && many.passes == 12)
        #expect(one.forwards == 12 && many.forwards == 4, "\(many.forwards) forwards for 12 batched tiles")
        #expect(sampleDiff(batched, single).max <= 1, "\(sampleDiff(batched, single))")
        o.tileBatch = 0
        #expect(throws: UpscaleError.self) { _ = try Upscaler(network: net, options: o) }
    }

    @Test func aTileBatchShrinksTheTileUnderAMemoryCap() throws {
        let be = ReferenceBackend()
        let net = try RealESRGANLoader.load(TinySRVGG.file(), backend: be).network
        var o = UpscaleOptions()
        o.tilePad = 4
        o.maxMemory = Upscaler.baseOverhead + 4 << 20
        let t1 = try Upscaler(network: net, options: o).tiling(width: 96, height: 80)
        o.tileBatch = 4
        let up = try Upscaler(network: net, options: o)
        let t4 = try up.tiling(width: 96, height: 80)
        #expect(!t4.isWhole && t4.width * t4.height < t1.width * t1.height, "tile \(t4) with 4 per pass vs \(t1)")
        var report = UpscaleReport()
        _ = try up.enhance(try testImage(width: 96, height: 80), report: &report)
        #expect(report.peakTensorBytes <= o.maxMemory! - Upscaler.baseOverhead)
    }

    /// RRDBNet's ×4 stage runs in row bands, so its activations stop growing with the image height; the estimate
    /// `--max-memory` uses knows it. A cap that holds the whole-image pass as measured (plus 50 %) gives the whole
    /// image, not tiles (with the per-pixel estimate it gave tiles: x2plus 512² under 300 MiB ran ≈ 2.5× slower),
    /// and the measured pass stays under the estimate.
    @Test func maxMemoryKnowsTheBandedTail() throws {
        // the own Winograd kernel on every map size: no algorithm switch, so small tiles are allowed (maxMemoryKeeps…
        // covers the switch)
        let be = try DNNLBackend(options: .init(threads: 2, winogradMinPixels: 0))
        let net = try #require(try RealESRGANLoader.load(UpscalePaths.realesrganerWeights, backend: be).network as? RRDBNet)
        net.tailBandBytes = 64 << 10   // bands from a few dozen LR rows on, for this small network
        let (h, w) = (160, 128)
        let banded = net.activationBytes(height: h, width: w, batch: 1)
        #expect(banded < net.activationBytesPerInputPixel * h * w, "\(banded) vs per pixel \(net.activationBytesPerInputPixel * h * w)")
        // whole-image pass as measured
        var o = UpscaleOptions()
        o.prePad = 0
        let img = try testImage(width: w, height: h)
        var report = UpscaleReport()
        _ = try Upscaler(network: net, options: o).enhance(img, report: &report)
        let up = try Upscaler(network: net, options: o)
        #expect(report.peakTensorBytes <= up.passBytes(height: h, width: w, batch: 1), "measured \(report.peakTensorBytes) vs estimate \(up.passBytes(height: h, width: w, batch: 1))")
        let s = net.scale
        let fixed = up.fixedBytes(width: w, height: h)
        // the estimate is at most 1.5× what the pass holds: a cap of 1.5× the measured peak keeps the whole image
        let copies = (12 * s * s + 24) * (h + 2) * (w + 2)
        print("banded tail: estimate \(up.passBytes(height: h, width: w, batch: 1)) B, measured \(report.peakTensorBytes) B")
        o.maxMemory = fixed + Int(Double(report.peakTensorBytes) * 1.5) + copies
        #expect(try Upscaler(network: net, options: o).tiling(width: w, height: h) == .whole)
        o.maxMemory = fixed + report.peakTensorBytes / 4
        let t = try Upscaler(network: net, options: o).tiling(width: w, height: h)
        #expect(!t.isWhole && (t.width < w || t.height < h))
    }

    /// On oneDNN, maps below the own Winograd kernel's threshold run direct convolutions whose weights come on top
    /// (measured here: a 32 px tile grows the prepared weights). Under a cap the tile search keeps every tile — edge
    /// and last tiles included — at or above the threshold, so the run prepares no second set of weights; a cap
    /// too small for that is an error naming what it needs.
    @Test func maxMemoryKeepsTilesAboveTheAlgorithmSwitch() throws {
        let be = try DNNLBackend(options: .init(threads: 2))
        let switchPixels = be.algorithmSwitchPixels
        #expect(switchPixels >= 48 * 48, "the own Winograd kernel's threshold")
        let weights = try UpscalePaths.wideRRDBWeights.get()
        let net = try RealESRGANLoader.load(weights, backend: be).network
        let (w, h) = (256, 256)
        let img = try testImage(width: w, height: h)
        var o = UpscaleOptions()
        let probe = try Upscaler(network: net, options: o)
        _ = probe.backendFactor()   // the probe prepares the layers at a large map
        let prepared = be.memoryStats.weightBytes

        // the premise: a tile far below the threshold prepares more weights
        o.tile = 32
        _ = try Upscaler(network: probe.network, options: o).enhance(img)
        let withSmallTiles = be.memoryStats.weightBytes
        #expect(withSmallTiles > prepared, "small tiles: \(withSmallTiles) vs \(prepared) bytes of weights")

        // a cap whose plain estimate would pick a tile around 80 px: the tile grows to keep maps above the switch
        let be2 = try DNNLBackend(options: .init(threads: 2))
        let net2 = try RealESRGANLoader.load(weights, backend: be2).network
        o.tile = 0
        let m = net2.inputMultiple, pad = (o.tilePad + m - 1) / m * m
        let base = try Upscaler(network: net2, options: o)
        _ = base.backendFactor()
        let before = be2.memoryStats.weightBytes
        let side = Int(Double(switchPixels).squareRoot().rounded(.up)) * m
        o.maxMemory = base.fixedBytes(width: w, height: h) + base.passBytes(height: side + 2 * pad + 40, width: side + 2 * pad + 40, batch: 1)
        let up = try Upscaler(network: net2, options: o)
        let t = try up.tiling(width: w, height: h)
        #expect(!t.isWhole && (t.width < w || t.height < h), "tile \(t)")
        #expect((t.width + pad) / m * ((t.height + pad) / m) >= switchPixels, "tile \(t), pad \(pad), switch \(switchPixels) px")
        var report = UpscaleReport()
        _ = try up.enhance(img, report: &report)
        #expect(report.passes > 1)
        #expect(be2.memoryStats.weightBytes == before, "the capped run prepared \(be2.memoryStats.weightBytes - before) more bytes of weights")

        // a cap below what the smallest such tile needs: the error says so
        o.maxMemory = base.fixedBytes(width: w, height: h) + base.passBytes(height: side / 2, width: side / 2, batch: 1)
        #expect { _ = try Upscaler(network: net2, options: o).tiling(width: w, height: h) } throws: { e in
            "\(e)".contains("direct convolutions") && "\(e)".contains("needs about")
        }
    }

    /// Each axis is cut on its own into tiles of one size (the input multiple), from one tile up, each count once.
    @Test func axisSplitsAreEqualTilesInTheInputMultiple() {
        let s = Upscaler.splits(200, least: 8, pad: 10, multiple: 2)
        #expect(s.first == Upscaler.AxisSplit(tile: 200, count: 1, largest: 200, smallest: 200))
        #expect(s[1] == Upscaler.AxisSplit(tile: 100, count: 2, largest: 110, smallest: 110))
        #expect(s[2] == Upscaler.AxisSplit(tile: 68, count: 3, largest: 88, smallest: 74), "\(s[2])")
        #expect(s.map(\.count) == Array(Set(s.map(\.count))).sorted())
        // a 20 px axis with a 10 px pad: two tiles would each see the whole axis — no split is offered
        #expect(Upscaler.splits(20, least: 8, pad: 10, multiple: 2).map(\.count) == [1])
        for a in s {
            #expect(a.tile % 2 == 0 && a.tile >= 8 && (a.count - 1) * a.tile < 200 && a.count * a.tile >= 200, "\(a)")
            #expect(a.smallest <= a.largest && a.largest <= min(a.tile + 20, 200), "\(a)")
        }
    }

    /// A 256×200 image under a cap too small for the whole image: square tiles (128) leave a 72-row remainder whose
    /// working map falls under oneDNN's algorithm switch, so the square search had to refuse the cap; equal tiles per
    /// axis run it (e.g. two 128×200 columns) with every map above the switch, no second set of weights, and an
    /// image equal to the whole-image pass within one step where the tile pad covers the network's reach.
    @Test func maxMemoryCutsANonSquareImageIntoNonSquareTiles() throws {
        let be = try DNNLBackend(options: .init(threads: 2))
        let switchPixels = be.algorithmSwitchPixels
        let net = try RealESRGANLoader.load(UpscalePaths.realesrganerWeights, backend: be).network
        let (w, h) = (256, 200)
        let img = try testImage(width: w, height: h)
        var o = UpscaleOptions()
        o.prePad = 0
        let m = net.inputMultiple, pad = (o.tilePad + m - 1) / m * m
        let base = try Upscaler(network: net, options: o)
        _ = base.backendFactor()
        let whole = try base.enhance(img)
        let before = be.memoryStats.weightBytes
        // room for a column of half the width and the full height, not for the whole image
        o.maxMemory = base.fixedBytes(width: w, height: h) + base.passBytes(height: h, width: w / 2 + pad + 8, batch: 1)
        let up = try Upscaler(network: net, options: o)
        let t = try up.tiling(width: w, height: h)
        #expect(t == TileShape(width: w / 2, height: h), "tiles \(t)")
        #expect((t.width + pad) / m * (t.height / m) >= switchPixels)
        var report = UpscaleReport()
        let out = try up.enhance(img, report: &report)
        #expect(report.tile == t && report.passes == 2)
        #expect(be.memoryStats.weightBytes == before, "the capped run prepared \(be.memoryStats.weightBytes - before) more bytes of weights")
        #expect(out.width == whole.width && out.height == whole.height)
    }

    @Test func maxMemoryPicksATileAndStaysUnderTheCap() throws {
        let be = ReferenceBackend()
        let net = try RealESRGANLoader.load(TinySRVGG.file(), backend: be).network
        let img = try testImage(width: 96, height: 80)
        var o = UpscaleOptions()
        o.tilePad = 4
        o.maxMemory = 1 << 40
        #expect(try Upscaler(network: net, options: o).tiling(width: 96, height: 80) == .whole)
        o.maxMemory = Upscaler.baseOverhead + 4 << 20
        let up = try Upscaler(network: net, options: o)
        let t = try up.tiling(width: 96, height: 80)
        #expect(!t.isWhole && t.width * t.height < 96 * 80)
        var report = UpscaleReport()
        let out = try up.enhance(img, report: &report)
        #expect(report.tile == t)
        #expect(report.passes > 1)
        #expect(report.peakTensorBytes <= o.maxMemory! - Upscaler.baseOverhead)
        #expect(out.width == 384 && out.height == 320)
        o.maxMemory = 1 << 20
        #expect(throws: UpscaleError.self) { _ = try Upscaler(network: net, options: o).tiling(width: 96, height: 80) }
    }

    @Test func modesDepthsAndSizes() throws {
        let net = try RealESRGANLoader.load(TinySRVGG.file(), backend: ReferenceBackend()).network
        var o = UpscaleOptions()
        o.outscale = 2.5
        let up = try Upscaler(network: net, options: o)
        let gray = try up.enhance(testImage(width: 13, height: 11, layout: .gray))
        #expect(gray.layout == .gray && gray.width == 32 && gray.height == 27 && gray.bitDepth == 8)
        let rgba16 = try up.enhance(testImage(width: 13, height: 11, layout: .rgba, sixteen: true))
        #expect(rgba16.layout == .rgba && rgba16.bitDepth == 16)
        let ga = try up.enhance(testImage(width: 13, height: 11, layout: .grayAlpha))
        #expect(ga.layout == .rgba)
        // 16-bit storage whose values never exceed 256 is treated as 8-bit, like upstream
        let low = try Image(width: 4, height: 4, layout: .rgb, storage: .u16([UInt16](repeating: 200, count: 48)))
        #expect(try up.enhance(low).bitDepth == 8)
    }

    @Test func alphaUpsamplers() throws {
        let net = try RealESRGANLoader.load(TinySRVGG.file(), backend: ReferenceBackend()).network
        // constant alpha 255: bilinear/bicubic keep it exactly; colour is independent of the alpha method
        var img = try testImage(width: 10, height: 9, layout: .rgba)
        if case .u8(var s) = img.storage { for i in stride(from: 3, to: s.count, by: 4) { s[i] = 255 }; img.storage = .u8(s) }
        var o = UpscaleOptions()
        var outs: [AlphaUpsampler: [UInt8]] = [:]
        for a in AlphaUpsampler.allCases {
            o.alphaUpsampler = a
            let out = try Upscaler(network: net, options: o).enhance(img)
            guard case .u8(let s) = out.storage else { Issue.record("not 8-bit"); return }
            outs[a] = s
        }
        let alpha = { (s: [UInt8]) in stride(from: 3, to: s.count, by: 4).map { s[$0] } }
        let colour = { (s: [UInt8]) in s.enumerated().filter { $0.offset % 4 != 3 }.map(\.element) }
        #expect(alpha(outs[.bilinear]!).allSatisfy { $0 == 255 })
        #expect(alpha(outs[.bicubic]!).allSatisfy { $0 == 255 })
        #expect(colour(outs[.bilinear]!) == colour(outs[.network]!))
        #expect(alpha(outs[.network]!) != alpha(outs[.bilinear]!))  // the tiny random network does not preserve 1.0
    }

    @Test func badSettingsAreErrors() throws {
        let net = try RealESRGANLoader.load(TinySRVGG.file(), backend: ReferenceBackend()).network
        var o = UpscaleOptions()
        o.prePad = 20
        #expect(throws: UpscaleError.self) { _ = try Upscaler(network: net, options: o).enhance(testImage(width: 10, height: 30)) }
        o = UpscaleOptions(); o.tile = -1
        #expect(throws: UpscaleError.self) { _ = try Upscaler(network: net, options: o) }
        o = UpscaleOptions(); o.outscale = .nan
        #expect(throws: UpscaleError.self) { _ = try Upscaler(network: net, options: o) }
    }

    @Test func lanczosIdentityAndConstant() {
        // a constant image stays constant; resizing to the same size is the identity
        let c = [UInt8](repeating: 77, count: 7 * 5 * 3)
        #expect(OpenCVResize.lanczos4(c, width: 7, height: 5, channels: 3, toWidth: 17, toHeight: 12).allSatisfy { $0 == 77 })
        let r = (0..<(9 * 6)).map { UInt8(($0 * 37) % 256) }
        #expect(OpenCVResize.lanczos4(r, width: 9, height: 6, channels: 1, toWidth: 9, toHeight: 6) == r)
        let r16 = r.map { UInt16($0) * 257 }
        #expect(OpenCVResize.lanczos4(r16, width: 9, height: 6, channels: 1, toWidth: 9, toHeight: 6) == r16)
    }
}
