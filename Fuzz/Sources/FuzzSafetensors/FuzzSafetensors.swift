import CFuzzDriver
import Checkpoint

/// libFuzzer entry: any bytes as a .safetensors file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let ck = try? CheckpointLoader.load(bytes: bytes, path: "fuzz.safetensors") {
        for t in ck.stateDict.tensors { _ = t.floats() }
        _ = ArchitectureDetector.detect(ck.stateDict)
    }
    return 0
}

/// Entry point (SwiftPM names it `FuzzSafetensors_main`): hands control to libFuzzer.
@_cdecl("FuzzSafetensors_main")
public func fuzzSafetensorsMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in fuzzSafetensors(data, size) }
}
