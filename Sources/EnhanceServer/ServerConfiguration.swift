import EnhanceKit
import Foundation

/// Everything `enhance serve` is started with.
public struct ServerConfiguration: Sendable {
    /// Address to listen on.
    public var host = "127.0.0.1"
    /// Port (0 = any free port; the bound one is reported by `onListening`).
    public var port = 8080
    /// Folders searched for weights by name (the models folder first).
    public var modelDirectories: [URL] = []
    /// Names loaded at start; /readyz says ready once they are.
    public var preload: [String] = []
    /// Memory admitted requests may reserve together (their estimated peaks), in bytes.
    public var maxMemory = 4 << 30
    /// Admitted requests in flight at once (decode, wait for the engine, encode).
    public var workers = 2
    /// Requests that may wait for memory or a worker; one more is answered 503.
    public var queue = 16
    /// Largest request body, in bytes.
    public var maxUpload = 50 << 20
    /// Largest input image, in pixels (read from the header before decoding).
    public var maxPixels = 40_000_000
    /// Longest a request may wait and run.
    public var requestTimeout: Duration = .seconds(120)
    /// The compute engine (device, threads, Winograd).
    public var engine = EngineConfiguration()
    /// Requests whose model passes may run at once; same-shape inputs among them (tiles, face batches) go through the
    /// network as one batch (a GPU knob: on the CPU one pass already takes every core). 1 = one pass at a time.
    public var imageBatch = 1
    /// Where request files live while they are processed (removed afterwards).
    public var temporaryDirectory = URL(fileURLWithPath: NSTemporaryDirectory())

    public init() {}
}
