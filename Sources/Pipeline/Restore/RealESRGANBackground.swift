import Foundation
import ImageIO

/// Real-ESRGAN background upscaling for the restore pipeline (upstream GPEN's `--use_sr` pass with a RealESRGANer):
/// the whole photo goes through `Upscaler` with `outscale` = the requested scale.
public struct RealESRGANBackground: BackgroundUpsampler {
    /// The upscaler (its network is prepared once; calls are serialised by the upscaler's backend use).
    public let upscaler: Upscaler
    /// Name for logs (model name or file).
    public let name: String

    /// Wraps an upscaler built for this background.
    public init(upscaler: Upscaler, name: String) { self.upscaler = upscaler; self.name = name }

    public func upsample(_ image: FaceImage, scale: Int) throws -> FaceImage {
        let bgr = image.channels == 3 ? image : try ImageResize.toBGR(image)
        let rgb = try Image(width: bgr.width, height: bgr.height, layout: .rgb, storage: .u8(bgr.interleaved(order: .rgb)))
        let out = try upscaler.enhance(rgb).withBitDepth(8).converted(to: .rgb)
        guard out.width == image.width * scale, out.height == image.height * scale else {
            throw RestoreError.backgroundUpsampler("\(name) produced \(out.width)x\(out.height) for a \(image.width)x\(image.height) image at ×\(scale); set its outscale to \(scale)")
        }
        return try FaceImage(interleaved: out.samples8, width: out.width, height: out.height, channels: 3, order: .rgb)
    }
}
