// Typed errors of the bench, each naming the file, workload or value at fault.

import Foundation

/// Why a bench step failed.
public enum BenchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A value given by the caller is out of range or malformed.
    case invalidArgument(String)
    /// A file or folder could not be read or written.
    case io(path: String, reason: String)
    /// A child process could not be started.
    case spawn(program: String, reason: String)
    /// A workload ran but its output or record is missing or unusable.
    case workload(name: String, reason: String)

    public var description: String {
        switch self {
        case .invalidArgument(let m): return m
        case .io(let path, let reason): return "\(path): \(reason)"
        case .spawn(let program, let reason): return "cannot start \(program): \(reason)"
        case .workload(let name, let reason): return "workload \(name): \(reason)"
        }
    }
}
