import Checkpoint
import TensorCore

/// Real-ESRGAN's SRVGGNetCompact (realesr-animevideov3, realesr-general-x4v3) on any backend.
///
/// Input 1×C×H×W (**N, C, H, W**, RGB in [0, 1]); body = conv, act, num_conv × (conv, act), conv to C·upscale²
/// channels; then pixel_shuffle(upscale) plus the nearest-upsampled input. Activations are fused into the convs.
public final class SRVGGNetCompact: SuperResolutionNetwork, @unchecked Sendable {
    /// The configuration (num_in_ch, num_out_ch, num_feat, num_conv, upscale, act_type).
    public let configuration: SRVGGNetConfiguration
    public let backend: any Backend
    public var architectureName: String { "SRVGGNetCompact" }
    public var scale: Int { configuration.upscale }
    public var channels: Int { configuration.numInCh }
    public var inputMultiple: Int { 1 }
    public let parameterCount: Int

    private let convs: [PreparedConv2d]
    private let activations: [Activation]

    /// Builds the network and loads `body.{2k}.weight/bias` (convs) and, for PReLU, `body.{2k+1}.weight` strictly.
    /// `actType` is "prelu", "relu" or "leakyrelu" (slope 0.1, as upstream).
    public init(configuration c: SRVGGNetConfiguration, weights: any WeightSource, backend: any Backend) throws {
        guard c.numInCh > 0, c.numInCh == c.numOutCh, c.numInCh <= 64, c.numFeat > 0, c.numFeat <= 4096,
              c.numConv >= 0, c.numConv <= 1000, c.upscale >= 1, c.upscale <= 16 else {
            throw RealESRGANError.unsupportedConfiguration("SRVGGNetCompact \(c)")
        }
        let act = c.actType.lowercased()
        guard ["prelu", "relu", "leakyrelu"].contains(act) else {
            throw RealESRGANError.unsupportedConfiguration("SRVGGNetCompact act_type '\(c.actType)' (prelu, relu or leakyrelu)")
        }
        configuration = c
        self.backend = backend
        var convs: [PreparedConv2d] = []
        var acts: [Activation] = []
        var params = 0
        let nf = c.numFeat
        for k in 0...(c.numConv) {
            let inC = k == 0 ? c.numInCh : nf
            convs.append(try prepareConv3x3(backend, weights, "body.\(2 * k)", inChannels: inC, outChannels: nf))
            params += nf * inC * 9 + nf
            switch act {
            case "prelu":
                let slopes = try weights.weights("body.\(2 * k + 1).weight", shape: [nf])
                params += nf
                acts.append(.prelu(slopes: try backend.prepareVector(slopes)))
            case "relu": acts.append(.relu)
            default: acts.append(.leakyReLU(slope: 0.1))
            }
        }
        let lastOut = c.numOutCh * c.upscale * c.upscale
        convs.append(try prepareConv3x3(backend, weights, "body.\(2 * c.numConv + 2)", inChannels: nf, outChannels: lastOut))
        params += lastOut * nf * 9 + lastOut
        try weights.verifyAllUsed()
        self.convs = convs
        activations = acts
        parameterCount = params
    }

    /// num_conv + 2 convolutions at input resolution, one pixel each.
    public var receptiveFieldRadius: Int { configuration.numConv + 2 }

    /// Two nf-channel tensors at input resolution, or the last conv's output plus the shuffled output and the
    /// upsampled input at scale² the area, in float32 bytes per input pixel.
    public var activationBytesPerInputPixel: Int {
        let s2 = configuration.upscale * configuration.upscale
        return 4 * max(2 * configuration.numFeat, 3 * configuration.numOutCh * s2)
    }

    public func forward(_ x: Tensor) throws -> Tensor {
        guard x.shape.c == configuration.numInCh else {
            throw RealESRGANError.invalidInput("SRVGGNetCompact expects \(configuration.numInCh) channels, got \(x.shape)")
        }
        let be = backend
        var out = x
        for (conv, act) in zip(convs, activations) {
            out = try be.conv2d(out, conv, epilogue: .activation(act))
        }
        out = try be.conv2d(out, convs[convs.count - 1])
        out = try be.pixelShuffle(out, factor: configuration.upscale)
        return try be.add(out, be.upsampleNearest(x, factor: configuration.upscale))
    }
}
