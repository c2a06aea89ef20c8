import ArgumentParser
import EnhanceKit
import Foundation
import ImageIO
import Models
import Pipeline

/// `enhance detect`: the faces and landmarks RetinaFace finds (GPEN's detect(): scores above the threshold, NMS,
/// images over 1500 px downscaled for detection), per image, as JSON lines or a table, optionally drawn on a copy.
struct Detect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find faces and their five landmarks with RetinaFace (GPEN's detector settings).",
        discussion: """
        Per image: each face's box [x1, y1, x2, y2], score and landmarks (left eye, right eye, nose, left and right \
        mouth corner) in input-image pixels (EXIF orientation applied). --json prints one JSON object per image on \
        stdout; -o DIR also writes <name>_faces.<ext> with the boxes and landmarks drawn. The detector is found as for \
        `enhance restore`: --detector, else RetinaFace-R50, else RetinaFace-mnet025 in the models folder. A file that \
        cannot be read is reported on stderr and the others go on; the exit status is then 1.
        """)

    @Argument(help: "Image files or folders.")
    var inputs: [String] = []

    @Option(help: "RetinaFace weights (file or name; default: RetinaFace-R50, else RetinaFace-mnet025, in the models folder).")
    var detector: String?

    @Option(help: "Keep faces scoring above this (0...1).")
    var threshold: Double = 0.9

    @Option(help: "NMS IoU threshold (0...1).")
    var nms: Double = 0.4

    @Flag(help: "One JSON object per image on stdout: {\"input\", \"width\", \"height\", \"faces\": [{\"box\", \"score\", \"landmarks\"}]}.")
    var json = false

    @Option(name: [.customShort("o"), .long], help: "Also write a copy of each image with boxes and landmarks drawn into this folder.")
    var output: String?

    @Flag(help: "Descend into sub-folders (and mirror the tree under -o).")
    var recursive = false

    @Flag(help: "Print only failures (and the JSON with --json).")
    var quiet = false

    @OptionGroup var engine: EngineOptions
    @OptionGroup var models: ModelsDirectoryOption

    func validate() throws {
        try engine.requireOneDevice("detect")
        if inputs.isEmpty { throw ValidationError("give at least one input file or folder") }
        if engine.cudaGraph { throw ValidationError("--cuda-graph: RetinaFace decodes on the host and its input size follows the photo, so detect runs eagerly") }
        if !(0...1).contains(threshold) { throw ValidationError("--threshold must be in 0...1, got \(threshold)") }
        if !(0...1).contains(nms) { throw ValidationError("--nms must be in 0...1, got \(nms)") }
    }

    func fail(_ message: String) { FileHandle.standardError.write(Data("enhance detect: \(message)\n".utf8)) }

    func run() async throws {
        let plan: BatchPlan
        let detector: RetinaFaceDetector
        do {
            var b = BatchOptions()
            b.outputDirectory = output
            b.recursive = recursive
            b.suffix = "_faces"
            b.skipExisting = false
            b.overwrite = true
            plan = try BatchPlan.make(inputs: inputs, options: b)
            var o = RetinaFaceDetectOptions()
            o.confidenceThreshold = Float(threshold)
            o.nmsThreshold = Float(nms)
            let url: URL
            (detector, url) = try models.factory.detector(self.detector, backend: engine.makeBackend(), options: o)
            if !quiet && !json {
                FileHandle.standardError.write(Data("detector: RetinaFace \(detector.net.configuration.backbone.rawValue) from \(url.lastPathComponent)\n".utf8))
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            fail("\(error)")
            throw ExitCode(2)
        }
        var failed = 0
        for r in plan.rejected {
            fail("\(r.input): \(r.reason)")
        }
        for item in plan.items {
            do {
                let image = try ImageDecoder.decode(fileAt: URL(fileURLWithPath: item.input))
                let report = try FaceReport(input: item.input, image: image, detector: detector)
                print(json ? report.json : report.table)
                if output != nil { try write(report.annotated(image), item: item) }
            } catch {
                failed += 1
                fail("\(item.input): \(error)")
            }
        }
        if failed > 0 { throw ExitCode(1) }
    }

    /// Encodes into a temporary file beside the output and renames it over the output (never a partial file).
    func write(_ image: Image, item: BatchItem) throws {
        try FileManager.default.createDirectory(atPath: item.outputDirectory, withIntermediateDirectories: true)
        let fmt = ImageFormat(rawValue: item.outputFormat.rawValue) ?? .png
        let tmp = item.temporaryPath(pid: ProcessInfo.processInfo.processIdentifier)
        do {
            try ImageEncoder.encode(image, as: fmt).data.write(to: URL(fileURLWithPath: tmp))
            guard rename(tmp, item.output) == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: item.output]) }
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
    }
}
