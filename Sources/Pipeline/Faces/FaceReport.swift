import Foundation
import ImageIO

/// The faces found in one image, as `enhance detect` reports them: boxes `[x1, y1, x2, y2]` and five landmarks
/// `[x, y]` (left eye, right eye, nose, left mouth corner, right mouth corner) in input-image pixels.
public struct FaceReport: Sendable, Equatable {
    /// The input file.
    public var input: String
    /// Image size in pixels.
    public var width: Int, height: Int
    /// Detections in the detector's order (descending score after NMS).
    public var faces: [FaceDetection]

    /// Creates a report.
    public init(input: String, width: Int, height: Int, faces: [FaceDetection]) {
        self.input = input; self.width = width; self.height = height; self.faces = faces
    }

    /// Detects the faces of a decoded image (8-bit BGR conversion as `restore` does; alpha ignored). Scores are the
    /// detector's confidence in 0...1: upstream GPEN's `detect()` divides its whole result rows by the detection
    /// downscale `ss` (images over 1500 px), score column included, so its scores exceed 1 there; this undoes that.
    public init(input: String, image: Image, detector: RetinaFaceDetector) throws {
        let (bgr, _) = try RestoreImageConversion.bgr(from: image)
        let ss = detector.options.detectionScale(width: image.width, height: image.height)
        let faces = try detector.detect(bgr).map { f in
            var f = f
            f.score = min(1, f.score * ss)
            return f
        }
        self.init(input: input, width: image.width, height: image.height, faces: faces)
    }

    /// `{"input": …, "width": W, "height": H, "faces": [{"box": [x1, y1, x2, y2], "score": S, "landmarks": [[x, y] × 5]}]}`
    /// on one line; coordinates rounded to 0.01 px, scores to 1e-6.
    public var json: String {
        func num(_ v: Double, _ digits: Int) -> String {
            guard v.isFinite else { return "null" }
            var s = String(format: "%.\(digits)f", v)
            while s.contains(".") && (s.hasSuffix("0") || s.hasSuffix(".")) { s.removeLast() }
            return s == "-0" ? "0" : s
        }
        let faces = faces.map { f in
            let box = [f.box.x, f.box.y, f.box.z, f.box.w].map { num($0, 2) }.joined(separator: ", ")
            let lm = f.landmarks.map { "[\(num($0.x, 2)), \(num($0.y, 2))]" }.joined(separator: ", ")
            return "{\"box\": [\(box)], \"score\": \(num(f.score, 6)), \"landmarks\": [\(lm)]}"
        }
        return "{\"input\": \(Self.quoted(input)), \"width\": \(width), \"height\": \(height), \"faces\": [\(faces.joined(separator: ", "))]}"
    }

    /// A readable table: one line per face.
    public var table: String {
        var lines = ["\(input): \(width)×\(height), \(faces.count) face\(faces.count == 1 ? "" : "s")"]
        for (i, f) in faces.enumerated() {
            let box = [f.box.x, f.box.y, f.box.z, f.box.w].map { String(format: "%.1f", $0) }.joined(separator: " ")
            let lm = f.landmarks.map { String(format: "(%.1f, %.1f)", $0.x, $0.y) }.joined(separator: " ")
            lines.append(String(format: "  %2d  score %.4f  box %@  landmarks %@", i, f.score, box, lm))
        }
        return lines.joined(separator: "\n")
    }

    static func quoted(_ s: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
        let array = String(decoding: data, as: UTF8.self)
        return String(array.dropFirst().dropLast())
    }

    /// A copy of `image` (8-bit RGB; alpha dropped) with each face's box drawn in green and its landmarks as dots
    /// (left eye red, right eye yellow, nose magenta, mouth corners cyan and blue, as GPEN's visualisation colours them).
    public func annotated(_ image: Image) throws -> Image {
        var rgb = image.withBitDepth(8).converted(to: .rgb).samples8
        let w = image.width, h = image.height
        let thickness = max(1, min(w, h) / 300)
        func plot(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
            guard x >= 0, y >= 0, x < w, y < h else { return }
            let i = 3 * (y * w + x)
            rgb[i] = c.0; rgb[i + 1] = c.1; rgb[i + 2] = c.2
        }
        let green: (UInt8, UInt8, UInt8) = (0, 255, 0)
        let colours: [(UInt8, UInt8, UInt8)] = [(255, 0, 0), (255, 255, 0), (255, 0, 255), (0, 255, 255), (0, 0, 255)]
        for f in faces where [f.box.x, f.box.y, f.box.z, f.box.w].allSatisfy(\.isFinite) {
            let x1 = Int(f.box.x.rounded()), y1 = Int(f.box.y.rounded()), x2 = Int(f.box.z.rounded()), y2 = Int(f.box.w.rounded())
            for t in 0..<thickness {
                for x in min(x1, x2)...max(x1, x2) { plot(x, y1 + t, green); plot(x, y2 - t, green) }
                for y in min(y1, y2)...max(y1, y2) { plot(x1 + t, y, green); plot(x2 - t, y, green) }
            }
            let r = 1 + 2 * thickness
            for (k, p) in f.landmarks.enumerated() where p.x.isFinite && p.y.isFinite {
                let cx = Int(p.x.rounded()), cy = Int(p.y.rounded())
                for dy in -r...r { for dx in -r...r where dx * dx + dy * dy <= r * r { plot(cx + dx, cy + dy, colours[k % 5]) } }
            }
        }
        var meta = image.metadata
        meta.orientation = nil
        return try Image(width: w, height: h, layout: .rgb, storage: .u8(rgb), metadata: meta)
    }
}
