import Foundation
import Testing
import TestSupport
@testable import Checkpoint

/// Paths shared by the checkpoint tests.
enum Paths {
    static let root = Repository.root
    static let fixtures = Repository.fixtures.appendingPathComponent("checkpoint")
    static var assets: URL { Repository.assets }
    static var golden: URL { Repository.golden }
    static func fixture(_ name: String) -> URL { fixtures.appendingPathComponent(name) }
    static func asset(_ name: String) -> URL { assets.appendingPathComponent(name) }
    static var hasAssets: Bool { FileManager.default.fileExists(atPath: asset("realesrgan-x4plus.param").path) }
    static var hasGolden: Bool { FileManager.default.fileExists(atPath: golden.appendingPathComponent("rrdbnet_x4/weights.pth").path) }
    static var hasMTCNN: Bool { FileManager.default.fileExists(atPath: asset("mtcnn-pnet.pt").path) }
}

func readJSON(_ url: URL) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(contentsOf: url))
}

func fnv1a64(_ bytes: [UInt8]) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h ^= UInt64(b); h = h &* 0x100_0000_01b3 }
    let s = String(h, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

func fileBytes(_ url: URL) throws -> [UInt8] { [UInt8](try Data(contentsOf: url)) }

/// Asserts that every tensor of `dict` equals the `describe()` entries of the fixture generator bit for bit.
func expectMatches(_ dict: StateDict, _ expected: [String: Any], keys: [String]) {
    for key in keys {
        guard let e = expected[key] as? [String: Any] else { Issue.record("no expectation for \(key)"); continue }
        guard let t = dict[key] else { Issue.record("missing \(key)"); continue }
        #expect(t.dtype.rawValue == e["dtype"] as? String, "\(key) dtype")
        #expect(t.shape == (e["shape"] as? [Int]), "\(key) shape")
        #expect(fnv1a64(t.rawBytes()) == e["fnv1a64"] as? String, "\(key) bytes")
        if let bits = e["f32bits"] as? [Int] {
            let got = t.floats().prefix(bits.count).map { Int($0.bitPattern) }
            #expect(got == bits, "\(key) float32 bits")
        }
        if let bits = e["f64bits"] as? [String] {
            let got = t.doubles().prefix(bits.count).map { String($0.bitPattern) }
            #expect(got == bits, "\(key) float64 bits")
        }
        if let ints = e["ints"] as? [Int] {
            #expect(t.int64s().prefix(ints.count).map { Int($0) } == ints, "\(key) ints")
        }
    }
}

/// Runs `body` and reports whether it threw a `CheckpointError` (any other error or a success returns false/true).
func throwsCheckpointError(_ body: () throws -> Void) -> (threw: Bool, other: (any Error)?) {
    do { try body(); return (false, nil) } catch is CheckpointError { return (true, nil) } catch { return (false, error) }
}

