import Foundation
import ImageIO

/// Batch processor of `enhance chain`: decode → Real-ESRGAN (`Upscaler`, RealESRGANer semantics) → GPEN face
/// restoration on the upscaled image (`FaceRestorer`: faces are detected at the output resolution) → encode.
///
/// Both models are loaded once and shared by every image of the batch.
public struct ChainProcessor: BatchProcessor {
    /// Upscaling stage.
    public let upscale: UpscaleProcessor
    /// Face restoration stage (its own background upscaling must be off: the chain already upscaled).
    public let restore: RestoreProcessor

    /// Creates the processor; `restore.restorer.options.upscale` must be 1.
    public init(upscale: UpscaleProcessor, restore: RestoreProcessor) throws {
        guard restore.restorer.options.upscale == 1 else {
            throw RestoreError.invalidOption("chain: the restore stage must not upscale again (upscale \(restore.restorer.options.upscale))")
        }
        self.upscale = upscale
        self.restore = restore
    }

    public func load(_ item: BatchItem, notes: inout BatchNotes) async throws -> Image {
        let start = ContinuousClock.now
        let img = try await upscale.load(item, notes: &notes)
        notes.timings["decode"] = seconds(since: start)
        return img
    }

    public func compute(_ loaded: Image, item: BatchItem, notes: inout BatchNotes) async throws -> RestoreProcessor.Computed {
        let up = try await upscale.compute(loaded, item: item, notes: &notes)
        return try await restore.compute(RestoreProcessor.Loaded(image: up), item: item, notes: &notes)
    }

    public func store(_ computed: RestoreProcessor.Computed, item: BatchItem, temporaryPath: String,
                      notes: inout BatchNotes) async throws {
        let start = ContinuousClock.now
        try await restore.store(computed, item: item, temporaryPath: temporaryPath, notes: &notes)
        notes.timings["encode"] = seconds(since: start)
    }

    private func seconds(since start: ContinuousClock.Instant) -> Double {
        secondsSince(start)
    }
}
