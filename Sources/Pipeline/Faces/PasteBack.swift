import Foundation

/// One restored face to paste back into the full image.
public struct PasteFace: Sendable {
    /// The restored face crop (GPEN output), S×S, BGR.
    public var restored: FaceImage
    /// The aligned input crop the restoration started from, S×S, BGR (used by `alpha` and colour matching).
    public var original: FaceImage
    /// The paste mask in crop space, S×S, values in [0, 1] (`FaceMasks.postprocess` or `FaceMasks.rectangular`).
    public var mask: FaceMask
    /// Crop → image transform (`FaceAlignment.transforms(...).inverse`).
    public var inverse: AffineMatrix
    /// Upstream's small-face rule: the detector box had min(width, height) < 100 px → 3×3 binomial blur.
    public var smallFace: Bool

    /// Bundles one face for `PasteBack.composite`.
    public init(restored: FaceImage, original: FaceImage, mask: FaceMask, inverse: AffineMatrix, smallFace: Bool) {
        self.restored = restored; self.original = original; self.mask = mask
        self.inverse = inverse; self.smallFace = smallFace
    }

    /// Upstream's small-face test on a detector box (x1, y1, x2, y2): min(y2 − y1, x2 − x1) < 100.
    public static func isSmall(box: (x1: Double, y1: Double, x2: Double, y2: Double)) -> Bool {
        min(box.y2 - box.y1, box.x2 - box.x1) < 100
    }
}

/// Options of the paste-back beyond upstream's fixed behaviour (the defaults reproduce upstream exactly).
public struct PasteOptions: Sendable, Equatable {
    /// `--alpha`: restored·alpha + original·(1 − alpha), with uint8 saturation like `cv2.addWeighted`. Range 0...1.
    public var alpha: Double
    /// Match the restored face's colour statistics to the original crop before pasting (beyond upstream).
    public var colorMatch: FaceColor.Space?
    /// Feather the crop mask to 0 over this many crop pixels at the crop border (beyond upstream; nil = off).
    public var edgeFeather: Double?

    /// Options; the defaults (alpha 1, no colour matching, no extra feathering) are upstream's behaviour.
    public init(alpha: Double = 1, colorMatch: FaceColor.Space? = nil, edgeFeather: Double? = nil) {
        self.alpha = alpha; self.colorMatch = colorMatch; self.edgeFeather = edgeFeather
    }
}

/// GPEN's paste-back (`FaceEnhancement.process`, after restoration): warp each face and its mask back, keep per pixel
/// the face with the largest mask, then blend with the background and round like `cv2.convertScaleAbs`.
public enum PasteBack {
    /// `cv2.filter2D(img, -1, [[1,2,1],[2,4,2],[1,2,1]]/16)`: border REFLECT_101, exact sums, round half to even.
    public static func smallFaceFilter(_ image: FaceImage) -> FaceImage {
        var out = image
        let w = image.width, h = image.height, cn = image.channels
        let k: [Float] = [0.0625, 0.125, 0.0625, 0.125, 0.25, 0.125, 0.0625, 0.125, 0.0625]
        let xm = (0..<w).map { FaceMasks.reflect101($0 - 1, w) }, xp = (0..<w).map { FaceMasks.reflect101($0 + 1, w) }
        image.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                for y in 0..<h {
                    let rows = [FaceMasks.reflect101(y - 1, h) * w, y * w, FaceMasks.reflect101(y + 1, h) * w]
                    for x in 0..<w {
                        let cols = (xm[x], x, xp[x])
                        for c in 0..<cn {
                            var s: Float = 0
                            for i in 0..<3 {
                                s += k[3 * i] * Float(src[(rows[i] + cols.0) * cn + c])
                                s += k[3 * i + 1] * Float(src[(rows[i] + cols.1) * cn + c])
                                s += k[3 * i + 2] * Float(src[(rows[i] + cols.2) * cn + c])
                            }
                            dst[(y * w + x) * cn + c] = FaceWarp.saturateU8(s)
                        }
                    }
                }
            }
        }
        return out
    }

    /// `cv2.addWeighted(a, alpha, b, beta, gamma)` for uint8: float32 fma(a, α, fma(b, β, γ)), round half to even,
    /// saturate.
    public static func addWeighted(_ a: FaceImage, _ alpha: Double, _ b: FaceImage, _ beta: Double,
                                   gamma: Double = 0) throws -> FaceImage {
        guard a.width == b.width, a.height == b.height, a.channels == b.channels else {
            throw FaceGeometryError.mismatch(
                "addWeighted: \(a.width)x\(a.height)x\(a.channels) vs \(b.width)x\(b.height)x\(b.channels)")
        }
        let fa = Float(alpha), fb = Float(beta), fg = Float(gamma)
        if fa == 1 && fb == 0 && fg == 0 { return a }  // fma(a, 1, fma(b, 0, 0)) == a exactly
        var out = a
        a.pixels.withUnsafeBufferPointer { pa in
            b.pixels.withUnsafeBufferPointer { pb in
                out.pixels.withUnsafeMutableBufferPointer { po in
                    for i in 0..<pa.count {
                        let inner = fg.addingProduct(Float(pb[i]), fb)
                        po[i] = FaceWarp.saturateU8(inner.addingProduct(Float(pa[i]), fa))
                    }
                }
            }
        }
        return out
    }

    /// Pastes `faces` into `background` (its size is the output size) as upstream does: per face, warp the mask
    /// and the (small-face-filtered, alpha-blended) restored crop with the inverse transform (bilinear, black
    /// border), keep per pixel the face whose warped mask is strictly larger than the best so far, then
    /// out = convertScaleAbs(bg·(1 − m) + face·m) in float32 (round half to even, saturate).
    public static func composite(background: FaceImage, faces: [PasteFace],
                                 options: PasteOptions = PasteOptions()) throws -> FaceImage {
        guard (0...1).contains(options.alpha) else {
            throw FaceGeometryError.invalidParameter("composite: alpha \(options.alpha) must be in 0...1")
        }
        let w = background.width, h = background.height, cn = background.channels
        // Validate every face and find the part of the frame each crop can reach (outside it upstream's warps are
        // exactly 0, and a 0 mask never wins the strict max), so only their union is allocated and blended.
        var rois: [FaceWarp.Region?] = []
        for (n, face) in faces.enumerated() {
            let s = face.restored
            guard s.channels == cn, face.original.channels == cn else {
                throw FaceGeometryError.mismatch("composite: face \(n) has \(s.channels) channels, background \(cn)")
            }
            guard face.original.width == s.width, face.original.height == s.height,
                  face.mask.width == s.width, face.mask.height == s.height else {
                throw FaceGeometryError.mismatch(
                    "composite: face \(n): restored \(s.width)x\(s.height), original \(face.original.width)x"
                    + "\(face.original.height), mask \(face.mask.width)x\(face.mask.height) must agree")
            }
            rois.append(FaceWarp.reach(of: face.inverse, sourceWidth: s.width, sourceHeight: s.height,
                                       width: w, height: h))
        }
        let present = rois.compactMap { $0 }
        guard !present.isEmpty else { return background }
        let ux0 = present.map(\.x0).min()!, uy0 = present.map(\.y0).min()!
        let ux1 = present.map { $0.x0 + $0.width }.max()!, uy1 = present.map { $0.y0 + $0.height }.max()!
        let uw = ux1 - ux0, uh = uy1 - uy0
        var fullMask = try FaceMask(width: uw, height: uh)
        var fullImg = try FaceImage(width: uw, height: uh, channels: cn)
        for (face, roi) in zip(faces, rois) {
            guard let roi else { continue }
            var mask = face.mask
            if let f = options.edgeFeather { mask = try FaceMasks.featherEdges(mask, width: f) }
            let tmpMask = try FaceWarp.warpAffine(mask, face.inverse, region: roi)
            var ef = face.restored
            if let space = options.colorMatch {
                ef = try FaceColor.matchStatistics(ef, to: face.original, weights: mask, space: space)
            }
            if face.smallFace { ef = smallFaceFilter(ef) }
            ef = try addWeighted(ef, options.alpha, face.original, 1 - options.alpha)
            let tmpImg = try FaceWarp.warpAffine(ef, face.inverse, region: roi)
            for ry in 0..<roi.height {
                for rx in 0..<roi.width {
                    let r = ry * roi.width + rx
                    let i = (ry + roi.y0 - uy0) * uw + rx + roi.x0 - ux0
                    guard tmpMask.values[r] - fullMask.values[i] > 0 else { continue }
                    fullMask.values[i] = tmpMask.values[r]
                    for c in 0..<cn { fullImg.pixels[i * cn + c] = tmpImg.pixels[r * cn + c] }
                }
            }
        }
        var out = background
        for uy in 0..<uh {
            for ux in 0..<uw {
                let i = uy * uw + ux
                let m = fullMask.values[i]
                if m == 0 { continue }  // bg·1 + face·0 rounds back to bg exactly
                let inv: Float = 1 - m
                let pj = ((uy + uy0) * w + ux + ux0) * cn
                for c in 0..<cn {
                    let v: Float = Float(background.pixels[pj + c]) * inv + Float(fullImg.pixels[i * cn + c]) * m
                    out.pixels[pj + c] = FaceWarp.saturateU8(abs(v))
                }
            }
        }
        return out
    }
}
