import Foundation

/// RRDBNet (ESRGAN / Real-ESRGAN x4plus) hyper-parameters, as BasicSR's constructor takes them.
public struct RRDBNetConfiguration: Codable, Equatable, Sendable {
    /// Input/output channels, upscale factor (4: plain, 2/1: pixel-unshuffle first), trunk width, RRDB count, growth width.
    public var numInCh: Int, numOutCh: Int, scale: Int, numFeat: Int, numBlock: Int, numGrowCh: Int
    /// Memberwise initialiser.
    public init(numInCh: Int, numOutCh: Int, scale: Int, numFeat: Int, numBlock: Int, numGrowCh: Int) {
        self.numInCh = numInCh; self.numOutCh = numOutCh; self.scale = scale
        self.numFeat = numFeat; self.numBlock = numBlock; self.numGrowCh = numGrowCh
    }
    enum CodingKeys: String, CodingKey {
        case numInCh = "num_in_ch", numOutCh = "num_out_ch", scale, numFeat = "num_feat", numBlock = "num_block", numGrowCh = "num_grow_ch"
    }
}

/// SRVGGNetCompact (Real-ESRGAN compact / animevideov3) hyper-parameters.
public struct SRVGGNetConfiguration: Codable, Equatable, Sendable {
    /// Input/output channels, width, number of body convolutions, PixelShuffle factor.
    public var numInCh: Int, numOutCh: Int, numFeat: Int, numConv: Int, upscale: Int
    /// "prelu", or "relu" when the file has no activation parameters (relu and leakyrelu cannot be told apart).
    public var actType: String
    /// Memberwise initialiser.
    public init(numInCh: Int, numOutCh: Int, numFeat: Int, numConv: Int, upscale: Int, actType: String) {
        self.numInCh = numInCh; self.numOutCh = numOutCh; self.numFeat = numFeat
        self.numConv = numConv; self.upscale = upscale; self.actType = actType
    }
    enum CodingKeys: String, CodingKey {
        case numInCh = "num_in_ch", numOutCh = "num_out_ch", numFeat = "num_feat", numConv = "num_conv", upscale, actType = "act_type"
    }
}

/// GPEN FullGenerator hyper-parameters (blur kernel [1,3,3,1], lr_mlp 0.01 and isconcat are fixed upstream).
public struct GPENConfiguration: Codable, Equatable, Sendable {
    /// Output side, latent width, mapping layers, channel multiplier, channel narrowing factor.
    public var size: Int, styleDim: Int, nMLP: Int, channelMultiplier: Int, narrow: Double
    /// Memberwise initialiser.
    public init(size: Int, styleDim: Int, nMLP: Int, channelMultiplier: Int, narrow: Double) {
        self.size = size; self.styleDim = styleDim; self.nMLP = nMLP; self.channelMultiplier = channelMultiplier; self.narrow = narrow
    }
    enum CodingKeys: String, CodingKey {
        case size, styleDim = "style_dim", nMLP = "n_mlp", channelMultiplier = "channel_multiplier", narrow
    }
}

/// RetinaFace backbone choice and FPN widths.
public struct RetinaFaceConfiguration: Codable, Equatable, Sendable {
    /// The two backbones of Pytorch_Retinaface.
    public enum Backbone: String, Codable, Sendable { case resnet50, mobilenet025 = "mobilenet0.25" }
    /// The backbone network.
    public var backbone: Backbone
    /// FPN/SSH width (256 for R50, 64 for MobileNet-0.25).
    public var outChannel: Int
    /// Memberwise initialiser.
    public init(backbone: Backbone, outChannel: Int) { self.backbone = backbone; self.outChannel = outChannel }
    enum CodingKeys: String, CodingKey { case backbone, outChannel = "out_channel" }
}

/// ParseNet hyper-parameters. Only the ratio in_size/min_feat_size (2^downSteps) is recorded in a file;
/// `chRange` is the narrowest range giving the same network (channel counts seen in the file).
public struct ParseNetConfiguration: Codable, Equatable, Sendable {
    /// First conv width, parsing classes, body residual blocks, encoder/decoder resampling blocks.
    public var baseCh: Int, parsingCh: Int, resDepth: Int, downSteps: Int, upSteps: Int
    /// "bn" when BatchNorm statistics are present; the activation is LeakyReLU(0.2) in every released file.
    public var normType: String, reluType: String
    /// [min, max] channel counts seen (an equivalent ch_range).
    public var chRange: [Int]
    /// Memberwise initialiser.
    public init(baseCh: Int, parsingCh: Int, resDepth: Int, downSteps: Int, upSteps: Int, normType: String, reluType: String, chRange: [Int]) {
        self.baseCh = baseCh; self.parsingCh = parsingCh; self.resDepth = resDepth; self.downSteps = downSteps
        self.upSteps = upSteps; self.normType = normType; self.reluType = reluType; self.chRange = chRange
    }
    enum CodingKeys: String, CodingKey {
        case baseCh = "base_ch", parsingCh = "parsing_ch", resDepth = "res_depth", downSteps = "down_steps",
             upSteps = "up_steps", normType = "norm_type", reluType = "relu_type", chRange = "ch_range"
    }
}

/// The network a state dict holds.
public enum DetectedArchitecture: Equatable, Sendable {
    case rrdbNet(RRDBNetConfiguration)
    case srvggNet(SRVGGNetConfiguration)
    case gpen(GPENConfiguration)
    case retinaFace(RetinaFaceConfiguration)
    case parseNet(ParseNetConfiguration)
    /// Not recognised; carries the first keys for the message.
    case unrecognised(firstKeys: [String])

    /// Short architecture name ("RRDBNet", …, or "unrecognised").
    public var name: String {
        switch self {
        case .rrdbNet: return "RRDBNet"
        case .srvggNet: return "SRVGGNetCompact"
        case .gpen: return "GPEN"
        case .retinaFace: return "RetinaFace"
        case .parseNet: return "ParseNet"
        case .unrecognised: return "unrecognised"
        }
    }

    /// The configuration as snake_case JSON, or nil when unrecognised.
    public func configurationJSON() -> String? {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let data: Data?
        switch self {
        case let .rrdbNet(c): data = try? enc.encode(c)
        case let .srvggNet(c): data = try? enc.encode(c)
        case let .gpen(c): data = try? enc.encode(c)
        case let .retinaFace(c): data = try? enc.encode(c)
        case let .parseNet(c): data = try? enc.encode(c)
        case .unrecognised: data = nil
        }
        return data.map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Infers the architecture and its hyper-parameters from key names and shapes.
public enum ArchitectureDetector {
    /// Detects the network of `dict` (keys without wrapper or `module.` prefix).
    public static func detect(_ dict: StateDict) -> DetectedArchitecture {
        detect(ShapeTable(dict.tensors.map { ($0.name, $0.shape) }))
    }

    /// Detection from key names and shapes only (in file order).
    static func detect(_ dict: ShapeTable) -> DetectedArchitecture {
        if let a = rrdb(dict) { return a }
        if let a = srvgg(dict) { return a }
        if let a = gpen(dict) { return a }
        if let a = retina(dict) { return a }
        if let a = parse(dict) { return a }
        return .unrecognised(firstKeys: Array(dict.keys.prefix(8)))
    }

    private static func shape(_ d: ShapeTable, _ k: String) -> [Int]? { d[k] }

    /// Largest N + 1 such that `prefix.N.` starts some key (contiguous from 0 not required).
    private static func indices(_ d: ShapeTable, prefix: String) -> [Int] {
        var s = Set<Int>()
        for k in d.keys where k.hasPrefix(prefix) {
            let rest = k.dropFirst(prefix.count)
            if let dot = rest.firstIndex(of: "."), let i = Int(rest[..<dot]) { s.insert(i) }
        }
        return s.sorted()
    }

    static func rrdb(_ d: ShapeTable) -> DetectedArchitecture? {
        guard let first = shape(d, "conv_first.weight"), first.count == 4, let last = shape(d, "conv_last.weight"), last.count == 4,
              let g = shape(d, "body.0.rdb1.conv1.weight"), g.count == 4,
              d["conv_up1.weight"] != nil, d["conv_up2.weight"] != nil else { return nil }
        let blocks = indices(d, prefix: "body.")
        guard blocks == Array(0..<blocks.count) else { return nil }
        let out = last[0], inCh = first[1]
        let scale: Int
        if inCh == out { scale = 4 } else if inCh == out * 4 { scale = 2 } else if inCh == out * 16 { scale = 1 } else { return nil }
        return .rrdbNet(RRDBNetConfiguration(numInCh: out, numOutCh: out, scale: scale, numFeat: first[0], numBlock: blocks.count, numGrowCh: g[0]))
    }

    static func srvgg(_ d: ShapeTable) -> DetectedArchitecture? {
        guard let w0 = shape(d, "body.0.weight"), w0.count == 4, d.keys.allSatisfy({ $0.hasPrefix("body.") }) else { return nil }
        let idx = indices(d, prefix: "body.")
        let convs = idx.filter { shape(d, "body.\($0).weight")?.count == 4 }
        guard convs.count >= 2, convs == stride(from: 0, through: convs.last!, by: 2).map({ $0 }) else { return nil }
        let prelu = shape(d, "body.1.weight") == [w0[0]]
        let lastOut = shape(d, "body.\(convs.last!).weight")![0]
        let inCh = w0[1]
        let up2 = lastOut / inCh
        let up = Int(Double(up2).squareRoot().rounded())
        guard up >= 1, up * up * inCh == lastOut else { return nil }
        return .srvggNet(SRVGGNetConfiguration(numInCh: inCh, numOutCh: inCh, numFeat: w0[0], numConv: convs.count - 2,
                                               upscale: up, actType: prelu ? "prelu" : "relu"))
    }

    static func gpen(_ d: ShapeTable) -> DetectedArchitecture? {
        guard let input = shape(d, "generator.input.input"), input.count == 4,
              let s1 = shape(d, "generator.style.1.weight"), s1.count == 2 else { return nil }
        let styles = indices(d, prefix: "generator.style.")
        let rgbs = indices(d, prefix: "generator.to_rgbs.")
        guard !rgbs.isEmpty, rgbs == Array(0..<rgbs.count), rgbs.count < 20 else { return nil }
        let size = 1 << (rgbs.count + 2)
        let c4 = input[1]
        let narrow = Double(c4) / 512.0
        // channel at resolution r >= 64 is int(16384 / r * cm * narrow); read it from convs.{2j}.conv.weight (j = log2 r - 3)
        var cm = 2
        var found = false
        var r = 64, j = 3
        while r <= size {
            if let w = shape(d, "generator.convs.\(2 * j).conv.weight"), w.count == 5 {
                let coef = Double(16384 / r) * narrow
                let guess = max(1, Int((Double(w[1]) / coef).rounded()))
                if !found { cm = guess; found = true }
                if Int(Double(16384 / r) * Double(cm) * narrow) != w[1] { return nil }
            }
            r *= 2; j += 1
        }
        return .gpen(GPENConfiguration(size: size, styleDim: s1[0], nMLP: styles.count, channelMultiplier: cm, narrow: narrow))
    }

    static func retina(_ d: ShapeTable) -> DetectedArchitecture? {
        guard d["ClassHead.0.conv1x1.weight"] != nil || d["BboxHead.0.conv1x1.weight"] != nil,
              let fpn = shape(d, "fpn.output1.0.weight") else { return nil }
        if d["body.conv1.weight"] != nil, d["body.layer1.0.conv1.weight"] != nil {
            return .retinaFace(RetinaFaceConfiguration(backbone: .resnet50, outChannel: fpn[0]))
        }
        if d["body.stage1.0.0.weight"] != nil {
            return .retinaFace(RetinaFaceConfiguration(backbone: .mobilenet025, outChannel: fpn[0]))
        }
        return nil
    }

    static func parse(_ d: ShapeTable) -> DetectedArchitecture? {
        guard let e0 = shape(d, "encoder.0.conv2d.weight"), e0.count == 4,
              let mask = shape(d, "out_mask_conv.conv2d.weight"), d["out_img_conv.conv2d.weight"] != nil else { return nil }
        let enc = indices(d, prefix: "encoder.").filter { $0 > 0 }
        let body = indices(d, prefix: "body.")
        let dec = indices(d, prefix: "decoder.")
        var chans = Set<Int>()
        for k in d.keys where k.hasSuffix("conv2d.weight") && !k.hasPrefix("out_") && k != "encoder.0.conv2d.weight" {
            if let s = shape(d, k) { chans.insert(s[0]); chans.insert(s[1]) }
        }
        let norm = d.keys.contains { $0.hasSuffix(".norm.norm.running_mean") } ? "bn" : (d.keys.contains { $0.contains(".norm.") } ? "in" : "none")
        return .parseNet(ParseNetConfiguration(baseCh: e0[0], parsingCh: mask[0], resDepth: body.count, downSteps: enc.count,
                                               upSteps: dec.count, normType: norm, reluType: "LeakyReLU",
                                               chRange: [chans.min() ?? e0[0], chans.max() ?? e0[0]]))
    }
}

/// Key names and shapes of a state dict, in order (what architecture detection looks at).
struct ShapeTable {
    let keys: [String]
    private let shapes: [String: [Int]]
    init(_ items: [(String, [Int])]) {
        keys = items.map { $0.0 }
        var s: [String: [Int]] = [:]
        for (k, v) in items { s[k] = v }
        shapes = s
    }
    subscript(key: String) -> [Int]? { shapes[key] }
}
