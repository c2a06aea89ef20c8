import Checkpoint
import Foundation
import TensorCore

/// GPEN's face parser (`face_parse/parse_model.py` ParseNet with `blocks.py`): reflection-padded 3×3 convs,
/// BatchNorm folded at load time, LeakyReLU(0.2) residual blocks, an encoder/body/decoder and two heads.
/// Input: N×3×H×W RGB in [-1, 1] (layout N, C, H, W); outputs: parsing logits N×parsingCh×H×W and image N×3×H×W.
public final class ParseNet: @unchecked Sendable {
    /// The hyper-parameters the network was built with.
    public let configuration: ParseNetConfiguration
    /// The backend the weights were prepared on.
    public let backend: any Backend

    struct Conv { let conv: PreparedConv2d; let act: Activation; let up: Bool }
    struct Block { let shortcut: Conv?; let conv1: Conv; let conv2: Conv }

    let first: Conv
    let encoder: [Block]
    let body: [Block]
    let decoder: [Block]
    /// Both heads as one convolution over the decoder's output: parsing logits in channels 0..<parsingCh, the image
    /// in the next 3, zero filters up to the backend's channel block (19 + 3 → 24 or 32), so the pair reads its
    /// input once and runs on the backend's fast 3×3 path (alone, 64→19 and 64→3 took direct kernels: 136 ms at 512²).
    let heads: Conv

    /// Loads a ParseNet state dict strictly (every key used and shape-checked).
    public init(stateDict dict: StateDict, configuration given: ParseNetConfiguration? = nil, backend: any Backend) throws {
        let cfg: ParseNetConfiguration
        if let given { cfg = given } else {
            switch ArchitectureDetector.detect(dict) {
            case let .parseNet(c): cfg = c
            case let other: throw FaceModelError.wrongArchitecture(model: "ParseNet", found: other.name)
            }
        }
        guard cfg.chRange.count == 2, cfg.chRange[0] > 0, cfg.chRange[0] <= cfg.chRange[1], cfg.chRange[1] <= 8192,
              cfg.baseCh > 0, cfg.parsingCh > 0, cfg.downSteps >= 0, cfg.downSteps <= 12, cfg.upSteps >= 0, cfg.upSteps <= 12,
              cfg.resDepth >= 0, cfg.resDepth <= 256 else {
            throw FaceModelError.invalidConfiguration(model: "ParseNet", reason: "\(cfg)")
        }
        guard ["bn", "none"].contains(cfg.normType) else {
            throw FaceModelError.invalidConfiguration(model: "ParseNet", reason: "norm_type '\(cfg.normType)' is not supported (bn, none)")
        }
        let act: Activation
        switch cfg.reluType.lowercased() {
        case "leakyrelu": act = .leakyReLU(slope: 0.2)
        case "relu": act = .relu
        case "none": act = .none
        default: throw FaceModelError.invalidConfiguration(model: "ParseNet", reason: "relu_type '\(cfg.reluType)' is not supported")
        }
        dict.resetUsage()
        configuration = cfg
        self.backend = backend
        let be = backend
        let r = WeightReader(dict)
        let bn = cfg.normType == "bn"
        func clip(_ x: Int) -> Int { max(cfg.chRange[0], min(x, cfg.chRange[1])) }

        func conv(_ p: String, _ cin: Int, _ cout: Int, scale: String, norm: Bool, act: Activation) throws -> Conv {
            let shape = [cout, cin, 3, 3]
            let w: HostTensor, b: HostTensor?
            if norm { (w, b) = try r.convBN(conv: p + ".conv2d", bn: p + ".norm.norm", shape: shape) } else {
                w = try r.host(p + ".conv2d.weight", shape); b = try r.host(p + ".conv2d.bias", [cout])
            }
            let c = try be.prepareConv2d(weight: w, bias: b, params: Conv2dParams(inChannels: cin, outChannels: cout, kernel: 3,
                                                                                  stride: scale == "down" ? 2 : 1))
            return Conv(conv: c, act: act, up: scale == "up")
        }
        func block(_ p: String, _ cin: Int, _ cout: Int, scale: String) throws -> Block {
            let sc = (scale == "none" && cin == cout) ? nil : try conv(p + ".shortcut_func", cin, cout, scale: scale, norm: false, act: .none)
            let c1 = try conv(p + ".conv1", cin, cout, scale: scale == "up" ? "up" : "none", norm: bn, act: act)
            let c2 = try conv(p + ".conv2", cout, cout, scale: scale == "down" ? "down" : "none", norm: bn, act: .none)
            return Block(shortcut: sc, conv1: c1, conv2: c2)
        }
        first = try conv("encoder.0", 3, cfg.baseCh, scale: "none", norm: false, act: .none)
        var head = cfg.baseCh
        var enc: [Block] = []
        for i in 0..<cfg.downSteps {
            enc.append(try block("encoder.\(i + 1)", clip(head), clip(head * 2), scale: "down")); head *= 2
        }
        encoder = enc
        body = try (0..<cfg.resDepth).map { try block("body.\($0)", clip(head), clip(head), scale: "none") }
        var dec: [Block] = []
        for i in 0..<cfg.upSteps {
            dec.append(try block("decoder.\(i)", clip(head), clip(head / 2), scale: "up")); head /= 2
        }
        decoder = dec
        let hc = clip(head), k = cfg.parsingCh + 3
        let maskW = try r.host("out_mask_conv.conv2d.weight", [cfg.parsingCh, hc, 3, 3])
        let maskB = try r.host("out_mask_conv.conv2d.bias", [cfg.parsingCh])
        let imgW = try r.host("out_img_conv.conv2d.weight", [3, hc, 3, 3]), imgB = try r.host("out_img_conv.conv2d.bias", [3])
        let align = max(1, be.channelViewAlignment), padded = (k + align - 1) / align * align
        let w = try HostTensor(shape: [padded, hc, 3, 3], data: maskW.data + imgW.data + [Float](repeating: 0, count: (padded - k) * hc * 9))
        let b = try HostTensor(shape: [padded], data: maskB.data + imgB.data + [Float](repeating: 0, count: padded - k))
        heads = Conv(conv: try be.prepareConv2d(weight: w, bias: b, params: Conv2dParams(inChannels: hc, outChannels: padded, kernel: 3)),
                     act: .none, up: false)
        try dict.verifyAllUsed()
        replay = ReplayedForward(backend: backend, label: "ParseNet", serial: true) { [unowned self] x in [try self.forward(x).mask] }
    }

    /// Loads a ParseNet checkpoint file strictly.
    public convenience init(contentsOf url: URL, configuration: ParseNetConfiguration? = nil, backend: any Backend) throws {
        let ck = try CheckpointLoader.load(url)
        try self.init(stateDict: ck.stateDict, configuration: configuration, backend: backend)
    }

    func run(_ c: Conv, _ x: Tensor, residual: Tensor? = nil) throws -> Tensor {
        let be = backend
        var h = x
        if c.up { h = try be.upsampleNearest(h, factor: 2) }
        return try be.reflectPadConv2d(h, padding: 1, c.conv, epilogue: Epilogue(activation: c.act, residual: residual))
    }

    /// A residual block taking its input out of `slot`: the input goes once conv1 has read it, unless it is the
    /// identity shortcut or the caller holds it too (512²: 64 MiB less while the first down block's stride-2 conv2
    /// pads conv1's output, the network's peak).
    func run(_ b: Block, taking slot: inout Tensor?) throws -> Tensor {
        let idn = try b.shortcut.map { try run($0, slot!) } ?? slot!
        let c1 = try run(b.conv1, slot!)
        slot = nil
        return try run(b.conv2, c1, residual: idn)
    }

    /// Runs the network: (parsing logits N×parsingCh×H'×W', image N×3×H'×W'), H' = H·2^(up−down).
    public func forward(_ x: Tensor) throws -> (mask: Tensor, image: Tensor) {
        let f = 1 << configuration.downSteps
        guard x.shape.c == 3, x.shape.h % f == 0, x.shape.w % f == 0, x.shape.h >= 2 * f, x.shape.w >= 2 * f else {
            throw FaceModelError.invalidInput(model: "ParseNet", reason: "expected N×3×H×W with H, W multiples of \(f) (≥ \(2 * f)), got \(x.shape)")
        }
        var h: Tensor? = try run(first, x)
        for b in encoder { h = try run(b, taking: &h) }
        var t = h
        for b in body { t = try run(b, taking: &t) }
        h = try backend.add(h!, t!)
        for b in decoder { h = try run(b, taking: &h) }
        let both = try run(heads, h!)
        h = nil
        let k = configuration.parsingCh
        return (try backend.sliceChannels(both, 0..<k), try backend.sliceChannels(both, k..<(k + 3)))
    }

    /// FaceParse `img2tensor`: uint8 BGR (layout H·W·C) → 1×3×H×W RGB, x/255·2 − 1 computed in double like NumPy, then float32.
    public static func inputTensor(bgr: [UInt8], width: Int, height: Int) throws -> HostTensor {
        guard width > 0, height > 0, bgr.count == width * height * 3 else {
            throw FaceModelError.invalidInput(model: "ParseNet", reason: "\(bgr.count) bytes for a \(width)x\(height) BGR image")
        }
        let plane = width * height
        var d = [Float](repeating: 0, count: 3 * plane)
        for p in 0..<plane { for c in 0..<3 { d[c * plane + p] = Float(Double(bgr[p * 3 + 2 - c]) / 255 * 2 - 1) } }
        return try HostTensor(shape: [1, 3, height, width], data: d)
    }

    /// Argmax over the class axis of N×K×H×W logits for sample `batch` (first maximum wins, like torch.argmax): H·W classes.
    public static func argmax(_ logits: HostTensor, batch: Int = 0) -> [Int] {
        let (k, h, w) = (logits.shape[1], logits.shape[2], logits.shape[3])
        let plane = h * w
        let base = batch * k * plane
        var out = [Int](repeating: 0, count: plane)
        for p in 0..<plane {
            var best = logits.data[base + p], bi = 0
            for c in 1..<k where logits.data[base + c * plane + p] > best { best = logits.data[base + c * plane + p]; bi = c }
            out[p] = bi
        }
        return out
    }

    /// Host input to the host mask, one forward at a time: eager, or a replayed CUDA graph per input size once
    /// `replay.enableCapture()` was called. (Set as init's last step, before anyone else sees the parser.)
    public private(set) var replay: ReplayedForward!

    /// FaceParse.process up to the class map: runs the network on a BGR face (layout H·W·C, already at the parser
    /// size) and returns the argmax class of every pixel (layout H·W).
    public func parse(bgr: [UInt8], width: Int, height: Int) throws -> [Int] {
        let x = try Self.inputTensor(bgr: bgr, width: width, height: height)
        return Self.argmax(try replay.run(x)[0])
    }
}
