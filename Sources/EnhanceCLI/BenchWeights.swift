import ArgumentParser
import Bench
import Foundation

/// `enhance bench weights DIR`: the synthetic stand-ins the bench uses when official weights are absent.
struct BenchWeights: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights",
        abstract: "Write synthetic weights of the released architectures (GPEN-BFR-512, RetinaFace-R50, ParseNet-latest, RealESRGAN_x2plus …) into a folder.",
        discussion: """
        The files the bench substitutes for official weights it cannot find: real safetensors files with the \
        released shapes and seeded values, so every command, `enhance serve` included, runs the full pipeline at \
        the real cost. Timing and memory are valid, images meaningless (GPEN restores nothing; the x2plus stand-in \
        is a soft ×2 upscale). Files already there are kept.
        """)

    @Argument(help: "Folder to write into (created if missing).")
    var directory: String

    @Option(help: "Comma-separated names (default: every stand-in the bench knows).")
    var names: String?

    func run() throws {
        let wanted = names.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? SyntheticWeights.defaultNames
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let written = try SyntheticWeights.ensure(wanted, in: URL(fileURLWithPath: directory))
            for (name, path) in written.sorted(by: { $0.key < $1.key }) { print("\(name): \(path)") }
        } catch {
            FileHandle.standardError.write(Data("enhance bench weights: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}
