import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// Downloads model files into a `ModelStore`: into `<file>.part`, resumed with an HTTP Range request when a part
/// is already there, checked against the expected sha256, then renamed to the final name (atomic). A failure leaves
/// no file under the final name; an interrupted transfer leaves the `.part` for the next try, a wrong one is removed.
public struct ModelFetcher: Sendable {
    /// Progress of one transfer: bytes on disk so far and the total when the server says it.
    public typealias Progress = @Sendable (_ done: Int64, _ total: Int64?) -> Void

    public let store: ModelStore
    /// Replaces the official host: the file name is appended to it (`ENHANCE_MODELS_MIRROR`).
    public let mirror: String?
    /// Seconds without data before a transfer is abandoned.
    public let readTimeout: Int64
    /// Seconds to get a connection (the HTTP client retries a refused one until then).
    public let connectTimeout: Int64

    public init(store: ModelStore, mirror: String? = nil, readTimeout: Int64 = 60, connectTimeout: Int64 = 15) {
        self.store = store; self.mirror = mirror; self.readTimeout = readTimeout; self.connectTimeout = connectTimeout
    }

    /// What a fetch did.
    public struct Result: Sendable {
        /// The installed file.
        public let url: URL
        /// Its sha256.
        public let sha256: String
        /// Bytes transferred in this call (0 when the file was already installed and checked).
        public let downloaded: Int64
        /// Whether the sha256 was checked against a known value (false when none is published).
        public let verified: Bool
        /// Bytes of a previous `.part` that were kept (resumed).
        public let resumedFrom: Int64
    }

    /// The URLs `entry` is fetched from (the mirror's when one is set).
    public func sources(of entry: ModelEntry) -> [String] {
        guard let mirror, !mirror.isEmpty else { return entry.urls }
        let base = mirror.hasSuffix("/") ? String(mirror.dropLast()) : mirror
        return [base + "/" + entry.fileName]
    }

    /// Fetches a catalog entry (skipped when installed and its checksum matches).
    public func fetch(_ entry: ModelEntry, progress: Progress? = nil) async throws -> Result {
        let target = store.url(of: entry)
        if FileManager.default.fileExists(atPath: target.path) {
            let sum = try Self.sha256(of: target)
            if entry.sha256 == nil || entry.sha256 == sum { return Result(url: target, sha256: sum, downloaded: 0, verified: entry.sha256 != nil, resumedFrom: 0) }
            throw EnhanceError(.badInput, "\(target.path): installed, but its sha256 \(sum) is not \(entry.name)'s \(entry.sha256!); remove it and fetch again")
        }
        let urls = sources(of: entry)
        guard !urls.isEmpty else {
            throw EnhanceError(.missingResource, "\(entry.name): no download location is published" + (entry.note.map { "; \($0)" } ?? ""))
        }
        var lastError: (any Error)?
        for u in urls {
            do { return try await fetch(url: u, sha256: entry.sha256, fileName: entry.fileName, progress: progress) }
            catch let e as EnhanceError where e.category == .badInput { throw e }   // a wrong file: another host will not help
            catch { lastError = error }
        }
        throw lastError!
    }

    /// Fetches `url` into the store as `fileName`; with `sha256` the file must match it.
    public func fetch(url: String, sha256 expected: String?, fileName: String, progress: Progress? = nil) async throws -> Result {
        guard !fileName.isEmpty, !fileName.contains("/"), fileName != ".", fileName != ".." else {
            throw EnhanceError(.badInput, "'\(fileName)' is not a file name")
        }
        if let expected, expected.count != 64 || !expected.allSatisfy(\.isHexDigit) {
            throw EnhanceError(.badInput, "'\(expected)' is not a sha256 (64 hex digits)")
        }
        let fm = FileManager.default
        do { try fm.createDirectory(at: store.directory, withIntermediateDirectories: true) }
        catch { throw EnhanceError(.missingResource, "\(store.directory.path): cannot create the models folder: \(error.localizedDescription)") }
        let target = store.directory.appendingPathComponent(fileName)
        let part = store.directory.appendingPathComponent(fileName + ".part")
        let existing = (try? fm.attributesOfItem(atPath: part.path)[.size] as? Int64) ?? 0
        let (resumedFrom, downloaded) = try await transfer(url, to: part, from: existing, progress: progress)
        let sum = try Self.sha256(of: part)
        if let expected, sum != expected.lowercased() {
            try? fm.removeItem(at: part)
            throw EnhanceError(.badInput, "\(url): sha256 \(sum) is not the expected \(expected.lowercased()); nothing was installed")
        }
        guard rename(part.path, target.path) == 0 else {
            throw EnhanceError(.internal, "\(target.path): cannot rename the download into place (errno \(errno))")
        }
        return Result(url: target, sha256: sum, downloaded: downloaded, verified: expected != nil, resumedFrom: resumedFrom)
    }

    /// Appends the remote file from byte `offset` to `part` (starting over when the server ignores the range).
    /// Returns where the transfer started (the bytes of the part that were kept) and how many bytes it wrote.
    func transfer(_ url: String, to part: URL, from offset: Int64, progress: Progress?) async throws -> (start: Int64, written: Int64) {
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(connectTimeout), read: .seconds(readTimeout))
        config.redirectConfiguration = .follow(max: 5, allowCycles: false)
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
        do {
            let n = try await transfer(client, url, to: part, from: offset, progress: progress)
            try await client.shutdown()
            return n
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func transfer(_ client: HTTPClient, _ url: String, to part: URL, from offset: Int64, progress: Progress?) async throws -> (start: Int64, written: Int64) {
        var headers = HTTPHeaders()
        if offset > 0 { headers.add(name: "Range", value: "bytes=\(offset)-") }
        let request: HTTPClient.Request
        do { request = try HTTPClient.Request(url: url, method: .GET, headers: headers) }
        catch { throw EnhanceError(.badInput, "\(url): not a usable URL (\(error))") }
        // The body is written by the delegate on the event loop as it arrives: a consumer on the Swift concurrency
        // pool stalled behind busy tasks and the read timeout fired with the data waiting in the socket.
        let writer = PartFileWriter(part: part, offset: offset, progress: progress)
        let outcome: PartFileWriter.Outcome
        do { outcome = try await client.execute(request: request, delegate: writer).futureResult.get() }
        catch let e as EnhanceError { throw e }
        catch {
            let done = writer.bytesOnDisk
            if done > 0 {
                throw EnhanceError(.missingResource, "\(url): the transfer stopped after \(done) bytes (\(describe(error))); run the same command again to resume")
            }
            throw EnhanceError(.missingResource, "\(url): \(describe(error))")
        }
        switch outcome {
        case .notSatisfiable: return (offset, 0)   // the part is as long as the file (or longer): the checksum decides
        case let .status(code, reason):
            throw EnhanceError(.missingResource, "\(url): the server answered HTTP \(code) \(reason)")
        case let .written(start, done, total):
            if let total, done < total {
                throw EnhanceError(.missingResource, "\(url): the transfer stopped after \(done) of \(total) bytes; run the same command again to resume")
            }
            return (start, done - start)
        }
    }

    func describe(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout: return "no connection within \(connectTimeout) s (refused or unreachable)"
            case .readTimeout: return "no data within the read timeout"
            case .remoteConnectionClosed: return "the server closed the connection"
            default: return "\(e)"
            }
        }
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        return text
    }

    /// The sha256 of a file (hex), read in 4 MiB chunks.
    public static func sha256(of url: URL) throws -> String {
        guard let h = FileHandle(forReadingAtPath: url.path) else { throw EnhanceError(.missingResource, "\(url.path): cannot read") }
        defer { try? h.close() }
        var hasher = SHA256()
        while let chunk = try h.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// Writes a response body into the `.part` file on the event loop: appended after `offset` on 206 with a matching
/// Content-Range, from the start on 200; any other status writes nothing.
final class PartFileWriter: HTTPClientResponseDelegate, @unchecked Sendable {
    enum Outcome: Sendable {
        case written(start: Int64, done: Int64, total: Int64?)
        case status(UInt, String)
        case notSatisfiable
    }

    let part: URL, offset: Int64, progress: ModelFetcher.Progress?
    private let lock = NSLock()
    private var handle: FileHandle?
    private var outcome: Outcome = .status(0, "no response")
    private var start: Int64 = 0, done: Int64 = 0, total: Int64?
    private var failure: (any Error)?

    init(part: URL, offset: Int64, progress: ModelFetcher.Progress?) {
        self.part = part; self.offset = offset; self.progress = progress
    }

    /// Bytes in the part file so far.
    var bytesOnDisk: Int64 { lock.withLock { done } }

    func didReceiveHead(task: HTTPClient.Task<Outcome>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        lock.withLock {
            switch head.status.code {
            case 206:
                // Content-Range: bytes START-END/TOTAL must continue where the part ends.
                let range = head.headers.first(name: "content-range") ?? ""
                let first = range.split(separator: " ").last?.split(separator: "-").first.flatMap { Int64($0) }
                guard first == offset else {
                    failure = EnhanceError(.missingResource, "the server resumed at byte \(first.map(String.init) ?? "?") instead of \(offset); remove \(part.path) and fetch again")
                    return
                }
                start = offset
            case 200: start = 0
            case 416 where offset > 0: outcome = .notSatisfiable; return
            default: outcome = .status(head.status.code, head.status.reasonPhrase); return
            }
            if let n = head.headers.first(name: "content-length").flatMap({ Int64($0) }) { total = start + n }
            if start == 0 { FileManager.default.createFile(atPath: part.path, contents: nil) }
            do {
                guard let h = FileHandle(forWritingAtPath: part.path) else { throw EnhanceError(.missingResource, "\(part.path): cannot write") }
                try h.truncate(atOffset: UInt64(start))
                try h.seekToEnd()
                handle = h
                done = start
                outcome = .written(start: start, done: start, total: total)
            } catch { failure = error }
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Outcome>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        let report: (Int64, Int64?)? = lock.withLock {
            guard let handle, failure == nil else { return nil }
            do {
                try handle.write(contentsOf: Data(buffer.readableBytesView))
                done += Int64(buffer.readableBytes)
                outcome = .written(start: start, done: done, total: total)
                return (done, total)
            } catch { failure = error; return nil }
        }
        if let report { progress?(report.0, report.1) }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveError(task: HTTPClient.Task<Outcome>, _ error: any Error) {
        lock.withLock { try? handle?.close(); handle = nil }
    }

    func didFinishRequest(task: HTTPClient.Task<Outcome>) throws -> Outcome {
        try lock.withLock {
            try? handle?.close(); handle = nil
            if let failure { throw failure }
            return outcome
        }
    }
}
