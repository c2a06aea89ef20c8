// Which files a batch processes, in which order, and where each output goes.

import Foundation

/// One image to process: where it comes from and where its output goes.
public struct BatchItem: Sendable, Equatable {
    /// Input file path (the input root joined with `relativePath`).
    public let input: String
    /// Path relative to its input root (just the file name for a file given directly).
    public let relativePath: String
    /// Input format, recognised by content.
    public let format: BatchImageFormat
    /// Final output path.
    public let output: String
    /// Format the output must be encoded in.
    public let outputFormat: BatchImageFormat
    /// Size of the input file in bytes (for memory estimates).
    public let inputBytes: Int
    /// Position in the full sorted input list, before sharding.
    public let position: Int

    /// An item built by hand (a service's uploaded file rather than a folder scan).
    public init(input: String, relativePath: String, format: BatchImageFormat, output: String,
                outputFormat: BatchImageFormat, inputBytes: Int, position: Int = 0) {
        self.input = input; self.relativePath = relativePath; self.format = format; self.output = output
        self.outputFormat = outputFormat; self.inputBytes = inputBytes; self.position = position
    }

    /// Folder that will hold the output.
    public var outputDirectory: String { (output as NSString).deletingLastPathComponent }

    /// Temporary path the processor writes to: `<outputDirectory>/.<output name>.enhance-tmp-<pid>`.
    public func temporaryPath(pid: Int32) -> String {
        joinPath(outputDirectory, BatchTemporaryFiles.name(for: (output as NSString).lastPathComponent, pid: pid))
    }
}

/// A file found among the inputs that is not a PNG, JPEG or WebP by content.
public struct BatchRejectedInput: Sendable, Equatable {
    /// Input file path.
    public let input: String
    /// Path relative to its input root.
    public let relativePath: String
    /// Position in the full sorted input list, before sharding.
    public let position: Int
    /// Why it is skipped.
    public let reason: String
}

/// The resolved work list of a batch: images in deterministic order plus rejected non-images, after sharding.
public struct BatchPlan: Sendable {
    /// Images of this shard, sorted by (input argument order, relative path by UTF-8 bytes).
    public let items: [BatchItem]
    /// Non-image files of this shard (recorded with status `not-image`).
    public let rejected: [BatchRejectedInput]
    /// Number of files in the full sorted list, before sharding.
    public let totalCandidates: Int
    /// The shard this plan was cut to, if any.
    public let shard: BatchShard?

    /// Builds a plan from files and folders.
    ///
    /// Folder inputs list their regular files (hidden names starting with `.` are ignored); with `recursive`
    /// they descend into sub-folders (not through symbolic links) and the tree is mirrored under the output
    /// folder. The output folder itself is never listed as input, and a file that is the planned output of
    /// another input is not an input either, so rerunning with the output inside the input folder is safe.
    /// Every file is sniffed (12 bytes read) before sharding, so all shards agree on the list and on collisions.
    /// - Throws: `BatchError.inputNotFound`, `.outputIsInput`, `.outputCollision`, or an option error.
    public static func make(inputs: [String], options: BatchOptions) throws(BatchError) -> BatchPlan {
        try options.validate()
        let fm = FileManager.default
        let outputRoot = options.outputDirectory.map(realPathOrAbsolute)

        struct Candidate {
            let argument: Int
            let root: String?  // folder root, nil for a file given directly
            let input: String
            let relative: String
            var real: String
        }
        var candidates: [Candidate] = []
        var seenReal = Set<String>()

        for (argIndex, path) in inputs.enumerated() {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw .inputNotFound(path: path) }
            if !isDir.boolValue {
                candidates.append(
                    Candidate(argument: argIndex, root: nil, input: path,
                              relative: (path as NSString).lastPathComponent, real: realPathOrAbsolute(path)))
                continue
            }
            let rootReal = realPathOrAbsolute(path)
            var found: [String] = []
            try listFiles(root: path, relative: "", recursive: options.recursive,
                          skipReal: outputRoot.flatMap { $0 == rootReal ? nil : $0 }, into: &found)
            for rel in found {
                let full = joinPath(path, rel)
                candidates.append(
                    Candidate(argument: argIndex, root: path, input: full, relative: rel,
                              real: realPathOrAbsolute(full)))
            }
        }
        candidates.sort { a, b in
            a.argument != b.argument ? a.argument < b.argument : a.relative.utf8.lexicographicallyPrecedes(b.relative.utf8)
        }
        candidates = candidates.filter { seenReal.insert($0.real).inserted }

        // Sniff and name everything (all shards agree on the list and on collisions).
        struct Named { let c: Candidate; let format: BatchImageFormat?; let output: String?; let outputFormat: BatchImageFormat? }
        var named: [Named] = []
        named.reserveCapacity(candidates.count)
        for c in candidates {
            guard let format = sniffImageFormat(atPath: c.input) else {
                named.append(Named(c: c, format: nil, output: nil, outputFormat: nil))
                continue
            }
            let outFormat = options.outputExtension.format ?? format
            let inputName = (c.relative as NSString).lastPathComponent
            let inputExt = (inputName as NSString).pathExtension
            let stem = inputExt.isEmpty ? inputName : (inputName as NSString).deletingPathExtension
            let ext = outFormat.accepts(extension: inputExt) && options.outputExtension == .auto
                ? inputExt : outFormat.fileExtension
            let fileName = stem + options.suffix + "." + ext
            let folder: String
            if let out = options.outputDirectory {
                let relDir = (c.relative as NSString).deletingLastPathComponent
                folder = c.root != nil && !relDir.isEmpty ? joinPath(out, relDir) : out
            } else {
                folder = (c.input as NSString).deletingLastPathComponent
            }
            named.append(Named(c: c, format: format, output: joinPath(folder, fileName), outputFormat: outFormat))
        }

        // A file that is the planned output of another input is a previous result, not an input.
        var outputsReal: [String: Int] = [:]
        for (i, n) in named.enumerated() {
            guard let out = n.output else { continue }
            let r = realPathOrAbsolute(out)
            if let j = outputsReal[r] {
                throw .outputCollision(output: out, first: named[j].c.input, second: n.c.input)
            }
            outputsReal[r] = i
        }
        var kept: [Named] = []
        for (i, n) in named.enumerated() {
            if let owner = outputsReal[n.c.real] {
                if owner == i, let out = n.output { throw .outputIsInput(input: n.c.input, output: out) }
                continue
            }
            kept.append(n)
        }

        var items: [BatchItem] = []
        var rejected: [BatchRejectedInput] = []
        for (position, n) in kept.enumerated() where options.shard?.contains(position: position) ?? true {
            if let format = n.format, let output = n.output, let outputFormat = n.outputFormat {
                let size = (try? fm.attributesOfItem(atPath: n.c.input)[.size] as? Int) ?? 0
                items.append(
                    BatchItem(input: n.c.input, relativePath: n.c.relative, format: format, output: output,
                              outputFormat: outputFormat, inputBytes: size, position: position))
            } else {
                rejected.append(
                    BatchRejectedInput(input: n.c.input, relativePath: n.c.relative, position: position,
                                       reason: "not a PNG, JPEG or WebP image (by content); skipped"))
            }
        }
        return BatchPlan(items: items, rejected: rejected, totalCandidates: kept.count, shard: options.shard)
    }

    /// Creates a plan from explicit parts (for tests and callers that build their own lists).
    public init(items: [BatchItem], rejected: [BatchRejectedInput] = [], totalCandidates: Int? = nil,
                shard: BatchShard? = nil) {
        self.items = items
        self.rejected = rejected
        self.totalCandidates = totalCandidates ?? (items.count + rejected.count)
        self.shard = shard
    }

    private static func listFiles(root: String, relative: String, recursive: Bool, skipReal: String?,
                                  into found: inout [String]) throws(BatchError) {
        let dir = joinPath(root, relative)
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
            throw .inputUnreadable(path: dir, reason: (error as NSError).localizedDescription)
        }
        for name in names where !name.hasPrefix(".") {
            let rel = joinPath(relative, name)
            let full = joinPath(root, rel)
            var st = stat()
            guard lstat(full, &st) == 0 else { continue }
            let type = st.st_mode & S_IFMT
            if type == S_IFDIR {
                guard recursive, realPathOrAbsolute(full) != skipReal else { continue }
                try listFiles(root: root, relative: rel, recursive: true, skipReal: skipReal, into: &found)
            } else if type == S_IFREG {
                found.append(rel)
            } else if type == S_IFLNK {
                var target = stat()
                if stat(full, &target) == 0 && (target.st_mode & S_IFMT) == S_IFREG { found.append(rel) }
            }
        }
    }
}

/// The canonical absolute path of `path`: symbolic links resolved for the longest existing prefix.
func realPathOrAbsolute(_ path: String) -> String {
    let absolute = path.hasPrefix("/") ? path : joinPath(FileManager.default.currentDirectoryPath, path)
    if let resolved = realpath(absolute, nil) {
        defer { free(resolved) }
        return String(cString: resolved)
    }
    let parent = (absolute as NSString).deletingLastPathComponent
    guard parent != absolute, !parent.isEmpty else { return (absolute as NSString).standardizingPath }
    return joinPath(realPathOrAbsolute(parent), (absolute as NSString).lastPathComponent)
}
