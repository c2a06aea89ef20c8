import AsyncHTTPClient
import Checkpoint
import EnhanceServer
import Foundation
import ImageIO
import Models
import NIOCore
import Pipeline
import TestSupport

/// A folder with tiny synthetic GPEN / RetinaFace / ParseNet weights (real safetensors files read by the real
/// loaders) under model names, and two small photos.
struct ServeWorkspace {
    let dir: URL
    var models: URL { dir.appendingPathComponent("models") }
    var photo: URL { dir.appendingPathComponent("photo.png") }
    var photoJPEG: URL { dir.appendingPathComponent("photo.jpg") }

    static let gpenConfig = GPENConfiguration(size: 32, styleDim: 16, nMLP: 2, channelMultiplier: 1, narrow: 0.03125)
    static let parseConfig = ParseNetConfiguration(baseCh: 4, parsingCh: 19, resDepth: 1, downSteps: 4, upSteps: 4,
                                                   normType: "bn", reluType: "LeakyReLU", chRange: [4, 16])

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID().uuidString)")
        let fm = FileManager.default
        try fm.createDirectory(at: dir.appendingPathComponent("models"), withIntermediateDirectories: true)
        try Data(SyntheticCheckpoint.safetensors(SyntheticCheckpoint.gpen(Self.gpenConfig))).write(to: models.appendingPathComponent("gpen-tiny.safetensors"))
        try Data(SyntheticCheckpoint.safetensors(SyntheticCheckpoint.retinaFace(RetinaFaceConfiguration(backbone: .mobilenet025, outChannel: 64))))
            .write(to: models.appendingPathComponent("retina-tiny.safetensors"))
        try Data(SyntheticCheckpoint.safetensors(SyntheticCheckpoint.parseNet(Self.parseConfig))).write(to: models.appendingPathComponent("parse-tiny.safetensors"))
        let (w, h) = (64, 48)
        var px = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w {
            px[(y * w + x) * 3] = UInt8(x * 4); px[(y * w + x) * 3 + 1] = UInt8(y * 5); px[(y * w + x) * 3 + 2] = UInt8(((x / 8 + y / 8) % 2) * 200)
        } }
        let img = try Image.rgb8(width: w, height: h, pixels: px)
        try ImageEncoder.write(img, to: photo)
        try ImageEncoder.write(img, to: photoJPEG)
    }

    func remove() { try? FileManager.default.removeItem(at: dir) }

    /// `environment` on the CUDA host emulator (built once by the tests), with the on-disk cubin cache off.
    func emulatorEnvironment() throws -> [String: String] {
        guard case let .success(emulator) = CUDAEmulator.build else { throw TestFailure("the CUDA host emulator did not build") }
        var env = environment
        env["ENHANCE_CUDA_DRIVER"] = emulator.driver
        env["ENHANCE_CUDA_LIBS"] = emulator.folder
        env["ENHANCE_CUBIN_CACHE"] = "off"
        return env
    }

    /// A tiny ×4 SRVGGNetCompact (17 KB) in `models` as realesr-general-x4v3, its first two convolutions' weights
    /// scaled by `first` and `second` (large ones overflow fp16).
    func writeGeneralX4(first: Float = 1, second: Float = 1) throws {
        try OverflowingSRVGG.write(to: models.appendingPathComponent("realesr-general-x4v3.safetensors"), scale: 4, first: first, second: second)
    }

    /// Where the server and the CLI look for weights: the synthetic ones, then the offline assets (real animevideov3).
    var searchPath: [URL] { [models, Repository.assets] }
    var environment: [String: String] { ["ENHANCE_MODELS_DIR": models.path, "ENHANCE_ASSETS": Repository.assets.path] }

    /// The CLI's output for `arguments` on `input` (written into a fresh folder), as bytes.
    func cliOutput(_ command: String, _ input: URL, _ arguments: [String], ext: String) throws -> [UInt8] {
        let out = dir.appendingPathComponent("cli-\(UUID().uuidString)")
        let r = try EnhanceBinary.run([command, input.path, "-o", out.path, "--suffix", "", "--threads", "2"] + arguments,
                                      environment: environment)
        guard r.status == 0 else { throw TestFailure("enhance \(command) failed (\(r.status)): \(r.stderr)") }
        let name = input.deletingPathExtension().lastPathComponent + "." + ext
        return [UInt8](try Data(contentsOf: out.appendingPathComponent(name)))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// An HTTP answer.
struct Reply: Sendable {
    let status: Int
    let headers: [String: String]
    let body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    /// The `error.code` of a JSON error body.
    var errorCode: String? {
        guard let o = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let e = o["error"] as? [String: Any], e["message"] is String else { return nil }
        return e["code"] as? String
    }
}

enum HTTP {
    /// A client that waits as long as a loaded 2-core CI machine may need (the shared client gives up sooner).
    static let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                   configuration: .init(timeout: .init(connect: .seconds(30), read: .seconds(600))))

    static func send(_ url: String, method: String = "GET", body: [UInt8]? = nil, contentType: String? = nil,
                     timeout: TimeAmount = .seconds(600)) async throws -> Reply {
        var req = HTTPClientRequest(url: url)
        req.method = .init(rawValue: method)
        if let contentType { req.headers.add(name: "Content-Type", value: contentType) }
        if let body { req.body = .bytes(ByteBuffer(bytes: body)) }
        let r = try await client.execute(req, timeout: timeout)
        let b = try await r.body.collect(upTo: 256 << 20)
        var h: [String: String] = [:]
        for f in r.headers { h[f.name.lowercased()] = f.value }
        return Reply(status: Int(r.status.code), headers: h, body: Array(b.readableBytesView))
    }

    static func multipart(_ url: String, field: String, file: [UInt8]) async throws -> Reply {
        let boundary = "enhance-test-\(UUID().uuidString)"
        var body = [UInt8]("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n".utf8)
        body += file
        body += [UInt8]("\r\n--\(boundary)--\r\n".utf8)
        return try await send(url, method: "POST", body: body, contentType: "multipart/form-data; boundary=\(boundary)")
    }

    /// The value of an unlabelled metric line `name value` in Prometheus text.
    static func metric(_ text: String, _ name: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ").last ?? "")
        }
        return nil
    }
}

/// An `EnhanceServer` in this process on a free port; `stop()` cancels it.
final class InProcessServer: @unchecked Sendable {
    let server: EnhanceServer
    private var task: Task<Void, any Error>?
    private(set) var port = 0
    var base: String { "http://127.0.0.1:\(port)" }

    init(_ c: ServerConfiguration) async throws {
        var c = c
        c.port = 0
        server = try EnhanceServer(configuration: c)
        let ports = AsyncStream<Int>.makeStream()
        task = Task { [server] in try await server.run(signals: []) { p in ports.continuation.yield(p) } }
        var it = ports.stream.makeAsyncIterator()
        port = await it.next() ?? 0
    }

    func stop() async {
        task?.cancel()
        _ = await task?.result
    }
}

/// `enhance serve` as a child process on a free port (for signals and the process's own memory).
final class ChildServer: @unchecked Sendable {
    let process = Process()
    private(set) var port = 0
    var base: String { "http://127.0.0.1:\(port)" }
    let log: URL

    init(_ arguments: [String], environment: [String: String], logDirectory: URL) throws {
        process.executableURL = EnhanceBinary.url
        process.arguments = ["serve", "--port", "0", "--threads", "2"] + arguments
        var env = ProcessInfo.processInfo.environment
        env["TMPDIR"] = logDirectory.path   // its work folder goes with the test's (stop() kills: nothing is cleaned up)
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe()
        log = logDirectory.appendingPathComponent("serve-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        // the first stdout line names the port
        var line = [UInt8]()
        let h = out.fileHandleForReading
        while true {
            let d = h.readData(ofLength: 1)
            if d.isEmpty { break }
            if d[d.startIndex] == UInt8(ascii: "\n") { break }
            line.append(d[d.startIndex])
        }
        let s = String(decoding: line, as: UTF8.self)
        guard let r = s.range(of: "127.0.0.1:"), let p = Int(s[r.upperBound...].prefix { $0.isNumber }) else {
            process.terminate()
            throw TestFailure("enhance serve did not start: '\(s)' \(String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self))")
        }
        port = p
    }

    /// Peak resident memory of the server so far (VmHWM), bytes.
    var peakRSS: Int? { peakRSSBytes(pid: process.processIdentifier).map { Int($0) } }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    var stderr: String { String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self) }
}
