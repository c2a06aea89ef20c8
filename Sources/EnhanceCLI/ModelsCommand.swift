import ArgumentParser
import EnhanceKit
import Foundation
import Pipeline

/// `enhance models`: the models the tool knows, which are installed, and fetching them.
struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List, fetch and verify model weights (the official files, into the models folder).",
        discussion: """
        The models folder is --models-dir, else $ENHANCE_MODELS_DIR, else $XDG_CACHE_HOME/enhance/models, else \
        ~/.cache/enhance/models. Downloads go to <file>.part, resume with an HTTP Range request when interrupted, are \
        checked against the published sha256 (GPEN's authors publish none: the computed one is printed) and are renamed \
        into place only when complete.
        """,
        subcommands: [List.self, Fetch.self, Verify.self])

    struct Folder: ParsableArguments {
        @Option(help: "Models folder (default: $ENHANCE_MODELS_DIR, else $XDG_CACHE_HOME/enhance/models, else ~/.cache/enhance/models).")
        var modelsDir: String?

        var store: ModelStore { ModelStore(path: modelsDir) }
    }

    static func fail(_ s: String) { FileHandle.standardError.write(Data("enhance models: \(s)\n".utf8)) }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every known model, whether it is installed and where.")
        @OptionGroup var folder: Folder
        @Flag(help: "Print JSON: {\"models_dir\", \"models\": [{\"name\", \"kind\", \"architecture\", \"file\", \"urls\", \"sha256\", \"license\", \"installed\", \"path\", \"bytes\"}]}.")
        var json = false

        func run() throws {
            let store = folder.store
            let rows = store.list()
            if json {
                let models: [[String: Any]] = rows.map { r in
                    var o: [String: Any] = ["name": r.entry.name, "kind": r.entry.kind.rawValue, "architecture": r.entry.architecture,
                                            "file": r.entry.fileName, "urls": r.entry.urls, "license": r.entry.license,
                                            "installed": r.path != nil]
                    o["sha256"] = r.entry.sha256 ?? NSNull()
                    o["path"] = r.path ?? NSNull()
                    o["bytes"] = r.bytes ?? NSNull()
                    o["note"] = r.entry.note ?? NSNull()
                    return o
                }
                let data = try JSONSerialization.data(withJSONObject: ["models_dir": store.directory.path, "models": models],
                                                      options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print("models folder: \(store.directory.path)")
            for r in rows {
                let state = r.path != nil ? String(format: "installed (%.1f MB)", Double(r.bytes ?? 0) / 1e6)
                    : r.entry.urls.isEmpty ? "not installed; no published URL" : "not installed"
                print(r.entry.name.padding(toLength: 28, withPad: " ", startingAt: 0)
                      + r.entry.kind.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0) + state)
            }
        }
    }

    struct Fetch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download models by name (or all), or a file by URL and sha256.",
            discussion: "Examples: `enhance models fetch GPEN-BFR-512 RetinaFace-R50 ParseNet-latest`, `enhance models fetch all`, `enhance models fetch --url https://host/w.pth --sha256 HEX --name w.pth`.")
        @Argument(help: "Model names (see `enhance models list`), or all.")
        var names: [String] = []
        @OptionGroup var folder: Folder
        @Option(help: "Fetch from this host instead of the official one (the file name is appended; default $ENHANCE_MODELS_MIRROR).")
        var mirror: String?
        @Option(help: "Fetch this URL instead of a known model (needs --sha256).")
        var url: String?
        @Option(help: "Expected sha256 of --url's file.")
        var sha256: String?
        @Option(help: "File name for --url's file (default: the URL's last path component).")
        var name: String?
        @Option(help: "Seconds without data before a transfer is abandoned.")
        var timeout: Int = 60

        func validate() throws {
            if url == nil && names.isEmpty { throw ValidationError("give model names, all, or --url URL --sha256 HEX") }
            if url != nil && !names.isEmpty { throw ValidationError("give either model names or --url, not both") }
            if url != nil && sha256 == nil { throw ValidationError("--url needs --sha256 HEX (the file's expected checksum)") }
            if url == nil && (sha256 != nil || name != nil) { throw ValidationError("--sha256 and --name go with --url") }
            if timeout < 1 { throw ValidationError("--timeout must be at least 1 second") }
        }

        func run() async throws {
            let env = ProcessInfo.processInfo.environment
            let fetcher = ModelFetcher(store: folder.store, mirror: mirror ?? env["ENHANCE_MODELS_MIRROR"], readTimeout: Int64(timeout))
            let bar = ProgressBar()
            if let url {
                let file = name ?? URL(string: url)?.lastPathComponent ?? ""
                do {
                    let r = try await fetcher.fetch(url: url, sha256: sha256, fileName: file, progress: bar.callback(file))
                    bar.finish()
                    print("\(file): \(r.url.path) (sha256 \(r.sha256), verified)")
                } catch {
                    bar.finish()
                    ModelsCommand.fail("\(file): \(error)")
                    throw ExitCode(1)
                }
                return
            }
            var entries: [ModelEntry] = []
            for n in names {
                if n.lowercased() == "all" { entries += ModelCatalog.all.filter { !$0.urls.isEmpty }; continue }
                guard let e = ModelCatalog.entry(named: n) else {
                    ModelsCommand.fail("unknown model '\(n)'; known: \(ModelCatalog.all.map(\.name).joined(separator: ", "))")
                    throw ExitCode(2)
                }
                entries.append(e)
            }
            var failed = 0
            for e in entries where !entries.prefix(while: { $0.name != e.name }).contains(where: { $0.name == e.name }) {
                do {
                    let r = try await fetcher.fetch(e, progress: bar.callback(e.name))
                    bar.finish()
                    let how = r.downloaded == 0 && r.resumedFrom == 0 ? "already installed" : r.resumedFrom > 0 ? "resumed at \(r.resumedFrom) bytes" : "downloaded"
                    let check = r.verified ? "sha256 verified" : "no published sha256; sha256 \(r.sha256)"
                    print("\(e.name): \(r.url.path) (\(how), \(check))")
                } catch {
                    bar.finish()
                    failed += 1
                    ModelsCommand.fail("\(e.name): \(error)")
                }
            }
            if failed > 0 { throw ExitCode(1) }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recheck the sha256 of every installed model.")
        @OptionGroup var folder: Folder

        func run() throws {
            let store = folder.store
            var bad = 0, seen = 0
            for r in store.list() {
                guard let path = r.path else { continue }
                seen += 1
                let sum = try ModelFetcher.sha256(of: URL(fileURLWithPath: path))
                if let want = r.entry.sha256 {
                    if sum == want { print("\(r.entry.name): ok (\(path))") }
                    else { bad += 1; print("\(r.entry.name): MISMATCH \(path): sha256 \(sum), expected \(want)") }
                } else {
                    print("\(r.entry.name): no published sha256 (\(path): \(sum))")
                }
            }
            if seen == 0 { print("no models installed in \(store.directory.path)") }
            if bad > 0 { throw ExitCode(1) }
        }
    }
}

/// A one-line progress bar on stderr when it is a terminal; silent otherwise.
final class ProgressBar: @unchecked Sendable {
    private let enabled = isatty(2) != 0
    private let lock = NSLock()
    private var shown = false
    private var start = ContinuousClock.now

    func callback(_ label: String) -> ModelFetcher.Progress? {
        guard enabled else { return nil }
        lock.withLock { start = ContinuousClock.now }
        return { [self] done, total in
            lock.withLock {
                let secs = max(1e-3, secondsSince(start))
                var line = String(format: "\r%@ %.1f", label, Double(done) / 1e6)
                if let total, total > 0 {
                    let f = min(1, Double(done) / Double(total))
                    let bar = String(repeating: "#", count: Int(f * 30)) + String(repeating: ".", count: 30 - Int(f * 30))
                    line += String(format: "/%.1f MB [%@] %3.0f%%", Double(total) / 1e6, bar, f * 100)
                } else {
                    line += " MB"
                }
                line += String(format: " %.1f MB/s", Double(done) / 1e6 / secs)
                FileHandle.standardError.write(Data(line.utf8))
                shown = true
            }
        }
    }

    func finish() {
        lock.withLock { if shown { FileHandle.standardError.write(Data("\n".utf8)); shown = false } }
    }
}
