import Foundation

/// One layer of an ncnn `.param` graph.
public struct NCNNLayer: Sendable {
    /// Layer type, e.g. "Convolution".
    public let type: String
    /// Layer name.
    public let name: String
    /// Input blob names.
    public let inputs: [String]
    /// Output blob names.
    public let outputs: [String]
    /// Scalar parameters by id (ints and floats both as Double).
    public let params: [Int: Double]
    /// Array parameters by id (`-233xx=n,v…`).
    public let arrays: [Int: [Double]]
    /// Weight blobs read from the `.bin`, in order (e.g. weight, bias).
    let blobs: [(dtype: DType, count: Int, bytes: ByteSlice)]

    /// Integer parameter `id`, or `fallback` when absent.
    public func int(_ id: Int, _ fallback: Int = 0) -> Int { params[id].map { Int($0) } ?? fallback }
}

/// A parsed ncnn network: its layers in file order with their weight blobs.
public struct NCNNGraph: Sendable {
    /// Layers in `.param` order.
    public let layers: [NCNNLayer]
}

/// Parser of ncnn `.param` text and `.bin` weights, and the mapping onto PyTorch state-dict keys.
enum NCNNReader {
    static let weightless: Set<String> = [
        "Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "ReLU", "Sigmoid", "TanH",
        "Pooling", "Crop", "Reshape", "Permute", "Flatten", "Softmax", "Padding", "Dropout", "Noop", "UnaryOp",
        "Clip", "Slice", "Swish", "HardSigmoid", "HardSwish", "Mish", "ELU", "GELU", "Exp", "Log", "Power",
    ]
    static let maxLayers = 1_000_000

    /// Parses `.param` text and reads the `.bin` blobs layer by layer.
    static func read(param: [UInt8], bin: ByteSlice, paramPath: String, binPath: String) throws -> NCNNGraph {
        func bad(_ r: String) -> CheckpointError { .corrupt(path: paramPath, reason: "ncnn param: \(r)") }
        let text = String(decoding: param, as: UTF8.self)
        var lines = text.split(whereSeparator: { $0.isNewline }).map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }) }
        lines.removeAll { $0.isEmpty }
        guard let magic = lines.first, magic.count == 1, magic[0] == "7767517" else {
            throw CheckpointError.unknownFormat(path: paramPath, reason: "ncnn .param must start with the magic 7767517")
        }
        guard lines.count >= 2, lines[1].count == 2, let layerCount = Int(lines[1][0]), let blobCount = Int(lines[1][1]),
              layerCount >= 0, blobCount >= 0, layerCount <= maxLayers else {
            throw bad("second line must hold the layer and blob counts")
        }
        guard lines.count - 2 == layerCount else { throw bad("declares \(layerCount) layers but has \(lines.count - 2) layer lines") }
        var layers: [NCNNLayer] = []
        var binPos = 0
        func binBad(_ r: String) -> CheckpointError { .corrupt(path: binPath, reason: "ncnn bin: \(r)") }
        func readRaw(_ n: Int, _ what: String) throws -> (DType, Int, ByteSlice) {
            guard n >= 0, let bytes = SafeMath.mul(n, 4), bytes <= bin.count - binPos else {
                throw binBad("\(what): needs \(n) floats at byte \(binPos), file has \(bin.count) bytes (truncated?)")
            }
            defer { binPos += bytes }
            return (.float32, n, bin.sub(binPos, bytes))
        }
        func readTagged(_ n: Int, _ what: String) throws -> (DType, Int, ByteSlice) {
            guard binPos + 4 <= bin.count else { throw binBad("\(what): truncated before its storage tag at byte \(binPos)") }
            let tag = bin.u32(binPos)
            binPos += 4
            let dtype: DType, es: Int
            switch tag {
            case 0x0130_6B47: dtype = .float16; es = 2
            case 0x000D_4B38: dtype = .int8; es = 1
            case 0, 0x0002_C056: dtype = .float32; es = 4
            default: throw CheckpointError.unsupported(path: binPath, reason: "\(what): storage tag 0x\(String(tag, radix: 16)) (quantised table) at byte \(binPos - 4)")
            }
            guard n >= 0, let raw = SafeMath.mul(n, es), (raw + 3) & ~3 <= bin.count - binPos else {
                throw binBad("\(what): needs \(n) \(dtype.rawValue) values at byte \(binPos), file has \(bin.count) bytes (truncated?)")
            }
            let padded = (raw + 3) & ~3
            let slice = bin.sub(binPos, raw)
            binPos += padded
            return (dtype, n, slice)
        }
        for (li, tokens) in lines.dropFirst(2).enumerated() {
            guard tokens.count >= 4, let nIn = Int(tokens[2]), let nOut = Int(tokens[3]), nIn >= 0, nOut >= 0,
                  tokens.count >= 4 + nIn + nOut else { throw bad("layer line \(li + 3) is malformed") }
            let type = String(tokens[0]), name = String(tokens[1])
            let ins = tokens[4..<(4 + nIn)].map(String.init)
            let outs = tokens[(4 + nIn)..<(4 + nIn + nOut)].map(String.init)
            var params: [Int: Double] = [:], arrays: [Int: [Double]] = [:]
            for kv in tokens[(4 + nIn + nOut)...] {
                let parts = kv.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let k = Int(parts[0]) else { throw bad("layer '\(name)': bad parameter '\(kv)'") }
                if k <= -23300 {
                    let vals = parts[1].split(separator: ",")
                    guard let n = vals.first.flatMap({ Int($0) }), n >= 0, n == vals.count - 1 else {
                        throw bad("layer '\(name)': bad array parameter '\(kv)'")
                    }
                    let ds = vals.dropFirst().map { Double($0) }
                    guard ds.allSatisfy({ $0 != nil }) else { throw bad("layer '\(name)': bad array value in '\(kv)'") }
                    arrays[-k - 23300] = ds.map { $0! }
                } else {
                    guard let v = Double(parts[1]) else { throw bad("layer '\(name)': bad value in '\(kv)'") }
                    params[k] = v
                }
            }
            func ip(_ id: Int, _ d: Int = 0) throws -> Int {
                guard let v = params[id] else { return d }
                guard v.isFinite, abs(v) < 1e15 else { throw bad("layer '\(name)': parameter \(id) out of range") }
                return Int(v)
            }
            var blobs: [(DType, Int, ByteSlice)] = []
            switch type {
            case "Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise", "InnerProduct":
                let wds = try ip(type == "InnerProduct" ? 2 : 6)
                if try ip(8) != 0 { throw CheckpointError.unsupported(path: paramPath, reason: "layer '\(name)': int8 scale terms") }
                blobs.append(try readTagged(wds, "layer '\(name)' weight"))
                if try ip(5) != 0 { blobs.append(try readRaw(try ip(0), "layer '\(name)' bias")) }
            case "PReLU":
                blobs.append(try readRaw(try ip(0), "layer '\(name)' slope"))
            case "BatchNorm":
                let c = try ip(0)
                for w in ["slope", "mean", "variance", "bias"] { blobs.append(try readRaw(c, "layer '\(name)' \(w)")) }
            default:
                guard weightless.contains(type) else {
                    throw CheckpointError.unsupported(path: paramPath, reason: "ncnn layer type '\(type)' (layer '\(name)')")
                }
            }
            layers.append(NCNNLayer(type: type, name: name, inputs: ins, outputs: outs, params: params, arrays: arrays,
                                    blobs: blobs.map { (dtype: $0.0, count: $0.1, bytes: $0.2) }))
        }
        guard binPos == bin.count else {
            throw binBad("\(bin.count - binPos) bytes left over after the last layer (param and bin do not match)")
        }
        return NCNNGraph(layers: layers)
    }
}

/// Maps an ncnn graph onto PyTorch state-dict keys by walking the blob graph.
struct NCNNMapper {
    let graph: NCNNGraph
    let path: String
    var producer: [String: Int] = [:]
    var consumers: [String: [Int]] = [:]

    init(graph: NCNNGraph, path: String) {
        self.graph = graph
        self.path = path
        for (i, l) in graph.layers.enumerated() { for o in l.outputs { producer[o] = i } }
        for (i, l) in graph.layers.enumerated() where l.type != "Split" {
            for b in l.inputs { consumers[resolve(b), default: []].append(i) }
        }
    }

    /// Follows Split layers back to the blob they copy.
    func resolve(_ blob: String) -> String {
        var b = blob
        var steps = 0
        while let p = producer[b], graph.layers[p].type == "Split", let src = graph.layers[p].inputs.first, steps < 10_000 {
            b = src
            steps += 1
        }
        return b
    }

    private func users(_ blob: String, _ type: String) -> [Int] {
        (consumers[resolve(blob)] ?? []).filter { graph.layers[$0].type == type }
    }
    private func out(_ i: Int) -> String { resolve(graph.layers[i].outputs.first ?? "") }
    private func ins(_ i: Int) -> [String] { graph.layers[i].inputs.map(resolve) }
    private func fail(_ r: String) -> CheckpointError { .corrupt(path: path, reason: "ncnn graph: \(r)") }

    private func uniqueConv(_ blob: String) -> Int? {
        let c = users(blob, "Convolution")
        return c.count == 1 ? c[0] : nil
    }

    /// Tensors of a Convolution ([O, I, KH, KW] weight and [O] bias) or a PReLU ([C] weight).
    func tensors(_ i: Int, key: String) throws -> [CheckpointTensor] {
        let l = graph.layers[i]
        var out: [CheckpointTensor] = []
        switch l.type {
        case "Convolution":
            let o = l.int(0), kw = l.int(1), kh = l.int(11, kw)
            guard o > 0, kw > 0, kh > 0, let okk = SafeMath.mul(o, kw * kh), okk > 0, l.blobs[0].count % okk == 0 else {
                throw fail("layer '\(l.name)': weight size \(l.blobs[0].count) is not a multiple of num_output × kernel")
            }
            let w = l.blobs[0]
            out.append(try CheckpointTensor(name: key + ".weight", dtype: w.dtype, shape: [o, w.count / okk, kh, kw], storage: w.bytes, path: path))
            if l.blobs.count > 1 {
                out.append(try CheckpointTensor(name: key + ".bias", dtype: .float32, shape: [o], storage: l.blobs[1].bytes, path: path))
            }
        case "PReLU":
            out.append(try CheckpointTensor(name: key + ".weight", dtype: .float32, shape: [l.blobs[0].count], storage: l.blobs[0].bytes, path: path))
        default:
            throw fail("layer '\(l.name)' of type \(l.type) cannot be mapped")
        }
        return out
    }

    /// RRDBNet: conv_first, body.{b}.rdb{1,2,3}.conv{1..5}, conv_body, conv_up1, conv_up2, conv_hr, conv_last.
    func mapRRDBNet() throws -> [(String, Int)] {
        guard let first = graph.layers.firstIndex(where: { $0.type == "Convolution" }) else { throw fail("no convolution") }
        var keys: [(String, Int)] = [("conv_first", first)]
        let trunk = out(first)
        var cur = trunk
        var block = 0
        var visited = Set<String>()
        func rdb(_ input: String) -> ([Int], String)? {
            guard let c1 = uniqueConv(input) else { return nil }
            var convs = [c1], outs = [out(c1)]
            for _ in 2...5 {
                let expected = [input] + outs
                guard let cat = users(outs.last!, "Concat").first(where: { ins($0) == expected }),
                      let c = uniqueConv(out(cat)) else { return nil }
                convs.append(c)
                outs.append(out(c))
            }
            guard let add = users(outs[4], "Eltwise").first(where: { Set(ins($0)) == Set([outs[4], input]) }) else { return nil }
            return (convs, out(add))
        }
        while true {
            guard visited.insert(cur).inserted else { throw fail("the RRDB chain loops") }
            guard let (c1s, o1) = rdb(cur) else { break }
            guard let (c2s, o2) = rdb(o1), let (c3s, o3) = rdb(o2) else { throw fail("RRDB block \(block) is incomplete") }
            guard let add = users(o3, "Eltwise").first(where: { Set(ins($0)) == Set([o3, cur]) }) else {
                throw fail("RRDB block \(block) has no residual sum")
            }
            for (r, convs) in [c1s, c2s, c3s].enumerated() {
                for (j, c) in convs.enumerated() { keys.append(("body.\(block).rdb\(r + 1).conv\(j + 1)", c)) }
            }
            cur = out(add)
            block += 1
        }
        guard block > 0 else { throw fail("no RRDB block after conv_first") }
        guard let body = uniqueConv(cur) else { throw fail("no conv_body after the last RRDB block") }
        keys.append(("conv_body", body))
        guard let sum = users(out(body), "BinaryOp").first(where: { Set(ins($0)) == Set([out(body), trunk]) }) else {
            throw fail("conv_body output is not added to the trunk")
        }
        var x = out(sum)
        for name in ["conv_up1", "conv_up2"] {
            guard let up = users(x, "Interp").first, let c = uniqueConv(out(up)) else { throw fail("no upsampling before \(name)") }
            keys.append((name, c))
            x = out(c)
        }
        guard let hr = uniqueConv(x) else { throw fail("no conv_hr") }
        keys.append(("conv_hr", hr))
        guard let last = uniqueConv(out(hr)) else { throw fail("no conv_last") }
        keys.append(("conv_last", last))
        guard (consumers[out(last)] ?? []).isEmpty else { throw fail("conv_last output is consumed further") }
        return keys
    }

    /// SRVGGNetCompact: body.{2k} convolutions and body.{2k+1} PReLU slopes, ending in PixelShuffle + nearest skip.
    func mapSRVGG() throws -> [(String, Int)] {
        guard let first = graph.layers.firstIndex(where: { $0.type == "Convolution" }) else { throw fail("no convolution") }
        var keys: [(String, Int)] = []
        var conv = first
        var index = 0
        var visited = Set<Int>()
        while true {
            guard visited.insert(conv).inserted else { throw fail("the convolution chain loops") }
            keys.append(("body.\(index)", conv))
            let o = out(conv)
            if let ps = users(o, "PixelShuffle").first {
                guard users(out(ps), "BinaryOp").contains(where: { b in
                    ins(b).contains { blob in producer[blob].map { graph.layers[$0].type == "Interp" } ?? false }
                }) else { throw fail("PixelShuffle output is not added to an upsampled input") }
                break
            }
            guard let act = (consumers[o] ?? []).first(where: { ["PReLU", "ReLU"].contains(graph.layers[$0].type) }) else {
                throw fail("convolution '\(graph.layers[conv].name)' is followed by neither an activation nor PixelShuffle")
            }
            if graph.layers[act].type == "PReLU" { keys.append(("body.\(index + 1)", act)) }
            guard let next = uniqueConv(out(act)) else { throw fail("activation '\(graph.layers[act].name)' feeds no convolution") }
            conv = next
            index += 2
        }
        guard keys.count >= 3 else { throw fail("too few layers for SRVGGNetCompact") }
        return keys
    }

    /// The state dict: RRDBNet keys, else SRVGGNetCompact keys, else `<layer name>.weight/.bias` for every weighted layer.
    func stateDict() throws -> (StateDict, String?) {
        for (arch, walk) in [("RRDBNet", mapRRDBNet), ("SRVGGNetCompact", mapSRVGG)] {
            if let keys = try? walk() {
                let mappedLayers = Set(keys.map { $0.1 })
                let weighted = graph.layers.indices.filter { !graph.layers[$0].blobs.isEmpty }
                guard Set(weighted) == mappedLayers else { continue }
                return (StateDict(try keys.flatMap { try tensors($0.1, key: $0.0) }), arch)
            }
        }
        var ts: [CheckpointTensor] = []
        for l in graph.layers {
            for (j, b) in l.blobs.enumerated() {
                let suffix = ["weight", "bias", "mean", "bias"][min(j, 3)]
                ts.append(try CheckpointTensor(name: "\(l.name).\(l.type == "BatchNorm" ? ["weight", "running_mean", "running_var", "bias"][j] : suffix)",
                                               dtype: b.dtype, shape: [b.count], storage: b.bytes, path: path))
            }
        }
        return (StateDict(ts), nil)
    }
}
