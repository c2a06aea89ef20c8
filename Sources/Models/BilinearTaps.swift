/// OpenCV INTER_LINEAR sampling positions, shared by RetinaFace's downscale and Pipeline's `ImageResize.bilinear`.
public enum BilinearTaps {
    /// The two source indices and the weight of the second for output index `o`: half-pixel centres, edges
    /// clamped; `scale` is source pixels per output pixel, `size` the source length.
    public static func at(_ o: Int, scale: Double, size: Int) -> (Int, Int, Float) {
        var f = (Double(o) + 0.5) * scale - 0.5
        var i = Int(f.rounded(.down))
        f -= Double(i)
        if i < 0 { i = 0; f = 0 }
        if i >= size - 1 { i = size - 1; f = 0 }
        return (i, min(i + 1, size - 1), Float(f))
    }
}
