import Foundation

/// The host emulator of the CUDA driver, NVRTC and cuDNN (Tests/Fixtures/cuda-emulator), built once per test process
/// with the backend's own kernels.cu compiled in, so the CUDA backend's whole code path runs on the CPU.
public enum CUDAEmulator {
    /// Where the emulator library lives: `driver` is its libcuda.so.1, `folder` holds the libnvrtc.so.13 and
    /// libcudnn.so.9 links to it.
    public struct Build: Sendable {
        public let driver: String
        public let folder: String
    }

    /// The build, or the compiler's output when it failed (a missing C++ compiler is a failure, never a skip).
    public static let build: Result<Build, BuildError> = {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("enhance-cuda-emulator-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = Repository.root.appendingPathComponent("scripts/cuda-emulator-build")
        p.arguments = [folder.path, Repository.root.appendingPathComponent("Sources/BackendCUDA/kernels.cu").path]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return .failure(BuildError(log: "cannot run scripts/cuda-emulator-build: \(error)")) }
        let log = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let driver = folder.appendingPathComponent("libcuda.so.1").path
        guard p.terminationStatus == 0, FileManager.default.fileExists(atPath: driver) else {
            return .failure(BuildError(log: "scripts/cuda-emulator-build exited \(p.terminationStatus):\n\(log)"))
        }
        return .success(Build(driver: driver, folder: folder.path))
    }()

    public struct BuildError: Error, CustomStringConvertible, Sendable {
        public let log: String
        public var description: String { log }
    }
}
