import Foundation
import Testing
@testable import ImageIO

@Suite struct PNGDecoderTests {
    /// Samples in a hand-written 16-bit PNG (big-endian in the file) come back as the same numbers.
    @Test func sixteenBitByteOrder() throws {
        let rows: [[UInt8]] = [[0x12, 0x34, 0xFF, 0x00], [0x00, 0x01, 0xAB, 0xCD]]
        let png = HandPNG.make(width: 2, height: 2, bitDepth: 16, colorType: 0, rows: rows)
        let img = try ImageDecoder.decode(bytes: png)
        #expect(img.layout == .gray && img.bitDepth == 16)
        #expect(img.storage == .u16([0x1234, 0xFF00, 0x0001, 0xABCD]))
    }

    /// A palette PNG with tRNS becomes RGBA; without tRNS it becomes RGB.
    @Test func paletteExpands() throws {
        let plte = HandPNG.chunk("PLTE", [255, 0, 0, 0, 255, 0, 0, 0, 255])
        let trns = HandPNG.chunk("tRNS", [255, 128, 0])
        let rows: [[UInt8]] = [[0, 1, 2], [2, 1, 0]]
        let rgb = try ImageDecoder.decode(bytes: HandPNG.make(width: 3, height: 2, bitDepth: 8, colorType: 3, rows: rows, extra: [plte]))
        #expect(rgb.layout == .rgb)
        #expect(rgb.samples8 == [255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 255, 0, 255, 0, 255, 0, 0])
        let rgba = try ImageDecoder.decode(bytes: HandPNG.make(width: 3, height: 2, bitDepth: 8, colorType: 3, rows: rows, extra: [plte, trns]))
        #expect(rgba.layout == .rgba)
        #expect(rgba.samples8 == [255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 0, 0, 0, 255, 0, 0, 255, 0, 128, 255, 0, 0, 255])
    }

    /// 1-bit gray expands to 0/255; a gray tRNS key becomes an alpha channel.
    @Test func lowBitGrayAndTransparencyKey() throws {
        let oneBit = HandPNG.make(width: 4, height: 1, bitDepth: 1, colorType: 0, rows: [[0b1010_0000]])
        #expect(try ImageDecoder.decode(bytes: oneBit).samples8 == [255, 0, 255, 0])
        let keyed = HandPNG.make(width: 3, height: 1, bitDepth: 8, colorType: 0, rows: [[5, 7, 9]],
                                 extra: [HandPNG.chunk("tRNS", [0, 7])])
        let img = try ImageDecoder.decode(bytes: keyed)
        #expect(img.layout == .grayAlpha)
        #expect(img.samples8 == [5, 255, 7, 0, 9, 255])
    }

    /// Adam7: a 2×2 image has pixels in passes 1 (0,0), 6 (1,0) and 7 (row 1).
    @Test func interlacedPNG() throws {
        let png = HandPNG.make(width: 2, height: 2, bitDepth: 8, colorType: 0, rows: [[10], [20], [30, 40]], interlaced: true)
        #expect(try ImageDecoder.decode(bytes: png).samples8 == [10, 20, 30, 40])
    }

    /// A gAMA chunk does not change the samples (no gamma transform on decode).
    @Test func noGammaTransform() throws {
        let gama = HandPNG.chunk("gAMA", HandPNG.be32(100_000))
        let png = HandPNG.make(width: 2, height: 1, bitDepth: 16, colorType: 4, rows: [[0x80, 0x00, 0x40, 0x00, 0x20, 0x00, 0x10, 0x00]],
                               extra: [gama])
        #expect(try ImageDecoder.decode(bytes: png).storage == .u16([0x8000, 0x4000, 0x2000, 0x1000]))
    }
}

@Suite struct OrientationTests {
    static let red: [UInt8] = [255, 0, 0], green: [UInt8] = [0, 255, 0], blue: [UInt8] = [0, 0, 255],
               white: [UInt8] = [255, 255, 255], gray: [UInt8] = [128, 128, 128]

    /// 48×32 stored image of 16×16 cells; corners red (TL), green (TR), blue (BL), white (BR), the rest gray.
    static func pattern() -> Image {
        let w = 48, h = 32
        var a = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let cx = x / 16, cy = y / 16
                let c: [UInt8]
                switch (cx, cy) {
                case (0, 0): c = red
                case (2, 0): c = green
                case (0, 1): c = blue
                case (2, 1): c = white
                default: c = gray
                }
                a.replaceSubrange((y * w + x) * 3..<(y * w + x) * 3 + 3, with: c)
            }
        }
        return try! Image(width: w, height: h, layout: .rgb, storage: .u8(a))
    }

    /// Upright corners (TL, TR, BL, BR) for each EXIF orientation, from the EXIF 2.3 definitions.
    static let expected: [Int: [[UInt8]]] = [
        1: [red, green, blue, white], 2: [green, red, white, blue], 3: [white, blue, green, red],
        4: [blue, white, red, green], 5: [red, blue, green, white], 6: [blue, red, white, green],
        7: [white, green, blue, red], 8: [green, white, red, blue],
    ]

    static func pixel(_ img: Image, _ x: Int, _ y: Int) -> [UInt8] {
        let s = img.samples8, i = (y * img.width + x) * 3
        return Array(s[i..<(i + 3)])
    }

    @Test(arguments: 1...8)
    func exifOrientationIsApplied(orientation: Int) throws {
        let jpeg = try ImageEncoder.encode(Self.pattern(), as: .jpeg, options: EncodeOptions(jpegQuality: 100)).data
        let tagged = try #require(EXIF.inserting(EXIF.minimal(orientation: orientation), intoJPEG: [UInt8](jpeg)))
        let img = try ImageDecoder.decode(bytes: tagged)
        #expect(img.metadata.orientation == orientation)
        #expect(img.metadata.exif == EXIF.minimal(orientation: orientation))
        let swapped = orientation >= 5
        #expect(img.width == (swapped ? 32 : 48) && img.height == (swapped ? 48 : 32))
        let w = img.width, h = img.height
        let corners = [Self.pixel(img, 4, 4), Self.pixel(img, w - 5, 4), Self.pixel(img, 4, h - 5), Self.pixel(img, w - 5, h - 5)]
        for (got, want) in zip(corners, Self.expected[orientation]!) {
            #expect(zip(got, want).allSatisfy { abs(Int($0) - Int($1)) <= 6 }, "orientation \(orientation): \(got) vs \(want)")
        }
        // Without applying, the stored pixels come back as stored.
        let raw = try ImageDecoder.decode(bytes: tagged, options: DecodeOptions(applyOrientation: false))
        #expect(raw.width == 48 && raw.height == 32)
    }

    /// EXIF goes from a JPEG input to a JPEG output, with the orientation reset to 1.
    @Test func exifCopiedWithOrientationReset() throws {
        // Big-endian EXIF with two IFD0 entries (Make = "Test", orientation = 6).
        let exif: [UInt8] = [0x4D, 0x4D, 0, 42, 0, 0, 0, 8, 0, 2,
                             0x01, 0x0F, 0, 2, 0, 0, 0, 5, 0, 0, 0, 38,
                             0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0,
                             0, 0, 0, 0] + Array("Test\0".utf8)
        let jpeg = try ImageEncoder.encode(Self.pattern(), as: .jpeg).data
        let tagged = try #require(EXIF.inserting(exif, intoJPEG: [UInt8](jpeg)))
        let img = try ImageDecoder.decode(bytes: tagged)
        #expect(img.width == 32 && img.height == 48)
        let out = try ImageEncoder.encode(img, as: .jpeg)
        let copied = try #require(EXIF.extract(fromJPEG: [UInt8](out.data)))
        #expect(EXIF.orientation(copied) == 1)
        #expect(copied == EXIF.settingOrientation(exif, to: 1))
        #expect(copied != exif)
        let again = try ImageDecoder.decode(data: out.data)
        #expect(again.width == 32 && again.height == 48)
        // PNG output cannot carry it here, and says so.
        #expect(try ImageEncoder.encode(img, as: .png).notes.map(\.kind) == [.exifDropped])
        // Pixels left as stored keep their orientation tag.
        let stored = try ImageDecoder.decode(bytes: tagged, options: DecodeOptions(applyOrientation: false))
        #expect(stored.width == 48 && !stored.metadata.orientationApplied && stored.metadata.orientation == 6)
        let kept = try #require(EXIF.extract(fromJPEG: [UInt8](try ImageEncoder.encode(stored, as: .jpeg).data)))
        #expect(kept == exif)
        // Opting out writes no EXIF.
        let plain = try ImageEncoder.encode(img, as: .jpeg, options: EncodeOptions(copyEXIF: false))
        #expect(EXIF.extract(fromJPEG: [UInt8](plain.data)) == nil)
    }
}

@Suite struct PixelLimitTests {
    /// Headers claiming 50000×50000 are refused from the header alone (the files hold almost no pixel
    /// data, so any attempt to decode would fail as truncated or corrupt instead).
    @Test func hugePNGHeaderIsRefused() throws {
        let png = HandPNG.make(width: 50000, height: 50000, bitDepth: 8, colorType: 2, rows: [[0, 0, 0]])
        let e = try #require(throws: ImageIOError.self) { try ImageDecoder.decode(bytes: png, name: "bomb.png") }
        #expect(e.code == .tooManyPixels)
        #expect(e.description.contains("bomb.png") && e.message.contains("50000×50000"))
    }

    @Test func hugeJPEGHeaderIsRefused() throws {
        var jpeg = [UInt8](try ImageEncoder.encode(Fixtures.smooth(16, 16, .rgb), as: .jpeg).data)
        let sof = try #require(jpeg.indices.first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        // SOF0: FF C0, length(2), precision(1), height(2), width(2)
        jpeg[sof + 5] = 0xC3; jpeg[sof + 6] = 0x50; jpeg[sof + 7] = 0xC3; jpeg[sof + 8] = 0x50
        let e = try #require(throws: ImageIOError.self) { try ImageDecoder.decode(bytes: jpeg) }
        #expect(e.code == .tooManyPixels)
        #expect(e.message.contains("50000×50000"))
    }

    @Test func hugeWebPHeaderIsRefused() throws {
        var webp = [UInt8](try ImageEncoder.encode(Fixtures.smooth(16, 16, .rgb), as: .webp,
                                                   options: EncodeOptions(webpLossless: true)).data)
        let at = try #require(webp.indices.first { webp[$0..<min($0 + 4, webp.count)].elementsEqual(Array("VP8L".utf8)) })
        // VP8L: signature 0x2F, then 14 bits width-1, 14 bits height-1 (little-endian bit order).
        #expect(webp[at + 8] == 0x2F)
        webp[at + 9] = 0xFF; webp[at + 10] = 0xFF; webp[at + 11] = 0xFF; webp[at + 12] |= 0x0F
        let e = try #require(throws: ImageIOError.self) { try ImageDecoder.decode(bytes: webp) }
        #expect(e.code == .tooManyPixels)
        #expect(e.message.contains("16384×16384"))
    }

    @Test func limitIsConfigurable() throws {
        let png = try ImageEncoder.encode(Fixtures.noise(40, 30, .rgb, depth: 8), as: .png).data
        let e = try #require(throws: ImageIOError.self) {
            try ImageDecoder.decode(data: png, options: DecodeOptions(maxPixels: 1199))
        }
        #expect(e.code == .tooManyPixels)
        #expect(try ImageDecoder.decode(data: png, options: DecodeOptions(maxPixels: 1200)).pixelCount == 1200)
    }
}

@Suite struct InfoTests {
    /// The header-only reader agrees with the full decoder for every format.
    @Test func infoMatchesDecode() throws {
        let cases: [(Image, ImageFormat)] = [
            (Fixtures.noise(21, 13, .grayAlpha, depth: 16), .png),
            (Fixtures.smooth(30, 17, .gray), .jpeg),
            (Fixtures.smooth(30, 17, .rgba), .webp),
        ]
        for (img, f) in cases {
            let bytes = [UInt8](try ImageEncoder.encode(img, as: f).data)
            let info = try ImageDecoder.info(bytes: bytes)
            let full = try ImageDecoder.decode(bytes: bytes)
            #expect(info == ImageInfo(format: f, width: full.width, height: full.height, layout: full.layout, bitDepth: full.bitDepth))
        }
        let jpeg = [UInt8](try ImageEncoder.encode(Fixtures.smooth(30, 17, .rgb), as: .jpeg).data)
        let rotated = try #require(EXIF.inserting(EXIF.minimal(orientation: 8), intoJPEG: jpeg))
        let info = try ImageDecoder.info(bytes: rotated)
        #expect(info.width == 17 && info.height == 30)
        #expect(throws: ImageIOError.self) { try ImageDecoder.info(bytes: Array("text".utf8)) }
    }
}
