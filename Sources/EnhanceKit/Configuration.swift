import Foundation
import Models
import Pipeline

/// A model given as a file or as a name looked up in the models folders.
public enum ModelReference: Sendable, Equatable {
    case name(String)
    case file(String)
}

/// The compute engine: which backend and how it runs.
public struct EngineConfiguration: Sendable, Equatable {
    public enum Device: String, Sendable, CaseIterable {
        /// The best available device: cuda when a GPU can be used here, else cpu.
        case auto
        /// oneDNN on the CPU.
        case cpu
        /// The plain-Swift reference backend (slow; the test oracle).
        case reference
        /// NVIDIA GPUs through cuDNN and NVRTC (loaded at run time; where they or a GPU are missing, asking for it is an
        /// `unsupported` error that says why).
        case cuda
    }
    /// fp32 everywhere; tf32 and fp16 on cuda only (TF32 tensor cores in convolutions; half storage with float
    /// accumulation); bf16 is the CPU's bf16 convolutions (avx512_bf16/AMX, or emulated with ENHANCE_BF16_EMULATION=1).
    public enum Precision: String, Sendable, CaseIterable { case fp32, tf32, fp16, bf16 }

    public var device: Device = .auto
    /// cuda: which GPU, as a CUDA ordinal among those CUDA_VISIBLE_DEVICES leaves (`--device cuda:1`); 0 otherwise.
    public var deviceOrdinal = 0
    /// Compute threads; nil = all cores.
    public var threads: Int?
    /// Winograd 3×3 convolutions where oneDNN has them.
    public var winograd = true
    public var precision: Precision = .fp32
    /// cuda: time cuDNN's algorithms once per shape and keep the fastest (PyTorch's `cudnn.benchmark = True`).
    public var cudnnBenchmark = false
    /// cuda: activation layout, NCHW (PyTorch's default) or NHWC (PyTorch's `channels_last`). The CPU picks its own.
    public enum Layout: String, Sendable, CaseIterable { case nchw, nhwc }
    public var layout: Layout = .nchw
    /// Receives engine decisions (a layer's fallback to another algorithm); nil: silent.
    public var diagnostics: (@Sendable (String) -> Void)?
    /// Receives what the user must know even without `--verbose` (`auto` running on the CPU because the GPU would not
    /// start); nil: silent.
    public var warnings: (@Sendable (String) -> Void)?

    public init() {}

    /// The engine an fp16 run computes an image again on when its outputs overflow (NaN or infinite values): the same
    /// device and layout in fp32; nil for the other precisions. The notes call it `overflowFallbackName`.
    public var overflowFallback: EngineConfiguration? {
        guard precision == .fp16 else { return nil }
        var c = self
        c.precision = .fp32
        return c
    }
    public static let overflowFallbackName = "fp16 → fp32"

    /// The same settings on the CPU (where `--device auto` goes when the GPU will not start or cannot hold the work),
    /// in the CPU's own layout (`--layout nhwc` is a GPU setting).
    public var onTheCPU: EngineConfiguration {
        var c = self
        c.device = .cpu
        c.layout = .nchw
        return c
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.device == b.device && a.deviceOrdinal == b.deviceOrdinal && a.threads == b.threads && a.winograd == b.winograd && a.precision == b.precision
            && a.cudnnBenchmark == b.cudnnBenchmark && a.layout == b.layout
    }
}

/// A Real-ESRGAN upscaler: which model and the RealESRGANer settings.
public struct UpscaleConfiguration: Sendable, Equatable {
    public var model: ModelReference = .name("RealESRGAN_x4plus")
    /// realesr-general-x4v3 only: 1 = plain x4v3, 0 = the wdn model, in between a DNI blend.
    public var denoiseStrength: Double = 0.5
    public var options = UpscaleOptions()

    public init() {}

    /// The named models this configuration needs: the model, and for realesr-general-x4v3 with a denoise strength
    /// other than 1 its wdn companion.
    public var modelNames: [String] {
        guard case let .name(n) = model else { return [] }
        var names = [n]
        if denoiseStrength != 1, let c = RealESRGANModelZoo.info(named: n)?.denoiseCompanion { names.append(c) }
        return names
    }
}

/// A GPEN face restorer: the networks (files or names) and the `FaceRestorer` settings.
public struct RestoreConfiguration: Sendable, Equatable {
    public var gpen: String
    /// RetinaFace weights; nil: RetinaFace-R50, else RetinaFace-mnet025.
    public var detector: String?
    /// ParseNet weights; nil: ParseNet-latest if installed, else the rectangular mask.
    public var parser: String?
    /// The GPEN size the weights must have; nil: whatever they are.
    public var expectedSize: Int?
    /// Background upscaling: "none", "bilinear", or a Real-ESRGAN model name or file.
    public var backgroundUpsampler = "none"
    public var options = RestoreOptions()

    public init(gpen: String) { self.gpen = gpen }

    /// The named models this configuration needs: GPEN, and unless the inputs are aligned GPEN's own detector and
    /// (for the parse mask) parser when none is given, and a named background upsampler.
    public var modelNames: [String] {
        var names = [gpen]
        if !options.aligned {
            names.append(detector ?? "RetinaFace-R50")
            if options.mask == .parse { names.append(parser ?? "ParseNet-latest") }
        }
        if !["none", "bilinear"].contains(backgroundUpsampler.lowercased()) { names.append(backgroundUpsampler) }
        return names
    }
}
