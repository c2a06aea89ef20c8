import Foundation

/// A library error with a category, so a front end maps it without matching messages: the CLI to exit codes,
/// a service to HTTP statuses. Messages name files, models and hosts, never command-line flags.
public struct EnhanceError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is.
    public enum Category: String, Sendable {
        /// The input (a file, a name, a parameter) is wrong.
        case badInput = "bad-input"
        /// Something needed is not there or cannot be reached (a model file, a server).
        case missingResource = "missing-resource"
        /// Well-formed but not supported here.
        case unsupported
        /// A bug or an unexpected state.
        case `internal`
    }
    public let category: Category
    public let message: String
    public var description: String { message }

    public init(_ category: Category, _ message: String) {
        self.category = category; self.message = message
    }
}
