// The batch processor for `enhance upscale`: decode → Upscaler.enhance → encode.

import Foundation
import ImageIO
import Models

/// Encoder settings of the upscale outputs.
public struct UpscaleEncoding: Sendable, Equatable {
    /// JPEG/WebP quality (1–100); nil = the codec defaults (JPEG 95, WebP 90).
    public var quality: Int? = nil

    /// Default encoding.
    public init(quality: Int? = nil) { self.quality = quality }

    /// The codec options for this quality.
    public var encodeOptions: EncodeOptions {
        var o = EncodeOptions()
        if let q = quality { o.jpegQuality = q; o.webpQuality = Double(q) }
        return o
    }
}

/// Upscales each image of a batch with one shared `Upscaler` (the network is prepared once).
public struct UpscaleProcessor: BatchProcessor {
    /// The upscaler (network + RealESRGANer settings).
    public let upscaler: Upscaler
    /// Output encoding.
    public let encoding: UpscaleEncoding
    /// Largest input accepted, in pixels.
    public let maxPixels: Int

    /// Creates the processor.
    public init(upscaler: Upscaler, encoding: UpscaleEncoding = UpscaleEncoding(), maxPixels: Int = 100_000_000) {
        self.upscaler = upscaler
        self.encoding = encoding
        self.maxPixels = maxPixels
    }

    public func load(_ item: BatchItem, notes: inout BatchNotes) async throws -> Image {
        let img = try ImageDecoder.decode(fileAt: URL(fileURLWithPath: item.input), options: DecodeOptions(maxPixels: maxPixels))
        notes.width = img.width
        notes.height = img.height
        return img
    }

    public func compute(_ loaded: Image, item: BatchItem, notes: inout BatchNotes) async throws -> Image {
        var report = UpscaleReport()
        let start = ContinuousClock.now
        let out = try upscaler.enhance(loaded, report: &report)
        notes.timings["upscale"] = secondsSince(start)
        notes.recordEngine(upscaler.network.backend.memoryStats, tensorPeak: report.peakTensorBytes)
        if !report.tile.isWhole {
            let t = report.tile
            notes.tiles = "\(t.width)×\(t.height), \(report.passes) pass\(report.passes == 1 ? "" : "es")"
                + (report.retries > 0 ? ", after \(report.retries) out-of-memory retr\(report.retries == 1 ? "y" : "ies") with larger tiles" : "")
        }
        return out
    }

    public func store(_ computed: Image, item: BatchItem, temporaryPath: String, notes: inout BatchNotes) async throws {
        let format: ImageFormat
        switch item.outputFormat {
        case .png: format = .png
        case .jpeg: format = .jpeg
        case .webp: format = .webp
        }
        try ImageEncoder.write(computed, to: URL(fileURLWithPath: temporaryPath), format: format, options: encoding.encodeOptions)
    }

    /// Estimated peak bytes for one image in flight (the batch runner's memory gate, the service's admission): the
    /// network's activations for the largest tile actually run (times `tileBatch` tiles per pass) (a tile never extends past the padded image), the
    /// image buffers, and 4 MiB plus 2 MiB per core for what does not grow with the pixels (scratchpads, small buffers,
    /// the oneDNN backend's Winograd weights and per-thread tiles: ≤ 1.8 MiB + 2 MiB per thread for RRDBNet).
    public func memoryEstimate(width: Int, height: Int) -> Int {
        memoryEstimate(width: width, height: height, tile: (try? upscaler.tiling(width: width, height: height)) ?? .whole)
    }

    /// `memoryEstimate` for tiles already chosen by `upscaler.tiling`.
    public func memoryEstimate(width: Int, height: Int, tile t: TileShape) -> Int {
        let o = upscaler.options
        let (iw, ih) = (width + o.prePad, height + o.prePad)
        let tilesX = t.isWhole ? 1 : (iw + t.width - 1) / t.width, tilesY = t.isWhole ? 1 : (ih + t.height - 1) / t.height
        let batch = t.isWhole ? 1 : min(o.tileBatch, tilesX * tilesY)
        let (th, tw) = t.isWhole ? (ih, iw) : (min(t.height + 2 * o.tilePad, ih), min(t.width + 2 * o.tilePad, iw))
        let (ow, oh) = upscaler.outputSize(width: width, height: height)
        return upscaler.passBytes(height: th, width: tw, batch: batch) + width * height * 64 + ow * oh * 8 + (4 << 20)
            + ProcessInfo.processInfo.activeProcessorCount << 21
    }
}
