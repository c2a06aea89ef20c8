import Foundation
import TensorCore
import BackendDNNL

/// Paths used by the Real-ESRGAN model tests.
enum ESRGANPaths {
    /// Repository root (three levels above this file).
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    /// `ENHANCE_GOLDEN`, else `<root>/../shared/golden` (or two levels up, for a git worktree under `wt/`).
    static let golden: URL = {
        if let e = ProcessInfo.processInfo.environment["ENHANCE_GOLDEN"], !e.isEmpty { return URL(fileURLWithPath: e) }
        let up1 = root.deletingLastPathComponent().appendingPathComponent("shared/golden")
        let up2 = root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/golden")
        return FileManager.default.fileExists(atPath: up1.path) ? up1 : up2
    }()
    /// Committed fixtures.
    static let fixtures = root.appendingPathComponent("Tests/Fixtures")
    /// Offline assets (`ENHANCE_ASSETS` or `<root>/.cache/assets`).
    static var assets: URL {
        if let e = ProcessInfo.processInfo.environment["ENHANCE_ASSETS"], !e.isEmpty { return URL(fileURLWithPath: e) }
        return root.appendingPathComponent(".cache/assets")
    }
    static func exists(_ u: URL) -> Bool { FileManager.default.fileExists(atPath: u.path) }
    static var hasGolden: Bool { exists(golden.appendingPathComponent("rrdbnet_x4/weights.pth")) }
    static var hasNCNN: Bool { exists(assets.appendingPathComponent("realesr-animevideov3-x4.bin")) }
}

/// Max abs difference and relative L2 error ‖a − b‖ / ‖b‖.
func esrganErrors(_ a: [Float], _ b: [Float]) -> (maxAbs: Float, rel: Double) {
    precondition(a.count == b.count)
    var m: Float = 0
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        let d = a[i] - b[i]
        m = max(m, abs(d))
        num += Double(d) * Double(d)
        den += Double(b[i]) * Double(b[i])
    }
    return (m, (num / max(den, 1e-30)).squareRoot())
}
