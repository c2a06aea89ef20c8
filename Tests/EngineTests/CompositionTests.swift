import BackendDNNL
import Testing
import TensorCore

/// GPEN's demodulated ModulatedConv2d expressed with engine ops (modulate input channels, conv with the fixed
/// weight, demodulate output channels) must equal a plain conv with the per-sample modulated weight Wmod.
@Test(arguments: [false, true])
func modulatedConvCompositionMatchesExplicitWeights(_ useDNNL: Bool) throws {
    let be: any Backend = useDNNL ? Backends.direct : Backends.reference
    var rng = SeededRandom(seed: 31)
    let cin = 16, cout = 8, k = 3, styleDim = 12
    let weight = rng.host([cout, cin, k, k])                 // W (scale 1/√(cin·k·k) folded in below)
    let modW = rng.host([cin, styleDim], scale: 0.5), modB = rng.host([cin])
    let latent = rng.host([1, styleDim]), x = rng.host([1, cin, 7, 6])
    let scale = 1 / Float(cin * k * k).squareRoot()
    let scaledW = try HostTensor(shape: weight.shape, data: weight.data.map { $0 * scale })

    // engine composition
    let style = try be.linear(be.upload(latent), be.prepareLinear(weight: modW, bias: modB))          // [1, cin, 1, 1]
    var wsq = [Float](repeating: 0, count: cout * cin)
    for o in 0..<cout { for i in 0..<cin { for t in 0..<(k * k) { let v = scaledW.data[(o * cin + i) * k * k + t]; wsq[o * cin + i] += v * v } } }
    let demod = try be.unary(be.linear(be.unary(style, .square), be.prepareLinear(weight: HostTensor(shape: [cout, cin], data: wsq), bias: nil)),
                             .rsqrt(eps: 1e-8))
    let conv = try be.prepareConv2d(weight: scaledW, bias: nil, params: Conv2dParams(inChannels: cin, outChannels: cout, kernel: k, padding: 1))
    let y = try be.download(be.conv2d(be.scaleChannels(be.upload(x), by: style), conv, epilogue: Epilogue(channelScale: demod)))

    // explicit Wmod on the reference backend
    let s = try Backends.reference.download(Backends.reference.linear(Backends.reference.upload(latent),
                                                                      Backends.reference.prepareLinear(weight: modW, bias: modB))).data
    var wmod = scaledW.data
    for o in 0..<cout {
        var sum: Float = 0
        for i in 0..<cin { for t in 0..<(k * k) { wmod[(o * cin + i) * k * k + t] *= s[i]; sum += wmod[(o * cin + i) * k * k + t] * wmod[(o * cin + i) * k * k + t] } }
        let d = 1 / (sum + 1e-8).squareRoot()
        for j in 0..<(cin * k * k) { wmod[o * cin * k * k + j] *= d }
    }
    let ref = try Backends.reference
    let expected = try ref.download(ref.conv2d(ref.upload(x), ref.prepareConv2d(weight: HostTensor(shape: weight.shape, data: wmod), bias: nil,
                                                                                 params: Conv2dParams(inChannels: cin, outChannels: cout, kernel: k, padding: 1))))
    var maxDiff: Float = 0
    for i in 0..<y.count { maxDiff = max(maxDiff, abs(y.data[i] - expected.data[i])) }
    #expect(maxDiff < 1e-4, "max |diff| \(maxDiff)")
}
