/// A command failure with its message (the command prints it after its own name).
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
