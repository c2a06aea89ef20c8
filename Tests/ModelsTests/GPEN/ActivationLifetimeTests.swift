import BackendDNNL
import Checkpoint
import Foundation
@testable import Models
import Testing
import TensorCore

/// The generators let go of a large activation as soon as the op that needs it last has read it: a layer that takes
/// its input out of a slot must leave the slot empty and the tensor freed when the caller held no other reference.
/// (GPEN-512 at 512²: the second styled conv's input concat went before its noise half was made, 469 → 400 MiB tensor
/// peak; ParseNet-latest: each block's input goes after conv1, 388 → 324 MiB.)
@Suite struct ActivationLifetimeTests {
    static func input(_ be: any Backend, _ c: Int, _ s: Int, seed: UInt64) throws -> Tensor {
        var rng = SplitMix64(seed: seed)
        return try be.upload(HostTensor(shape: [1, c, s, s], data: (0..<(c * s * s)).map { _ in Float(rng.nextUnit()) * 2 - 1 }))
    }

    @Test(arguments: ["dnnl", "reference"]) func gpenStyledConvsReleaseTheirInput(_ kind: String) throws {
        let be: any Backend = kind == "dnnl" ? try DNNLBackend(options: DNNLBackend.Options(threads: 2)) : ReferenceBackend()
        let cfg = GPENConfiguration(size: 16, styleDim: 8, nMLP: 1, channelMultiplier: 2, narrow: 1.0 / 16)
        let g = try GPENGenerator(stateDict: SyntheticCheckpoint.stateDict(SyntheticCheckpoint.gpen(cfg)), backend: be)
        let style = try be.upload(HostTensor(shape: [1, cfg.styleDim], data: [Float](repeating: 0.5, count: cfg.styleDim)))
        // convs[0] upsamples 4² → 8², convs[1] keeps 8²; both read 2·C channels (their input is a conv + noise concat)
        for (index, res) in [(0, 4), (1, 8)] {
            let sc = g.convs[index]
            let noise = try Self.input(be, GPENGenerator.channels(cfg, resolution: 8), 8, seed: 7)
            var slot: Tensor? = try Self.input(be, sc.conv.inChannels, res, seed: UInt64(index))
            weak let watched = slot
            let y = try g.run(sc, taking: &slot, style: style, noise: noise)
            #expect(slot == nil && watched == nil, "convs[\(index)] kept its input")
            #expect(y.shape.c == sc.conv.outChannels + noise.shape.c && y.shape.h == 8)
            // a caller that still holds the input keeps it
            let kept = try Self.input(be, sc.conv.inChannels, res, seed: UInt64(index))
            var shared: Tensor? = kept
            _ = try g.run(sc, taking: &shared, style: style, noise: noise)
            #expect(shared == nil && kept.shape.c == sc.conv.inChannels)
        }
    }

    @Test(arguments: ["dnnl", "reference"]) func parseNetBlocksReleaseTheirInput(_ kind: String) throws {
        let be: any Backend = kind == "dnnl" ? try DNNLBackend(options: DNNLBackend.Options(threads: 2)) : ReferenceBackend()
        let pc = ParseNetConfiguration(baseCh: 16, parsingCh: 19, resDepth: 1, downSteps: 1, upSteps: 1, normType: "bn",
                                       reluType: "LeakyReLU", chRange: [16, 32])
        let p = try ParseNet(stateDict: SyntheticCheckpoint.stateDict(SyntheticCheckpoint.parseNet(pc)), backend: be)
        for (name, block, c) in [("encoder", p.encoder[0], 16), ("decoder", p.decoder[0], 32)] {
            var slot: Tensor? = try Self.input(be, c, 8, seed: 9)
            weak let watched = slot
            _ = try p.run(block, taking: &slot)
            #expect(slot == nil && watched == nil, "\(name) block kept its input")
        }
        // the identity-shortcut body block needs its input as the residual: same result as computing it by hand
        let x = try Self.input(be, 32, 4, seed: 10)
        var slot: Tensor? = x
        let y = try be.download(p.run(p.body[0], taking: &slot))
        let b = p.body[0]
        let expected = try be.download(p.run(b.conv2, p.run(b.conv1, x), residual: x))
        #expect(y.data == expected.data)
    }
}
