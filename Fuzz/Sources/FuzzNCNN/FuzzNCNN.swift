import CFuzzDriver
import Checkpoint

/// libFuzzer entry: input = u16 little-endian param length, the .param text, then the .bin bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNCNN(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    guard size >= 2 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let n = min(Int(bytes[0]) | Int(bytes[1]) << 8, size - 2)
    let param = Array(bytes[2..<(2 + n)]), bin = Array(bytes[(2 + n)...])
    if let ck = try? CheckpointLoader.loadNCNN(param: param, bin: bin, path: "fuzz") {
        for t in ck.stateDict.tensors { _ = t.floats() }
        _ = ArchitectureDetector.detect(ck.stateDict)
    }
    return 0
}

/// Entry point (SwiftPM names it `FuzzNCNN_main`): hands control to libFuzzer.
@_cdecl("FuzzNCNN_main")
public func fuzzNCNNMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in fuzzNCNN(data, size) }
}
