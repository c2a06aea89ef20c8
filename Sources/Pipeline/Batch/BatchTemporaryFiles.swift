// Temporary output names and the clean-up of leftovers from killed runs.

import Foundation

/// Naming and clean-up of the temporary files outputs are written to before the atomic rename.
public enum BatchTemporaryFiles {
    /// Marker between the output name and the process id.
    public static let marker = ".enhance-tmp-"

    /// `.<outputName>.enhance-tmp-<pid>`.
    public static func name(for outputName: String, pid: Int32) -> String {
        "." + outputName + marker + String(pid)
    }

    /// The output name a temporary file belongs to, or nil if `fileName` does not match our pattern exactly.
    public static func outputName(ofTemporary fileName: String) -> String? {
        guard fileName.hasPrefix("."), let range = fileName.range(of: marker, options: .backwards) else { return nil }
        let pid = fileName[range.upperBound...]
        guard !pid.isEmpty, pid.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        let name = fileName[fileName.index(after: fileName.startIndex)..<range.lowerBound]
        return name.isEmpty ? nil : String(name)
    }

    /// Removes leftover temporary files of the plan's outputs (any pid except `currentPid`) and returns their paths.
    ///
    /// Only files named `.<planned output name>.enhance-tmp-<digits>` next to a planned output are touched, so
    /// other shards writing other outputs into the same folders are unaffected.
    @discardableResult
    public static func cleanLeftovers(of items: [BatchItem], currentPid: Int32) -> [String] {
        var wanted: [String: Set<String>] = [:]
        for item in items {
            wanted[item.outputDirectory, default: []].insert((item.output as NSString).lastPathComponent)
        }
        var removed: [String] = []
        for (dir, names) in wanted.sorted(by: { $0.key < $1.key }) {
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: dir) else { continue }
            for entry in entries.sorted() {
                guard let owner = outputName(ofTemporary: entry), names.contains(owner),
                    entry != name(for: owner, pid: currentPid)
                else { continue }
                let path = joinPath(dir, entry)
                var st = stat()
                guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
                if unlink(path) == 0 { removed.append(path) }
            }
        }
        return removed
    }
}
