import Foundation

/// A size that is not a size, named in the message.
public struct ByteSizeError: Error, CustomStringConvertible, Sendable {
    public let text: String
    public var description: String { "'\(text)' is not a size like 12G, 512M or 1.5GiB (a positive number, optional unit K, M, G or T; powers of 1024)" }
}

/// Byte sizes as people write them (`12G`, `512m`, `1.5GiB`, `64 KB`, `800000`): units are powers of 1024, `i` and
/// `B` optional, case ignored. The one parser for `--max-memory`, `--memory-budget` and every other size.
public enum ByteSize {
    /// Parses a size; throws naming the text when it is malformed, not positive or above 1 PiB.
    public static func parse(_ text: String) throws(ByteSizeError) -> Int64 {
        var s = Substring(text.filter { !$0.isWhitespace }.uppercased())
        if s.hasSuffix("B") { s = s.dropLast() }
        if s.hasSuffix("I") { s = s.dropLast() }
        var multiplier: Double = 1
        if let unit = s.last, let power = ["K": 1.0, "M": 2, "G": 3, "T": 4][String(unit)] {
            multiplier = pow(1024, power)
            s = s.dropLast()
        }
        guard let value = Double(s), value.isFinite, value > 0, value * multiplier <= 0x1p50, value * multiplier >= 1 else {
            throw ByteSizeError(text: text)
        }
        return Int64(value * multiplier)
    }

    /// A short human form in binary units: `1.25 GiB`, `730 MiB`.
    public static func format(_ bytes: Int64) -> String {
        let b = Double(bytes)
        if b >= 0x1p30 { return String(format: "%.2f GiB", b / 0x1p30) }
        if b >= 0x1p20 { return String(format: "%.0f MiB", b / 0x1p20) }
        if b >= 0x1p10 { return String(format: "%.0f KiB", b / 0x1p10) }
        return "\(bytes) B"
    }
}
