/// A concatenation along channels built part by part and readable after every part (a dense block's growing
/// input, an SSH module's three branches). Where the backend's channel views can start at every part boundary
/// (`channelViewAlignment`), the parts are written straight into their slice of one buffer and nothing is copied;
/// elsewhere each part is made on its own and the parts are concatenated. Model code writes one path for both.
public final class ChannelConcat {
    public let backend: any Backend
    /// Whether the parts go straight into one buffer through channel views.
    public let inPlace: Bool
    private let buffer: Tensor?
    private let total: Int
    private var filled: Int
    private var parts: [Tensor]
    /// Channel counts of the parts still to come.
    private var remaining: [Int]
    /// The concatenation of the parts so far (the whole buffer once every part is in).
    public private(set) var current: Tensor?

    /// A concatenation of `shape.c` channels whose parts have `partChannels` channels; `first`, if given, is
    /// the first part (copied in, or kept as it is).
    public init(_ backend: any Backend, shape: TensorShape, partChannels: [Int], first: Tensor? = nil) throws {
        self.backend = backend
        total = shape.c
        let boundaries = partChannels.reduce(into: [Int]()) { $0.append(($0.last ?? 0) + $1) }.dropLast()
        let a = max(1, backend.channelViewAlignment)
        inPlace = boundaries.allSatisfy { $0 % a == 0 }
        filled = 0
        parts = []
        remaining = partChannels
        if inPlace {
            // Every channel is written by its part; only a channel count the layout pads needs the padding zeroed.
            buffer = try shape.c % a == 0 ? backend.empty(shape) : backend.zeros(shape)
        } else {
            buffer = nil
        }
        if let first {
            try append { into in
                if let into { try backend.copy(first, into: into) }
                return first
            }
        }
    }

    /// Adds the next part of `channels` channels: `produce` gets the destination to write into (a channel view of
    /// the result) when the concatenation is in place, else nil, and returns the part it wrote or made.
    public func append(_ produce: (_ into: Tensor?) throws -> Tensor) throws {
        guard !remaining.isEmpty else {
            throw TensorError.invalidShape(op: "ChannelConcat", message: "more parts than the \(total) channels were declared for")
        }
        let c = remaining.removeFirst()
        if inPlace, let buffer {
            let into = try backend.channelView(buffer, filled..<(filled + c))
            _ = try produce(into)
            filled += c
            current = filled == total ? buffer : try backend.channelView(buffer, 0..<filled)
        } else {
            let part = try produce(nil)
            guard part.shape.c == c else {
                throw TensorError.shapeMismatch(op: "ChannelConcat part", expected: "C=\(c)", actual: part.shape.description)
            }
            parts.append(part)
            filled += c
            current = parts.count == 1 ? part : try backend.concat(parts)
        }
    }

}
