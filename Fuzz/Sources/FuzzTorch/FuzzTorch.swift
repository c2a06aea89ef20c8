import CFuzzDriver
import Checkpoint

/// libFuzzer entry: any bytes as a .pth (zip or legacy pickle); decoding every tensor must not crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorch(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let ck = try? CheckpointLoader.load(bytes: bytes, path: "fuzz.pth") {
        for t in ck.stateDict.tensors { _ = t.floats(); _ = t.rawBytes() }
        _ = ArchitectureDetector.detect(ck.stateDict)
    }
    return 0
}

/// Entry point (SwiftPM names it `FuzzTorch_main`): hands control to libFuzzer.
@_cdecl("FuzzTorch_main")
public func fuzzTorchMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in fuzzTorch(data, size) }
}
