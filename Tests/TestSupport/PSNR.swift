import Foundation

/// Peak signal-to-noise ratio of 8-bit samples, the one definition the test targets share.
public enum PSNR {
    /// PSNR in dB between two equally sized 8-bit sample arrays (infinity when identical).
    public static func of(_ a: [UInt8], _ b: [UInt8]) -> Double {
        precondition(a.count == b.count)
        var se = 0.0
        for i in 0..<a.count { let d = Double(a[i]) - Double(b[i]); se += d * d }
        let mse = se / Double(a.count)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }
}
