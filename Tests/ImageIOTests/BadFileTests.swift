import Foundation
import Testing
@testable import ImageIO

@Suite struct BadFileTests {
    static func sample(_ f: ImageFormat) throws -> [UInt8] {
        let img = Fixtures.smooth(64, 48, .rgb)
        let opts = EncodeOptions(webpLossless: false)
        return [UInt8](try ImageEncoder.encode(img, as: f, options: opts).data)
    }

    /// Writes bytes to a file and decodes it from disk, returning the error.
    static func decodeError(_ bytes: [UInt8], name: String, options: DecodeOptions = DecodeOptions()) throws -> ImageIOError {
        let dir = Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        let e = try #require(throws: ImageIOError.self) { try ImageDecoder.decode(fileAt: url, options: options) }
        #expect(e.path == url.path, "error names the file")
        #expect(e.description.hasPrefix(url.path))
        return e
    }

    @Test(arguments: ["empty.png", "empty.jpg", "empty.webp"])
    func emptyFile(name: String) throws {
        let e = try Self.decodeError([], name: name)
        #expect(e.code == .empty)
        #expect(e.message.contains("empty"))
    }

    @Test(arguments: ImageFormat.allCases)
    func truncatedFile(format: ImageFormat) throws {
        let full = try Self.sample(format)
        for keep in [full.count / 2, full.count - 7] {
            let e = try Self.decodeError(Array(full.prefix(keep)), name: "cut.\(format.fileExtension)")
            #expect(e.code == .truncated, "\(format) cut to \(keep) of \(full.count): \(e)")
        }
        // Cut inside the header: still no crash, still a truncation error.
        let e = try Self.decodeError(Array(full.prefix(20)), name: "head.\(format.fileExtension)")
        #expect(e.code == .truncated, "\(format) cut to 20 bytes: \(e)")
    }

    @Test func corruptPNG() throws {
        var png = try Self.sample(.png)
        png[20] ^= 0xFF  // inside IHDR: its CRC no longer matches
        let e = try Self.decodeError(png, name: "bad.png")
        #expect(e.code == .corrupt)
        #expect(e.message.lowercased().contains("crc"))
    }

    @Test func corruptJPEG() throws {
        var jpeg = try Self.sample(.jpeg)
        let sof = try #require(jpeg.indices.first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        jpeg[sof + 4] = 3  // sample precision 3 bits: invalid
        let e = try Self.decodeError(jpeg, name: "bad.jpg")
        #expect(e.code == .corrupt)
        var noTables = try Self.sample(.jpeg)
        let dqt = try #require(noTables.indices.first { noTables[$0] == 0xFF && noTables[$0 + 1] == 0xDB })
        noTables[dqt + 1] = 0xFE  // the quantisation table becomes a COM segment: frames reference a missing table
        #expect(try Self.decodeError(noTables, name: "bad2.jpg").code == .corrupt)
    }

    @Test func corruptWebP() throws {
        var webp = try Self.sample(.webp)
        for i in 40..<webp.count { webp[i] = UInt8(truncatingIfNeeded: i &* 37) }
        let e = try Self.decodeError(webp, name: "bad.webp")
        #expect(e.code == .corrupt)
    }

    @Test func randomBytesAreNotAnImage() throws {
        var rng = TestRNG(99)
        let junk = (0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let e = try Self.decodeError(junk, name: "photo.jpg")
        #expect(e.code == .notAnImage)
        #expect(e.message == "not an image (PNG, JPEG or WebP expected)")
        let text = try Self.decodeError(Array("hello, world\n".utf8), name: "notes.png")
        #expect(text.code == .notAnImage)
    }

    /// PNG bytes named .jpg decode by content; a strict check reports the mislabelling.
    @Test func mislabelledFile() throws {
        let img = Fixtures.noise(10, 6, .rgba, depth: 8)
        let png = try ImageEncoder.encode(img, as: .png).data
        let dir = Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("really-a-png.jpg")
        try png.write(to: url)
        #expect(ImageFormat.sniff(fileAt: url) == .png)
        let back = try ImageDecoder.decode(fileAt: url)
        #expect(back.storage == img.storage)
        #expect(back.metadata.sourceFormat == .png)
        #expect(back.metadata.notes.contains { $0.contains("mislabelled") })
        let e = try #require(throws: ImageIOError.self) {
            try ImageDecoder.decode(fileAt: url, options: DecodeOptions(strictExtension: true))
        }
        #expect(e.code == .mislabelled)
        #expect(e.description == "\(url.path): named .jpg but contains PNG data")
    }

    @Test func missingFileAndDirectory() throws {
        let dir = Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("nope.png")
        let e = try #require(throws: ImageIOError.self) { try ImageDecoder.decode(fileAt: missing) }
        #expect(e.code == .io && e.path == missing.path)
        let e2 = try #require(throws: ImageIOError.self) { try ImageDecoder.decode(fileAt: dir) }
        #expect(e2.code == .io)
    }

    @Test func sniffUsesMagicBytes() {
        #expect(ImageFormat.sniff([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0]) == .png)
        #expect(ImageFormat.sniff([0xFF, 0xD8, 0xFF, 0xE0]) == .jpeg)
        #expect(ImageFormat.sniff(Array("RIFF\u{0}\u{0}\u{0}\u{0}WEBPVP8 ".utf8)) == .webp)
        #expect(ImageFormat.sniff(Array("RIFF\u{0}\u{0}\u{0}\u{0}WAVEfmt ".utf8)) == nil)
        #expect(ImageFormat.sniff([0xFF, 0xD8]) == nil)
        #expect(ImageFormat(fileExtension: "JPEG") == .jpeg && ImageFormat(fileExtension: "tif") == nil)
    }
}

@Suite struct WriteTests {
    @Test func atomicWriteLeavesNoTemporaryFiles() throws {
        let dir = Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let img = Fixtures.noise(12, 8, .gray, depth: 16)
        for f in ImageFormat.allCases {
            let url = dir.appendingPathComponent("out.\(f.fileExtension)")
            try ImageEncoder.write(img, to: url)
            #expect(ImageFormat.sniff(fileAt: url) == f)
            // overwrite in place
            try ImageEncoder.write(img, to: url)
        }
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)) == ["out.png", "out.jpg", "out.webp"])
        #expect(try ImageDecoder.decode(fileAt: dir.appendingPathComponent("out.png")).storage == img.storage)
    }

    @Test func failedWriteLeavesExistingFileUntouched() throws {
        let dir = Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("keep.jpg")
        let original = Data("original contents".utf8)
        try original.write(to: url)
        let img = Fixtures.smooth(8, 8, .rgb)
        // Encoding fails (quality out of range): nothing is written.
        let e = try #require(throws: ImageIOError.self) {
            try ImageEncoder.write(img, to: url, options: EncodeOptions(jpegQuality: 0))
        }
        #expect(e.code == .invalidArgument && e.path == url.path)
        #expect(try Data(contentsOf: url) == original)
        // The final rename fails (the target is a non-empty directory): the temporary file is removed.
        let blocker = dir.appendingPathComponent("taken.png")
        try FileManager.default.createDirectory(at: blocker, withIntermediateDirectories: false)
        try original.write(to: blocker.appendingPathComponent("inside"))
        let e2 = try #require(throws: ImageIOError.self) { try ImageEncoder.write(img, to: blocker) }
        #expect(e2.code == .io)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)) == ["keep.jpg", "taken.png"])
        #expect(try Data(contentsOf: blocker.appendingPathComponent("inside")) == original)
        // Unknown extension without an explicit format.
        #expect(throws: ImageIOError.self) { try ImageEncoder.write(img, to: dir.appendingPathComponent("x.tiff")) }
    }

    @Test func writeReportsConversions() throws {
        let dir = Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let notes = try ImageEncoder.write(Fixtures.noise(8, 8, .rgba, depth: 16), to: dir.appendingPathComponent("a.jpg"))
        #expect(Set(notes.map(\.kind)) == [.alphaDropped, .bitDepthReduced])
        let kept = try ImageEncoder.write(Fixtures.noise(8, 8, .rgba, depth: 16), to: dir.appendingPathComponent("a.bin"), format: .png)
        #expect(kept.isEmpty)
    }
}

@Suite struct RealPhotoTests {
    static func asset(_ name: String) -> URL? {
        let u = Fixtures.assets.appendingPathComponent(name)
        return FileManager.default.fileExists(atPath: u.path) ? u : nil
    }

    @Test(.enabled(if: asset("astronaut.png") != nil, "needs .cache/assets/astronaut.png (scripts/setup)"))
    func astronautPNG() throws {
        let img = try ImageDecoder.decode(fileAt: Self.asset("astronaut.png")!)
        #expect(img.width == 512 && img.height == 512)
        #expect(img.layout == .rgb && img.bitDepth == 8)
        let re = try ImageDecoder.decode(data: try ImageEncoder.encode(img, as: .png).data)
        #expect(re.storage == img.storage)
    }

    @Test(.enabled(if: asset("t1.jpg") != nil, "needs .cache/assets/t1.jpg (scripts/setup)"))
    func t1JPEG() throws {
        let img = try ImageDecoder.decode(fileAt: Self.asset("t1.jpg")!)
        #expect(img.width > 0 && img.height > 0)
        #expect(img.layout == .rgb || img.layout == .gray)
        #expect(img.metadata.sourceFormat == .jpeg)
        let rgb = img.toRGB8()
        #expect(rgb.count == img.pixelCount * 3)
        #expect(Set(rgb.prefix(30_000)).count > 32, "a real photo has many distinct values")
    }
}

@Suite struct NeverCrashTests {
    /// Random byte flips and cuts of valid files either decode or throw `ImageIOError`; nothing else.
    @Test(arguments: ImageFormat.allCases)
    func mutatedFilesNeverCrash(format: ImageFormat) throws {
        let img = Fixtures.smooth(40, 24, .rgba)
        let good = [UInt8](try ImageEncoder.encode(img, as: format, options: EncodeOptions(webpLossless: true)).data)
        var rng = TestRNG(UInt64(format.rawValue.count) &+ 17)
        var decoded = 0, refused = 0
        for _ in 0..<150 {
            var bad = good
            for _ in 0..<Int(1 + rng.next() % 4) {
                let i = Int(rng.next() % UInt64(bad.count))
                bad[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            if rng.next() % 4 == 0 { bad = Array(bad.prefix(Int(rng.next() % UInt64(bad.count)))) }
            do {
                let out = try ImageDecoder.decode(bytes: bad, name: "fuzz.\(format.fileExtension)")
                #expect(out.storage.count == out.width * out.height * out.channels)
                decoded += 1
            } catch is ImageIOError {
                refused += 1
            }
        }
        #expect(decoded + refused == 150)
        #expect(refused > 0, "some mutations must be detected")
    }
}

@Suite struct AnimatedWebPTests {
    func le24(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF)] }
    func le32(_ v: Int) -> [UInt8] { le24(v) + [UInt8(v >> 24 & 0xFF)] }

    func chunk(_ fourcc: String, _ payload: [UInt8]) -> [UInt8] {
        Array(fourcc.utf8) + le32(payload.count) + payload + (payload.count % 2 == 1 ? [0] : [])
    }

    /// An animated WebP (VP8X + ANIM + one ANMF frame) is refused as unsupported, not misread.
    @Test func animatedWebPIsUnsupported() throws {
        let still = [UInt8](try ImageEncoder.encode(Fixtures.smooth(8, 8, .rgb), as: .webp,
                                                    options: EncodeOptions(webpLossless: true)).data)
        let frameData = Array(still[12...])  // the VP8L chunk of a simple file
        let vp8x = chunk("VP8X", [0x02, 0, 0, 0] + le24(7) + le24(7))
        let anim = chunk("ANIM", [0, 0, 0, 0, 0, 0])
        let anmf = chunk("ANMF", le24(0) + le24(0) + le24(7) + le24(7) + le24(100) + [0] + frameData)
        let body = Array("WEBP".utf8) + vp8x + anim + anmf
        let file = Array("RIFF".utf8) + le32(body.count) + body
        let e = try #require(throws: ImageIOError.self) { try ImageDecoder.decode(bytes: file, name: "anim.webp") }
        #expect(e.code == .unsupported)
        #expect(e.description == "anim.webp: animated WebP is not supported (extract a frame first)")
    }
}
