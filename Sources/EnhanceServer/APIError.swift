import EnhanceKit
import Foundation
import Hummingbird
import ImageIO
import Pipeline
import TensorCore

/// An API error: the HTTP status, a stable machine-readable code and a sentence for people. Every error response is
/// `{"error": {"code": …, "message": …}}` (docs/openapi.yaml).
public struct APIError: Error, Sendable, CustomStringConvertible {
    /// Every code the API answers with and its status: the list docs/openapi.yaml's description gives
    /// (`OpenAPIDocumentTests.theErrorCodesAreTheServers` holds them equal).
    public enum Code: String, CaseIterable, Sendable {
        case badImage = "bad_image", badParameter = "bad_parameter"
        case unknownModel = "unknown_model", notFound = "not_found"
        case methodNotAllowed = "method_not_allowed"
        case payloadTooLarge = "payload_too_large", tooManyPixels = "too_many_pixels", tooLargeForMemory = "too_large_for_memory"
        case unsupportedMediaType = "unsupported_media_type"
        case invalidParameter = "invalid_parameter"
        case queueFull = "queue_full", draining, deviceLost = "device_lost", modelMissing = "model_missing", notReady = "not_ready"
        case cancelled
        case timeout
        case `internal`

        public var status: HTTPResponse.Status {
            switch self {
            case .badImage, .badParameter: .badRequest
            case .unknownModel, .notFound: .notFound
            case .methodNotAllowed: .methodNotAllowed
            case .payloadTooLarge, .tooManyPixels, .tooLargeForMemory: .contentTooLarge
            case .unsupportedMediaType: .unsupportedMediaType
            case .invalidParameter: .unprocessableContent
            case .queueFull, .draining, .deviceLost, .modelMissing, .notReady, .cancelled: .serviceUnavailable
            case .timeout: .gatewayTimeout
            case .internal: .internalServerError
            }
        }
    }

    public let status: HTTPResponse.Status
    /// A `Code`'s raw value, or `http_NNN` for an HTTP error of the server library that has no code of its own.
    public let code: String
    public let message: String
    /// Seconds a client should wait before retrying (503 queue_full).
    public var retryAfter: Int?

    public init(_ code: Code, _ message: String, retryAfter: Int? = nil) {
        self.init(status: code.status, code: code.rawValue, message: message, retryAfter: retryAfter)
    }

    private init(status: HTTPResponse.Status, code: String, message: String, retryAfter: Int? = nil) {
        self.status = status; self.code = code; self.message = message; self.retryAfter = retryAfter
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    static func badParameter(_ m: String) -> APIError { APIError(.badParameter, m) }
    static func invalidParameter(_ m: String) -> APIError { APIError(.invalidParameter, m) }

    /// The API error for anything a request's processing threw: bad input is never a 500.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as ImageIOError:
            switch e.code {
            case .tooManyPixels: return APIError(.tooManyPixels, e.message)
            case .encodingFailed: return APIError(.invalidParameter, "cannot encode the result: \(e.message)")
            case .io, .invalidArgument: return APIError(.internal, e.message)
            default: return APIError(.badImage, "not a usable image: \(e.message)")
            }
        case let e as UpscaleError:
            if case .memory(let m) = e { return APIError(.tooLargeForMemory, m) }
            return APIError(.invalidParameter, e.description)
        case let e as RestoreError:
            return APIError(.invalidParameter, e.description)
        case let e as EnhanceError:
            switch e.category {
            case .badInput: return APIError(.invalidParameter, e.message)
            case .missingResource: return APIError(.modelMissing, e.message)
            case .unsupported: return APIError(.invalidParameter, e.message)
            case .internal: return APIError(.internal, e.message)
            }
        case let e as TensorError where e.isAllocationFailure:
            // the device could not hold the image even with the smallest tile or one face per pass
            return APIError(.tooLargeForMemory, e.description)
        case let e as TensorError where e.isDeviceLost:
            return APIError(.deviceLost, e.description)
        case is CancellationError:
            return APIError(.cancelled, "the request was cancelled")
        case let e as HTTPError:
            switch e.status {
            case .contentTooLarge: return APIError(.payloadTooLarge, "the body is larger than the server's upload limit")
            case .notFound: return APIError(.notFound, "no such route")
            default: return APIError(status: e.status, code: "http_\(e.status.code)", message: e.body ?? e.status.reasonPhrase)
            }
        default:
            return APIError(.internal, String(describing: error))
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
