/// How the channels of one pixel are interleaved.
public enum ChannelLayout: Int, Sendable, CaseIterable, CustomStringConvertible {
    /// One channel: luminance.
    case gray = 1
    /// Two channels: luminance, alpha (G, A).
    case grayAlpha = 2
    /// Three channels: red, green, blue (R, G, B).
    case rgb = 3
    /// Four channels: red, green, blue, alpha (R, G, B, A; alpha not premultiplied).
    case rgba = 4

    /// Number of interleaved samples per pixel.
    public var channels: Int { rawValue }
    /// Whether the last channel is (straight) alpha.
    public var hasAlpha: Bool { self == .grayAlpha || self == .rgba }
    /// Whether the colour is a single luminance channel.
    public var isGray: Bool { self == .gray || self == .grayAlpha }

    public var description: String {
        switch self {
        case .gray: "gray"
        case .grayAlpha: "gray+alpha"
        case .rgb: "RGB"
        case .rgba: "RGBA"
        }
    }
}

/// The samples of an image: 8-bit or 16-bit unsigned integers, interleaved row-major (H, W, C).
public enum PixelStorage: Sendable, Equatable {
    /// 8-bit samples, 0…255.
    case u8([UInt8])
    /// 16-bit samples, 0…65535.
    case u16([UInt16])

    /// Bits per sample: 8 or 16.
    public var bitDepth: Int {
        switch self {
        case .u8: 8
        case .u16: 16
        }
    }

    /// Number of samples.
    public var count: Int {
        switch self {
        case .u8(let a): a.count
        case .u16(let a): a.count
        }
    }
}

/// Information carried alongside the pixels.
public struct ImageMetadata: Sendable, Equatable {
    /// The format the image was decoded from, if any.
    public var sourceFormat: ImageFormat?
    /// The raw EXIF block (starting with the TIFF header "II*\0" / "MM\0*"), if the source had one.
    public var exif: [UInt8]?
    /// The EXIF orientation (1–8) found in the source.
    public var orientation: Int?
    /// Whether the decoder turned the pixels upright according to `orientation` (then a JPEG written
    /// from this image gets orientation 1 in its copied EXIF; otherwise the EXIF is copied unchanged).
    public var orientationApplied: Bool
    /// Things the decoder tolerated or changed (e.g. a mislabelled extension, a libjpeg warning).
    public var notes: [String]

    /// Creates metadata; everything defaults to empty.
    public init(sourceFormat: ImageFormat? = nil, exif: [UInt8]? = nil, orientation: Int? = nil,
                orientationApplied: Bool = false, notes: [String] = []) {
        self.orientationApplied = orientationApplied
        self.sourceFormat = sourceFormat
        self.exif = exif
        self.orientation = orientation
        self.notes = notes
    }
}

/// A decoded image: `height` rows of `width` pixels, each `layout.channels` interleaved samples (H, W, C).
public struct Image: Sendable, Equatable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// Channel order of each pixel.
    public let layout: ChannelLayout
    /// The samples, row-major, `width * height * layout.channels` of them.
    public var storage: PixelStorage
    /// Source format, EXIF and decoder notes.
    public var metadata: ImageMetadata

    /// Number of channels per pixel (1, 2, 3 or 4).
    public var channels: Int { layout.channels }
    /// Bits per sample (8 or 16).
    public var bitDepth: Int { storage.bitDepth }
    /// Number of pixels.
    public var pixelCount: Int { width * height }

    /// Wraps existing samples; throws if the count does not match `width * height * layout.channels`.
    public init(width: Int, height: Int, layout: ChannelLayout, storage: PixelStorage,
                metadata: ImageMetadata = ImageMetadata()) throws {
        guard width > 0, height > 0 else {
            throw ImageIOError(.invalidArgument, "image size \(width)×\(height) must be positive")
        }
        guard let n = Self.sampleCount(width, height, layout), n == storage.count else {
            throw ImageIOError(.invalidArgument,
                               "\(width)×\(height) \(layout) needs width × height × \(layout.channels) samples, got \(storage.count)")
        }
        self.width = width
        self.height = height
        self.layout = layout
        self.storage = storage
        self.metadata = metadata
    }

    /// A zero-filled (black, transparent) image.
    public init(width: Int, height: Int, layout: ChannelLayout, bitDepth: Int = 8) throws {
        guard width > 0, height > 0, bitDepth == 8 || bitDepth == 16 else {
            throw ImageIOError(.invalidArgument, "invalid image \(width)×\(height) at \(bitDepth) bits")
        }
        guard let n = Self.sampleCount(width, height, layout) else {
            throw ImageIOError(.invalidArgument, "image size \(width)×\(height) overflows")
        }
        try self.init(width: width, height: height, layout: layout,
                      storage: bitDepth == 8 ? .u8([UInt8](repeating: 0, count: n)) : .u16([UInt16](repeating: 0, count: n)))
    }

    /// width × height × channels, or nil on overflow.
    static func sampleCount(_ width: Int, _ height: Int, _ layout: ChannelLayout) -> Int? {
        let (n, o1) = width.multipliedReportingOverflow(by: height)
        let (m, o2) = n.multipliedReportingOverflow(by: layout.channels)
        return o1 || o2 ? nil : m
    }

    /// Internal unchecked initialiser for codecs that already validated the sizes.
    init(unchecked width: Int, _ height: Int, _ layout: ChannelLayout, _ storage: PixelStorage, _ metadata: ImageMetadata) {
        self.width = width
        self.height = height
        self.layout = layout
        self.storage = storage
        self.metadata = metadata
    }

    /// The 8-bit samples; 16-bit samples are rounded to 8 bits (v * 255 / 65535).
    public var samples8: [UInt8] {
        switch storage {
        case .u8(let a): return a
        case .u16(let a): return a.map { UInt8((UInt32($0) * 255 + 32767) / 65535) }
        }
    }

    /// The 16-bit samples; 8-bit samples are widened exactly (v * 257).
    public var samples16: [UInt16] {
        switch storage {
        case .u8(let a): return a.map { UInt16($0) &* 257 }
        case .u16(let a): return a
        }
    }

    /// This image with samples of the given depth (8 or 16); 16 → 8 rounds, 8 → 16 is exact.
    public func withBitDepth(_ depth: Int) -> Image {
        if depth == bitDepth { return self }
        let s: PixelStorage = depth == 8 ? .u8(samples8) : .u16(samples16)
        return Image(unchecked: width, height, layout, s, metadata)
    }

    /// This image in another channel layout, keeping the bit depth.
    /// Gray → RGB replicates; RGB → gray uses Rec. 601 luma (0.299 R + 0.587 G + 0.114 B);
    /// adding alpha makes it opaque; dropping alpha composites over `background` (0 black … 1 white).
    public func converted(to target: ChannelLayout, background: Double = 0) -> Image {
        if target == layout { return self }
        switch storage {
        case .u8(let a):
            return Image(unchecked: width, height, target,
                         .u8(Self.convert(a, from: layout, to: target, maxValue: 255, background: background)), metadata)
        case .u16(let a):
            return Image(unchecked: width, height, target,
                         .u16(Self.convert(a, from: layout, to: target, maxValue: 65535, background: background)), metadata)
        }
    }

    /// The image as 8-bit interleaved RGB (H, W, 3): alpha composited over black, gray replicated.
    public func toRGB8() -> [UInt8] {
        withBitDepth(8).converted(to: .rgb).samples8
    }

    /// Builds an 8-bit RGB image from interleaved (H, W, 3) samples.
    public static func rgb8(width: Int, height: Int, pixels: [UInt8]) throws -> Image {
        try Image(width: width, height: height, layout: .rgb, storage: .u8(pixels))
    }

    static func convert<T: FixedWidthInteger & UnsignedInteger>(
        _ src: [T], from: ChannelLayout, to: ChannelLayout, maxValue: UInt32, background: Double
    ) -> [T] {
        let n = src.count / from.channels
        let ci = from.channels, co = to.channels
        let bg = UInt32((max(0, min(1, background)) * Double(maxValue)).rounded())
        var dst = [T](repeating: 0, count: n * co)
        src.withUnsafeBufferPointer { s in
            dst.withUnsafeMutableBufferPointer { d in
                for i in 0..<n {
                    let p = i * ci
                    var r: UInt32, g: UInt32, b: UInt32
                    let a: UInt32 = from.hasAlpha ? UInt32(s[p + ci - 1]) : maxValue
                    if from.isGray {
                        r = UInt32(s[p]); g = r; b = r
                    } else {
                        r = UInt32(s[p]); g = UInt32(s[p + 1]); b = UInt32(s[p + 2])
                    }
                    if from.hasAlpha && !to.hasAlpha && a != maxValue {
                        let ia = maxValue - a
                        r = (r * a + bg * ia + maxValue / 2) / maxValue
                        g = (g * a + bg * ia + maxValue / 2) / maxValue
                        b = (b * a + bg * ia + maxValue / 2) / maxValue
                    }
                    let q = i * co
                    if to.isGray {
                        d[q] = from.isGray ? T(r) : T((299 * r + 587 * g + 114 * b + 500) / 1000)
                    } else {
                        d[q] = T(r); d[q + 1] = T(g); d[q + 2] = T(b)
                    }
                    if to.hasAlpha { d[q + co - 1] = T(a) }
                }
            }
        }
        return dst
    }
}

extension Image: CustomStringConvertible, CustomDebugStringConvertible {
    /// A short summary, e.g. "Image(48×32 RGB, 8-bit, from JPEG)"; the samples are not listed.
    public var description: String {
        "Image(\(width)×\(height) \(layout), \(bitDepth)-bit\(metadata.sourceFormat.map { ", from \($0)" } ?? ""))"
    }
    public var debugDescription: String { description }
}
