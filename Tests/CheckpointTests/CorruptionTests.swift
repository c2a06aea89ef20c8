import Foundation
import Testing
import TensorCore
@testable import Checkpoint

/// Truncated and corrupted variants of every format give a `CheckpointError`, never a crash or another error.
@Suite struct CorruptionTests {
    static let files = ["mixed_zip.pth", "mixed_legacy.pth", "mixed_deflated.pth", "mixed.safetensors"]

    @Test(arguments: files)
    func everyTruncationIsAnError(name: String) throws {
        let bytes = try fileBytes(Paths.fixture(name))
        var cuts = Array(stride(from: 0, to: bytes.count, by: max(1, bytes.count / 97)))
        cuts += [bytes.count - 1, bytes.count - 8, bytes.count - 22, 8, 9, 30]
        for n in cuts where n >= 0 && n < bytes.count {
            let r = throwsCheckpointError { _ = try CheckpointLoader.load(bytes: Array(bytes[0..<n]), path: "\(name)[..\(n)]") }
            #expect(r.threw, "truncation at \(n) of \(name) was accepted or threw \(String(describing: r.other))")
        }
    }

    @Test(arguments: files)
    func randomByteFlipsNeverCrash(name: String) throws {
        let bytes = try fileBytes(Paths.fixture(name))
        var rng = SplitMix64(seed: 42)
        var errors = 0
        for _ in 0..<300 {
            var b = bytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            let r = throwsCheckpointError {
                let ck = try CheckpointLoader.load(bytes: b, path: name)
                for t in ck.stateDict.tensors { _ = t.floats() }
            }
            #expect(r.other == nil)
            if r.threw { errors += 1 }
        }
        #expect(errors > 0)
    }

    @Test func ncnnTruncationsAndBadParams() throws {
        let param = try fileBytes(Paths.fixture("tiny_srvgg.param"))
        let bin = try fileBytes(Paths.fixture("tiny_srvgg.bin"))
        for n in stride(from: 0, to: bin.count, by: 7) {
            #expect(throwsCheckpointError { _ = try CheckpointLoader.loadNCNN(param: param, bin: Array(bin[0..<n])) }.threw)
        }
        #expect(throwsCheckpointError { _ = try CheckpointLoader.loadNCNN(param: param, bin: bin + [0, 0, 0, 0]) }.threw)
        let text = String(decoding: param, as: UTF8.self)
        let bad = [
            text.replacingOccurrences(of: "7767517", with: "7767518"),
            text.replacingOccurrences(of: "6=108", with: "6=99999999999"),
            text.replacingOccurrences(of: "6=108", with: "6=-5"),
            text.replacingOccurrences(of: "0=4 1=3", with: "0=0 1=3"),
            text.replacingOccurrences(of: "10 ", with: "11 "),
            text.replacingOccurrences(of: "PixelShuffle", with: "LSTM"),
            String(text.prefix(text.count / 2)),
        ]
        for b in bad {
            let r = throwsCheckpointError { _ = try CheckpointLoader.loadNCNN(param: Array(b.utf8), bin: bin) }
            #expect(r.threw, "accepted: \(b.prefix(60))")
        }
    }

    @Test func safetensorsHeaderValidation() throws {
        func file(_ header: String, data: Int = 8) -> [UInt8] {
            let h = Array(header.utf8)
            var out = withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) }
            out += h
            out += [UInt8](repeating: 0, count: data)
            return out
        }
        let good = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        #expect(try CheckpointLoader.load(bytes: file(good)).stateDict["a"]?.floats() == [0, 0])
        let bad = [
            #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,                     // size mismatch
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,                    // past the end
            #"{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}}"#, // absurd
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#, // overlap
            #"{"a":{"dtype":"X9","shape":[2],"data_offsets":[0,8]}}"#,                      // dtype
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,                     // reversed
            #"{"a":"#,                                                                        // JSON
            #"[1,2]"#,
        ]
        for h in bad {
            #expect(throwsCheckpointError { _ = try CheckpointLoader.load(bytes: file(h)) }.threw, "accepted \(h)")
        }
        var huge = withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Array($0) }
        huge += Array("{}".utf8)
        #expect(throwsCheckpointError { _ = try CheckpointLoader.load(bytes: huge) }.threw)
    }

    @Test func deeplyNestedPickleIsReleasedWithoutRecursion() throws {
        // 300k nested tuples and a 200k-long chain of lists: teardown must not overflow the stack.
        var p: [UInt8] = [0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: 300_000) + [0x2E]
        #expect(throwsCheckpointError { _ = try CheckpointLoader.load(bytes: p) }.threw)
        p = [0x80, 0x02, 0x5D]
        for _ in 0..<200_000 { p += [0x5D, 0x71, 0x00, 0x61, 0x30, 0x68, 0x00] } // [] PUT0 APPEND POP GET0: a chain
        p += [0x2E]
        #expect(throwsCheckpointError { _ = try CheckpointLoader.load(bytes: p) }.threw)
    }
}

/// Inputs the fuzzers once found (crash, hang): each must now end in a `CheckpointError` or load, quickly.
@Suite struct FuzzRegressionTests {
    @Test func savedFuzzerFindingsAreHandled() throws {
        let dir = Paths.fixture("fuzz-regressions")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(!names.isEmpty)
        for name in names {
            let bytes = try fileBytes(dir.appendingPathComponent(name))
            let r = throwsCheckpointError {
                if name.hasPrefix("ncnn-") {
                    let n = min(Int(bytes[0]) | Int(bytes[1]) << 8, bytes.count - 2)
                    _ = try CheckpointLoader.loadNCNN(param: Array(bytes[2..<(2 + n)]), bin: Array(bytes[(2 + n)...]))
                } else {
                    _ = try CheckpointLoader.load(bytes: bytes)
                }
            }
            #expect(r.other == nil, "\(name)")
        }
    }
}
