import Foundation
import Models

/// Small image helpers for the restore pipeline (uint8 BGR(A) images, layout H·W·C).
public enum ImageResize {
    /// `cv2.resize(img, (width, height))` INTER_LINEAR geometry (half-pixel centres, edge clamping) in float
    /// arithmetic, rounded to nearest (OpenCV's fixed-point result can differ by 1 on a few pixels).
    public static func bilinear(_ image: FaceImage, width: Int, height: Int) throws -> FaceImage {
        var out = try FaceImage(width: width, height: height, channels: image.channels)
        if width == image.width && height == image.height { return image }
        let cn = image.channels, sw = image.width, sh = image.height
        let sx = Double(sw) / Double(width), sy = Double(sh) / Double(height)
        let xs = (0..<width).map { BilinearTaps.at($0, scale: sx, size: sw) }
        image.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    let (y0, y1, fy) = BilinearTaps.at(y, scale: sy, size: sh)
                    for x in 0..<width {
                        let (x0, x1, fx) = xs[x]
                        for c in 0..<cn {
                            let a = Float(src[(y0 * sw + x0) * cn + c]) * (1 - fx) + Float(src[(y0 * sw + x1) * cn + c]) * fx
                            let b = Float(src[(y1 * sw + x0) * cn + c]) * (1 - fx) + Float(src[(y1 * sw + x1) * cn + c]) * fx
                            let v = (a * (1 - fy) + b * fy).rounded()
                            dst[(y * width + x) * cn + c] = UInt8(max(0, min(255, v)))
                        }
                    }
                }
            }
        }
        return out
    }

    /// 3-channel BGR from gray (replicated) or BGRA (alpha dropped, like OpenCV IMREAD_COLOR).
    public static func toBGR(_ image: FaceImage) throws -> FaceImage {
        if image.channels == 3 { return image }
        var out = try FaceImage(width: image.width, height: image.height, channels: 3)
        let n = image.width * image.height, cn = image.channels
        for i in 0..<n {
            for c in 0..<3 { out.pixels[i * 3 + c] = cn < 3 ? image.pixels[i * cn] : image.pixels[i * cn + c] }
        }
        return out
    }

    /// Side-by-side concatenation of equally tall images (GFPGAN's `cmp/` pictures).
    public static func hconcat(_ images: [FaceImage]) throws -> FaceImage {
        guard let h = images.first?.height, images.allSatisfy({ $0.height == h && $0.channels == images[0].channels }) else {
            throw FaceGeometryError.mismatch("hconcat: images must share height and channels")
        }
        let cn = images[0].channels
        let w = images.reduce(0) { $0 + $1.width }
        var out = try FaceImage(width: w, height: h, channels: cn)
        var x0 = 0
        for im in images {
            for y in 0..<h {
                let d = (y * w + x0) * cn, s = y * im.width * cn
                for i in 0..<(im.width * cn) { out.pixels[d + i] = im.pixels[s + i] }
            }
            x0 += im.width
        }
        return out
    }
}
