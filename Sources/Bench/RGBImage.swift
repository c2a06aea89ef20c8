// A small float RGB image and the few operations the bench needs to make its scenes and score outputs.

import Foundation
import ImageIO

/// An RGB image of floats in 0…255, samples interleaved H, W, C (C = 3: R, G, B).
public struct RGBImage: Sendable, Equatable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// Interleaved samples, `(y * width + x) * 3 + c`.
    public var pixels: [Float]

    /// Wraps samples; throws when the count is not `width * height * 3` or a size is not positive.
    public init(width: Int, height: Int, pixels: [Float]) throws(BenchError) {
        guard width > 0, height > 0, width <= 1 << 15, height <= 1 << 15 else {
            throw .invalidArgument("image size \(width)×\(height) must be in 1…32768")
        }
        guard pixels.count == width * height * 3 else {
            throw .invalidArgument("\(width)×\(height) RGB needs \(width * height * 3) samples, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A constant-colour image.
    public init(width: Int, height: Int, fill: Float = 0) throws(BenchError) {
        guard width > 0, height > 0, width <= 1 << 15, height <= 1 << 15 else {
            throw .invalidArgument("image size \(width)×\(height) must be in 1…32768")
        }
        self.width = width
        self.height = height
        self.pixels = [Float](repeating: fill, count: width * height * 3)
    }

    /// Converts any decoded image (alpha composited over black, grey replicated, 16-bit rounded to 8).
    public init(_ image: Image) {
        width = image.width
        height = image.height
        pixels = image.toRGB8().map { Float($0) }
    }

    /// Reads and converts an image file (PNG, JPEG or WebP; EXIF orientation applied).
    public init(contentsOf url: URL) throws(BenchError) {
        do { self.init(try ImageDecoder.decode(fileAt: url)) } catch {
            throw .io(path: url.path, reason: "cannot decode image: \(error)")
        }
    }

    /// The image as 8-bit RGB, rounding to nearest and clamping to 0…255.
    public func toImage() -> Image {
        let bytes = pixels.map { UInt8(max(0, min(255, $0.rounded()))) }
        // The sizes were validated at construction, so this cannot fail.
        return try! Image.rgb8(width: width, height: height, pixels: bytes)
    }

    /// Writes the image as PNG (or JPEG/WebP by extension) atomically.
    public func write(to url: URL) throws(BenchError) {
        do { try ImageEncoder.write(toImage(), to: url) } catch {
            throw .io(path: url.path, reason: "cannot write image: \(error)")
        }
    }

    /// Rec. 601 luma `0.299 R + 0.587 G + 0.114 B` per pixel, row-major (H, W).
    public func luma() -> [Double] {
        var y = [Double](repeating: 0, count: width * height)
        for i in 0..<(width * height) {
            let p = i * 3
            y[i] = 0.299 * Double(pixels[p]) + 0.587 * Double(pixels[p + 1]) + 0.114 * Double(pixels[p + 2])
        }
        return y
    }

    /// The rectangle `x, y, w, h`; throws when it does not lie inside the image.
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) throws(BenchError) -> RGBImage {
        guard x >= 0, y >= 0, w > 0, h > 0, x + w <= width, y + h <= height else {
            throw .invalidArgument("crop \(w)×\(h)+\(x)+\(y) does not fit in \(width)×\(height)")
        }
        var out = [Float](repeating: 0, count: w * h * 3)
        for row in 0..<h {
            let src = ((y + row) * width + x) * 3
            out.replaceSubrange(row * w * 3..<(row + 1) * w * 3, with: pixels[src..<src + w * 3])
        }
        return try RGBImage(width: w, height: h, pixels: out)
    }

    /// A square of `side` pixels (default: the shorter side) centred on `(centerX, centerY)` (default: the image
    /// centre), shifted as needed to lie inside the image.
    public func squareCrop(side: Int? = nil, centerX: Int? = nil, centerY: Int? = nil) throws(BenchError) -> RGBImage {
        let s = min(side ?? min(width, height), width, height)
        let cx = centerX ?? width / 2, cy = centerY ?? height / 2
        let x = max(0, min(width - s, cx - s / 2)), y = max(0, min(height - s, cy - s / 2))
        return try cropped(x: x, y: y, width: s, height: s)
    }
}
