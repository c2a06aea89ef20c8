import ArgumentParser
import Pipeline

/// The root `enhance` command. It holds only subcommands; each lives in its own file.
public struct Enhance: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "enhance",
        abstract: "Restore faces with GPEN and upscale images with Real-ESRGAN on the CPU.",
        version: version,
        subcommands: EnhanceCommands.all
    )

    public init() {}
}

/// Registry of the commands that work. A command appears in `--help` only once it is listed here.
public enum EnhanceCommands {
    public static let all: [any ParsableCommand.Type] = [
        Inspect.self,
        Info.self,
        Upscale.self,
        Restore.self,
        Chain.self,
        Detect.self,
        ModelsCommand.self,
        Forward.self,
        BenchCommand.self,
        Serve.self,
    ]
}

extension Enhance {
    /// Parses `CommandLine.arguments` and runs the chosen subcommand, exiting with its status.
    public static func runFromCommandLine() async {
        useSteadyHeapPolicy()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
