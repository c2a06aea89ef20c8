/// Errors raised by tensors, backends and ops. Each names the op and the offending shapes or values.
public enum TensorError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Whether this is `nonFinite` (what an fp16 overflow gives).
    public var isNonFinite: Bool { if case .nonFinite = self { return true } else { return false } }
    /// Whether this is `allocationFailed` (the upscaler retries with smaller tiles).
    public var isAllocationFailure: Bool { if case .allocationFailed = self { return true } else { return false } }
    /// Whether this is `deviceLost` (the device can run nothing more in this process).
    public var isDeviceLost: Bool { if case .deviceLost = self { return true } else { return false } }

    /// A shape or parameter is invalid for the op.
    case invalidShape(op: String, message: String)
    /// Two shapes that must agree do not.
    case shapeMismatch(op: String, expected: String, actual: String)
    /// A tensor from another backend was passed in.
    case foreignTensor(op: String)
    /// The backend cannot run this op with these parameters.
    case unsupported(op: String, message: String)
    /// The underlying library failed (e.g. a oneDNN status code).
    case backendFailure(op: String, message: String)
    /// A requested allocation is too large, or the device is out of memory (`detail` says which device and how much
    /// it has free, when known).
    case allocationFailed(bytes: Int, detail: String = "")
    /// A network's output holds NaN or infinite values (fp16 overflow, broken weights).
    case nonFinite(op: String, count: Int, total: Int)
    /// The device broke for the rest of the process (a CUDA "sticky" error such as an illegal address): every later
    /// call on it fails the same way, so its work must go elsewhere or the process restart.
    case deviceLost(device: String, message: String)

    public var description: String {
        switch self {
        case let .invalidShape(op, m): return "\(op): invalid shape: \(m)"
        case let .shapeMismatch(op, e, a): return "\(op): shape mismatch: expected \(e), got \(a)"
        case let .foreignTensor(op): return "\(op): tensor belongs to another backend"
        case let .unsupported(op, m): return "\(op): unsupported: \(m)"
        case let .backendFailure(op, m): return "\(op): backend failure: \(m)"
        case let .allocationFailed(b, d): return "allocation of \(b) bytes failed\(d.isEmpty ? "" : ": " + d)"
        case let .nonFinite(op, n, total): return "\(op): \(n) of \(total) output values are NaN or infinite"
        case let .deviceLost(d, m): return "\(d) is lost: \(m); a GPU context cannot recover within the process"
        }
    }
}

/// Whether `error` says its device is lost (`TensorError.deviceLost`).
public func isDeviceLoss(_ error: any Error) -> Bool { (error as? TensorError)?.isDeviceLost ?? false }
