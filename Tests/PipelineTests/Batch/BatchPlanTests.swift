import Foundation
import Testing

@testable import Pipeline

@Suite struct BatchSniffTests {
    @Test func recognisesFormatsByContent() throws {
        #expect(sniffImageFormat(makePNG(width: 1, height: 1)) == .png)
        #expect(sniffImageFormat(makeJPEGBlob()) == .jpeg)
        #expect(sniffImageFormat(makeWebPBlob()) == .webp)
        #expect(sniffImageFormat(Array("RIFF\u{0}\u{0}\u{0}\u{0}WAVE".utf8)) == nil)
        #expect(sniffImageFormat(Array("hello world!".utf8)) == nil)
        #expect(sniffImageFormat([0x89, 0x50]) == nil)
        #expect(sniffImageFormat([UInt8]()) == nil)
        let t = try TempFolder()
        defer { t.remove() }
        try t.write("x.txt", makeJPEGBlob())  // name says text, content says JPEG
        #expect(sniffImageFormat(atPath: t.url("x.txt")) == .jpeg)
        #expect(sniffImageFormat(atPath: t.url("missing")) == nil)
    }

    @Test func handBuiltPNGHasValidChunkCRCs() {
        let png = makePNG(width: 4, height: 3, seed: 9)
        // IHDR CRC covers type + 13 data bytes.
        #expect(be32(crc32(Array(png[12..<29]))) == Array(png[29..<33]))
        #expect(crc32(Array("123456789".utf8)) == 0xCBF4_3926)  // the standard CRC-32 check value
    }
}

@Suite struct BatchPlanTests {
    @Test func recursivePlanMirrorsTreeInSortedOrder() throws {
        let t = try TempFolder()
        defer { t.remove() }
        try makeTree(t)
        var o = options(out: t.url("out"))
        o.suffix = "_x"
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
        #expect(plan.items.map(\.relativePath) == [
            "a.png", "b.jpg", "other/f.png", "other/g.bin", "sub/c.png", "sub/corrupt.png", "sub/deeper/d.webp",
            "sub/e.jpeg",
        ])
        #expect(plan.rejected.map(\.relativePath) == ["notes.txt"])
        #expect(plan.totalCandidates == 9)
        let outputs = Dictionary(uniqueKeysWithValues: plan.items.map { ($0.relativePath, $0.output) })
        #expect(outputs["a.png"] == t.url("out/a_x.png"))
        #expect(outputs["b.jpg"] == t.url("out/b_x.jpg"))
        #expect(outputs["sub/deeper/d.webp"] == t.url("out/sub/deeper/d_x.webp"))
        #expect(outputs["sub/e.jpeg"] == t.url("out/sub/e_x.jpeg"))  // auto keeps the input's spelling
        #expect(outputs["other/g.bin"] == t.url("out/other/g_x.png"))  // auto: extension from content
        #expect(plan.items.map(\.position) == plan.items.map(\.position).sorted())
    }

    @Test func nonRecursiveTakesTopLevelOnly() throws {
        let t = try TempFolder()
        defer { t.remove() }
        try makeTree(t)
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: options(out: t.url("out"), recursive: false))
        #expect(plan.items.map(\.relativePath) == ["a.png", "b.jpg"])
        #expect(plan.rejected.map(\.relativePath) == ["notes.txt"])
    }

    @Test func fixedExtensionAndFileInputs() throws {
        let t = try TempFolder()
        defer { t.remove() }
        try makeTree(t)
        var o = options(out: t.url("out"))
        o.outputExtension = .webp
        let plan = try BatchPlan.make(inputs: [t.url("in/sub/c.png"), t.url("in/b.jpg")], options: o)
        // File inputs keep argument order and land directly in the output folder.
        #expect(plan.items.map(\.output) == [t.url("out/c.webp"), t.url("out/b.webp")])
        #expect(plan.items.allSatisfy { $0.outputFormat == .webp })
        #expect(plan.items.map(\.format) == [.png, .jpeg])
    }

    @Test func refusesOutputEqualToInput() throws {
        let t = try TempFolder()
        defer { t.remove() }
        try t.write("in/a.png", makePNG(width: 1, height: 1))
        var o = BatchOptions()  // next to the input, no suffix, same format → the input itself
        o.progress = .quiet
        #expect(throws: BatchError.outputIsInput(input: t.url("in/a.png"), output: t.url("in/a.png"))) {
            try BatchPlan.make(inputs: [t.url("in/a.png")], options: o)
        }
        o.outputDirectory = t.url("in")
        #expect(throws: BatchError.self) { try BatchPlan.make(inputs: [t.url("in")], options: o) }
        o.suffix = "_up"
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
        #expect(plan.items.map(\.output) == [t.url("in/a_up.png")])
    }

    @Test func refusesOutputCollision() throws {
        let t = try TempFolder()
        defer { t.remove() }
        try t.write("in/a.png", makePNG(width: 1, height: 1))
        try t.write("in/a.jpg", makeJPEGBlob())
        var o = options(out: t.url("out"))
        o.outputExtension = .png
        do {
            _ = try BatchPlan.make(inputs: [t.url("in")], options: o)
            Issue.record("expected a collision")
        } catch {
            guard case .outputCollision(let output, _, _) = error else { Issue.record("wrong error \(error)"); return }
            #expect(output == t.url("out/a.png"))
            #expect(error.description.contains("a.jpg") && error.description.contains("a.png"))
        }
    }

    @Test func previousOutputsInsideTheInputFolderAreNotInputs() throws {
        let t = try TempFolder()
        defer { t.remove() }
        try t.write("in/a.png", makePNG(width: 1, height: 1))
        try t.write("in/a_up.png", makePNG(width: 1, height: 1))  // result of an earlier run
        try t.write("in/results/z.png", makePNG(width: 1, height: 1))  // earlier run's output folder
        var o = options(out: t.url("in"))
        o.suffix = "_up"
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
        #expect(plan.items.map(\.relativePath) == ["a.png", "results/z.png"])
        o.outputDirectory = t.url("in/results")
        let plan2 = try BatchPlan.make(inputs: [t.url("in")], options: o)
        #expect(plan2.items.map(\.relativePath) == ["a.png", "a_up.png"])  // the output folder is not listed
    }

    @Test func missingInputAndBadOptionsAreTypedErrors() throws {
        #expect(throws: BatchError.inputNotFound(path: "/nonexistent/enhance-x")) {
            try BatchPlan.make(inputs: ["/nonexistent/enhance-x"], options: BatchOptions())
        }
        var o = BatchOptions()
        o.jobs = 0
        #expect(throws: BatchError.invalidOption(name: "--jobs", reason: "must be at least 1, got 0")) {
            try o.validate()
        }
        o.jobs = 1
        o.maxMemory = 0
        #expect(throws: BatchError.self) { try o.validate() }
        o.maxMemory = nil
        o.suffix = "a/b"
        #expect(throws: BatchError.self) { try o.validate() }
    }

    @Test func memorySizes() throws {
        #expect(try ByteSize.parse("12G") == 12 << 30)
        #expect(try ByteSize.parse("12 GiB") == 12 << 30)
        #expect(try ByteSize.parse("512m") == 512 << 20)
        #expect(try ByteSize.parse("1.5GiB") == 3 << 29)
        #expect(try ByteSize.parse("800000") == 800_000)
        #expect(try ByteSize.parse("64KB") == 65536)
        for bad in ["", "G", "-1G", "0", "12X", "1e400", "abc", "twelve", "1e30", "0.5"] {
            #expect(throws: ByteSizeError.self, "\(bad)") { try ByteSize.parse(bad) }
        }
        #expect(ByteSize.format(3 << 29) == "1.50 GiB")
        #expect(ByteSize.format(730 << 20) == "730 MiB")
    }

    @Test func temporaryNamePattern() {
        let name = BatchTemporaryFiles.name(for: "a_x.png", pid: 4242)
        #expect(name == ".a_x.png.enhance-tmp-4242")
        #expect(BatchTemporaryFiles.outputName(ofTemporary: name) == "a_x.png")
        #expect(BatchTemporaryFiles.outputName(ofTemporary: "a_x.png.enhance-tmp-1") == nil)  // no leading dot
        #expect(BatchTemporaryFiles.outputName(ofTemporary: ".a.png.enhance-tmp-") == nil)
        #expect(BatchTemporaryFiles.outputName(ofTemporary: ".a.png.enhance-tmp-12x") == nil)
        #expect(BatchTemporaryFiles.outputName(ofTemporary: ".hidden.png") == nil)
    }
}
