// Face geometry: design notes (kept here rather than in a README so SwiftPM has no unhandled file).
//
// # Face geometry (Sources/Pipeline/Faces)
//
// Everything around the face networks in GPEN's `face_enhancement.py` / `align_faces.py`, as pure, deterministic
// Swift on host images. It reproduces upstream (GPEN 2c736702 with OpenCV 5.0.0, NumPy 2.4) **bit for bit** on the
// golden case `../shared/golden/align_paste` (transforms, crops, `mask_postprocess`, both composites: 0 differing
// values), and adds two opt-in extensions (colour matching, edge feathering).
//
// ## Types
//
// - `FaceImage` — uint8, layout H·W·C, channel order BGR(A) like OpenCV; `init(interleaved:width:height:channels:order:)`
//   converts from RGB (ImageIO's order), `interleaved(order:)` converts back.
// - `FaceMask` — float32, layout H·W (paste masks, values in [0, 1]).
// - `AffineMatrix` — 2×3 row-major `[a, b, c, d, e, f]`: (x, y) ↦ (a·x + b·y + c, d·x + e·y + f).
//   (Not `AffineTransform`: that name collides with Foundation's.)
// - `FaceGeometryError` — typed errors naming the operand and the problem; sizes are validated (≤ 32768 per side)
//   before any allocation.
//
// ## Upstream numerics reproduced
//
// | step | upstream | here |
// |---|---|---|
// | reference points | `get_reference_facial_points((S,S), 0.25, (0,0), True)`: x+8, +28, ×(float32(S)/168) in float64 | `FaceAlignment.referencePoints(size:)`, exact |
// | forward transform | `_umeyama(float32 landmarks, float32 ref)`: float32 means, float32 FMA-accumulated cross-covariance, LAPACK `sgesdd` (float32) | closed-form 2×2 SVD in Double, **rounded to float32** (what sgesdd returns), rest in Double as NumPy does; exact on the golden case |
// | inverse transform | `_umeyama(ref, landmarks, False, 1/scale)` | same routine with `fixedScale`, exact |
// | crop / paste warps | `cv2.warpAffine(..., flags=3)`: INTER_AREA is treated as INTER_LINEAR for warps; OpenCV 5's new float32 kernel: matrix inverted in Double then cast to float32, per row `y·M1 + M2` in float32, `sx = fma(M0, x, ·)`, `floor`, taps blended with `fma(α, p01 − p00, p00)`, then `fma(β, v1 − v0, v0)`, round half to even; constant-0 border (taps outside = 0) | `FaceWarp.warpAffine` (uint8 and float32), exact. Not the fixed-point (1/32 px) arithmetic of OpenCV ≤ 4.10: that is `INTER_LINEAR_EXACT` now. |
// | mask | `mask_postprocess(parse/255., thres=26)`: zero 26 px frame, `GaussianBlur((101,101), 4)` twice in float64, cast to float32 | `FaceMasks.postprocess`: OpenCV's bit-exact kernel (`getGaussianKernelBitExact`), separable double filter with OpenCV's summation order (row taps left→right, symmetric column pairs), BORDER_REFLECT_101; exact |
// | mask resize | `cv2.resize(mask, (S, S))` (512 → S) | `FaceMasks.resize`: INTER_LINEAR, with OpenCV's INTER_AREA shortcut for an exact 2× reduction |
// | small faces | `min(box h, box w) < 100` → `filter2D` with [[1,2,1],[2,4,2],[1,2,1]]/16, REFLECT_101 | `PasteBack.smallFaceFilter` (exact sums, round half to even) |
// | alpha | `addWeighted(ef, α, of, 1−α, 0)` | `PasteBack.addWeighted` (float32 fma, half to even, saturate) |
// | compositing | per face: warp mask and face with `tfm_inv`; where `tmp_mask − full_mask > 0` take both | same; only the part of the frame a crop can reach is warped (outside it upstream's warps are exactly 0) |
// | final blend | `convertScaleAbs(bg·(1 − m) + face·m)` in float32 | same, round half to even, saturate |
//
// ## Beyond upstream (opt-in through `PasteOptions`; defaults reproduce upstream)
//
// - **Colour matching** (`colorMatch: .lab` or `.ycbcr`, `FaceColor.matchStatistics`): GPEN can shift skin tone and
//   brightness. Inside the crop mask (pixels weighted by the mask value) each channel of the restored face gets the
//   weighted mean and standard deviation of the original crop: v' = (v − μ_r)·clamp(σ_o/σ_r, 0.5, 2) + μ_o, in CIE Lab
//   (D65, sRGB transfer; default choice: lightness and colour separate) or full-range BT.601 YCbCr (cheaper). The
//   clamp stops flat regions from being amplified; `strength` (0…1) blends with the unmatched face. It runs before the
//   small-face filter and the alpha blend.
// - **No hard rectangle** (`edgeFeather: px`, `FaceMasks.featherEdges`): multiplies the crop mask by a smoothstep ramp
//   that is exactly 0 on the crop border and 1 from `px` pixels inward, so whatever the parser returns (hair or skin
//   touching the crop edge, the complaint of GPEN #108/#126/#75) the pasted face can never end in a step at the crop's
//   rectangle. Upstream's 26 px cut + blur already makes the edge ≈ 2e-6 for its own masks.
// - **Rectangular mask** (`--mask rect`, `FaceMasks.rectangular(size:)`): the product of two smoothstep ramps (zero in
//   a 26/512·S frame, rising over S/8 px): C¹-continuous, exactly 0 at the crop edge, symmetric; the fallback when no
//   parser weights are given. (Upstream's unused alternative was an anti-aliased rectangle blurred twice with σ 11.)
//
// ## Pipeline use
//
// ```swift
// let faces = try FaceCrops.align(image, detections: dets, cropSize: 512)     // score ≥ 0.9, detector order
// // for each face: restored = GPEN(face.crop); parse = ParseNet(restored) → 0/255 at 512
// let mask = try FaceCrops.parsePasteMask(parse: parse, cropSize: 512)         // or FaceMasks.rectangular(size:)
// let paste = PasteFace(restored: restored, original: face.crop, mask: mask, inverse: face.inverse,
//                       smallFace: face.smallFace)
// let out = try PasteBack.composite(background: bg, faces: pastes, options: PasteOptions(alpha: 1))
// ```
//
// With an SR background, crop from the bilinearly enlarged original and pass the SR image as `background`.

/// Namespace for the face-geometry notes above; the API lives in `FaceAlignment`, `FaceWarp`, `FaceMasks`,
/// `FaceCrops`, `PasteBack` and `FaceColor`.
public enum FaceGeometry {
    /// Upstream revision whose numerics this code reproduces.
    public static let upstream = "yangxy/GPEN 2c736702 with OpenCV 5.0.0 and NumPy 2.4"
}
