/// Where one forward's time went on its device, op by op (`enhance forward --profile`): each row is an op kind — a
/// kernel, a library call with its algorithm, a copy — with its calls and the seconds the device spent in them.
/// The sum of the rows against the forward's wall time tells compute from what is not (launch gaps, host work).
public struct OpProfile: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// A convolution, transposed convolution or linear layer (the library's call).
        case convolution
        /// Any other op: a kernel of ours, a library primitive.
        case op
        /// Copies between host and device.
        case copy
    }

    public struct Entry: Sendable, Equatable {
        public let kind: Kind
        /// What ran, e.g. `cuDNN fwd algo 1 (tensor ops) 64→32` or `enh_epilogue_f16`.
        public let name: String
        public var calls: Int
        public var seconds: Double
    }

    /// How the seconds were taken, e.g. "CUDA events around each call" or "host clock around each primitive".
    public let clock: String
    /// Most seconds first.
    public let entries: [Entry]

    public init(clock: String, entries: [Entry]) {
        self.clock = clock
        self.entries = entries.sorted { ($0.seconds, $1.name) > ($1.seconds, $0.name) }
    }

    /// Seconds in all rows (the device busy with what the rows name).
    public var busySeconds: Double { entries.reduce(0) { $0 + $1.seconds } }

    /// Seconds per kind.
    public func seconds(of kind: Kind) -> Double { entries.filter { $0.kind == kind }.reduce(0) { $0 + $1.seconds } }
}

/// Collects per-op seconds while a profile runs: a backend adds one sample per call.
public struct OpProfileCollector: Sendable {
    private var rows: [String: OpProfile.Entry] = [:]

    public init() {}

    public mutating func add(_ kind: OpProfile.Kind, _ name: String, seconds: Double) {
        rows[name, default: OpProfile.Entry(kind: kind, name: name, calls: 0, seconds: 0)].calls += 1
        rows[name]!.seconds += seconds
    }

    public func profile(clock: String) -> OpProfile { OpProfile(clock: clock, entries: Array(rows.values)) }
}
