/// A detection as the face pipeline consumes it (RetinaFace output after decoding and NMS).
public struct FaceDetection: Sendable, Equatable {
    /// Box corners in image pixels: x1, y1, x2, y2.
    public var box: SIMD4<Double>
    /// Detector confidence.
    public var score: Double
    /// Five landmarks (x, y): left eye, right eye, nose, left mouth corner, right mouth corner.
    public var landmarks: [SIMD2<Double>]

    /// A detection; `landmarks` must hold 5 points.
    public init(box: SIMD4<Double>, score: Double, landmarks: [SIMD2<Double>]) {
        self.box = box; self.score = score; self.landmarks = landmarks
    }

    /// Upstream's small-face rule: min(y2 − y1, x2 − x1) < 100 px.
    public var isSmall: Bool { min(box.w - box.y, box.z - box.x) < 100 }
}

/// One aligned face crop ready for GPEN, with what paste-back needs later.
public struct AlignedFace: Sendable {
    /// Index of the detection this crop came from.
    public var detectionIndex: Int
    /// The S×S crop (bilinear, black border), BGR.
    public var crop: FaceImage
    /// Image → crop transform.
    public var forward: AffineMatrix
    /// Crop → image transform (for paste-back).
    public var inverse: AffineMatrix
    /// Whether paste-back applies the 3×3 small-face filter.
    public var smallFace: Bool
}

/// Upstream's per-image face loop up to GPEN: keep detections with score ≥ `threshold` (0.9), in detector order,
/// and align each to a `cropSize`² crop (`warp_and_crop_face`).
public enum FaceCrops {
    /// Aligned crops of the detections that pass the score threshold, in detector order.
    public static func align(_ image: FaceImage, detections: [FaceDetection], cropSize: Int,
                             threshold: Double = 0.9) throws -> [AlignedFace] {
        var out: [AlignedFace] = []
        for (i, d) in detections.enumerated() where d.score >= threshold {
            let (crop, fwd, inv) = try FaceAlignment.alignAndCrop(image, landmarks: d.landmarks, cropSize: cropSize)
            out.append(AlignedFace(detectionIndex: i, crop: crop, forward: fwd, inverse: inv, smallFace: d.isSmall))
        }
        return out
    }

    /// The paste mask for a GPEN crop of side `cropSize` from a 512×512 0/255 parse mask: `mask_postprocess`
    /// at 512, then `cv2.resize` to the crop size (no-op at 512).
    public static func parsePasteMask(parse: [UInt8], cropSize: Int) throws -> FaceMask {
        let m = try FaceMasks.postprocess(parse: parse)
        return try FaceMasks.resize(m, width: cropSize, height: cropSize)
    }
}
