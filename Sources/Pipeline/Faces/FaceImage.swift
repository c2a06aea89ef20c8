// Host images for the face geometry (alignment, warps, masks, paste-back).
// Pure Swift, deterministic, no backend: these mirror the OpenCV calls of GPEN's face_enhancement.py.

/// Errors of the face-geometry code; each message names the operand and the problem.
public enum FaceGeometryError: Error, Equatable, CustomStringConvertible {
    /// An image or mask whose sizes and buffer disagree, or that is empty or too large.
    case invalidImage(String)
    /// Two operands that must have matching sizes or channel counts do not.
    case mismatch(String)
    /// Landmarks that do not determine a similarity transform (e.g. all points equal).
    case degenerateLandmarks(String)
    /// A parameter outside its valid range.
    case invalidParameter(String)

    public var description: String {
        switch self {
        case .invalidImage(let m): "invalid image: \(m)"
        case .mismatch(let m): "size mismatch: \(m)"
        case .degenerateLandmarks(let m): "degenerate landmarks: \(m)"
        case .invalidParameter(let m): "invalid parameter: \(m)"
        }
    }
}

/// Largest side accepted for any face-geometry image or output size (guards allocations from untrusted sizes).
public let faceGeometryMaxSide = 1 << 15

@inline(__always)
func checkedSize(_ width: Int, _ height: Int, _ channels: Int, _ what: String) throws -> Int {
    guard width > 0, height > 0 else {
        throw FaceGeometryError.invalidImage("\(what): size \(width)x\(height) must be positive")
    }
    guard width <= faceGeometryMaxSide, height <= faceGeometryMaxSide else {
        throw FaceGeometryError.invalidImage("\(what): size \(width)x\(height) exceeds \(faceGeometryMaxSide) per side")
    }
    guard (1...4).contains(channels) else {
        throw FaceGeometryError.invalidImage("\(what): \(channels) channels (1 to 4 supported)")
    }
    let (n, o) = (width * height).multipliedReportingOverflow(by: channels)
    guard !o, n <= 1 << 31 else {
        throw FaceGeometryError.invalidImage("\(what): \(width)x\(height)x\(channels) is too large")
    }
    return n
}

/// An 8-bit image, layout H·W·C (row-major, channels interleaved), channel order BGR(A) like OpenCV.
public struct FaceImage: Sendable, Equatable {
    /// Channel order of interleaved bytes handed to or taken from a `FaceImage`.
    public enum ChannelOrder: Sendable { case bgr, rgb }

    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// Channels per pixel (1, 3 or 4).
    public let channels: Int
    /// Pixel bytes, layout H·W·C, BGR(A) order.
    public var pixels: [UInt8]

    /// Wraps BGR(A) bytes laid out H·W·C; throws if the buffer does not match the size.
    public init(width: Int, height: Int, channels: Int = 3, pixels: [UInt8]) throws {
        let n = try checkedSize(width, height, channels, "FaceImage")
        guard pixels.count == n else {
            throw FaceGeometryError.invalidImage(
                "FaceImage \(width)x\(height)x\(channels) needs \(n) bytes, got \(pixels.count)")
        }
        self.width = width; self.height = height; self.channels = channels; self.pixels = pixels
    }

    /// Converts interleaved bytes (layout H·W·C) in `order` to BGR(A); RGB input has channels 0 and 2 swapped.
    public init(interleaved: [UInt8], width: Int, height: Int, channels: Int, order: ChannelOrder) throws {
        try self.init(width: width, height: height, channels: channels, pixels: interleaved)
        if order == .rgb && channels >= 3 { swapRedBlue() }
    }

    /// A black image (all bytes 0).
    public init(width: Int, height: Int, channels: Int = 3) throws {
        let n = try checkedSize(width, height, channels, "FaceImage")
        self.width = width; self.height = height; self.channels = channels
        self.pixels = [UInt8](repeating: 0, count: n)
    }

    /// The pixels as interleaved bytes (layout H·W·C) in `order`.
    public func interleaved(order: ChannelOrder) -> [UInt8] {
        if order == .bgr || channels < 3 { return pixels }
        var copy = self
        copy.swapRedBlue()
        return copy.pixels
    }

    private mutating func swapRedBlue() {
        let c = channels
        pixels.withUnsafeMutableBufferPointer { p in
            var i = 0
            while i < p.count { p.swapAt(i, i + 2); i += c }
        }
    }

    /// Byte at row `y`, column `x`, channel `c`.
    @inlinable public subscript(y: Int, x: Int, c: Int) -> UInt8 {
        get { pixels[(y * width + x) * channels + c] }
        set { pixels[(y * width + x) * channels + c] = newValue }
    }
}

/// A single-channel float image (masks), layout H·W, row-major.
public struct FaceMask: Sendable, Equatable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// Values, layout H·W.
    public var values: [Float]

    /// Wraps values laid out H·W; throws if the buffer does not match the size.
    public init(width: Int, height: Int, values: [Float]) throws {
        let n = try checkedSize(width, height, 1, "FaceMask")
        guard values.count == n else {
            throw FaceGeometryError.invalidImage("FaceMask \(width)x\(height) needs \(n) values, got \(values.count)")
        }
        self.width = width; self.height = height; self.values = values
    }

    /// A mask filled with `value`.
    public init(width: Int, height: Int, repeating value: Float = 0) throws {
        let n = try checkedSize(width, height, 1, "FaceMask")
        self.width = width; self.height = height
        self.values = [Float](repeating: value, count: n)
    }

    /// Value at row `y`, column `x`.
    @inlinable public subscript(y: Int, x: Int) -> Float {
        get { values[y * width + x] }
        set { values[y * width + x] = newValue }
    }
}
