// Synthetic weights of the exact released architectures, written as safetensors, for timing and memory runs
// when the real files are absent. Shapes follow ../shared/docs/gpen.md §1-§5 and ../shared/docs/realesrgan.md §1; values are seeded.

import Checkpoint
import Foundation
import Models
import TensorCore

/// How a synthetic tensor is filled.
public enum TensorFill: Sendable, Equatable {
    /// Uniform noise with this standard deviation (seeded by the key).
    case noise(std: Double)
    /// Every element equal to the value.
    case constant(Float)
    /// The 4×4 FIR kernel outer([1,3,3,1])/64 times the factor (Blur and Upsample buffers).
    case fir(scale: Float)
    /// Alternating per-channel values (for a bias whose entries differ, e.g. class logits).
    case pattern([Float])
    /// A 64-bit integer zero (BatchNorm `num_batches_tracked`).
    case int64Zero
    /// These leading values (row-major), then uniform noise with this standard deviation for the rest.
    case prefixed([Float], std: Double)
}

/// One tensor of a synthetic checkpoint.
public struct SyntheticTensor: Sendable, Equatable {
    /// State-dict key.
    public var key: String
    /// Shape, outermost first.
    public var shape: [Int]
    /// Fill rule.
    public var fill: TensorFill
    /// False for buffers and BatchNorm statistics (not learnable parameters).
    public var learnable: Bool

    /// Element count.
    public var count: Int { shape.reduce(1, *) }
}

/// Layouts of the released models and a streaming safetensors writer.
public enum SyntheticWeights {
    /// GPEN `FullGenerator(size, 512, 8, channelMultiplier, narrow)` keys and shapes (BFR-512: 163 keys, 71,005,223
    /// params), with upstream's init scales.
    public static func gpen(size: Int = 512, channelMultiplier: Int = 2, narrow: Double = 1) throws(BenchError) -> [SyntheticTensor] {
        guard [256, 512, 1024, 2048].contains(size) else { throw .invalidArgument("GPEN size \(size) must be 256, 512, 1024 or 2048") }
        let c = GPENConfiguration(size: size, styleDim: 512, nMLP: 8, channelMultiplier: channelMultiplier, narrow: narrow)
        return tensors(SyntheticCheckpoint.gpenLayout(c))
    }

    /// RetinaFace with a ResNet-50 backbone (GPEN's `RetinaFace-R50.pth`: 456 keys, 27,293,600 params).
    /// The class head is biased to background, so the synthetic detector finds no faces.
    public static func retinaFaceR50() -> [SyntheticTensor] {
        tensors(SyntheticCheckpoint.retinaFaceLayout(RetinaFaceConfiguration(backbone: .resnet50, outChannel: 256)))
    }

    /// GPEN's face parser `ParseNet(512, 512, 32, 64, 19, res_depth 10)`: 238 keys, 21,303,254 params.
    public static func parseNet() -> [SyntheticTensor] {
        tensors(SyntheticCheckpoint.parseNetLayout(ParseNetConfiguration(baseCh: 64, parsingCh: 19, resDepth: 10, downSteps: 4, upSteps: 4,
                                                                          normType: "bn", reluType: "LeakyReLU", chRange: [32, 256])))
    }

    /// A model's own layout (keys, shapes, roles: `SyntheticCheckpoint`) with the bench's fills: weights seeded noise at
    /// upstream's init scale, biases 0, BatchNorm identity, FIR buffers exact, RetinaFace's class head biased to
    /// background.
    static func tensors(_ layout: [SyntheticCheckpoint.Parameter]) -> [SyntheticTensor] {
        layout.map { p in
            let fill: TensorFill
            switch p.role {
            case let .firKernel(scale): fill = .fir(scale: scale)
            case .styleWeight: fill = .noise(std: 100)   // stored as randn / lr_mul (0.01)
            case .heWeight, .maskWeight: fill = .noise(std: (2.0 / Double(p.shape[1...].reduce(1, *))).squareRoot())
            case .modulationBias, .bnWeight, .bnVar: fill = .constant(1)
            case .bnCount: fill = .int64Zero
            case .classBias: fill = .pattern([4, -4])
            case .styleBias, .noiseWeight, .activationBias, .rgbBias, .encoderBias, .finalBias, .convBias, .maskBias, .bnBias, .bnMean,
                 .headWeight, .boxBias, .landmarkBias: fill = .constant(0)
            case .constantInput, .modulatedWeight, .modulationWeight, .rgbWeight, .encoderWeight, .finalWeight: fill = .noise(std: 1)
            }
            return SyntheticTensor(key: p.key, shape: p.shape, fill: fill, learnable: p.learnable)
        }
    }

    /// RRDBNet as in Real-ESRGAN (`RealESRGAN_x2plus`: scale 2, 23 blocks, 702 keys, 16,703,171 params).
    ///
    /// With `passThrough`, feature channels 0–2 carry the image from end to end, so the output is a plausible
    /// (soft) upscale and a chain after it still finds faces: `conv_first` puts the mean of each colour's
    /// pixel-unshuffled samples in channel c, `conv_body` adds nothing to channels 0–2, `conv_up1`, `conv_up2` and
    /// `conv_hr` blur each of them with the 3×3 tent [1,2,1]⊗[1,2,1]/16 (non-negative values pass the leaky
    /// ReLUs unchanged) and `conv_last` copies them out. Every other value is seeded noise as usual; the
    /// convolutions are dense, so the time and memory are those of any other values.
    public static func rrdbNet(scale: Int = 2, blocks: Int = 23, feat: Int = 64, grow: Int = 32,
                               passThrough: Bool = false) throws(BenchError) -> [SyntheticTensor] {
        guard [1, 2, 4].contains(scale), (1...64).contains(blocks), feat >= 3 else {
            throw .invalidArgument("RRDBNet scale \(scale) must be 1, 2 or 4, blocks \(blocks) in 1…64 and feat \(feat) at least 3")
        }
        var t: [SyntheticTensor] = []
        /// Rows 0–2 of a [cout, cin, 3, 3] weight: `tap(o, i)` gives the 3×3 kernel from input i to output o.
        func rows(_ cin: Int, _ tap: (Int, Int) -> [Float]?) -> [Float] {
            var v: [Float] = []
            for o in 0..<3 { for i in 0..<cin { v += tap(o, i) ?? [Float](repeating: 0, count: 9) } }
            return v
        }
        let tent: [Float] = [1, 2, 1, 2, 4, 2, 1, 2, 1].map { $0 / 16 }
        func center(_ w: Float) -> [Float] { [0, 0, 0, 0, w, 0, 0, 0, 0] }
        func conv(_ k: String, _ cout: Int, _ cin: Int, gain: Double, first: [Float]? = nil) {
            let std = gain * (2.0 / Double(cin * 9)).squareRoot()
            t.append(SyntheticTensor(key: "\(k).weight", shape: [cout, cin, 3, 3],
                                     fill: first.map { .prefixed($0, std: std) } ?? .noise(std: std), learnable: true))
            t.append(SyntheticTensor(key: "\(k).bias", shape: [cout], fill: .constant(0), learnable: true))
        }
        let unshuffle = scale == 4 ? 1 : scale == 2 ? 4 : 16
        conv("conv_first", feat, 3 * unshuffle, gain: 1,
             first: passThrough ? rows(3 * unshuffle) { o, i in i / unshuffle == o ? center(1 / Float(unshuffle)) : nil } : nil)
        for bi in 0..<blocks {
            for r in 1...3 {
                for k in 1...5 {
                    conv("body.\(bi).rdb\(r).conv\(k)", k == 5 ? feat : grow, feat + (k - 1) * grow, gain: 0.1)
                }
            }
        }
        conv("conv_body", feat, feat, gain: 1, first: passThrough ? rows(feat) { _, _ in nil } : nil)
        for name in ["conv_up1", "conv_up2", "conv_hr"] {
            conv(name, feat, feat, gain: 1, first: passThrough ? rows(feat) { o, i in i == o ? tent : nil } : nil)
        }
        conv("conv_last", 3, feat, gain: 1, first: passThrough ? rows(feat) { o, i in i == o ? center(1) : nil } : nil)
        return t
    }

    /// Streams `tensors` into a safetensors file (F32, or I64 for counters), atomically, with `metadata`
    /// in `__metadata__`. Values are seeded by `seed` and each key, so the same call writes the same bytes.
    public static func writeSafetensors(_ tensors: [SyntheticTensor], to url: URL, metadata: [String: String],
                                        seed: UInt64 = 0x5EED) throws(BenchError) {
        let header = SafeTensorsWriter.header(tensors.map {
            SafeTensorsWriter.Entry(name: $0.key, dtype: $0.fill == .int64Zero ? "I64" : "F32", shape: $0.shape,
                                    byteCount: $0.count * ($0.fill == .int64Zero ? 8 : 4))
        }, metadata: metadata)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil),
              let fh = FileHandle(forWritingAtPath: tmp.path) else {
            throw .io(path: tmp.path, reason: "cannot create file")
        }
        do {
            try fh.write(contentsOf: Data(header))
            for t in tensors { try fh.write(contentsOf: values(t, seed: seed)) }
            try fh.close()
            _ = try? FileManager.default.removeItem(at: url)
            try FileManager.default.moveItem(at: tmp, to: url)
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw .io(path: url.path, reason: "cannot write safetensors: \(error.localizedDescription)")
        }
    }

    /// The little-endian bytes of one tensor.
    static func values(_ t: SyntheticTensor, seed: UInt64) -> Data {
        switch t.fill {
        case .int64Zero:
            return Data(count: 8 * t.count)
        case .constant(let v):
            return floatData([Float](repeating: v, count: t.count))
        case .pattern(let vs):
            return floatData((0..<t.count).map { vs[$0 % vs.count] })
        case .fir(let scale):
            let k: [Float] = [1, 3, 3, 1]
            return floatData((0..<16).map { k[$0 / 4] * k[$0 % 4] / 64 * scale })
        case .noise(let std):
            return floatData(noise(t, std: std, seed: seed))
        case .prefixed(let first, let std):
            var out = noise(t, std: std, seed: seed)
            for i in first.indices.prefix(out.count) { out[i] = first[i] }
            return floatData(out)
        }
    }

    /// Seeded uniform noise (zero mean, standard deviation `std`) for one tensor, keyed by its name.
    static func noise(_ t: SyntheticTensor, std: Double, seed: UInt64) -> [Float] {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for byte in t.key.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        var rng = SplitMix64(seed: h)
        let a = Float(std * 3.0.squareRoot())
        var out = [Float](repeating: 0, count: t.count)
        for i in out.indices { out[i] = (Float(rng.next() >> 40) * 0x1p-24 * 2 - 1) * a }
        return out
    }

    static func floatData(_ a: [Float]) -> Data {
        a.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Data($0) }
    }

    /// The synthetic files `ensure` can write.
    public static let defaultNames = ["GPEN-BFR-512", "GPEN-BFR-256", "RetinaFace-R50", "ParseNet-latest", "RealESRGAN_x2plus"]

    /// Writes (or reuses, when already present with the right size) the named synthetic files into `dir` as
    /// `<name>.synthetic.safetensors` (names from `defaultNames`). Returns name → path.
    public static func ensure(_ names: [String], in dir: URL) throws(BenchError) -> [String: String] {
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw .io(path: dir.path, reason: "cannot create folder: \(error.localizedDescription)")
        }
        var out: [String: String] = [:]
        for name in names {
            let tensors: [SyntheticTensor], arch: String
            switch name {
            case "GPEN-BFR-512": tensors = try gpen(size: 512); arch = "GPEN FullGenerator(512, 512, 8, 2, narrow=1)"
            case "GPEN-BFR-256": tensors = try gpen(size: 256, channelMultiplier: 1, narrow: 0.5)
                arch = "GPEN FullGenerator(256, 512, 8, 1, narrow=0.5)"
            case "RetinaFace-R50": tensors = retinaFaceR50(); arch = "RetinaFace ResNet-50 (class head biased to background)"
            case "ParseNet-latest": tensors = parseNet(); arch = "ParseNet(512, 512, 32, 64, 19, 10)"
            case "RealESRGAN_x2plus": tensors = try rrdbNet(scale: 2, blocks: 23, passThrough: true)
                arch = "RRDBNet(3, 3, scale 2, 64, 23, 32), pass-through channels 0-2"
            default: throw .invalidArgument("no synthetic layout named \(name) (\(defaultNames.joined(separator: ", ")))")
            }
            let url = dir.appendingPathComponent("\(name).synthetic.safetensors")
            let payload = tensors.reduce(0) { $0 + $1.count * ($1.fill == .int64Zero ? 8 : 4) }
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? nil
            if size == nil || size! < payload + 8 || (try? CheckpointLoader.load(url))?.metadata["architecture"] != arch {
                try writeSafetensors(tensors, to: url, metadata: ["synthetic": "true", "architecture": arch,
                                                                   "note": BenchReport.syntheticWords])
            }
            out[name] = url.path
        }
        return out
    }
}
