import Checkpoint
import Foundation
import TensorCore

/// One RetinaFace detection in image pixels (upstream `detect()` row): box x1, y1, x2, y2, score, and the five
/// landmarks left eye, right eye, nose, left mouth corner, right mouth corner.
public struct RetinaFaceDetection: Sendable, Equatable {
    /// x1, y1, x2, y2 in pixels of the image given to `detect`.
    public var box: SIMD4<Float>
    /// Face score (divided by the detection downscale like upstream's `dets/ss`).
    public var score: Float
    /// Landmark x coordinates (5).
    public var landmarkX: [Float]
    /// Landmark y coordinates (5).
    public var landmarkY: [Float]

    /// Creates a detection.
    public init(box: SIMD4<Float>, score: Float, landmarkX: [Float], landmarkY: [Float]) {
        self.box = box; self.score = score; self.landmarkX = landmarkX; self.landmarkY = landmarkY
    }
}

/// Raw RetinaFace head outputs for one image, priors in level/row/column/anchor order.
public struct RetinaFaceRawOutput: Sendable {
    /// Number of priors N.
    public var count: Int
    /// Box regressions, N×4 (dx, dy, dw, dh), row-major.
    public var loc: [Float]
    /// Softmaxed class scores, N×2 (background, face).
    public var conf: [Float]
    /// Landmark regressions, N×10 (x1, y1, …, x5, y5).
    public var landms: [Float]
}

/// Detection settings of upstream `RetinaFaceDetection.detect`.
public struct RetinaFaceDetectOptions: Sendable, Equatable {
    /// Keep scores strictly above this (0.9).
    public var confidenceThreshold: Float = 0.9
    /// NMS IoU threshold (0.4, +1 pixel area convention).
    public var nmsThreshold: Float = 0.4
    /// Candidates kept before NMS (5000).
    public var topK: Int = 5000
    /// Detections kept after NMS (750).
    public var keepTopK: Int = 750
    /// Images whose longer side exceeds this are downscaled to `downscaleTarget` for detection (1500 → 1000).
    public var downscaleAbove: Int = 1500
    /// Longer side after the detection downscale.
    public var downscaleTarget: Int = 1000
    /// Mean subtracted from B, G, R.
    public var mean: SIMD3<Float> = SIMD3(104, 117, 123)
    /// Defaults of upstream GPEN.
    public init() {}

    /// The factor an image of this size is resized by for detection: `downscaleTarget / max(w, h)` above
    /// `downscaleAbove`, else 1 (upstream's `ss`, which also divides the returned scores).
    public func detectionScale(width: Int, height: Int) -> Double {
        max(width, height) > downscaleAbove ? Double(downscaleTarget) / Double(max(width, height)) : 1
    }
}

/// RetinaFace (Pytorch_Retinaface, as vendored by GPEN) with a MobileNet-0.25 or ResNet-50 backbone, BatchNorm folded
/// into the convolutions at load time. Input: 1×3×H×W BGR minus the mean (layout N, C, H, W), any H×W.
public final class RetinaFace: @unchecked Sendable {
    /// Backbone and FPN width.
    public let configuration: RetinaFaceConfiguration
    /// The backend the weights were prepared on.
    public let backend: any Backend

    struct Layer { let conv: PreparedConv2d; let act: Activation }
    struct Bottleneck { let c1: Layer, c2: Layer, c3: PreparedConv2d; let down: PreparedConv2d? }
    struct SSH { let c3: Layer, c5a: Layer, c5b: Layer, c7a: Layer, c7b: Layer; let out: Int }

    // Backbone: MobileNet stages (sequential layers) or ResNet stem + bottleneck layers.
    var stages: [[Layer]] = []
    var stem: Layer?
    var resLayers: [[Bottleneck]] = []
    let fpnOut: [Layer]
    let fpnMerge: [Layer]
    let ssh: [SSH]
    let heads: [(cls: PreparedConv2d, box: PreparedConv2d, lmk: PreparedConv2d)]

    static let minSizes: [[Int]] = [[16, 32], [64, 128], [256, 512]]
    static let steps = [8, 16, 32]

    /// Loads a RetinaFace state dict strictly (keys without `module.`; every key used and shape-checked).
    public init(stateDict dict: StateDict, configuration given: RetinaFaceConfiguration? = nil, backend: any Backend) throws {
        let cfg: RetinaFaceConfiguration
        if let given { cfg = given } else {
            switch ArchitectureDetector.detect(dict) {
            case let .retinaFace(c): cfg = c
            case let other: throw FaceModelError.wrongArchitecture(model: "RetinaFace", found: other.name)
            }
        }
        guard cfg.outChannel >= 4, cfg.outChannel % 4 == 0, cfg.outChannel <= 4096 else {
            throw FaceModelError.invalidConfiguration(model: "RetinaFace", reason: "out_channel \(cfg.outChannel)")
        }
        dict.resetUsage()
        configuration = cfg
        self.backend = backend
        let be = backend
        let r = WeightReader(dict)

        func cbn(_ p: String, _ shape: [Int], stride: Int = 1, groups: Int = 1, act: Activation,
                 conv: String = ".0", bn: String = ".1") throws -> Layer {
            let (w, b) = try r.convBN(conv: p + conv, bn: p + bn, shape: shape)
            let k = shape[2]
            let params = Conv2dParams(inChannels: shape[1] * groups, outChannels: shape[0], kernel: k, stride: stride,
                                      padding: k / 2, groups: groups)
            return Layer(conv: try be.prepareConv2d(weight: w, bias: b, params: params), act: act)
        }

        let inList: [Int]
        switch cfg.backbone {
        case .mobilenet025:
            let lk = Activation.leakyReLU(slope: 0.1)
            func dw(_ p: String, _ i: Int, _ o: Int, _ s: Int) throws -> [Layer] {
                [try cbn(p, [i, 1, 3, 3], stride: s, groups: i, act: lk),
                 try cbn(p, [o, i, 1, 1], act: lk, conv: ".3", bn: ".4")]
            }
            var s1: [Layer] = [try cbn("body.stage1.0", [8, 3, 3, 3], stride: 2, act: lk)]
            let spec1 = [(8, 16, 1), (16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1)]
            for (n, t) in spec1.enumerated() { s1 += try dw("body.stage1.\(n + 1)", t.0, t.1, t.2) }
            var s2: [Layer] = try dw("body.stage2.0", 64, 128, 2)
            for n in 1...5 { s2 += try dw("body.stage2.\(n)", 128, 128, 1) }
            let s3 = try dw("body.stage3.0", 128, 256, 2) + dw("body.stage3.1", 256, 256, 1)
            stages = [s1, s2, s3]
            inList = [64, 128, 256]
        case .resnet50:
            stem = try cbn("body", [64, 3, 7, 7], stride: 2, act: .relu, conv: ".conv1", bn: ".bn1")
            var inplanes = 64
            let blocks = [3, 4, 6, 3]
            for (li, nb) in blocks.enumerated() {
                let width = 64 << li, outC = width * 4
                var layer: [Bottleneck] = []
                for b in 0..<nb {
                    let p = "body.layer\(li + 1).\(b)"
                    let s = (b == 0 && li > 0) ? 2 : 1
                    let c1 = try cbn(p, [width, inplanes, 1, 1], act: .relu, conv: ".conv1", bn: ".bn1")
                    let c2 = try cbn(p, [width, width, 3, 3], stride: s, act: .relu, conv: ".conv2", bn: ".bn2")
                    let c3 = try cbn(p, [outC, width, 1, 1], act: .none, conv: ".conv3", bn: ".bn3").conv
                    var down: PreparedConv2d?
                    if b == 0 {
                        let (w, bb) = try r.convBN(conv: p + ".downsample.0", bn: p + ".downsample.1", shape: [outC, inplanes, 1, 1])
                        down = try be.prepareConv2d(weight: w, bias: bb,
                                                    params: Conv2dParams(inChannels: inplanes, outChannels: outC, kernel: 1, stride: s))
                    }
                    layer.append(Bottleneck(c1: c1, c2: c2, c3: c3, down: down))
                    inplanes = outC
                }
                resLayers.append(layer)
            }
            inList = [512, 1024, 2048]
        }

        let oc = cfg.outChannel
        let leaky: Activation = oc <= 64 ? .leakyReLU(slope: 0.1) : .relu
        var outs: [Layer] = []
        for (i, c) in inList.enumerated() { outs.append(try cbn("fpn.output\(i + 1)", [oc, c, 1, 1], act: leaky)) }
        fpnOut = outs
        fpnMerge = [try cbn("fpn.merge1", [oc, oc, 3, 3], act: leaky), try cbn("fpn.merge2", [oc, oc, 3, 3], act: leaky)]
        var sshs: [SSH] = []
        for i in 1...3 {
            let p = "ssh\(i)"
            sshs.append(SSH(c3: try cbn(p + ".conv3X3", [oc / 2, oc, 3, 3], act: .relu),
                            c5a: try cbn(p + ".conv5X5_1", [oc / 4, oc, 3, 3], act: leaky),
                            c5b: try cbn(p + ".conv5X5_2", [oc / 4, oc / 4, 3, 3], act: .relu),
                            c7a: try cbn(p + ".conv7X7_2", [oc / 4, oc / 4, 3, 3], act: leaky),
                            c7b: try cbn(p + ".conv7x7_3", [oc / 4, oc / 4, 3, 3], act: .relu), out: oc))
        }
        ssh = sshs
        func head(_ name: String, _ i: Int, _ k: Int) throws -> PreparedConv2d {
            let p = "\(name).\(i).conv1x1"
            return try be.prepareConv2d(weight: r.host(p + ".weight", [2 * k, oc, 1, 1]), bias: r.host(p + ".bias", [2 * k]),
                                        params: Conv2dParams(inChannels: oc, outChannels: 2 * k, kernel: 1))
        }
        var hs: [(PreparedConv2d, PreparedConv2d, PreparedConv2d)] = []
        for i in 0..<3 { hs.append((try head("ClassHead", i, 2), try head("BboxHead", i, 4), try head("LandmarkHead", i, 10))) }
        heads = hs
        try dict.verifyAllUsed()
    }

    /// Loads a RetinaFace checkpoint file (`module.` prefix and a `state_dict` wrapper are removed) strictly.
    public convenience init(contentsOf url: URL, configuration: RetinaFaceConfiguration? = nil, backend: any Backend) throws {
        let ck = try CheckpointLoader.load(url)
        try self.init(stateDict: ck.stateDict, configuration: configuration, backend: backend)
    }

    func run(_ l: Layer, _ x: Tensor) throws -> Tensor { try backend.conv2d(x, l.conv, epilogue: .activation(l.act)) }

    func backbone(_ x: Tensor) throws -> [Tensor] {
        let be = backend
        if let stem {
            var h = try be.maxPool2d(run(stem, x), kernel: 3, stride: 2, padding: 1)
            var feats: [Tensor] = []
            for (li, layer) in resLayers.enumerated() {
                for b in layer {
                    let idn = try b.down.map { try be.conv2d(h, $0) } ?? h
                    let y = try run(b.c2, run(b.c1, h))
                    h = try be.activation(be.conv2d(y, b.c3, epilogue: Epilogue(residual: idn)), .relu)
                }
                if li >= 1 { feats.append(h) }
            }
            return feats
        }
        var h = x
        var feats: [Tensor] = []
        for s in stages {
            for l in s { h = try run(l, h) }
            feats.append(h)
        }
        return feats
    }

    func runSSH(_ s: SSH, _ x: Tensor) throws -> Tensor {
        let be = backend
        let oc = s.out
        let c5a = try run(s.c5a, x)
        let out = try ChannelConcat(be, shape: TensorShape(n: x.shape.n, c: oc, h: x.shape.h, w: x.shape.w),
                                    partChannels: [oc / 2, oc / 4, oc / 4])
        try out.append { into in try be.conv2d(x, s.c3.conv, epilogue: .activation(s.c3.act), into: into) }
        try out.append { into in try be.conv2d(c5a, s.c5b.conv, epilogue: .activation(s.c5b.act), into: into) }
        try out.append { into in try be.conv2d(run(s.c7a, c5a), s.c7b.conv, epilogue: .activation(s.c7b.act), into: into) }
        return out.current!
    }

    /// Runs the network on a 1×3×H×W input (BGR minus the mean) and returns the flattened head outputs
    /// (class scores softmaxed, like upstream's phase "test").
    public func forward(_ x: Tensor) throws -> RetinaFaceRawOutput {
        guard x.shape.c == 3, x.shape.n == 1 else {
            throw FaceModelError.invalidInput(model: "RetinaFace", reason: "expected 1×3×H×W, got \(x.shape)")
        }
        let be = backend
        let f = try backbone(x)
        let o1 = try run(fpnOut[0], f[0]), o2a = try run(fpnOut[1], f[1]), o3 = try run(fpnOut[2], f[2])
        let o2 = try run(fpnMerge[1], be.add(o2a, be.resizeNearest(o3, height: o2a.shape.h, width: o2a.shape.w)))
        let o1m = try run(fpnMerge[0], be.add(o1, be.resizeNearest(o2, height: o1.shape.h, width: o1.shape.w)))
        let levels = [o1m, o2, o3]
        var out = RetinaFaceRawOutput(count: 0, loc: [], conf: [], landms: [])
        for (i, lv) in levels.enumerated() {
            let s = try runSSH(ssh[i], lv)
            let c = try be.download(be.conv2d(s, heads[i].cls))
            let b = try be.download(be.conv2d(s, heads[i].box))
            let l = try be.download(be.conv2d(s, heads[i].lmk))
            for t in [c, b, l] { try t.requireFinite("RetinaFace") }
            let (h, w) = (s.shape.h, s.shape.w)
            func append(_ t: HostTensor, _ k: Int, _ dst: inout [Float]) {
                for y in 0..<h { for xx in 0..<w { for a in 0..<2 { for j in 0..<k {
                    dst.append(t.data[((a * k + j) * h + y) * w + xx])
                } } } }
            }
            append(c, 2, &out.conf); append(b, 4, &out.loc); append(l, 10, &out.landms)
            out.count += h * w * 2
        }
        for p in 0..<out.count {
            let a = out.conf[2 * p], b = out.conf[2 * p + 1]
            let m = max(a, b)
            let ea = Foundation.exp(a - m), eb = Foundation.exp(b - m)
            let s = ea + eb
            out.conf[2 * p] = ea / s; out.conf[2 * p + 1] = eb / s
        }
        return out
    }

    /// Upstream `PriorBox` for an H×W input: N×4 (cx, cy, w, h) normalised, level/row/column/anchor order.
    public static func priors(height: Int, width: Int) -> [Float] {
        var out: [Float] = []
        for (k, step) in steps.enumerated() {
            let fh = (height + step - 1) / step, fw = (width + step - 1) / step
            for i in 0..<fh { for j in 0..<fw { for m in minSizes[k] {
                let cx = (Double(j) + 0.5) * Double(step) / Double(width)
                let cy = (Double(i) + 0.5) * Double(step) / Double(height)
                out += [Float(cx), Float(cy), Float(Double(m) / Double(width)), Float(Double(m) / Double(height))]
            } } }
        }
        return out
    }

    /// The 1×3×H×W network input: float(BGR) − mean, BGR order (upstream `detect`), from uint8 BGR (layout H·W·C).
    public static func inputTensor(bgr: [Float], width: Int, height: Int, mean: SIMD3<Float>) -> HostTensor {
        let plane = width * height
        var d = [Float](repeating: 0, count: 3 * plane)
        for p in 0..<plane { for c in 0..<3 { d[c * plane + p] = bgr[p * 3 + c] - mean[c] } }
        return try! HostTensor(shape: [1, 3, height, width], data: d)
    }

    /// OpenCV `cv2.resize(img, (0,0), fx=s, fy=s)` bilinear on float H·W·3 pixels (half-pixel centres, clamped).
    static func resizeBilinear(_ src: [UInt8], width: Int, height: Int, scale: Double) -> ([Float], Int, Int) {
        let ow = max(1, Int((Double(width) * scale).rounded())), oh = max(1, Int((Double(height) * scale).rounded()))
        let inv = 1 / scale
        var out = [Float](repeating: 0, count: ow * oh * 3)
        let xs = (0..<ow).map { BilinearTaps.at($0, scale: inv, size: width) }
        for y in 0..<oh {
            let (y0, y1, fy) = BilinearTaps.at(y, scale: inv, size: height)
            for x in 0..<ow {
                let (x0, x1, fx) = xs[x]
                for c in 0..<3 {
                    let a = Float(src[(y0 * width + x0) * 3 + c]) * (1 - fx) + Float(src[(y0 * width + x1) * 3 + c]) * fx
                    let b = Float(src[(y1 * width + x0) * 3 + c]) * (1 - fx) + Float(src[(y1 * width + x1) * 3 + c]) * fx
                    out[(y * ow + x) * 3 + c] = a * (1 - fy) + b * fy
                }
            }
        }
        return (out, ow, oh)
    }

    /// Upstream `RetinaFaceDetection.detect` on uint8 BGR pixels (layout H·W·C): optional downscale, mean
    /// subtraction, network, prior decode (variances 0.1/0.2), score filter, NMS; coordinates in input pixels.
    public func detect(bgr: [UInt8], width: Int, height: Int, options: RetinaFaceDetectOptions = RetinaFaceDetectOptions()) throws -> [RetinaFaceDetection] {
        guard width > 0, height > 0, width <= 1 << 15, height <= 1 << 15, bgr.count == width * height * 3 else {
            throw FaceModelError.invalidInput(model: "RetinaFace", reason: "\(bgr.count) bytes for a \(width)x\(height) BGR image")
        }
        // Large images are resized straight from the bytes, so no full-size float copy is ever made.
        var img: [Float]
        var (w, h) = (width, height)
        let s = options.detectionScale(width: w, height: h)
        let ss = Float(s)
        if s != 1 {
            (img, w, h) = Self.resizeBilinear(bgr, width: w, height: h, scale: s)
        } else {
            img = bgr.map { Float($0) }
        }
        let x = try backend.upload(Self.inputTensor(bgr: img, width: w, height: h, mean: options.mean))
        let raw = try forward(x)
        return Self.decode(raw, priors: Self.priors(height: h, width: w), width: w, height: h, scaleDown: ss, options: options)
    }

    /// Decodes raw outputs into detections (upstream `detect` after the forward pass).
    public static func decode(_ raw: RetinaFaceRawOutput, priors: [Float], width: Int, height: Int, scaleDown ss: Float = 1,
                              options: RetinaFaceDetectOptions = RetinaFaceDetectOptions()) -> [RetinaFaceDetection] {
        let W = Float(width), H = Float(height)
        var cand: [(box: SIMD4<Float>, score: Float, lm: [Float])] = []
        for p in 0..<raw.count {
            let score = raw.conf[2 * p + 1]
            guard score > options.confidenceThreshold else { continue }
            let (pcx, pcy, pw, ph) = (priors[4 * p], priors[4 * p + 1], priors[4 * p + 2], priors[4 * p + 3])
            let l = raw.loc[(4 * p)..<(4 * p + 4)].map { $0 }
            let cx = pcx + l[0] * Float(0.1) * pw
            let cy = pcy + l[1] * Float(0.1) * ph
            let bw = pw * Foundation.exp(l[2] * Float(0.2))
            let bh = ph * Foundation.exp(l[3] * Float(0.2))
            let x1 = cx - bw / 2, y1 = cy - bh / 2
            let x2 = bw + x1, y2 = bh + y1
            var lm = [Float](repeating: 0, count: 10)
            for k in 0..<5 {
                lm[2 * k] = (pcx + raw.landms[10 * p + 2 * k] * Float(0.1) * pw) * W
                lm[2 * k + 1] = (pcy + raw.landms[10 * p + 2 * k + 1] * Float(0.1) * ph) * H
            }
            cand.append((SIMD4(x1 * W, y1 * H, x2 * W, y2 * H), score, lm))
        }
        // Descending score (ties: later index first, like a reversed ascending argsort).
        let order = cand.indices.sorted { cand[$0].score != cand[$1].score ? cand[$0].score > cand[$1].score : $0 > $1 }
        let top = Array(order.prefix(options.topK)).map { cand[$0] }
        // py_cpu_nms with the +1 area convention, float32 arithmetic.
        let areas = top.map { ($0.box[2] - $0.box[0] + 1) * ($0.box[3] - $0.box[1] + 1) }
        var alive = Array(top.indices)
        var keep: [Int] = []
        while let i = alive.first {
            keep.append(i)
            let bi = top[i].box
            alive = alive.dropFirst().filter { j in
                let bj = top[j].box
                let xx1 = max(bi[0], bj[0]), yy1 = max(bi[1], bj[1])
                let xx2 = min(bi[2], bj[2]), yy2 = min(bi[3], bj[3])
                let iw = max(Float(0), xx2 - xx1 + 1), ih = max(Float(0), yy2 - yy1 + 1)
                let inter = iw * ih
                let ovr = inter / (areas[i] + areas[j] - inter)
                return ovr <= options.nmsThreshold
            }
        }
        return keep.prefix(options.keepTopK).map { i in
            let c = top[i]
            return RetinaFaceDetection(box: c.box / ss, score: c.score / ss,
                                       landmarkX: (0..<5).map { c.lm[2 * $0] / ss }, landmarkY: (0..<5).map { c.lm[2 * $0 + 1] / ss })
        }
    }
}
