import Foundation

/// A 2×3 affine map of pixel coordinates: (x, y) ↦ (a·x + b·y + c, d·x + e·y + f), stored row-major [[a, b, c], [d, e, f]].
public struct AffineMatrix: Sendable, Equatable, CustomStringConvertible {
    /// The six coefficients, row-major: a, b, c, d, e, f.
    public var m: [Double]

    /// A transform from its six row-major coefficients.
    public init(_ a: Double, _ b: Double, _ c: Double, _ d: Double, _ e: Double, _ f: Double) {
        m = [a, b, c, d, e, f]
    }

    /// A transform from a row-major 2×3 array of six values; throws on any other count.
    public init(rowMajor values: [Double]) throws {
        guard values.count == 6 else {
            throw FaceGeometryError.invalidParameter("AffineMatrix needs 6 values (2x3), got \(values.count)")
        }
        m = values
    }

    /// The identity map.
    public static let identity = AffineMatrix(1, 0, 0, 0, 1, 0)

    /// Applies the map to a point.
    public func apply(_ p: SIMD2<Double>) -> SIMD2<Double> {
        SIMD2(m[0] * p.x + m[1] * p.y + m[2], m[3] * p.x + m[4] * p.y + m[5])
    }

    /// The inverse map as OpenCV's `invertAffineMatrix` / `warpAffine` compute it (determinant 0 gives all zeros).
    public func inverted() -> AffineMatrix {
        var d = m[0] * m[4] - m[1] * m[3]
        d = d != 0 ? 1.0 / d : 0
        let a11 = m[4] * d, a22 = m[0] * d
        let a12 = m[1] * -d, a21 = m[3] * -d
        let b1 = -a11 * m[2] - a12 * m[5]
        let b2 = -a21 * m[2] - a22 * m[5]
        return AffineMatrix(a11, a12, b1, a21, a22, b2)
    }

    public var description: String {
        "[[\(m[0]), \(m[1]), \(m[2])], [\(m[3]), \(m[4]), \(m[5])]]"
    }
}

/// Five-point face alignment as GPEN's `align_faces.py` does it (similarity branch of `warp_and_crop_face`).
public enum FaceAlignment {
    /// The 96×112 template: left eye, right eye, nose, left mouth corner, right mouth corner, as (x, y).
    public static let template96x112: [SIMD2<Double>] = [
        SIMD2(30.29459953, 51.69630051),
        SIMD2(65.53179932, 51.50139999),
        SIMD2(48.02519989, 71.73660278),
        SIMD2(33.54930115, 92.3655014),
        SIMD2(62.72990036, 92.20410156),
    ]

    /// Reference points for a square crop of side `size`: template made square (+8 in x), inner padding 0.25
    /// (+28 in x and y, 168×168), then scaled by size/168 — `get_reference_facial_points((S,S), 0.25, (0,0), True)`.
    public static func referencePoints(size: Int) throws -> [SIMD2<Double>] {
        guard size > 0, size <= faceGeometryMaxSide else {
            throw FaceGeometryError.invalidParameter("referencePoints: crop size \(size) must be in 1...\(faceGeometryMaxSide)")
        }
        let scale = Double(Float(size)) / 168.0
        return template96x112.map { p in
            SIMD2(((p.x + 8.0) + 28.0) * scale, ((p.y + 0.0) + 28.0) * scale)
        }
    }

    /// Umeyama similarity (proper rotation, uniform scale, translation; never a reflection) mapping
    /// `source` onto `destination`, reproducing GPEN's `_umeyama` on float32 points bit for bit: float32 means and
    /// centring, the 2×2 cross-covariance accumulated in float32 with fused multiply-adds, its SVD rounded to float32
    /// (as LAPACK `sgesdd` returns it), and the rotation, scale and translation formed in Double.
    /// With `fixedScale` the scale is not estimated but taken as given (upstream's inverse estimate).
    public static func umeyama(from source: [SIMD2<Double>], to destination: [SIMD2<Double>],
                               fixedScale: Double? = nil) throws -> (transform: AffineMatrix, scale: Double) {
        guard source.count == destination.count, source.count >= 2 else {
            throw FaceGeometryError.invalidParameter(
                "umeyama: need equal point counts >= 2, got \(source.count) and \(destination.count)")
        }
        for p in source + destination where !(p.x.isFinite && p.y.isFinite) {
            throw FaceGeometryError.invalidParameter("umeyama: non-finite landmark \(p)")
        }
        let n = source.count
        let src = source.map { SIMD2<Float>(Float($0.x), Float($0.y)) }
        let dst = destination.map { SIMD2<Float>(Float($0.x), Float($0.y)) }
        func mean(_ v: [SIMD2<Float>]) -> SIMD2<Float> {
            var s = v[0]
            for p in v.dropFirst() { s += p }
            return s / Float(n)
        }
        let ms = mean(src), md = mean(dst)
        let cs = src.map { $0 - ms }, cd = dst.map { $0 - md }
        // A = dstᶜᵀ · srcᶜ / n, float32 with FMA accumulation (what the float32 matmul upstream does).
        var a: Float = 0, b: Float = 0, c: Float = 0, d: Float = 0
        for i in 0..<n {
            a = a.addingProduct(cd[i].x, cs[i].x); b = b.addingProduct(cd[i].x, cs[i].y)
            c = c.addingProduct(cd[i].y, cs[i].x); d = d.addingProduct(cd[i].y, cs[i].y)
        }
        a /= Float(n); b /= Float(n); c /= Float(n); d /= Float(n)
        let svd = SVD2(Double(a), Double(b), Double(c), Double(d))
        // Reflection fix: d = diag(1, -1) when det(A) < 0, which keeps R a proper rotation.
        let detA = Double(a) * Double(d) - Double(b) * Double(c)
        var dd = SIMD2<Double>(1, detA < 0 ? -1 : 1)
        let tol = Double(svd.s.x) * 2 * Double(Float.ulpOfOne)
        let rank = svd.s.x <= Float(tol) ? 0 : (Double(svd.s.y) <= tol ? 1 : 2)
        guard rank > 0 else {
            throw FaceGeometryError.degenerateLandmarks("umeyama: cross-covariance is zero (points coincide)")
        }
        var rotD = dd
        if rank == 1 { rotD = SIMD2(1, svd.detUV > 0 ? 1 : -1) }
        // R = U · diag(rotD) · Vh with U, Vh holding float32 values.
        let u = svd.u.map { Double($0) }, vh = svd.vh.map { Double($0) }
        var r = [Double](repeating: 0, count: 4)
        for i in 0..<2 {
            for j in 0..<2 {
                r[i * 2 + j] = (u[i * 2] * rotD.x) * vh[j] + (u[i * 2 + 1] * rotD.y) * vh[2 + j]
            }
        }
        if rank == 1 { dd = SIMD2(1, 1) }
        let scale: Double
        if let fixedScale {
            scale = fixedScale
        } else {
            // src_demean.var(axis=0).sum() in float32; 1.0 / that stays float32 (NumPy 2), × (S · d) in Double.
            let vmx = cs.reduce(Float(0)) { $0 + $1.x } / Float(n)
            let vmy = cs.reduce(Float(0)) { $0 + $1.y } / Float(n)
            var sx: Float = 0, sy: Float = 0
            for p in cs {
                let dx = p.x - vmx, dy = p.y - vmy
                sx += dx * dx; sy += dy * dy
            }
            let variance = sx / Float(n) + sy / Float(n)
            guard variance > 0 else {
                throw FaceGeometryError.degenerateLandmarks("umeyama: source points have zero variance")
            }
            scale = Double(Float(1.0) / variance) * (Double(svd.s.x) * dd.x + Double(svd.s.y) * dd.y)
        }
        let msx = Double(ms.x), msy = Double(ms.y)
        let tx = Double(md.x) - scale * (r[1] * msy).addingProduct(r[0], msx)
        let ty = Double(md.y) - scale * (r[3] * msy).addingProduct(r[2], msx)
        let t = AffineMatrix(r[0] * scale, r[1] * scale, tx, r[2] * scale, r[3] * scale, ty)
        guard t.m.allSatisfy(\.isFinite) else {
            throw FaceGeometryError.degenerateLandmarks("umeyama: non-finite transform \(t)")
        }
        return (t, scale)
    }

    /// The similarity (forward transform) mapping `source` onto `destination`: `umeyama(from:to:).transform`.
    public static func similarity(from source: [SIMD2<Double>], to destination: [SIMD2<Double>]) throws -> AffineMatrix {
        try umeyama(from: source, to: destination).transform
    }

    /// SVD of a 2×2 matrix [[a, b], [c, d]] = U · diag(s) · Vh in closed form (Double), rounded to float32.
    struct SVD2 {
        var u: [Float], s: SIMD2<Float>, vh: [Float], detUV: Double
        init(_ a: Double, _ b: Double, _ c: Double, _ d: Double) {
            // A = E·I + F·diag(1,−1) + G·[[0,1],[1,0]] + H·[[0,−1],[1,0]] = Rot(φ)·diag(Q+R, Q−R)·Rot(θ).
            let e = (a + d) / 2, f = (a - d) / 2, g = (c + b) / 2, h = (c - b) / 2
            let q = (e * e + h * h).squareRoot(), rr = (f * f + g * g).squareRoot()
            let a1 = atan2(g, f), a2 = atan2(h, e)
            let phi = (a2 + a1) / 2, theta = (a2 - a1) / 2
            let s1 = q + rr
            var s2 = q - rr
            var vh = [cos(theta), -sin(theta), sin(theta), cos(theta)]
            var det = 1.0
            if s2 < 0 {  // make s2 ≥ 0 by flipping the second row of Vh
                s2 = -s2; vh[2] = -vh[2]; vh[3] = -vh[3]; det = -1
            }
            u = [cos(phi), -sin(phi), sin(phi), cos(phi)].map { Float($0) }
            s = SIMD2(Float(s1), Float(s2))
            self.vh = vh.map { Float($0) }
            detUV = det
        }
    }

    /// Forward (image → crop) and inverse (crop → image) transforms for a face with 5 `landmarks` (x, y) and a square
    /// crop of side `cropSize`, as `warp_and_crop_face` computes them: forward = Umeyama(landmarks → reference),
    /// inverse = Umeyama(reference → landmarks) with the scale fixed to 1/scale.
    public static func transforms(landmarks: [SIMD2<Double>], cropSize: Int) throws
        -> (forward: AffineMatrix, inverse: AffineMatrix) {
        guard landmarks.count == 5 else {
            throw FaceGeometryError.invalidParameter("transforms: need 5 landmarks, got \(landmarks.count)")
        }
        let ref = try referencePoints(size: cropSize)
        let (fwd, s) = try umeyama(from: landmarks, to: ref)
        let (inv, _) = try umeyama(from: ref, to: landmarks, fixedScale: 1.0 / s)
        return (fwd, inv)
    }

    /// Crops an aligned face: forward/inverse transforms plus the `cropSize`² bilinear, black-bordered crop of `image`.
    public static func alignAndCrop(_ image: FaceImage, landmarks: [SIMD2<Double>], cropSize: Int) throws
        -> (crop: FaceImage, forward: AffineMatrix, inverse: AffineMatrix) {
        let (fwd, inv) = try transforms(landmarks: landmarks, cropSize: cropSize)
        let crop = try FaceWarp.warpAffine(image, fwd, width: cropSize, height: cropSize)
        return (crop, fwd, inv)
    }
}
