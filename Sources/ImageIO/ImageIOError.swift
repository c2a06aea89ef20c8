/// An image I/O failure: what went wrong (`code`), a readable `message`, and the file, if any.
public struct ImageIOError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure.
    public enum Code: String, Sendable {
        /// The file or buffer holds no bytes.
        case empty
        /// The data ends before the image does.
        case truncated
        /// The codec rejected the data.
        case corrupt
        /// The bytes are not PNG, JPEG or WebP.
        case notAnImage
        /// The extension names a different format than the content (only raised on a strict check).
        case mislabelled
        /// The header declares more pixels than `DecodeOptions.maxPixels`.
        case tooManyPixels
        /// A valid file this library does not handle (e.g. animated WebP).
        case unsupported
        /// The codec could not encode the image (e.g. a size the format cannot hold).
        case encodingFailed
        /// Reading or writing the file failed.
        case io
        /// A caller-supplied value is out of range.
        case invalidArgument
    }

    /// The kind of failure.
    public var code: Code
    /// What happened, in words.
    public var message: String
    /// The file involved, if any.
    public var path: String?

    /// Creates an error.
    public init(_ code: Code, _ message: String, path: String? = nil) {
        self.code = code
        self.message = message
        self.path = path
    }

    /// The same error attributed to `path` (kept if already set).
    func at(_ path: String?) -> ImageIOError {
        var e = self
        if e.path == nil { e.path = path }
        return e
    }

    public var description: String {
        if let path { return "\(path): \(message)" }
        return message
    }
}
