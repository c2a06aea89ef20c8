import Checkpoint
import TensorCore
import Foundation

/// Seeded random-weight checkpoints in the exact key layout of GPEN, RetinaFace (MobileNet-0.25 / ResNet-50) and
/// ParseNet, serialised as safetensors (readable by `CheckpointLoader`). For tests and benchmarks: released GPEN
/// weights are not available offline, and speed does not depend on weight values.
public enum SyntheticCheckpoint {
    /// One named float32 tensor (row-major).
    public struct Entry: Sendable {
        public var name: String
        public var shape: [Int]
        public var values: [Float]
        /// Creates an entry.
        public init(name: String, shape: [Int], values: [Float]) { self.name = name; self.shape = shape; self.values = values }
    }

    /// SplitMix64 + Box–Muller normal samples.
    public struct Random: Sendable {
        var bits: SplitMix64
        /// A generator with the given seed.
        public init(seed: UInt64) { bits = SplitMix64(seed: seed &+ 0x9E37_79B9_7F4A_7C15) }
        /// Next 64 random bits.
        public mutating func next() -> UInt64 { bits.next() }
        /// Uniform in [0, 1).
        public mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
        /// Normal with the given mean and standard deviation.
        public mutating func normal(_ mean: Double = 0, _ std: Double = 1) -> Float {
            let u1 = max(uniform(), 1e-300), u2 = uniform()
            return Float(mean + std * (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
        }
        /// `n` normal samples.
        public mutating func normals(_ n: Int, _ mean: Double = 0, _ std: Double = 1) -> [Float] { (0..<n).map { _ in normal(mean, std) } }
    }

    /// Serialises entries as a safetensors file (F32, keys in the given order).
    public static func safetensors(_ entries: [Entry]) -> [UInt8] {
        SafeTensorsWriter.bytes(entries.map { ($0.name, $0.shape, $0.values) })
    }

    /// Loads entries through the real checkpoint reader (safetensors in memory).
    public static func stateDict(_ entries: [Entry]) throws -> StateDict {
        try CheckpointLoader.load(bytes: safetensors(entries), path: "<synthetic>").stateDict
    }

    static func fir(_ scale: Float) -> [Float] {
        let t: [Float] = [1, 3, 3, 1]
        return (0..<16).map { t[$0 / 4] * t[$0 % 4] / 64 * scale }
    }

    /// What a parameter is, for filling it: upstream initialises (and the bench's stand-in files fill) each kind its
    /// own way. The layouts below are the one description of each network's keys and shapes that both fills use.
    public enum Role: Sendable, Equatable {
        // GPEN
        case styleWeight, styleBias, constantInput
        /// A StyledConv's modulated 3×3 weight [1, out, in, 3, 3].
        case modulatedWeight
        /// A Blur/Upsample FIR buffer outer([1,3,3,1])/64 · scale (not learnable).
        case firKernel(scale: Float)
        case modulationWeight, modulationBias, noiseWeight, activationBias
        /// ToRGB's bias [1, 3, 1, 1] and modulated 1×1 weight [1, 3, in, 1, 1].
        case rgbBias, rgbWeight
        case encoderWeight, encoderBias, finalWeight, finalBias
        // RetinaFace and ParseNet
        /// A convolution weight with He initialisation (std √(2 / fan-in)).
        case heWeight
        case convBias
        /// BatchNorm weight, bias, running statistics and `num_batches_tracked` (an int64 scalar in released files).
        case bnWeight, bnBias, bnMean, bnVar, bnCount
        /// RetinaFace's 1×1 head weights and biases (class head of FPN level `level`).
        case headWeight, classBias(level: Int), boxBias, landmarkBias
        /// ParseNet's mask output conv.
        case maskWeight, maskBias
    }

    /// One parameter of a state dict.
    public struct Parameter: Sendable {
        public let key: String
        public let shape: [Int]
        public let role: Role
        /// Buffers and BatchNorm statistics are not learnable parameters.
        public var learnable: Bool {
            switch role {
            case .firKernel, .bnMean, .bnVar, .bnCount: return false
            default: return true
            }
        }
    }

    /// The keys and shapes of a GPEN FullGenerator state dict (channels from `GPENGenerator.channels`, the loader's
    /// own table): the one description the synthetic checkpoints here and the bench's stand-in files are made from.
    public static func gpenLayout(_ c: GPENConfiguration) -> [Parameter] {
        var e: [Parameter] = []
        func add(_ key: String, _ shape: [Int], _ role: Role) { e.append(Parameter(key: key, shape: shape, role: role)) }
        let size = c.size, sd = c.styleDim
        let L = Int(log2(Double(size)).rounded())
        func ch(_ res: Int) -> Int { GPENGenerator.channels(c, resolution: res) }
        for i in 1...max(1, c.nMLP) where c.nMLP > 0 {
            add("generator.style.\(i).weight", [sd, sd], .styleWeight); add("generator.style.\(i).bias", [sd], .styleBias)
        }
        let c4 = ch(4)
        add("generator.input.input", [1, c4, 4, 4], .constantInput)
        func styled(_ p: String, _ inC: Int, _ outC: Int, up: Bool) {
            add(p + ".conv.weight", [1, outC, inC, 3, 3], .modulatedWeight)
            if up { add(p + ".conv.blur.kernel", [4, 4], .firKernel(scale: 4)) }
            add(p + ".conv.modulation.weight", [inC, sd], .modulationWeight); add(p + ".conv.modulation.bias", [inC], .modulationBias)
            add(p + ".noise.weight", [1], .noiseWeight); add(p + ".activate.bias", [2 * outC], .activationBias)
        }
        func rgb(_ p: String, _ inC: Int, up: Bool) {
            add(p + ".bias", [1, 3, 1, 1], .rgbBias)
            if up { add(p + ".upsample.kernel", [4, 4], .firKernel(scale: 4)) }
            add(p + ".conv.weight", [1, 3, inC, 1, 1], .rgbWeight)
            add(p + ".conv.modulation.weight", [inC, sd], .modulationWeight); add(p + ".conv.modulation.bias", [inC], .modulationBias)
        }
        styled("generator.conv1", c4, c4, up: false)
        rgb("generator.to_rgb1", 2 * c4, up: false)
        var prev = c4
        for j in 0..<(L - 2) {
            let cr = ch(8 << j)
            styled("generator.convs.\(2 * j)", 2 * prev, cr, up: true)
            styled("generator.convs.\(2 * j + 1)", 2 * cr, cr, up: false)
            prev = cr
        }
        for j in 0..<(L - 2) { rgb("generator.to_rgbs.\(j)", 2 * ch(8 << j), up: true) }
        add("ecd0.0.0.weight", [ch(size), 3, 1, 1], .encoderWeight); add("ecd0.0.1.bias", [ch(size)], .encoderBias)
        var res = size
        for k in 1...(L - 2) {
            add("ecd\(k).0.0.kernel", [4, 4], .firKernel(scale: 1))
            add("ecd\(k).0.1.weight", [ch(res / 2), ch(res), 3, 3], .encoderWeight); add("ecd\(k).0.2.bias", [ch(res / 2)], .encoderBias)
            res /= 2
        }
        add("final_linear.0.weight", [sd, c4 * 16], .finalWeight); add("final_linear.0.bias", [sd], .finalBias)
        return e
    }

    /// A GPEN FullGenerator state dict (upstream init scales: conv/modulated weights N(0,1), mapping weights
    /// N(0, 1/lr_mul²), modulation bias 1 + N(0, 0.1²), noise weights and activation biases small random).
    public static func gpen(_ c: GPENConfiguration, seed: UInt64 = 1) -> [Entry] {
        var r = Random(seed: seed)
        return gpenLayout(c).map { p in
            let n = p.shape.reduce(1, *)
            let values: [Float]
            switch p.role {
            case let .firKernel(scale): values = fir(scale)
            case .styleWeight: values = r.normals(n, 0, 100)
            case .styleBias: values = r.normals(n, 0, 10)
            case .modulationBias: values = r.normals(n, 1, 0.1)
            case .noiseWeight: values = r.normals(n, 0, 0.3)
            case .rgbWeight: values = r.normals(n, 0, 0.3)
            case .activationBias, .rgbBias, .encoderBias, .finalBias: values = r.normals(n, 0, 0.1)
            default: values = r.normals(n)   // constant input, modulated, modulation, encoder and final weights
            }
            return Entry(name: p.key, shape: p.shape, values: values)
        }
    }

    /// BatchNorm `p` over `c` channels (PyTorch's five entries).
    static func bn(_ add: (String, [Int], Role) -> Void, _ p: String, _ c: Int) {
        add(p + ".weight", [c], .bnWeight); add(p + ".bias", [c], .bnBias)
        add(p + ".running_mean", [c], .bnMean); add(p + ".running_var", [c], .bnVar)
        add(p + ".num_batches_tracked", [], .bnCount)
    }

    /// Values for the roles the RetinaFace and ParseNet dicts share: He-initialised convs, small random biases, BatchNorm
    /// near identity (`num_batches_tracked` is left out: the loader does not read it). Nil for roles a network fills
    /// itself.
    static func commonValues(_ p: Parameter, _ r: inout Random) -> [Float]? {
        let n = p.shape.reduce(1, *)
        switch p.role {
        case .heWeight: return r.normals(n, 0, (2.0 / Double(p.shape[1...].reduce(1, *))).squareRoot())
        case .convBias, .bnBias, .bnMean: return r.normals(n, 0, 0.1)
        case .bnWeight: return r.normals(n, 1, 0.1)
        case .bnVar: return (0..<n).map { _ in Float(0.5 + r.uniform()) }
        default: return nil
        }
    }

    /// The keys and shapes of a RetinaFace state dict (Biubug6's Pytorch_Retinaface, as GPEN ships it).
    public static func retinaFaceLayout(_ c: RetinaFaceConfiguration) -> [Parameter] {
        var e: [Parameter] = []
        func add(_ key: String, _ shape: [Int], _ role: Role) { e.append(Parameter(key: key, shape: shape, role: role)) }
        func cbn(_ p: String, _ s: [Int], conv cn: String = ".0", bn bnn: String = ".1") { add(p + cn + ".weight", s, .heWeight); bn(add, p + bnn, s[0]) }
        let inList: [Int]
        switch c.backbone {
        case .mobilenet025:
            func dw(_ p: String, _ i: Int, _ o: Int) { cbn(p, [i, 1, 3, 3]); cbn(p, [o, i, 1, 1], conv: ".3", bn: ".4") }
            cbn("body.stage1.0", [8, 3, 3, 3])
            for (n, t) in [(8, 16), (16, 32), (32, 32), (32, 64), (64, 64)].enumerated() { dw("body.stage1.\(n + 1)", t.0, t.1) }
            dw("body.stage2.0", 64, 128)
            for n in 1...5 { dw("body.stage2.\(n)", 128, 128) }
            dw("body.stage3.0", 128, 256); dw("body.stage3.1", 256, 256)
            inList = [64, 128, 256]
        case .resnet50:
            cbn("body", [64, 3, 7, 7], conv: ".conv1", bn: ".bn1")
            var inplanes = 64
            for (li, nb) in [3, 4, 6, 3].enumerated() {
                let width = 64 << li, outC = width * 4
                for b in 0..<nb {
                    let p = "body.layer\(li + 1).\(b)"
                    cbn(p, [width, inplanes, 1, 1], conv: ".conv1", bn: ".bn1")
                    cbn(p, [width, width, 3, 3], conv: ".conv2", bn: ".bn2")
                    cbn(p, [outC, width, 1, 1], conv: ".conv3", bn: ".bn3")
                    if b == 0 { cbn(p, [outC, inplanes, 1, 1], conv: ".downsample.0", bn: ".downsample.1") }
                    inplanes = outC
                }
            }
            inList = [512, 1024, 2048]
        }
        let oc = c.outChannel
        for (i, ci) in inList.enumerated() { cbn("fpn.output\(i + 1)", [oc, ci, 1, 1]) }
        cbn("fpn.merge1", [oc, oc, 3, 3]); cbn("fpn.merge2", [oc, oc, 3, 3])
        for i in 1...3 {
            let p = "ssh\(i)"
            cbn(p + ".conv3X3", [oc / 2, oc, 3, 3]); cbn(p + ".conv5X5_1", [oc / 4, oc, 3, 3])
            cbn(p + ".conv5X5_2", [oc / 4, oc / 4, 3, 3]); cbn(p + ".conv7X7_2", [oc / 4, oc / 4, 3, 3])
            cbn(p + ".conv7x7_3", [oc / 4, oc / 4, 3, 3])
        }
        for i in 0..<3 {
            add("ClassHead.\(i).conv1x1.weight", [4, oc, 1, 1], .headWeight); add("ClassHead.\(i).conv1x1.bias", [4], .classBias(level: i))
            add("BboxHead.\(i).conv1x1.weight", [8, oc, 1, 1], .headWeight); add("BboxHead.\(i).conv1x1.bias", [8], .boxBias)
            add("LandmarkHead.\(i).conv1x1.weight", [20, oc, 1, 1], .headWeight); add("LandmarkHead.\(i).conv1x1.bias", [20], .landmarkBias)
        }
        return e
    }

    /// A RetinaFace state dict. Backbone, FPN and SSH weights are random (He init, BN near identity); the heads'
    /// weights are zero, so the outputs are the head biases: every prior of anchor 0 of the stride-32 level scores
    /// `faceLogit` (face) against 0, all other priors score background, boxes equal their priors, and landmark k
    /// sits at prior centre + `landmarkOffsets[k]`·0.1·prior size. Deterministic detections for pipeline tests.
    public static func retinaFace(_ c: RetinaFaceConfiguration, seed: UInt64 = 2, faceLogit: Float = 8,
                                  landmarkOffsets: [SIMD2<Float>] = [SIMD2(-0.4, -0.3), SIMD2(0.4, -0.3), SIMD2(0, 0.1),
                                                                     SIMD2(-0.3, 0.5), SIMD2(0.3, 0.5)]) -> [Entry] {
        var r = Random(seed: seed)
        return retinaFaceLayout(c).compactMap { p in
            let values: [Float]
            switch p.role {
            case .bnCount: return nil
            case let .classBias(level):
                var cls = [Float](repeating: 0, count: 4)
                if level == 2 { cls[1] = faceLogit } else { cls[0] = faceLogit }
                cls[2] = faceLogit  // anchor 1: background
                values = cls
            case .landmarkBias:
                var lm = [Float](repeating: 0, count: 20)
                for a in 0..<2 { for k in 0..<5 { lm[a * 10 + 2 * k] = landmarkOffsets[k].x; lm[a * 10 + 2 * k + 1] = landmarkOffsets[k].y } }
                values = lm
            case .headWeight, .boxBias: values = [Float](repeating: 0, count: p.shape.reduce(1, *))
            default: values = commonValues(p, &r)!
            }
            return Entry(name: p.key, shape: p.shape, values: values)
        }
    }

    /// The keys and shapes of a ParseNet state dict (GPEN's face_parse/parse_model.py) for `c`.
    public static func parseNetLayout(_ c: ParseNetConfiguration) -> [Parameter] {
        var e: [Parameter] = []
        func add(_ key: String, _ shape: [Int], _ role: Role) { e.append(Parameter(key: key, shape: shape, role: role)) }
        func clip(_ x: Int) -> Int { max(c.chRange[0], min(x, c.chRange[1])) }
        func conv(_ p: String, _ ci: Int, _ co: Int, bias: Bool, mask: Bool = false) {
            add(p + ".conv2d.weight", [co, ci, 3, 3], mask ? .maskWeight : .heWeight)
            if bias { add(p + ".conv2d.bias", [co], mask ? .maskBias : .convBias) }
        }
        func block(_ p: String, _ ci: Int, _ co: Int, scale: String) {
            if !(scale == "none" && ci == co) { conv(p + ".shortcut_func", ci, co, bias: true) }
            conv(p + ".conv1", ci, co, bias: false); bn(add, p + ".conv1.norm.norm", co)
            conv(p + ".conv2", co, co, bias: false); bn(add, p + ".conv2.norm.norm", co)
        }
        conv("encoder.0", 3, c.baseCh, bias: true)
        var head = c.baseCh
        for i in 0..<c.downSteps { block("encoder.\(i + 1)", clip(head), clip(head * 2), scale: "down"); head *= 2 }
        for i in 0..<c.resDepth { block("body.\(i)", clip(head), clip(head), scale: "none") }
        for i in 0..<c.upSteps { block("decoder.\(i)", clip(head), clip(head / 2), scale: "up"); head /= 2 }
        conv("out_img_conv", clip(head), 3, bias: true)
        conv("out_mask_conv", clip(head), c.parsingCh, bias: true, mask: true)
        return e
    }

    /// A ParseNet state dict for `c` (He-initialised convs, BN near identity, `out_mask_conv` bias random so that
    /// several classes win somewhere).
    public static func parseNet(_ c: ParseNetConfiguration, seed: UInt64 = 3) -> [Entry] {
        var r = Random(seed: seed)
        return parseNetLayout(c).compactMap { p in
            let n = p.shape.reduce(1, *)
            let values: [Float]
            switch p.role {
            case .bnCount: return nil
            case .maskWeight: values = r.normals(n, 0, 0.05)
            case .maskBias: values = r.normals(n, 0, 0.1)
            default: values = commonValues(p, &r)!
            }
            return Entry(name: p.key, shape: p.shape, values: values)
        }
    }
}
