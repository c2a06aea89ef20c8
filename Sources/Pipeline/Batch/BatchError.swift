// Typed errors of the batch machinery; each message names the path or option and the problem.

/// An error that stops a batch before it runs, or that fails one file of it.
public enum BatchError: Error, Equatable, Sendable, CustomStringConvertible {
    /// An input path given on the command line does not exist.
    case inputNotFound(path: String)
    /// An input path could not be listed or inspected.
    case inputUnreadable(path: String, reason: String)
    /// A planned output path would overwrite an input file.
    case outputIsInput(input: String, output: String)
    /// Two inputs map to the same output path.
    case outputCollision(output: String, first: String, second: String)
    /// A `--shard` value or shard environment could not be parsed or is out of range.
    case invalidShard(spec: String, reason: String)
    /// `--shard auto` found no scheduler variables in the environment.
    case shardEnvironmentMissing
    /// An option has an invalid value.
    case invalidOption(name: String, reason: String)
    /// The output path exists and neither skip-existing nor overwrite allows proceeding.
    case outputExists(path: String)
    /// The output path exists but is not a regular file (for example a directory).
    case outputNotAFile(path: String)
    /// The processor returned without writing its temporary output file.
    case processorWroteNothing(item: String, temporaryPath: String)
    /// A file-system call failed.
    case io(path: String, operation: String, reason: String)

    public var description: String {
        switch self {
        case .inputNotFound(let path): "input not found: \(path)"
        case .inputUnreadable(let path, let reason): "cannot read input \(path): \(reason)"
        case .outputIsInput(let input, let output):
            "refusing to write \(output): it is an input file (\(input)); choose another --output, --suffix or --ext"
        case .outputCollision(let output, let first, let second):
            "inputs \(first) and \(second) would both be written to \(output); use --suffix, --ext auto or separate runs"
        case .invalidShard(let spec, let reason): "invalid shard '\(spec)': \(reason)"
        case .shardEnvironmentMissing:
            "--shard auto: none of JOB_COMPLETION_INDEX+JOB_COMPLETIONS (Kubernetes Indexed Job) or "
                + "SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MIN/MAX (Slurm array) is set"
        case .invalidOption(let name, let reason): "invalid \(name): \(reason)"
        case .outputExists(let path): "output exists: \(path) (use --skip-existing or --overwrite)"
        case .outputNotAFile(let path): "output path exists and is not a regular file: \(path)"
        case .processorWroteNothing(let item, let tmp): "processing \(item) produced no output file (\(tmp))"
        case .io(let path, let operation, let reason): "\(operation) \(path): \(reason)"
        }
    }
}
