import Crypto
import Foundation
import Testing
import TestSupport
@testable import EnhanceKit

/// `ModelFetcher` against a server on 127.0.0.1 started here: a good file, a wrong hash, a transfer dropped halfway
/// and resumed, a 404, a refused connection, and a mirror.
@Suite struct ModelFetcherTests {
    static func bytes(_ n: Int, seed: UInt8 = 7) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &+ ($0 >> 9)) } }
    static func hex(_ b: [UInt8]) -> String { SHA256.hash(data: Data(b)).map { String(format: "%02x", $0) }.joined() }

    static func folder() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("fetch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }
    static func files(_ d: URL) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: d.path)) ?? []).sorted() }

    @Test func fetchesChecksAndInstallsAtomically() async throws {
        let server = try LoopbackHTTPServer()
        let data = Self.bytes(300_000)
        server.set("/m/w.pth", data)
        let dir = try Self.folder(); defer { try? FileManager.default.removeItem(at: dir) }
        let fetcher = ModelFetcher(store: ModelStore(directory: dir))
        let seenProgress = ProgressLog()
        let r = try await fetcher.fetch(url: server.base + "/m/w.pth", sha256: Self.hex(data), fileName: "w.pth",
                                        progress: { done, total in seenProgress.add(done, total) })
        #expect(r.verified && r.sha256 == Self.hex(data) && r.downloaded == 300_000 && r.resumedFrom == 0)
        #expect(Self.files(dir) == ["w.pth"])
        #expect(try Data(contentsOf: dir.appendingPathComponent("w.pth")) == Data(data))
        #expect(seenProgress.last?.0 == 300_000 && seenProgress.last?.1 == 300_000)
        // A catalog-style entry already installed with the right sum is not fetched again.
        let entry = ModelEntry(name: "W", kind: .upscaler, architecture: "test", fileName: "w.pth", urls: [server.base + "/m/w.pth"],
                               sha256: Self.hex(data), bytes: nil, license: "test")
        let again = try await fetcher.fetch(entry)
        #expect(again.downloaded == 0 && again.verified)
        #expect(server.seen.count == 1)
    }

    @Test func aWrongHashInstallsNothing() async throws {
        let server = try LoopbackHTTPServer()
        server.set("/w.pth", Self.bytes(5000))
        let dir = try Self.folder(); defer { try? FileManager.default.removeItem(at: dir) }
        let fetcher = ModelFetcher(store: ModelStore(directory: dir))
        do {
            _ = try await fetcher.fetch(url: server.base + "/w.pth", sha256: String(repeating: "ab", count: 32), fileName: "w.pth")
            Issue.record("a wrong file was accepted")
        } catch let e as EnhanceError {
            #expect(e.category == .badInput && e.message.contains("sha256") && e.message.contains("nothing was installed"), "\(e)")
        }
        #expect(Self.files(dir).isEmpty)
    }

    @Test func aDroppedTransferResumesWithARangeRequest() async throws {
        let server = try LoopbackHTTPServer()
        let data = Self.bytes(1_000_000, seed: 3)
        server.set("/big.pth", data, .dropAfter(400_000))
        let dir = try Self.folder(); defer { try? FileManager.default.removeItem(at: dir) }
        let fetcher = ModelFetcher(store: ModelStore(directory: dir))
        do {
            _ = try await fetcher.fetch(url: server.base + "/big.pth", sha256: Self.hex(data), fileName: "big.pth")
            Issue.record("a truncated transfer was accepted")
        } catch let e as EnhanceError {
            #expect(e.category == .missingResource && e.message.contains("again to resume"), "\(e)")
        }
        #expect(Self.files(dir) == ["big.pth.part"])
        let kept = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("big.pth.part").path)[.size] as? Int ?? 0
        #expect(kept > 0 && kept <= 400_000)
        server.set("/big.pth", data)
        let r = try await fetcher.fetch(url: server.base + "/big.pth", sha256: Self.hex(data), fileName: "big.pth")
        #expect(r.resumedFrom == Int64(kept) && r.downloaded == Int64(data.count - kept) && r.verified)
        #expect(server.seen.last?.range == "bytes=\(kept)-")
        #expect(Self.files(dir) == ["big.pth"])
        #expect(try Data(contentsOf: dir.appendingPathComponent("big.pth")) == Data(data))
    }

    @Test func notFoundAndRefusedAreClearErrors() async throws {
        let server = try LoopbackHTTPServer()
        server.set("/gone.pth", [], .notFound)
        let dir = try Self.folder(); defer { try? FileManager.default.removeItem(at: dir) }
        let fetcher = ModelFetcher(store: ModelStore(directory: dir), readTimeout: 5, connectTimeout: 2)
        do {
            _ = try await fetcher.fetch(url: server.base + "/gone.pth", sha256: nil, fileName: "gone.pth")
            Issue.record("a 404 was accepted")
        } catch let e as EnhanceError {
            #expect(e.category == .missingResource && e.message.contains("HTTP 404") && e.message.contains("/gone.pth"), "\(e)")
        }
        let port = server.port
        server.stop()
        do {
            _ = try await fetcher.fetch(url: "http://127.0.0.1:\(port)/x.pth", sha256: nil, fileName: "x.pth")
            Issue.record("a refused connection was accepted")
        } catch let e as EnhanceError {
            #expect(e.category == .missingResource && e.message.contains("127.0.0.1:\(port)") && e.message.contains("refused"), "\(e)")
        }
        #expect(!Self.files(dir).contains("gone.pth") && !Self.files(dir).contains("x.pth"))
    }

    @Test func aMirrorReplacesTheOfficialHost() async throws {
        let server = try LoopbackHTTPServer()
        let data = Self.bytes(2048, seed: 9)
        server.set("/mirror/GPEN-BFR-512.pth", data)
        let dir = try Self.folder(); defer { try? FileManager.default.removeItem(at: dir) }
        let entry = try #require(ModelCatalog.entry(named: "GPEN-BFR-512"))
        let fetcher = ModelFetcher(store: ModelStore(directory: dir), mirror: server.base + "/mirror/")
        #expect(fetcher.sources(of: entry) == [server.base + "/mirror/GPEN-BFR-512.pth"])
        let r = try await fetcher.fetch(entry)
        #expect(!r.verified && r.sha256 == Self.hex(data))   // GPEN's authors publish no checksum
        #expect(Self.files(dir) == ["GPEN-BFR-512.pth"])
        // Without a mirror the official location is used; a model with none says where to get it.
        #expect(ModelFetcher(store: ModelStore(directory: dir)).sources(of: entry) == [ModelCatalog.gpenHost + "GPEN-BFR-512.pth"])
        let hires = try #require(ModelCatalog.entry(named: "gpen-bfr-1024.pth"))
        await #expect(throws: EnhanceError.self) { _ = try await ModelFetcher(store: ModelStore(directory: dir)).fetch(hires) }
    }

    @Test func catalogAndFolder() {
        #expect(Set(ModelCatalog.all.map(\.name)).count == ModelCatalog.all.count)
        for name in ["RealESRGAN_x4plus", "RealESRGAN_x2plus", "GPEN-BFR-256", "GPEN-BFR-512", "RetinaFace-R50", "ParseNet-latest"] {
            #expect(ModelCatalog.entry(named: name)?.urls.isEmpty == false, "\(name)")
        }
        #expect(ModelStore.defaultDirectory(environment: ["ENHANCE_MODELS_DIR": "/m"]).path == "/m")
        #expect(ModelStore.defaultDirectory(environment: ["XDG_CACHE_HOME": "/x"]).path == "/x/enhance/models")
        #expect(ModelStore.defaultDirectory(environment: [:]).path.hasSuffix(".cache/enhance/models"))
    }
}

final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [(Int64, Int64?)] = []
    func add(_ d: Int64, _ t: Int64?) { lock.withLock { values.append((d, t)) } }
    var last: (Int64, Int64?)? { lock.withLock { values.last } }
}
