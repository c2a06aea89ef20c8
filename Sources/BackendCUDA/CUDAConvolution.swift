import CCUDA
import Foundation
import TensorCore

/// cuDNN descriptors of one prepared layer: its filter and convolution, plus one plan per input shape.
final class CUDAConvLayer: @unchecked Sendable {
    enum Kind { case forward, transposed, linear }
    let kind: Kind
    let weight: DeviceBuffer
    let bias: DeviceBuffer?
    let filter: cudnnFilterDescriptor_t
    let conv: cudnnConvolutionDescriptor_t
    /// Output channels.
    let outChannels: Int
    var plans = LRUCache<PlanKey, CUDAConvPlan>(capacity: 16)
    /// Input shapes whose strided (channel-view) NHWC input cuDNN refused: they run on a dense copy.
    var denseInputs = Set<PlanKey>()
    let api: enh_cuda_api

    init(kind: Kind, weight: DeviceBuffer, bias: DeviceBuffer?, filter: cudnnFilterDescriptor_t,
         conv: cudnnConvolutionDescriptor_t, outChannels: Int, api: enh_cuda_api) {
        self.kind = kind; self.weight = weight; self.bias = bias; self.filter = filter; self.conv = conv
        self.outChannels = outChannels; self.api = api
    }

    deinit {
        plans.removeAll()
        _ = api.cudnnDestroyFilterDescriptor!(filter)
        _ = api.cudnnDestroyConvolutionDescriptor!(conv)
    }
}

/// A layer as cuDNN sees it: filter K×C×R×S, symmetric pads, strides, groups.
package struct ConvGeometry: Sendable {
    package var k, c, r, s: Int
    package var pad: (h: Int, w: Int)
    package var stride: (h: Int, w: Int)
    package var groups: Int

    /// A convolution: K = out channels, C = in channels per group.
    package init(_ p: Conv2dParams) {
        (k, c, r, s) = (p.outChannels, p.inChannels / p.groups, p.kernelH, p.kernelW)
        (pad, stride, groups) = ((p.padTop, p.padLeft), (p.strideH, p.strideW), p.groups)
    }

    /// A transposed convolution is the data gradient of the forward convolution whose filter is its IOHW weight:
    /// K = its in channels, C = its out channels per group.
    package init(transposed p: ConvTranspose2dParams) {
        (k, c, r, s) = (p.inChannels, p.outChannels / p.groups, p.kernel, p.kernel)
        (pad, stride, groups) = ((p.padding, p.padding), (p.stride, p.stride), p.groups)
    }

    /// A linear layer as a 1×1 convolution over N × in × 1 × 1.
    package init(linearOut o: Int, in i: Int) {
        (k, c, r, s) = (o, i, 1, 1)
        (pad, stride, groups) = ((0, 0), (1, 1), 1)
    }
}

/// Input N, C, H, W and batch stride (the storage channel count of a view): what a plan depends on.
struct PlanKey: Hashable { let n: Int, c: Int, h: Int, w: Int, batchStride: Int }

/// The tensor descriptors and algorithms for one input shape: every algorithm cuDNN offered within the workspace
/// limit, best first, and the one in use. Should cuDNN refuse the chosen one when it runs (or its workspace not fit in
/// memory), the next is tried, as PyTorch walks its list.
final class CUDAConvPlan: @unchecked Sendable {
    struct Candidate { let algorithm: Int32, workspaceBytes: Int, math: String }
    let input: cudnnTensorDescriptor_t
    let output: cudnnTensorDescriptor_t
    let candidates: [Candidate]
    var chosen = 0
    let api: enh_cuda_api
    var algorithm: Int32 { candidates[chosen].algorithm }
    var workspaceBytes: Int { candidates[chosen].workspaceBytes }

    init(input: cudnnTensorDescriptor_t, output: cudnnTensorDescriptor_t, candidates: [Candidate], api: enh_cuda_api) {
        self.input = input; self.output = output; self.candidates = candidates; self.api = api
    }

    deinit {
        _ = api.cudnnDestroyTensorDescriptor!(input)
        _ = api.cudnnDestroyTensorDescriptor!(output)
    }
}

extension CUDABackend {
    /// cuDNN's math type for this precision: FMA (no TF32) for fp32, default (TF32 allowed) for tf32, tensor ops for fp16.
    var mathType: cudnnMathType_t {
        switch options.precision {
        case .fp32: CUDNN_FMA_MATH
        case .tf32: CUDNN_DEFAULT_MATH
        case .fp16: CUDNN_TENSOR_OP_MATH
        }
    }

    /// A 4-D tensor descriptor over N×C×H×W with the given strides (layout, channel views of a larger buffer).
    func tensorDescriptor(n: Int, c: Int, h: Int, w: Int, strides: Strides) throws -> cudnnTensorDescriptor_t {
        try Self.tensorDescriptor(lib, dataType, n: n, c: c, h: h, w: w, strides: strides)
    }

    static func tensorDescriptor(_ lib: CUDALibrary, _ dataType: cudnnDataType_t, n: Int, c: Int, h: Int, w: Int,
                                 strides st: Strides) throws -> cudnnTensorDescriptor_t {
        let api = lib.api
        var d: cudnnTensorDescriptor_t?
        try lib.check(api.cudnnCreateTensorDescriptor!(&d), "cudnnCreateTensorDescriptor")
        let s = api.cudnnSetTensor4dDescriptorEx!(d, dataType, Int32(n), Int32(c), Int32(h), Int32(w),
                                                  Int32(st.n), Int32(st.c), Int32(w * st.p), Int32(st.p))
        if s != CUDNN_STATUS_SUCCESS { _ = api.cudnnDestroyTensorDescriptor!(d) }
        try lib.check(s, "cudnnSetTensor4dDescriptorEx [\(n),\(c),\(h),\(w)] strides \(st.n),\(st.c),\(w * st.p),\(st.p)")
        return d!
    }

    /// Filter (K×C×R×S stored KCRS, or KRSC when `channelsLast`) and convolution (symmetric pads, strides,
    /// cross-correlation, float compute, groups, math type) descriptors: host-side cuDNN calls only.
    static func layerDescriptors(_ lib: CUDALibrary, _ dataType: cudnnDataType_t, _ math: cudnnMathType_t, _ g: ConvGeometry,
                                 channelsLast: Bool = false, op: String) throws -> (cudnnFilterDescriptor_t, cudnnConvolutionDescriptor_t) {
        let api = lib.api
        let (k, c, r, s, pad, stride, groups) = (g.k, g.c, g.r, g.s, g.pad, g.stride, g.groups)
        var f: cudnnFilterDescriptor_t?
        try lib.check(api.cudnnCreateFilterDescriptor!(&f), "cudnnCreateFilterDescriptor")
        var cd: cudnnConvolutionDescriptor_t?
        let created = api.cudnnCreateConvolutionDescriptor!(&cd)
        if created != CUDNN_STATUS_SUCCESS { _ = api.cudnnDestroyFilterDescriptor!(f) }
        try lib.check(created, "cudnnCreateConvolutionDescriptor")
        do {
            try lib.check(api.cudnnSetFilter4dDescriptor!(f, dataType, channelsLast ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW,
                                                          Int32(k), Int32(c), Int32(r), Int32(s)),
                          "\(op): cudnnSetFilter4dDescriptor [\(k),\(c),\(r),\(s)]\(channelsLast ? " NHWC" : "")")
            try lib.check(api.cudnnSetConvolution2dDescriptor!(cd, Int32(pad.h), Int32(pad.w), Int32(stride.h), Int32(stride.w), 1, 1,
                                                               CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                          "\(op): cudnnSetConvolution2dDescriptor")
            if groups > 1 { try lib.check(api.cudnnSetConvolutionGroupCount!(cd, Int32(groups)), "\(op): cudnnSetConvolutionGroupCount \(groups)") }
            try lib.check(api.cudnnSetConvolutionMathType!(cd, math), "\(op): cudnnSetConvolutionMathType")
        } catch {
            _ = api.cudnnDestroyFilterDescriptor!(f); _ = api.cudnnDestroyConvolutionDescriptor!(cd)
            throw error
        }
        return (f!, cd!)
    }

    /// The forward output size cuDNN computes for `p` on an N×C×H×W input, from the descriptors the backend would
    /// build (host-side calls only: tests run it against the real cuDNN without a GPU). For a transposed
    /// convolution pass its data-gradient view: `transposed` gives the output size whose forward convolution must
    /// give back the input.
    /// With `channelsLast` the descriptors are the NHWC backend's (KRSC filter, NHWC strides, in fp16), over an input
    /// stored with `storageChannels` channels (a channel view of a wider tensor when larger than `input.c`).
    package static func cudnnForwardOutput(library lib: CUDALibrary, _ g: ConvGeometry, input: (n: Int, c: Int, h: Int, w: Int),
                                           channelsLast: Bool = false, storageChannels: Int? = nil) throws -> [Int] {
        let type = channelsLast ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT
        let (f, cd) = try layerDescriptors(lib, type, channelsLast ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH, g, channelsLast: channelsLast, op: "check")
        defer { _ = lib.api.cudnnDestroyFilterDescriptor!(f); _ = lib.api.cudnnDestroyConvolutionDescriptor!(cd) }
        let x = try tensorDescriptor(lib, type, n: input.n, c: input.c, h: input.h, w: input.w,
                                     strides: Strides(TensorShape(n: input.n, c: input.c, h: input.h, w: input.w),
                                                      storageChannels: storageChannels, channelsLast: channelsLast))
        defer { _ = lib.api.cudnnDestroyTensorDescriptor!(x) }
        var n: Int32 = 0, c: Int32 = 0, h: Int32 = 0, w: Int32 = 0
        try lib.check(lib.api.cudnnGetConvolution2dForwardOutputDim!(cd, x, f, &n, &c, &h, &w), "cudnnGetConvolution2dForwardOutputDim")
        return [Int(n), Int(c), Int(h), Int(w)]
    }

    /// Prepares filter and convolution descriptors and uploads the weights (in the storage type) and bias (float).
    func prepareLayer(kind: CUDAConvLayer.Kind, weight: HostTensor, bias: HostTensor?, _ g: ConvGeometry, outChannels: Int,
                      op: String) throws -> CUDAConvLayer {
        try sync {
            let w = try weightPool.allocate(bytes: weight.count * elementSize)
            let channelsLast = tensorLayout.channelsLast
            try store(channelsLast ? Self.krsc(weight.data, g) : weight.data, at: address(w), asStorage: true)
            let b = try bias.map { try deviceFloats($0.data) }
            let (f, cd) = try Self.layerDescriptors(lib, dataType, mathType, g, channelsLast: channelsLast, op: op)
            let layer = CUDAConvLayer(kind: kind, weight: w, bias: b, filter: f, conv: cd, outChannels: outChannels, api: api)
            return layer
        }
    }

    /// A K×C×R×S filter's values (KCRS order) in KRSC order, as cuDNN reads an NHWC filter.
    static func krsc(_ v: [Float], _ g: ConvGeometry) -> [Float] {
        let (k, c, rs) = (g.k, g.c, g.r * g.s)
        guard c > 1, rs > 1 else { return v }
        var out = [Float](repeating: 0, count: v.count)
        for o in 0..<k {
            for i in 0..<c {
                for q in 0..<rs { out[(o * rs + q) * c + i] = v[(o * c + i) * rs + q] }
            }
        }
        return out
    }

    /// The plan for input `x` (descriptors, algorithm, workspace), made once per input shape.
    func plan(_ layer: CUDAConvLayer, x: (n: Int, c: Int, h: Int, w: Int, strides: Strides), out: TensorShape, op: String) throws -> CUDAConvPlan {
        let key = PlanKey(n: x.n, c: x.c, h: x.h, w: x.w, batchStride: x.strides.n)
        if let p = layer.plans[key] { return p }
        let input = try tensorDescriptor(n: x.n, c: x.c, h: x.h, w: x.w, strides: x.strides)
        let output: cudnnTensorDescriptor_t
        do { output = try tensorDescriptor(n: out.n, c: out.c, h: out.h, w: out.w, strides: Strides(out, channelsLast: tensorLayout.channelsLast)) }
        catch { _ = api.cudnnDestroyTensorDescriptor!(input); throw error }
        let limit = options.workspaceLimitBytes
        var candidates: [CUDAConvPlan.Candidate] = []
        switch layer.kind {
        case .forward, .linear:
            var results = [cudnnConvolutionFwdAlgoPerf_t](repeating: cudnnConvolutionFwdAlgoPerf_t(), count: 8)
            var returned: Int32 = 0
            if options.benchmark {
                let ws = try workspace(limit)
                let y = try pool.allocate(bytes: out.count * elementSize)
                // cuDNN times each algorithm on scratch input and output (contents are irrelevant) and our workspace
                let scratchIn = try pool.allocate(bytes: x.strides.n * x.n * elementSize)
                try check(api.cudnnFindConvolutionForwardAlgorithmEx!(cudnn, input, UnsafeRawPointer(bitPattern: UInt(address(scratchIn))),
                                                                       layer.filter, UnsafeRawPointer(bitPattern: UInt(address(layer.weight))),
                                                                       layer.conv, output, UnsafeMutableRawPointer(bitPattern: UInt(address(y))),
                                                                       8, &returned, &results,
                                                                       ws.flatMap { UnsafeMutableRawPointer(bitPattern: UInt($0)) }, limit),
                          "\(op): cudnnFindConvolutionForwardAlgorithmEx")
                // The find's workspace (the whole limit, 1 GiB by default) goes back once the algorithms are timed, as
                // PyTorch gives back its own: what stays is what the chosen algorithms need, allocated at their first
                // call (before, the limit stayed held for the run and counted in every memory figure).
                releaseWorkspace()
            } else {
                try check(api.cudnnGetConvolutionForwardAlgorithm_v7!(cudnn, input, layer.filter, layer.conv, output, 8, &returned, &results),
                          "\(op): cudnnGetConvolutionForwardAlgorithm_v7")
            }
            for r in results.prefix(Int(returned)) where r.status == CUDNN_STATUS_SUCCESS && r.memory <= limit {
                candidates.append(.init(algorithm: Int32(bitPattern: r.algo.rawValue), workspaceBytes: r.memory, math: "\(r.mathType.rawValue)"))
            }
        case .transposed:
            var results = [cudnnConvolutionBwdDataAlgoPerf_t](repeating: cudnnConvolutionBwdDataAlgoPerf_t(), count: 8)
            var returned: Int32 = 0
            // backward data: dy = x (the transposed conv's input), dx = its output
            try check(api.cudnnGetConvolutionBackwardDataAlgorithm_v7!(cudnn, layer.filter, input, layer.conv, output, 8, &returned, &results),
                      "\(op): cudnnGetConvolutionBackwardDataAlgorithm_v7")
            for r in results.prefix(Int(returned)) where r.status == CUDNN_STATUS_SUCCESS && r.memory <= limit {
                candidates.append(.init(algorithm: Int32(bitPattern: r.algo.rawValue), workspaceBytes: r.memory, math: "\(r.mathType.rawValue)"))
            }
        }
        guard !candidates.isEmpty else {
            _ = api.cudnnDestroyTensorDescriptor!(input); _ = api.cudnnDestroyTensorDescriptor!(output)
            throw TensorError.unsupported(op: op, message: "cuDNN offers no algorithm for input [\(x.n),\(x.c),\(x.h),\(x.w)] within a \(limit)-byte workspace")
        }
        let plan = CUDAConvPlan(input: input, output: output, candidates: candidates, api: api)
        layer.plans[key] = plan
        notePlan(plan, layer, x: (x.n, x.c, x.h, x.w), out: out, op: op)
        return plan
    }

    /// The `--verbose` / report line of a plan's algorithm (scripts/device/summarise.py reads its form).
    func notePlan(_ plan: CUDAConvPlan, _ layer: CUDAConvLayer, x: (n: Int, c: Int, h: Int, w: Int), out: TensorShape, op: String) {
        let c = plan.candidates[plan.chosen]
        note("\(op) [\(x.n),\(x.c),\(x.h),\(x.w)] → \(out): cuDNN \(layer.kind == .transposed ? "bwd-data" : "fwd") algo \(c.algorithm), workspace \(c.workspaceBytes) B, math type \(c.math), \(options.precision.rawValue) \(tensorLayout)")
    }

    /// Runs the layer's cuDNN call into `y` (dense), then the epilogue from `y` into `dst` (y itself or a view).
    /// A channel view keeps its parent's strides (NHWC: pixel stride = the parent's channel count; NCHW: image stride =
    /// the parent's image); should cuDNN refuse such an input with every algorithm it offered (an engine that takes
    /// packed tensors only), the layer runs on a dense copy from then on for that shape, said once per layer.
    func runLayer(_ layer: CUDAConvLayer, x: Tensor, xShape: (n: Int, c: Int, h: Int, w: Int), xStrides: Strides? = nil, out: TensorShape,
                  epilogue e: Epilogue, into dst: Tensor?, op: String) throws -> Tensor {
        guard x.isView, xStrides == nil else {
            return try runLayerOnce(layer, x: x, xShape: xShape, xStrides: xStrides, out: out, epilogue: e, into: dst, op: op)
        }
        let key = PlanKey(n: xShape.n, c: xShape.c, h: xShape.h, w: xShape.w, batchStride: strides(x).n)
        if layer.denseInputs.contains(key) {
            return try runLayerOnce(layer, x: copyDense(x), xShape: xShape, out: out, epilogue: e, into: dst, op: op)
        }
        do {
            return try runLayerOnce(layer, x: x, xShape: xShape, out: out, epilogue: e, into: dst, op: op)
        } catch where !capturing && !isDeviceLoss(error) {
            layer.denseInputs.insert(key)
            note("\(op) [\(x.shape.n),\(x.shape.c),\(x.shape.h),\(x.shape.w)] of \(x.storageChannels) stored channels: cuDNN refused the strided \(tensorLayout.channelsLast ? "NHWC" : "NCHW") input (\(error)); this shape runs on a dense copy")
            return try runLayerOnce(layer, x: copyDense(x), xShape: xShape, out: out, epilogue: e, into: dst, op: op)
        }
    }

    private func runLayerOnce(_ layer: CUDAConvLayer, x: Tensor, xShape: (n: Int, c: Int, h: Int, w: Int), xStrides: Strides? = nil, out: TensorShape,
                              epilogue e: Epilogue, into dst: Tensor?, op: String) throws -> Tensor {
        let xs = (xShape.n, xShape.c, xShape.h, xShape.w)
        let plan = try plan(layer, x: (xs.0, xs.1, xs.2, xs.3, xStrides ?? strides(x)), out: out, op: op)
        let y = try make(out, op: op)
        var firstError: Error?
        while true {
            do {
                try convolve(layer, plan, x: x, y: y, op: op)
                break
            } catch where !capturing && !isDeviceLoss(error) && plan.chosen + 1 < plan.candidates.count {
                // cuDNN refused the algorithm for this shape when it ran, or its workspace did not fit: the next one
                note("\(op) [\(xs.0),\(xs.1),\(xs.2),\(xs.3)]: cuDNN algo \(plan.algorithm) failed (\(error)); trying the next one it offered")
                firstError = firstError ?? error
                plan.chosen += 1
                notePlan(plan, layer, x: xs, out: out, op: op)
            } catch {
                guard let firstError, !isDeviceLoss(error) else { throw error }
                if (error as? TensorError)?.isAllocationFailure == true {
                    // the last offer did not fit the device's memory either: memory is the problem, not cuDNN, and the
                    // caller may go on with a smaller tile or face batch; this shape starts from cuDNN's first offer
                    // again next time (it was walked down only for want of memory)
                    plan.chosen = 0
                    throw error
                }
                let tried = plan.candidates.map { String($0.algorithm) }.joined(separator: ", ")
                throw TensorError.unsupported(op: op, message: "cuDNN refused every algorithm it offered for input [\(xs.0),\(xs.1),\(xs.2),\(xs.3)] (\(tried)); the first: \(firstError)")
            }
        }
        let target = dst ?? y
        if dst != nil || layer.bias != nil || !e.isIdentity {
            try epilogue(from: y, into: target, bias: layer.bias.map(address), e, op: op)
        }
        return target
    }

    /// One cuDNN call of the plan's chosen algorithm: x → y (dense).
    private func convolve(_ layer: CUDAConvLayer, _ plan: CUDAConvPlan, x: Tensor, y: Tensor, op: String) throws {
        let ws = try workspace(plan.workspaceBytes)
        var alpha: Float = 1, beta: Float = 0
        let wsPtr = ws.flatMap { UnsafeMutableRawPointer(bitPattern: UInt($0)) }
        let xPtr = UnsafeRawPointer(bitPattern: UInt(address(x)))
        let wPtr = UnsafeRawPointer(bitPattern: UInt(address(layer.weight)))
        let yPtr = UnsafeMutableRawPointer(bitPattern: UInt(address(y)))
        // the profile's row (built only while a profile runs): the call, its algorithm and math type, channels in → out
        try timed(.convolution, "cuDNN \(layer.kind == .transposed ? "bwd-data" : "fwd") algo \(plan.algorithm) (\(CUDAProfileRecorder.mathName(plan.candidates[plan.chosen].math))) \(x.shape.c)→\(y.shape.c)") {
            switch layer.kind {
            case .forward, .linear:
                try check(api.cudnnConvolutionForward!(cudnn, &alpha, plan.input, xPtr, layer.filter, wPtr, layer.conv,
                                                       cudnnConvolutionFwdAlgo_t(rawValue: UInt32(bitPattern: plan.algorithm)),
                                                       wsPtr, plan.workspaceBytes, &beta, plan.output, yPtr), "\(op): cudnnConvolutionForward")
            case .transposed:
                try check(api.cudnnConvolutionBackwardData!(cudnn, &alpha, layer.filter, wPtr, plan.input, xPtr, layer.conv,
                                                            cudnnConvolutionBwdDataAlgo_t(rawValue: UInt32(bitPattern: plan.algorithm)),
                                                            wsPtr, plan.workspaceBytes, &beta, plan.output, yPtr), "\(op): cudnnConvolutionBackwardData")
            }
        }
    }

    /// dst = epilogue(src + bias) (src and dst may be the same tensor).
    func epilogue(from src: Tensor, into dst: Tensor, bias: CUdeviceptr?, _ e: Epilogue, op: String) throws {
        let (act, a0, a1, slopes) = try activationArgs(e.activation, op: op)
        let s = dst.shape
        let residual = e.residual.map(arg) ?? arg(nil, Strides(n: 0, c: 0, p: 0))
        try launch("enh_epilogue", count: s.count, arg(dst) + arg(src) + [
            .pointer(bias), .pointer(e.channelScale.map(address)), .i64(e.channelScale.map(batchStride) ?? 0)] + residual + [
            .pointer(slopes), .i32(s.n), .i32(s.c), .i32(s.h * s.w), channelsLastFlag, .i32(act), .f32(a0), .f32(a1),
            .f32(e.outputScale), .f32(e.residualScale),
        ])
    }

    /// Kernel code and parameters of an activation (PReLU slopes must be this backend's prepared vector).
    func activationArgs(_ a: Activation, op: String) throws -> (Int, Float, Float, CUdeviceptr?) {
        switch a {
        case .none: return (0, 0, 0, nil)
        case .relu: return (1, 0, 0, nil)
        case let .leakyReLU(s): return (2, s, 0, nil)
        case let .scaledLeakyReLU(s, g): return (3, s, g, nil)
        case let .prelu(v): return (4, 0, 0, try vectorAddress(v, op: op + " prelu"))
        case .sigmoid: return (5, 0, 0, nil)
        }
    }

    func vectorAddress(_ v: PreparedVector, op: String) throws -> CUdeviceptr {
        guard v.backendID == id, let b = v.payload as? DeviceBuffer else { throw TensorError.foreignTensor(op: op) }
        return address(b)
    }

    // MARK: Backend: prepared layers

    public func prepareConv2d(weight: HostTensor, bias: HostTensor?, params p: Conv2dParams) throws -> PreparedConv2d {
        try p.validate()
        try Validate.weights(weight, expected: p.weightShape, bias: bias, outChannels: p.outChannels, op: "prepareConv2d")
        guard p.padTop == p.padBottom, p.padLeft == p.padRight else {
            throw TensorError.unsupported(op: "prepareConv2d", message: "asymmetric padding \(p) (cuDNN's 2-D descriptor takes one pad per axis)")
        }
        let layer = try prepareLayer(kind: .forward, weight: weight, bias: bias, ConvGeometry(p), outChannels: p.outChannels, op: "prepareConv2d")
        return PreparedConv2d(params: p, hasBias: bias != nil, backendID: id, payload: layer)
    }

    public func conv2d(_ x: Tensor, _ conv: PreparedConv2d, epilogue: Epilogue, into: Tensor?) throws -> Tensor {
        let op = "conv2d"
        return try sync {
            try own(x, op)
            guard conv.backendID == id, let layer = conv.payload as? CUDAConvLayer else { throw TensorError.foreignTensor(op: op) }
            let out = try Validate.conv2d(x.shape, conv.params, op: op)
            try Validate.epilogue(epilogue, out: out, op: op) { t, o in try own(t, o) }
            if let into { try own(into, op); try Validate.same(out, into.shape, op + " destination") }
            return try runLayer(layer, x: x, xShape: (x.shape.n, x.shape.c, x.shape.h, x.shape.w), out: out, epilogue: epilogue, into: into, op: op)
        }
    }

    public func prepareConvTranspose2d(weight: HostTensor, bias: HostTensor?, params p: ConvTranspose2dParams) throws -> PreparedConvTranspose2d {
        try p.validate()
        try Validate.weights(weight, expected: p.weightShape, bias: bias, outChannels: p.outChannels, op: "prepareConvTranspose2d")
        let layer = try prepareLayer(kind: .transposed, weight: weight, bias: bias, ConvGeometry(transposed: p), outChannels: p.outChannels,
                                     op: "prepareConvTranspose2d")
        return PreparedConvTranspose2d(params: p, hasBias: bias != nil, backendID: id, payload: layer)
    }

    public func convTranspose2d(_ x: Tensor, _ conv: PreparedConvTranspose2d, epilogue: Epilogue) throws -> Tensor {
        let op = "convTranspose2d"
        return try sync {
            try own(x, op)
            guard conv.backendID == id, let layer = conv.payload as? CUDAConvLayer else { throw TensorError.foreignTensor(op: op) }
            let p = conv.params
            let out = try Validate.convolution(x.shape, inChannels: p.inChannels, outChannels: p.outChannels,
                                               outputSize: p.outputSize(h: x.shape.h, w: x.shape.w), describing: p, op: op)
            try Validate.epilogue(epilogue, out: out, op: op) { t, o in try own(t, o) }
            return try runLayer(layer, x: x, xShape: (x.shape.n, x.shape.c, x.shape.h, x.shape.w), out: out, epilogue: epilogue, into: nil, op: op)
        }
    }

    public func prepareVector(_ values: [Float]) throws -> PreparedVector {
        try sync { PreparedVector(values: values, backendID: id, payload: try deviceFloats(values)) }
    }

    public func prepareLinear(weight: HostTensor, bias: HostTensor?) throws -> PreparedLinear {
        guard weight.shape.count == 2, weight.shape[0] > 0, weight.shape[1] > 0 else {
            throw TensorError.invalidShape(op: "prepareLinear", message: "weight must be [out, in], got \(weight.shape)")
        }
        if let bias, bias.count != weight.shape[0] {
            throw TensorError.shapeMismatch(op: "prepareLinear bias", expected: "[\(weight.shape[0])]", actual: "\(bias.shape)")
        }
        // A 1×1 convolution over N × in × 1 × 1 (no cuBLAS to load).
        let (o, i) = (weight.shape[0], weight.shape[1])
        let layer = try prepareLayer(kind: .linear, weight: weight, bias: bias, ConvGeometry(linearOut: o, in: i), outChannels: o, op: "prepareLinear")
        return PreparedLinear(inFeatures: i, outFeatures: o, hasBias: bias != nil, backendID: id, payload: layer)
    }

    public func linear(_ x: Tensor, _ layer: PreparedLinear, epilogue: Epilogue) throws -> Tensor {
        let op = "linear"
        return try sync {
            try own(x, op)
            guard layer.backendID == id, let l = layer.payload as? CUDAConvLayer else { throw TensorError.foreignTensor(op: op) }
            let features = x.shape.c * x.shape.h * x.shape.w
            guard features == layer.inFeatures else {
                throw TensorError.shapeMismatch(op: op, expected: "C·H·W=\(layer.inFeatures)", actual: x.shape.description)
            }
            let out = TensorShape(n: x.shape.n, c: layer.outFeatures, h: 1, w: 1)
            try Validate.epilogue(epilogue, out: out, op: op) { t, o in try own(t, o) }
            // The features in (c, h, w) order, consecutive within an image: NCHW storage has them so (views too); NHWC
            // has them in (h, w, c) order unless H·W = 1, so it takes a dense NCHW-ordered copy first (small: GPEN's
            // 4×4 encoder end).
            var input = x
            if tensorLayout.channelsLast && x.shape.h * x.shape.w > 1 {
                let flat = try activations.allocate(bytes: x.shape.count * elementSize)
                try copyKernel("enh_copy_\(suffix)", x.shape, to: arg(address(flat), Strides(x.shape)), from: arg(x))
                input = Tensor(shape: x.shape, layout: tensorLayout, buffer: flat, backendID: id)
            }
            return try runLayer(l, x: input, xShape: (x.shape.n, features, 1, 1), xStrides: Strides(n: batchStride(input), c: 1, p: 1), out: out,
                                epilogue: epilogue, into: nil, op: op)
        }
    }
}

extension Epilogue {
    /// Nothing to do after the convolution.
    var isIdentity: Bool {
        guard channelScale == nil, residual == nil, outputScale == 1 else { return false }
        if case .none = activation { return true }
        return false
    }
}
