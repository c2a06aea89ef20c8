// RealESRGANer.enhance (Real-ESRGAN realesrgan/utils.py) re-implemented on ImageIO images.

import Foundation
import ImageIO
import Models
import TensorCore

/// How the alpha channel of an RGBA input is upscaled.
public enum AlphaUpsampler: String, Sendable, CaseIterable {
    /// Through the same network as the colour (upstream `realesrgan`, its CLI's only behaviour).
    case network
    /// OpenCV INTER_CUBIC (a = −0.75). Upstream's `bicubic` option actually runs INTER_LINEAR; ours is bicubic.
    case bicubic
    /// OpenCV INTER_LINEAR: what upstream runs for any non-`realesrgan` value (including "bicubic").
    case bilinear
}

/// RealESRGANer settings.
public struct UpscaleOptions: Sendable, Equatable {
    /// Tile size in input pixels (0 = whole image in one pass).
    public var tile: Int = 0
    /// Context added around each tile on every side (clipped at the border), discarded after the pass.
    public var tilePad: Int = 10
    /// Tiles of equal padded size run together in one N-tile forward (1 = one at a time, upstream's way). The results
    /// equal one-by-one passes up to float rounding; the activations of a pass grow N-fold.
    public var tileBatch: Int = 1
    /// Reflect padding added on the right and bottom before the pass and cropped after (upstream CLI default 0).
    public var prePad: Int = 0
    /// Final size factor relative to the input (int(w·s) × int(h·s), Lanczos-4); nil = the network scale.
    public var outscale: Double? = nil
    /// Alpha handling for RGBA inputs.
    public var alphaUpsampler: AlphaUpsampler = .network
    /// Memory cap in bytes for the activations plus image buffers; when set and `tile` is 0, a tile size is
    /// chosen so the estimate stays under it.
    public var maxMemory: Int? = nil

    /// Defaults of upstream's CLI (tile 0, tile_pad 10, pre_pad 0, outscale = network scale, alpha via the network).
    public init() {}
}

/// Errors of the upscale pipeline; each names the problem and the sizes involved.
public enum UpscaleError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An option is out of range.
    case invalidOption(String)
    /// The image cannot be processed with these settings.
    case invalidImage(String)
    /// No tile size fits the memory cap.
    case memory(String)

    public var description: String {
        switch self {
        case let .invalidOption(m): return "invalid option: \(m)"
        case let .invalidImage(m): return "cannot upscale: \(m)"
        case let .memory(m): return "memory: \(m)"
        }
    }
}

/// The size of the tiles an image is cut into, in input pixels; `.whole` = one pass over the whole image.
public struct TileShape: Sendable, Equatable, CustomStringConvertible {
    public var width: Int
    public var height: Int

    public init(width: Int, height: Int) { self.width = width; self.height = height }
    /// t×t tiles (`--tile`, upstream's only shape).
    public static func square(_ t: Int) -> TileShape { TileShape(width: t, height: t) }
    /// No tiling.
    public static let whole = TileShape(width: 0, height: 0)
    public var isWhole: Bool { width == 0 || height == 0 }
    public var description: String { isWhole ? "whole image" : width == height ? "\(width)" : "\(width)×\(height)" }
}

/// What one `enhance` call did.
public struct UpscaleReport: Sendable, Equatable {
    /// Tiles actually used (`.whole` = the whole image in one pass).
    public var tile: TileShape = .whole
    /// Number of network passes (tiles, summed over colour and alpha).
    public var passes: Int = 0
    /// Network forwards run (fewer than `passes` when tiles ran batched).
    public var forwards: Int = 0
    /// Retries after an allocation failure (each halves the tile).
    public var retries: Int = 0
    /// Peak live bytes of backend tensors seen during the passes.
    public var peakTensorBytes: Int = 0
    /// Upstream's img_mode: "L", "RGB" or "RGBA".
    public var mode: String = ""
}

/// RealESRGANer: runs a super-resolution network over an image exactly as upstream's `enhance` does
/// (value-based 8/16-bit detection, gray/RGB/RGBA modes, reflect pre-pad and mod-pad on the right/bottom,
/// tiling with hard-pasted tile cores, clamp, round half to even, Lanczos-4 outscale after quantisation).
public final class Upscaler: @unchecked Sendable {
    /// The network (its scale is upstream's `scale`).
    public let network: any SuperResolutionNetwork
    /// Settings.
    public let options: UpscaleOptions
    /// Tiles through the network: eager, or a replayed CUDA graph per tile shape once `replay.enableCapture()` was called.
    public let replay: ReplayedForward

    /// Creates an upscaler; throws when an option is out of range.
    public init(network: any SuperResolutionNetwork, options: UpscaleOptions) throws {
        guard options.tile >= 0, options.tile <= 1 << 20 else { throw UpscaleError.invalidOption("--tile must be ≥ 0, got \(options.tile)") }
        guard options.tilePad >= 0, options.tilePad <= 1 << 16 else { throw UpscaleError.invalidOption("--tile-pad must be ≥ 0, got \(options.tilePad)") }
        guard (1...64).contains(options.tileBatch) else { throw UpscaleError.invalidOption("--tile-batch must be 1...64, got \(options.tileBatch)") }
        guard options.prePad >= 0, options.prePad <= 1 << 16 else { throw UpscaleError.invalidOption("--pre-pad must be ≥ 0, got \(options.prePad)") }
        if let s = options.outscale {
            guard s.isFinite, s > 0, s <= 64 else { throw UpscaleError.invalidOption("--outscale must be in (0, 64], got \(s)") }
        }
        if let m = options.maxMemory, m <= 0 { throw UpscaleError.invalidOption("--max-memory must be positive") }
        self.network = network
        self.options = options
        replay = ReplayedForward(backend: network.backend, label: "\(network.architectureName) ×\(network.scale)") { [network] x in [try network.forward(x)] }
    }

    /// Output size for an input of w×h: scale·(w, h), or (int(w·outscale), int(h·outscale)).
    public func outputSize(width w: Int, height h: Int) -> (width: Int, height: Int) {
        if let s = options.outscale, s != Double(network.scale) {
            return (Int(Double(w) * s), Int(Double(h) * s))
        }
        return (w * network.scale, h * network.scale)
    }

    /// Upscales `image` (gray, gray+alpha, RGB or RGBA; 8 or 16 bit). Gray+alpha is processed as RGBA (as OpenCV
    /// reads it). Output: gray → gray, RGB → RGB, RGBA → RGBA; 16-bit only when a sample exceeds 256 (upstream rule).
    public func enhance(_ image: Image) throws -> Image {
        var report = UpscaleReport()
        return try enhance(image, report: &report)
    }

    /// `enhance` that also reports the tile size, passes and retries.
    public func enhance(_ image: Image, report: inout UpscaleReport) throws -> Image {
        let img = image.layout == .grayAlpha ? image.converted(to: .rgba) : image
        let w = img.width, h = img.height, cn = img.channels
        let scale = network.scale
        // 1-2. float32 in [0, 1] with a value-based range
        let samples: [Float]
        let maxValue: Int
        switch img.storage {
        case .u8(let a): samples = a.map { Float($0) }; maxValue = Int(a.max() ?? 0)
        case .u16(let a): samples = a.map { Float($0) }; maxValue = Int(a.max() ?? 0)
        }
        let sixteen = maxValue > 256
        let range: Float = sixteen ? 65535 : 255
        let n = w * h
        // 3. planes in RGB order
        var colour = [[Float]](repeating: [Float](repeating: 0, count: n), count: 3)
        var alpha: [Float]? = nil
        let mode: String
        switch cn {
        case 1:
            mode = "L"
            for i in 0..<n { let v = samples[i] / range; colour[0][i] = v; colour[1][i] = v; colour[2][i] = v }
        case 3, 4:
            mode = cn == 4 ? "RGBA" : "RGB"
            for i in 0..<n { for c in 0..<3 { colour[c][i] = samples[i * cn + c] / range } }
            if cn == 4 { alpha = (0..<n).map { samples[$0 * 4 + 3] / range } }
        default:
            throw UpscaleError.invalidImage("\(cn)-channel images are not supported")
        }
        report.mode = mode
        let ow = w * scale, oh = h * scale
        let outChannels = mode == "L" ? 1 : (mode == "RGBA" ? 4 : 3)
        let writer = QuantisingWriter(width: ow, height: oh, channels: outChannels, sixteen: sixteen)
        // 4-6. network on the colour
        try runPasses(colour, width: w, height: h, report: &report) { values, oy, ox, stride, plane in
            writer.writeColour(values, outY: oy, outX: ox, planeStride: stride, planeSize: plane, gray: mode == "L")
        }
        // 8. alpha
        if let alpha {
            switch options.alphaUpsampler {
            case .network:
                try runPasses([alpha, alpha, alpha], width: w, height: h, report: &report) { values, oy, ox, stride, plane in
                    writer.writeAlphaFromNetwork(values, outY: oy, outX: ox, planeStride: stride, planeSize: plane)
                }
            case .bilinear, .bicubic:
                let up = OpenCVResize.resizePlane(alpha, width: w, height: h, toWidth: ow, toHeight: oh,
                                                  kind: options.alphaUpsampler == .bilinear ? .linear : .cubic)
                writer.writeAlphaPlane(up)
            }
        }
        // 9. quantised image
        let layout: ChannelLayout = outChannels == 1 ? .gray : outChannels == 4 ? .rgba : .rgb
        var out = try Image(width: ow, height: oh, layout: layout, storage: writer.storage(), metadata: image.metadata)
        // 10. outscale
        if let s = options.outscale, s != Double(scale) {
            let (tw, th) = outputSize(width: w, height: h)
            guard tw > 0, th > 0 else {
                throw UpscaleError.invalidImage("outscale \(s) makes \(w)×\(h) empty (\(tw)×\(th))")
            }
            let resized: PixelStorage
            switch out.storage {
            case .u8(let a): resized = .u8(OpenCVResize.lanczos4(a, width: ow, height: oh, channels: outChannels, toWidth: tw, toHeight: th))
            case .u16(let a): resized = .u16(OpenCVResize.lanczos4(a, width: ow, height: oh, channels: outChannels, toWidth: tw, toHeight: th))
            }
            out = try Image(width: tw, height: th, layout: layout, storage: resized, metadata: image.metadata)
        }
        return out
    }

    /// The tiles for a w×h input: `options.tile` (square, as upstream), or with `maxMemory` and no tile the fewest
    /// tiles whose estimated peak (activations of up to `tileBatch` padded tiles + weights + image buffers) fits;
    /// `.whole` = the whole image in one pass. Under a cap tiles need not be square: each axis is split into equal
    /// parts on its own, so a 256×200 image can run as two 128×200 tiles instead of four squares with a thin last row.
    public func tiling(width w: Int, height h: Int) throws -> TileShape {
        let m = network.inputMultiple
        if options.tile > 0 { return .square(roundUp(options.tile, m)) }
        guard let cap = options.maxMemory else { return .whole }
        let fixed = fixedBytes(width: w, height: h)
        let budget = cap - fixed
        let wholeBytes = passBytes(height: h + options.prePad + m, width: w + options.prePad + m, batch: 1)
        if budget > 0, wholeBytes <= budget { return .whole }
        let pad = roundUp(options.tilePad, m), least = max(m, 8)
        let canvas = (width: roundUp(w + options.prePad, m), height: roundUp(h + options.prePad, m))
        // Maps below the backend's algorithm switch cost more memory, not less (a second set of prepared weights:
        // x2plus 512² under 225M reached 447 MB that way): every tile — edge tiles have one pad, the last one what is
        // left — must keep its working map (input / inputMultiple) at least that large.
        let switchPixels = network.backend.algorithmSwitchPixels
        func bytes(_ x: AxisSplit, _ y: AxisSplit) -> Int {
            passBytes(height: y.largest, width: x.largest, batch: min(options.tileBatch, x.count * y.count))
        }
        func aboveSwitch(_ x: AxisSplit, _ y: AxisSplit) -> Bool { (x.smallest / m) * (y.smallest / m) >= switchPixels }
        // Per column count, the fewest rows that fit (fewer rows = larger tiles = more bytes, so the fit is monotone);
        // then the fewest tiles in all, ties to the least padded area. Splits giving the same counts are skipped.
        var best: (x: AxisSplit, y: AxisSplit)?
        var cheapestAboveSwitch: (bytes: Int, x: AxisSplit, y: AxisSplit)?
        let rowSplits = Self.splits(canvas.height, least: least, pad: pad, multiple: m)
        let columnSplits = Self.splits(canvas.width, least: least, pad: pad, multiple: m)
        for x in columnSplits {
            var lo = 0, hi = rowSplits.count - 1   // rowSplits go from one tile to the most
            guard budget > 0, bytes(x, rowSplits[hi]) <= budget else { continue }
            while lo < hi {
                let mid = (lo + hi) / 2
                if bytes(x, rowSplits[mid]) <= budget { hi = mid } else { lo = mid + 1 }
            }
            let y = rowSplits[lo]
            guard x.count * y.count > 1 else { continue }   // the whole image was checked above
            guard switchPixels == 0 || aboveSwitch(x, y) else { continue }
            if let b = best {
                let (n, nb) = (x.count * y.count, b.x.count * b.y.count)
                if n > nb || (n == nb && x.largest * y.largest >= b.x.largest * b.y.largest) { continue }
            }
            best = (x, y)
        }
        if let best { return TileShape(width: best.x.tile, height: best.y.tile) }
        func tooSmall(_ needed: Int, _ why: String) -> UpscaleError {
            .memory("--max-memory \(cap) bytes is too small for \(network.architectureName) ×\(network.scale) on \(w)×\(h) (needs about \(fixed + needed) bytes \(why)\(options.tileBatch > 1 ? "; --tile-batch \(options.tileBatch) counts too" : ""))")
        }
        if switchPixels > 0 {
            // the cheapest tiling that keeps the switch, to say what the cap would need: per column count, the most
            // rows still above it (bytes fall as the count grows)
            for x in columnSplits {
                guard let y = rowSplits.last(where: { x.count * $0.count > 1 && aboveSwitch(x, $0) }) else { continue }
                let b = bytes(x, y)
                if b < cheapestAboveSwitch?.bytes ?? .max { cheapestAboveSwitch = (b, x, y) }
            }
            if budget > 0, bytes(columnSplits.last!, rowSplits.last!) <= budget {
                // small tiles would fit, but only tiles above the switch keep the memory down
                let smaller = "smaller tiles would run its direct convolutions, whose weights come on top"
                if let c = cheapestAboveSwitch, c.bytes < wholeBytes {
                    throw tooSmall(c.bytes, "with tiles \(c.x.tile)×\(c.y.tile) on this engine: \(smaller)")
                }
                throw tooSmall(wholeBytes, "for the whole image on this engine: no tiling keeps every tile above its algorithm switch, and \(smaller)")
            }
        }
        throw tooSmall(bytes(columnSplits.last!, rowSplits.last!), "with the smallest tiles")
    }

    /// One axis of `extent` input pixels cut into `count` equal tiles of `tile` pixels (a multiple of the network's
    /// input multiple; the last one takes what is left); `largest`/`smallest`: the padded extents a pass sees.
    struct AxisSplit: Equatable {
        let tile, count, largest, smallest: Int
    }

    /// Every distinct split of an axis, from one tile to tiles of `least` pixels, in order of growing count.
    static func splits(_ extent: Int, least: Int, pad: Int, multiple m: Int) -> [AxisSplit] {
        var out: [AxisSplit] = []
        let most = max(1, extent / least)
        for n in 1...most {
            let t = roundUp((extent + n - 1) / n, m)
            let count = (extent + t - 1) / t
            if count == out.last?.count { continue }
            if count == 1 {
                out.append(AxisSplit(tile: extent, count: 1, largest: extent, smallest: extent))
            } else {
                let last = extent - (count - 1) * t
                let largest = min(count >= 3 ? t + 2 * pad : t + pad, extent)
                guard largest < extent else { continue }   // the pad covers the whole axis: more passes, no less memory
                out.append(AxisSplit(tile: t, count: count, largest: largest, smallest: min(t + pad, last + pad, extent)))
            }
        }
        return out
    }

    /// What a w×h image costs besides the network pass under `maxMemory`: the image buffers (input planes with pads,
    /// output samples, outscale result, float alpha), the weights and `baseOverhead`.
    public func fixedBytes(width w: Int, height h: Int) -> Int {
        let (ow, oh) = outputSize(width: w, height: h)
        let s = network.scale
        return 16 * w * h * 4 + (w * s) * (h * s) * 4 * 2 + ow * oh * 4 * 2 + network.parameterCount * 4 + Self.baseOverhead
    }

    /// Engine bytes of one network pass on `batch` tiles of height×width input pixels: the network's activation
    /// estimate for that size, scaled by what the probe pass measured on this backend against the same estimate
    /// (layout padding: oneDNN keeps 3-channel tensors as 8 or 16 channels), plus the tiles' input and output copies.
    public func passBytes(height: Int, width: Int, batch: Int) -> Int {
        let s = network.scale
        let activations = Double(network.activationBytes(height: height, width: width, batch: batch)) * backendFactor()
        return Int(activations.rounded(.up)) + (12 * s * s + 24) * height * width * batch
    }

    private let probeLock = NSLock()
    private var probeCache: Double?

    /// Peak backend bytes of a small probe pass over the network's estimate for it, at least 1; cached; 1 if the probe
    /// fails. The probe is 64 px at the network's working resolution (128 px input for ×2 RRDBNet, which works at half
    /// resolution): large enough to take the convolution algorithms real tiles take (oneDNN: the own Winograd from 64²
    /// maps), so it adds no second set of prepared weights — a 24 px probe ran every layer on direct convolutions and
    /// cost x2plus ≈ 100 MB of extra resident memory.
    public func backendFactor() -> Double {
        probeLock.lock(); defer { probeLock.unlock() }
        if let c = probeCache { return c }
        let be = network.backend
        let p = 64 * network.inputMultiple
        var result = 1.0
        do {
            let before = be.memoryStats.liveBytes
            be.resetPeak()
            let x = try be.upload(HostTensor(zeros: [1, network.channels, p, p]))
            _ = try network.forward(x)
            let measured = Double(be.memoryStats.peakLiveBytes - before)
            result = max(1, measured / Double(max(1, network.activationBytes(height: p, width: p, batch: 1))))
        } catch {
            result = 1
        }
        probeCache = result
        return result
    }

    /// Bytes assumed for the process itself (code, libraries, allocator slack) when fitting `maxMemory`.
    public static let baseOverhead = 64 << 20

    /// pre_pad + mod-pad, then whole or tiled passes; hands each pasted tile core (cropped to scale·w × scale·h)
    /// to `sink(values, outY, outX, planeStride, planeSize)` where values are the downloaded NCHW tile output.
    private func runPasses(_ planes: [[Float]], width w: Int, height h: Int, report: inout UpscaleReport,
                           sink: (_ values: [Float], _ rows: Range<Int>, _ cols: Range<Int>, _ tileW: Int, _ origin: (Int, Int)) -> Void) throws {
        var tile = try tiling(width: w, height: h)
        while true {
            do {
                // one session per image: with `replay.mergeLimit` > 1, tiles of images upscaled at once share forwards
                try replay.session { try runPassesOnce(planes, width: w, height: h, tile: tile, report: &report, sink: sink) }
                report.tile = tile
                return
            } catch let e as TensorError where e.isAllocationFailure {
                // halve the longer side of the tile (the whole image: of the image)
                let m = network.inputMultiple
                let current = tile.isWhole ? TileShape(width: roundUp(w + options.prePad, m), height: roundUp(h + options.prePad, m)) : tile
                var next = current
                if current.width >= current.height { next.width = current.width / 2 / m * m } else { next.height = current.height / 2 / m * m }
                guard min(next.width, next.height) >= max(m, 8) else {
                    // still an allocation failure (a fallback may compute the image elsewhere), naming the last tile
                    guard case let .allocationFailed(bytes, detail) = e else { throw e }
                    throw TensorError.allocationFailed(bytes: bytes, detail: "\(detail) even with tile \(current)")
                }
                tile = next
                report.retries += 1
            }
        }
    }

    private func runPassesOnce(_ planes: [[Float]], width w: Int, height h: Int, tile: TileShape, report: inout UpscaleReport,
                               sink: (_ values: [Float], _ rows: Range<Int>, _ cols: Range<Int>, _ tileW: Int, _ origin: (Int, Int)) -> Void) throws {
        let be = network.backend
        let s = network.scale, m = network.inputMultiple
        let pp = options.prePad
        // pre_pad: reflect right/bottom (PyTorch needs pad < size)
        var cur = planes, cw = w, ch = h
        if pp > 0 {
            guard pp < w, pp < h else {
                throw UpscaleError.invalidImage("--pre-pad \(pp) must be smaller than the image (\(w)×\(h)) for reflect padding")
            }
            cur = cur.map { reflectPad($0, width: cw, height: ch, right: pp, bottom: pp) }
            cw += pp; ch += pp
        }
        let mh = (m - ch % m) % m, mw = (m - cw % m) % m
        if mh > 0 || mw > 0 {
            guard mh < ch, mw < cw else {
                throw UpscaleError.invalidImage("image \(w)×\(h) too small for the ×\(s) model's reflect mod-pad")
            }
            cur = cur.map { reflectPad($0, width: cw, height: ch, right: mw, bottom: mh) }
            cw += mw; ch += mh
        }
        let outW = w * s, outH = h * s   // crop of mod-pad and pre-pad
        let (tx, ty) = tile.isWhole ? (cw, ch) : (tile.width, tile.height)
        let pad = tile.isWhole ? 0 : roundUp(options.tilePad, m)
        let tilesX = (cw + tx - 1) / tx, tilesY = (ch + ty - 1) / ty
        be.resetPeak()
        // Tile geometry in the usual row-major order; tiles of equal padded size run `tileBatch` at a time (each
        // pastes only its own core, so the order of the passes does not change the image).
        struct TileGeometry { let x0, x1, y0, y1, gx0, gy0, tw, th: Int }
        var groups: [(key: [Int], tiles: [TileGeometry])] = []
        for iy in 0..<tilesY {
            for ix in 0..<tilesX {
                let x0 = ix * tx, x1 = min(x0 + tx, cw)
                let y0 = iy * ty, y1 = min(y0 + ty, ch)
                let gx0 = max(x0 - pad, 0), gx1 = min(x1 + pad, cw)
                let gy0 = max(y0 - pad, 0), gy1 = min(y1 + pad, ch)
                let g = TileGeometry(x0: x0, x1: x1, y0: y0, y1: y1, gx0: gx0, gy0: gy0, tw: gx1 - gx0, th: gy1 - gy0)
                if options.tileBatch > 1, let i = groups.firstIndex(where: { $0.key == [g.tw, g.th] }) {
                    groups[i].tiles.append(g)
                } else {
                    groups.append(([g.tw, g.th], [g]))
                }
            }
        }
        for group in groups {
            for start in stride(from: 0, to: group.tiles.count, by: options.tileBatch) {
                let chunk = group.tiles[start..<min(group.tiles.count, start + options.tileBatch)]
                let tw = group.key[0], th = group.key[1], n = chunk.count
                var data = [Float](repeating: 0, count: n * 3 * tw * th)
                for (b, g) in chunk.enumerated() {
                    for c in 0..<3 {
                        cur[c].withUnsafeBufferPointer { src in
                            for y in 0..<th {
                                let so = (g.gy0 + y) * cw + g.gx0, dOff = (b * 3 + c) * tw * th + y * tw
                                for x in 0..<tw { data[dOff + x] = src[so + x] }
                            }
                        }
                    }
                }
                let out = try replay.run(HostTensor(shape: [n, 3, th, tw], data: data))[0]
                report.passes += n
                report.forwards += 1
                report.peakTensorBytes = max(report.peakTensorBytes, be.memoryStats.peakLiveBytes)
                guard out.shape == [n, 3, th * s, tw * s] else {
                    throw UpscaleError.invalidImage("network returned \(out.shape) for \(n) tile\(n == 1 ? "" : "s") of \(th)×\(tw) (scale \(s))")
                }
                let per = 3 * th * s * tw * s
                for (b, g) in chunk.enumerated() {
                    // core of the tile in output coordinates, cropped to the un-padded output
                    let oy0 = g.y0 * s, oy1 = min(g.y1 * s, outH)
                    let ox0 = g.x0 * s, ox1 = min(g.x1 * s, outW)
                    if oy0 < oy1, ox0 < ox1 {
                        sink(n == 1 ? out.data : Array(out.data[(b * per)..<((b + 1) * per)]), oy0..<oy1, ox0..<ox1, tw * s, (g.gy0 * s, g.gx0 * s))
                    }
                }
            }
        }
    }

    /// PyTorch reflect padding on the right and bottom of one plane.
    private func reflectPad(_ p: [Float], width w: Int, height h: Int, right: Int, bottom: Int) -> [Float] {
        let nw = w + right, nh = h + bottom
        var out = [Float](repeating: 0, count: nw * nh)
        for y in 0..<nh {
            let sy = y < h ? y : 2 * (h - 1) - y
            for x in 0..<nw {
                let sx = x < w ? x : 2 * (w - 1) - x
                out[y * nw + x] = p[sy * w + sx]
            }
        }
        return out
    }
}

/// `x` rounded up to a multiple of `m`.
private func roundUp(_ x: Int, _ m: Int) -> Int { (x + m - 1) / m * m }

/// The output image being assembled: clamps, converts (gray, alpha) and quantises tile by tile, so no float
/// copy of the output at network resolution exists.
final class QuantisingWriter {
    let width: Int, height: Int, channels: Int, sixteen: Bool
    private var u8: [UInt8]
    private var u16: [UInt16]

    init(width: Int, height: Int, channels: Int, sixteen: Bool) {
        self.width = width; self.height = height; self.channels = channels; self.sixteen = sixteen
        u8 = sixteen ? [] : [UInt8](repeating: 0, count: width * height * channels)
        u16 = sixteen ? [UInt16](repeating: 0, count: width * height * channels) : []
    }

    func storage() -> PixelStorage { sixteen ? .u16(u16) : .u8(u8) }

    @inline(__always) private func put(_ v: Float, at i: Int) {
        // clamp to [0, 1], then (x·max).round() half to even, as NumPy
        let c = v.isNaN ? 0 : min(max(v, 0), 1)
        if sixteen {
            let q = (c * 65535).rounded(.toNearestOrEven)
            u16[i] = UInt16(min(max(q, 0), 65535))
        } else {
            let q = (c * 255).rounded(.toNearestOrEven)
            u8[i] = UInt8(min(max(q, 0), 255))
        }
    }

    /// OpenCV BGR2GRAY on float: B·0.114 + G·0.587 + R·0.299 (after the clamp).
    @inline(__always) private func gray(_ r: Float, _ g: Float, _ b: Float) -> Float {
        let cr = min(max(r, 0), 1), cg = min(max(g, 0), 1), cb = min(max(b, 0), 1)
        return cb * 0.114 + cg * 0.587 + cr * 0.299
    }

    func writeColour(_ v: [Float], outY rows: Range<Int>, outX cols: Range<Int>, planeStride tw: Int, planeSize origin: (Int, Int), gray toGray: Bool) {
        let th = v.count / 3 / tw, plane = tw * th
        for y in rows {
            let ty = y - origin.0
            for x in cols {
                let i = ty * tw + (x - origin.1)
                let o = (y * width + x) * channels
                if toGray {
                    put(gray(v[i], v[plane + i], v[2 * plane + i]), at: o)
                } else {
                    put(v[i], at: o); put(v[plane + i], at: o + 1); put(v[2 * plane + i], at: o + 2)
                }
            }
        }
    }

    func writeAlphaFromNetwork(_ v: [Float], outY rows: Range<Int>, outX cols: Range<Int>, planeStride tw: Int, planeSize origin: (Int, Int)) {
        let th = v.count / 3 / tw, plane = tw * th
        for y in rows {
            let ty = y - origin.0
            for x in cols {
                let i = ty * tw + (x - origin.1)
                put(gray(v[i], v[plane + i], v[2 * plane + i]), at: (y * width + x) * channels + 3)
            }
        }
    }

    func writeAlphaPlane(_ a: [Float]) {
        for i in 0..<(width * height) { put(a[i], at: i * channels + 3) }
    }
}
