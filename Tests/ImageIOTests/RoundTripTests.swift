import Foundation
import Testing
@testable import ImageIO

@Suite struct RoundTripTests {
    @Test(arguments: ChannelLayout.allCases, [8, 16])
    func pngIsBitExact(layout: ChannelLayout, depth: Int) throws {
        let img = Fixtures.noise(37, 23, layout, depth: depth)
        let enc = try ImageEncoder.encode(img, as: .png)
        #expect(enc.notes.isEmpty)
        #expect(ImageFormat.sniff(enc.data) == .png)
        let back = try ImageDecoder.decode(data: enc.data)
        #expect(back.width == 37 && back.height == 23)
        #expect(back.layout == layout)
        #expect(back.bitDepth == depth)
        #expect(back.storage == img.storage)
        #expect(back.metadata.sourceFormat == .png)
    }

    @Test(arguments: ChannelLayout.allCases)
    func losslessWebPIsBitExact(layout: ChannelLayout) throws {
        let img = Fixtures.noise(41, 19, layout, depth: 8, seed: 7)
        let enc = try ImageEncoder.encode(img, as: .webp, options: EncodeOptions(webpLossless: true))
        let back = try ImageDecoder.decode(data: enc.data)
        // WebP has no gray mode: gray comes back replicated into RGB(A), which is reported.
        let expected = layout.isGray ? img.converted(to: layout.hasAlpha ? .rgba : .rgb) : img
        #expect(back.layout == expected.layout)
        #expect(back.storage == expected.storage)
        #expect(enc.notes.map(\.kind) == (layout.isGray ? [.grayExpanded] : []))
    }

    @Test func losslessWebPFrom16BitReportsReduction() throws {
        let img = Fixtures.noise(16, 16, .rgba, depth: 16)
        let enc = try ImageEncoder.encode(img, as: .webp, options: EncodeOptions(webpLossless: true))
        #expect(enc.notes.map(\.kind) == [.bitDepthReduced])
        let back = try ImageDecoder.decode(data: enc.data)
        #expect(back.storage == img.withBitDepth(8).storage)
    }

    /// Lossy WebP q90 on a smooth image: colour PSNR ≥ 35 dB, alpha ≥ 40 dB.
    @Test(arguments: [ChannelLayout.rgb, .rgba])
    func lossyWebPAboveStatedPSNR(layout: ChannelLayout) throws {
        let img = Fixtures.smooth(96, 64, layout)
        let enc = try ImageEncoder.encode(img, as: .webp, options: EncodeOptions(webpQuality: 90))
        let back = try ImageDecoder.decode(data: enc.data)
        #expect(back.layout == layout)
        let a = img.samples8, b = back.samples8
        let c = layout.channels
        let colour = { (x: [UInt8]) in x.enumerated().filter { $0.offset % c < 3 }.map(\.element) }
        let p = Fixtures.psnr(colour(a), colour(b))
        #expect(p >= 35, "WebP q90 colour PSNR \(p) dB")
        if layout.hasAlpha {
            let alpha = { (x: [UInt8]) in x.enumerated().filter { $0.offset % c == 3 }.map(\.element) }
            let pa = Fixtures.psnr(alpha(a), alpha(b))
            #expect(pa >= 40, "WebP alpha PSNR \(pa) dB")
        }
    }

    /// JPEG on a smooth image: q95 (4:4:4) ≥ 40 dB, q75 (4:2:0) ≥ 32 dB, for gray and RGB.
    @Test(arguments: [ChannelLayout.gray, .rgb], [95, 75])
    func jpegAboveStatedPSNR(layout: ChannelLayout, quality: Int) throws {
        let img = Fixtures.smooth(96, 64, layout)
        let enc = try ImageEncoder.encode(img, as: .jpeg, options: EncodeOptions(jpegQuality: quality))
        #expect(enc.notes.isEmpty)
        let back = try ImageDecoder.decode(data: enc.data)
        #expect(back.layout == layout)
        let p = Fixtures.psnr(img.samples8, back.samples8)
        #expect(p >= (quality == 95 ? 40 : 32), "JPEG q\(quality) \(layout) PSNR \(p) dB")
    }

    /// JPEG cannot hold alpha or 16 bits: both are converted and reported; alpha is composited on black.
    @Test(arguments: [ChannelLayout.grayAlpha, .rgba])
    func jpegDropsAlphaAndDepthWithNotes(layout: ChannelLayout) throws {
        let img = Fixtures.smooth(64, 48, layout).withBitDepth(16)
        let enc = try ImageEncoder.encode(img, as: .jpeg, options: EncodeOptions(jpegQuality: 95))
        #expect(Set(enc.notes.map(\.kind)) == [.alphaDropped, .bitDepthReduced])
        #expect(enc.notes.contains { $0.message.contains("alpha dropped: JPEG cannot store alpha (composited on black)") })
        let back = try ImageDecoder.decode(data: enc.data)
        #expect(back.layout == (layout.isGray ? .gray : .rgb))
        let flat = img.withBitDepth(8).converted(to: back.layout, background: 0)
        let p = Fixtures.psnr(flat.samples8, back.samples8)
        #expect(p >= 38, "composited JPEG PSNR \(p) dB")
    }

    @Test func jpegQualityOutsideRangeIsRejected() {
        let img = Fixtures.smooth(8, 8, .rgb)
        for q in [0, 101] {
            #expect(throws: ImageIOError.self) { try ImageEncoder.encode(img, as: .jpeg, options: EncodeOptions(jpegQuality: q)) }
        }
    }
}

@Suite struct ConversionTests {
    @Test func grayToRGBAndBackIsExact() {
        let g = Fixtures.noise(9, 7, .gray, depth: 16)
        let rgb = g.converted(to: .rgb)
        #expect(rgb.layout == .rgb)
        #expect(rgb.converted(to: .gray).storage == g.storage)
        let ga = g.converted(to: .grayAlpha)
        #expect(ga.samples16.enumerated().allSatisfy { $0.offset % 2 == 0 || $0.element == 65535 })
    }

    @Test func alphaCompositesOverBackground() throws {
        let img = try Image(width: 2, height: 1, layout: .rgba, storage: .u8([200, 100, 0, 128, 10, 20, 30, 0]))
        #expect(img.converted(to: .rgb).samples8 == [100, 50, 0, 0, 0, 0])
        #expect(img.converted(to: .rgb, background: 1).samples8 == [227, 177, 127, 255, 255, 255])
        #expect(img.toRGB8() == [100, 50, 0, 0, 0, 0])
    }

    @Test func depthConversion() throws {
        let img = try Image(width: 3, height: 1, layout: .gray, storage: .u16([0, 65535, 32896]))
        #expect(img.withBitDepth(8).samples8 == [0, 255, 128])
        #expect(img.withBitDepth(8).withBitDepth(16).samples16 == [0, 65535, 32896])
    }

    @Test func sampleCountIsChecked() {
        #expect(throws: ImageIOError.self) { try Image(width: 4, height: 4, layout: .rgb, storage: .u8([0, 1])) }
        #expect(throws: ImageIOError.self) { try Image(width: 0, height: 4, layout: .rgb, bitDepth: 8) }
    }
}

@Suite struct EncoderLimitTests {
    /// WebP holds at most 16383 pixels per side; a wider image is refused with a clear error, not a crash.
    @Test func webpTooWide() throws {
        let img = try Image(width: 16384, height: 1, layout: .rgb)
        let e = try #require(throws: ImageIOError.self) { try ImageEncoder.encode(img, as: .webp) }
        #expect(e.code == .encodingFailed)
        #expect(e.message.contains("16383"))
    }

    @Test func overflowingSizeIsRefused() {
        #expect(throws: ImageIOError.self) { try Image(width: Int.max / 2, height: 4, layout: .rgba) }
    }
}
