import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 file server on 127.0.0.1 (an ephemeral port) for tests that download: it serves byte arrays by
/// path, honours `Range: bytes=N-`, and can misbehave on purpose (404, drop the connection after N bytes). Each
/// connection serves one request. Nothing leaves the machine.
public final class LoopbackHTTPServer: @unchecked Sendable {
    /// How a path answers.
    public enum Behaviour: Sendable {
        case serve
        /// Send the full headers, then only this many body bytes, then close.
        case dropAfter(Int)
        case notFound
    }

    public private(set) var port: UInt16 = 0
    private let lock = NSLock()
    private var files: [String: (data: [UInt8], behaviour: Behaviour)] = [:]
    private var requests: [(path: String, range: String?)] = []
    private var listener: Int32 = -1
    private var thread: Thread?

    public init() throws {
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw POSIXError(.EIO) }
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(listener, 16) == 0 else { close(listener); throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        port = UInt16(bigEndian: addr.sin_port)
        let fd = listener
        let t = Thread { [weak self] in
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { return }
                guard let self else { close(c); return }
                self.handle(c)
            }
        }
        thread = t
        t.start()
    }

    deinit { stop() }

    /// Stops accepting (pending connections are closed).
    public func stop() {
        lock.lock(); let fd = listener; listener = -1; lock.unlock()
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
    }

    /// `http://127.0.0.1:PORT`
    public var base: String { "http://127.0.0.1:\(port)" }

    public func set(_ path: String, _ data: [UInt8], _ behaviour: Behaviour = .serve) {
        lock.withLock { files[path] = (data, behaviour) }
    }

    /// The requests seen so far: path and Range header.
    public var seen: [(path: String, range: String?)] { lock.withLock { requests } }

    private func handle(_ c: Int32) {
        defer { close(c) }
        var head = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while !head.suffix(4).elementsEqual([13, 10, 13, 10]) && head.count < 65536 {
            let n = read(c, &buf, buf.count)
            if n <= 0 { return }
            head += buf[0..<n]
        }
        let text = String(decoding: head, as: UTF8.self)
        let lines = text.split(separator: "\r\n")
        guard let first = lines.first else { return }
        let parts = first.split(separator: " ")
        guard parts.count >= 2 else { return }
        let path = String(parts[1])
        let range = lines.dropFirst().first { $0.lowercased().hasPrefix("range:") }
            .map { String($0.dropFirst(6)).trimmingCharacters(in: .whitespaces) }
        let entry = lock.withLock { () -> (data: [UInt8], behaviour: Behaviour)? in
            requests.append((path, range))
            return files[path]
        }
        func send(_ bytes: [UInt8]) {
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes { write(c, $0.baseAddress!, $0.count) }
                if n <= 0 { return }
                off += n
            }
        }
        guard let entry, case let b = entry.behaviour, !isNotFound(b) else {
            send(Array("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found".utf8))
            return
        }
        var start = 0
        if let range, range.hasPrefix("bytes="), let s = Int(range.dropFirst(6).split(separator: "-").first ?? "") { start = s }
        if start >= entry.data.count && start > 0 {
            send(Array("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */\(entry.data.count)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
            return
        }
        let body = Array(entry.data[start...])
        let status = start > 0 ? "206 Partial Content\r\nContent-Range: bytes \(start)-\(entry.data.count - 1)/\(entry.data.count)" : "200 OK"
        send(Array("HTTP/1.1 \(status)\r\nContent-Length: \(body.count)\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n".utf8))
        if case let .dropAfter(n) = entry.behaviour {
            send(Array(body.prefix(n)))
            return
        }
        send(body)
    }

    private func isNotFound(_ b: Behaviour) -> Bool { if case .notFound = b { return true }; return false }
}
