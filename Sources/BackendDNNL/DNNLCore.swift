import CDNNL
import Foundation
import TensorCore

/// Throws a `TensorError.backendFailure` naming the op when a oneDNN call fails.
@inline(__always)
func dnnlCheck(_ status: dnnl_status_t, _ op: @autoclosure () -> String) throws {
    guard status == dnnl_success else {
        throw TensorError.backendFailure(op: op(), message: "oneDNN status \(statusName(status)) (\(status.rawValue))")
    }
}

func statusName(_ s: dnnl_status_t) -> String {
    switch s {
    case dnnl_success: return "success"
    case dnnl_out_of_memory: return "out_of_memory"
    case dnnl_invalid_arguments: return "invalid_arguments"
    case dnnl_unimplemented: return "unimplemented"
    case dnnl_iterator_ends: return "iterator_ends"
    case dnnl_runtime_error: return "runtime_error"
    case dnnl_not_required: return "not_required"
    default: return "unknown"
    }
}

/// Owns a oneDNN primitive and its descriptor.
final class Primitive: @unchecked Sendable {
    let pd: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    let implementation: String
    /// What it computes (convolution, reorder, eltwise, …): `enhance forward --profile` sorts rows by it.
    let kind: dnnl_primitive_kind_t
    var kindName: String { String(cString: dnnl_prim_kind2str(kind)) }

    /// Creates the primitive from an op descriptor pointer; returns nil on `dnnl_unimplemented`. The primitive's
    /// scratchpad is the caller's (`scratchpadBytes`, passed by `DNNLBackend.execute` from the activation pool):
    /// oneDNN's library mode gave every primitive its own, held as long as the primitive (x2plus with Winograd
    /// kept one per dense conv layer).
    static func make(_ desc: UnsafeRawPointer, attr: dnnl_primitive_attr_t?, engine: dnnl_engine_t,
                     op: @autoclosure () -> String) throws -> Primitive? {
        var own: dnnl_primitive_attr_t?
        if attr == nil { try dnnlCheck(dnnl_primitive_attr_create(&own), op() + " attr") }
        defer { if let own { dnnl_primitive_attr_destroy(own) } }
        let a = attr ?? own
        try dnnlCheck(dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user), op() + " scratchpad mode")
        var pd: dnnl_primitive_desc_t?
        let st = dnnl_primitive_desc_create(&pd, desc, a, engine, nil)
        if st == dnnl_unimplemented { return nil }
        try dnnlCheck(st, op())
        return try Primitive(pd: pd!, op: op())
    }

    init(pd: dnnl_primitive_desc_t, op: @autoclosure () -> String) throws {
        self.pd = pd
        var prim: dnnl_primitive_t?
        let st = dnnl_primitive_create(&prim, pd)
        if st != dnnl_success { dnnl_primitive_desc_destroy(pd) }
        try dnnlCheck(st, op())
        primitive = prim!
        var cstr: UnsafePointer<CChar>?
        _ = withUnsafeMutablePointer(to: &cstr) { dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, $0) }
        implementation = cstr.map { String(cString: $0) } ?? "?"
        var k = dnnl_undefined_primitive
        _ = withUnsafeMutablePointer(to: &k) { dnnl_primitive_desc_query(pd, dnnl_query_primitive_kind, 0, $0) }
        kind = k
        let sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)
        scratchpad = sp.map { $0.pointee } ?? dnnl_memory_desc_t()
        scratchpadBytes = sp.map { MD.size($0.pointee) } ?? 0
    }

    /// The scratchpad the caller passes (user mode), and its size (0: none, or the library manages it).
    let scratchpad: dnnl_memory_desc_t
    let scratchpadBytes: Int

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(pd)
    }

    /// The memory descriptor the primitive chose for `what` (e.g. dnnl_query_weights_md).
    func md(_ what: dnnl_query_t, _ index: Int32 = 0) -> dnnl_memory_desc_t {
        dnnl_primitive_desc_query_md(pd, what, index).pointee
    }
}

/// Calls body with a pointer to md, or nil when md is nil.
func withOptionalMD<R>(_ md: dnnl_memory_desc_t?, _ body: (UnsafePointer<dnnl_memory_desc_t>?) throws -> R) rethrows -> R {
    guard var md else { return try body(nil) }
    return try withUnsafePointer(to: &md) { try body($0) }
}

/// Memory descriptor helpers.
enum MD {
    static func make(_ dims: [Int], _ tag: dnnl_format_tag_t, _ type: dnnl_data_type_t = dnnl_f32) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let d = dims.map(Int64.init)
        _ = dnnl_memory_desc_init_by_tag(&md, Int32(d.count), d, type, tag)
        return md
    }

    /// Overwrites the outer strides of a blocked/plain descriptor.
    static func setStrides(_ md: inout dnnl_memory_desc_t, _ strides: [Int]) {
        withUnsafeMutableBytes(of: &md.format_desc.blocking.strides) { raw in
            let p = raw.bindMemory(to: Int64.self)
            for (i, s) in strides.enumerated() { p[i] = Int64(s) }
        }
    }

    static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var a = a, b = b
        return dnnl_memory_desc_equal(&a, &b) != 0
    }

    /// Whether oneDNN can reorder out of this descriptor (plain or blocked; not an opaque Winograd or RNN format).
    static func isBlocked(_ md: dnnl_memory_desc_t) -> Bool { md.format_kind == dnnl_blocked }

    static func size(_ md: dnnl_memory_desc_t) -> Int {
        var md = md
        return Int(dnnl_memory_desc_get_size(&md))
    }
}

/// The CPU as oneDNN sees it: its model name and the instruction set its kernels use (which
/// `ONEDNN_MAX_CPU_ISA` / `DNNL_MAX_CPU_ISA` can cap, e.g. `AVX2` on an AVX-512 CPU).
public enum CPUInfo {
    /// The value of the first /proc/cpuinfo line whose key is `key` (nil when unreadable or absent).
    static func cpuinfo(_ key: String) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == key else { continue }
            return parts[1].trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    /// /proc/cpuinfo's "model name" (empty when unreadable).
    public static var model: String { cpuinfo("model name") ?? "" }

    /// /proc/cpuinfo's feature flags (empty when unreadable).
    public static var flags: Set<String> { Set((cpuinfo("flags") ?? "").split(separator: " ").map(String.init)) }

    /// oneDNN's effective ISA, e.g. "avx512_core_vnni" or "avx2".
    public static var isa: String {
        let names: [(dnnl_cpu_isa_t, String)] = [
            (dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"), (dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"),
            (dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"), (dnnl_cpu_isa_avx512_core, "avx512_core"),
            (dnnl_cpu_isa_avx2_vnni, "avx2_vnni"), (dnnl_cpu_isa_avx2, "avx2"), (dnnl_cpu_isa_avx, "avx"),
            (dnnl_cpu_isa_sse41, "sse41"),
        ]
        let isa = dnnl_get_effective_cpu_isa()
        return names.first { $0.0 == isa }?.1 ?? String(format: "0x%x", isa.rawValue)
    }

    /// The ISA cap set in the environment, if any.
    public static var isaCap: String? {
        let env = ProcessInfo.processInfo.environment
        return env["ONEDNN_MAX_CPU_ISA"] ?? env["DNNL_MAX_CPU_ISA"]
    }
}

