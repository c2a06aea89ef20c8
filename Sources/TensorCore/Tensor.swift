/// An activation living in a backend's memory. Logical layout is NCHW; `layout` says how it is stored.
/// Tensors are immutable handles: ops return new tensors, except the explicit `into:` destinations.
/// The buffer goes back to the backend's pool when the last tensor (or view) using it is released.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    /// Logical shape N, C, H, W.
    public let shape: TensorShape
    /// Physical layout of the storage.
    public let layout: TensorLayout
    /// The memory (shared between a tensor and its channel views); backends only.
    package let buffer: DeviceBuffer
    /// Byte offset of element (0, 0, 0, 0) inside `buffer`.
    public let byteOffset: Int
    /// Channel count of the underlying allocation (the parent's C for a channel view; equals `shape.c` otherwise).
    public let storageChannels: Int
    /// Identifies the backend that created the tensor.
    public let backendID: ObjectIdentifier

    /// Creates a tensor over a buffer (backends only).
    package init(shape: TensorShape, layout: TensorLayout, buffer: DeviceBuffer, byteOffset: Int = 0,
                storageChannels: Int? = nil, backendID: ObjectIdentifier) {
        self.shape = shape
        self.layout = layout
        self.buffer = buffer
        self.byteOffset = byteOffset
        self.storageChannels = storageChannels ?? shape.c
        self.backendID = backendID
    }

    /// True when this tensor is a channel range of a larger allocation.
    public var isView: Bool { storageChannels != shape.c }

    /// Pointer to element (0,0,0,0), in the backend's memory (backends only: device memory is not host memory).
    package var basePointer: UnsafeMutablePointer<Float> {
        (buffer.pointer + byteOffset).assumingMemoryBound(to: Float.self)
    }

    public var description: String { "Tensor\(shape) \(layout)\(isView ? " view of C=\(storageChannels)" : "")" }
}
