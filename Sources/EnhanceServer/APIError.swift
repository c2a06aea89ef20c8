import EnhanceKit
import Foundation
import Hummingbird
import ImageIO
import Pipeline
import TensorCore

/// An API error: the HTTP status, a stable machine-readable code and a sentence for people. Every error response is
/// `{"error": {"code": …, "message": …}}` (docs/openapi.yaml).
public struct APIError: Error, Sendable, CustomStringConvertible {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    /// Seconds a client should wait before retrying (503 queue_full).
    public var retryAfter: Int?

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, retryAfter: Int? = nil) {
        self.status = status; self.code = code; self.message = message; self.retryAfter = retryAfter
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    static func badParameter(_ m: String) -> APIError { APIError(.badRequest, "bad_parameter", m) }
    static func invalidParameter(_ m: String) -> APIError { APIError(.unprocessableContent, "invalid_parameter", m) }

    /// The API error for anything a request's processing threw: bad input is never a 500.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as ImageIOError:
            switch e.code {
            case .tooManyPixels: return APIError(.contentTooLarge, "too_many_pixels", e.message)
            case .encodingFailed: return APIError(.unprocessableContent, "invalid_parameter", "cannot encode the result: \(e.message)")
            case .io, .invalidArgument: return APIError(.internalServerError, "internal", e.message)
            default: return APIError(.badRequest, "bad_image", "not a usable image: \(e.message)")
            }
        case let e as UpscaleError:
            if case .memory(let m) = e { return APIError(.contentTooLarge, "too_large_for_memory", m) }
            return APIError(.unprocessableContent, "invalid_parameter", e.description)
        case let e as RestoreError:
            return APIError(.unprocessableContent, "invalid_parameter", e.description)
        case let e as EnhanceError:
            switch e.category {
            case .badInput: return APIError(.unprocessableContent, "invalid_parameter", e.message)
            case .missingResource: return APIError(.serviceUnavailable, "model_missing", e.message)
            case .unsupported: return APIError(.unprocessableContent, "invalid_parameter", e.message)
            case .internal: return APIError(.internalServerError, "internal", e.message)
            }
        case let e as TensorError where e.isDeviceLost:
            return APIError(.serviceUnavailable, "device_lost", e.description)
        case is CancellationError:
            return APIError(.serviceUnavailable, "cancelled", "the request was cancelled")
        case let e as HTTPError:
            switch e.status {
            case .contentTooLarge: return APIError(.contentTooLarge, "payload_too_large", "the body is larger than the server's upload limit")
            case .notFound: return APIError(.notFound, "not_found", "no such route")
            default: return APIError(e.status, "http_\(e.status.code)", e.body ?? e.status.reasonPhrase)
            }
        default:
            return APIError(.internalServerError, "internal", String(describing: error))
        }
    }

    /// The JSON response.
    func response() -> Response {
        struct Body: Encodable { let error: Inner; struct Inner: Encodable { let code: String; let message: String } }
        var r = json(Body(error: .init(code: code, message: message)), status: status)
        if let s = retryAfter { r.headers[.retryAfter] = String(s) }
        return r
    }
}
