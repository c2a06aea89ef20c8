import Foundation

/// On-disk formats this module reads.
public enum CheckpointFormat: String, Sendable, Codable {
    case pytorchZip = "pytorch-zip", pytorchLegacy = "pytorch-legacy", safetensors, ncnn
}

/// A checkpoint after loading: its format, how it was unwrapped, and the state dict.
public struct LoadedCheckpoint: Sendable {
    /// The file read (for ncnn, the `.param`).
    public let path: String
    /// Detected container format.
    public let format: CheckpointFormat
    /// Wrapper key the state dict was found under ("params_ema", "params", "g_ema", "state_dict", "model"), or nil.
    public let wrapper: String?
    /// True when every key had a `module.` prefix that was removed.
    public let strippedModulePrefix: Bool
    /// The tensors.
    public let stateDict: StateDict
    /// safetensors `__metadata__`; "ncnn_graph": the architecture the ncnn graph walk found; "key_layout" when an
    /// old ESRGAN key layout was renamed to BasicSR names.
    public let metadata: [String: String]
}

/// Entry point: sniffs the format and loads any supported checkpoint without executing anything from it.
public enum CheckpointLoader {
    /// Wrapper keys tried in order when the top-level dict holds no tensors.
    public static let wrappers = ["params_ema", "params", "g_ema", "state_dict", "model"]

    /// Loads `url` (.pth/.pt zip or legacy, .safetensors, ncnn .param or .bin with its sibling).
    public static func load(_ url: URL) throws -> LoadedCheckpoint {
        let path = url.path
        let ext = url.pathExtension.lowercased()
        if ext == "param" || ext == "bin" {
            let base = url.deletingPathExtension()
            let param = base.appendingPathExtension("param"), bin = base.appendingPathExtension("bin")
            if FileManager.default.fileExists(atPath: param.path), FileManager.default.fileExists(atPath: bin.path) {
                let p = try ByteRegion.map(path: param.path)
                let b = try ByteRegion.map(path: bin.path)
                guard p.count <= 64 << 20 else { throw CheckpointError.corrupt(path: param.path, reason: "ncnn .param larger than 64 MB") }
                return try loadNCNN(param: Array(p.buffer), bin: ByteSlice(region: b), paramPath: param.path, binPath: bin.path)
            }
            if ext == "param" { throw CheckpointError.io(path: bin.path, reason: "ncnn weights file not found next to the .param") }
        }
        let region = try ByteRegion.map(path: path)
        return try load(ByteSlice(region: region), path: path)
    }

    /// Loads a checkpoint held in memory (`path` is only used in messages).
    public static func load(bytes: [UInt8], path: String = "<memory>") throws -> LoadedCheckpoint {
        try load(ByteSlice(region: ByteRegion.copying(bytes)), path: path)
    }

    /// Loads an ncnn pair held in memory.
    public static func loadNCNN(param: [UInt8], bin: [UInt8], path: String = "<memory>") throws -> LoadedCheckpoint {
        try loadNCNN(param: param, bin: ByteSlice(region: ByteRegion.copying(bin)), paramPath: path + ".param", binPath: path + ".bin")
    }

    /// Parses just the ncnn graph (layers, params, blob sizes) of an in-memory pair.
    public static func ncnnGraph(param: [UInt8], bin: [UInt8]) throws -> NCNNGraph {
        try NCNNReader.read(param: param, bin: ByteSlice(region: ByteRegion.copying(bin)), paramPath: "<param>", binPath: "<bin>")
    }

    static func loadNCNN(param: [UInt8], bin: ByteSlice, paramPath: String, binPath: String) throws -> LoadedCheckpoint {
        let graph = try NCNNReader.read(param: param, bin: bin, paramPath: paramPath, binPath: binPath)
        let (dict, arch) = try NCNNMapper(graph: graph, path: paramPath).stateDict()
        return LoadedCheckpoint(path: paramPath, format: .ncnn, wrapper: nil, strippedModulePrefix: false, stateDict: dict,
                                metadata: arch.map { ["ncnn_graph": $0] } ?? [:])
    }

    static func load(_ file: ByteSlice, path: String) throws -> LoadedCheckpoint {
        let n = file.count
        guard n >= 4 else { throw CheckpointError.unknownFormat(path: path, reason: "file has only \(n) bytes") }
        let root: PValue
        let arena: PArena
        let format: CheckpointFormat
        if file.u32(0) == 0x0403_4b50 || file.u32(0) == 0x0605_4b50 {
            format = .pytorchZip
            (root, arena) = try TorchReader.readZip(file, path: path)
        } else if n >= 2, file.u8(0) == 0x80, file.u8(1) == 0x02 {
            format = .pytorchLegacy
            (root, arena) = try TorchReader.readLegacy(file, path: path)
        } else if n >= 9, file.u8(8) == UInt8(ascii: "{") {
            let (tensors, meta) = try SafeTensorsReader.read(file, path: path)
            return finish(StateDict(tensors), format: .safetensors, wrapper: nil, path: path, metadata: meta)
        } else if n >= 7, file.bytes(0, 7) == Array("7767517".utf8) {
            throw CheckpointError.io(path: path, reason: "ncnn .param given without its .bin (open the .param file by path)")
        } else {
            throw CheckpointError.unknownFormat(path: path, reason: "neither a zip, a legacy torch pickle, safetensors nor ncnn")
        }
        let (tensors, wrapper) = try withExtendedLifetime(arena) { try stateDictTensors(root, path: path) }
        return finish(StateDict(tensors), format: format, wrapper: wrapper, path: path, metadata: [:])
    }

    private static func finish(_ d: StateDict, format: CheckpointFormat, wrapper: String?, path: String, metadata: [String: String]) -> LoadedCheckpoint {
        let strip = d.count > 0 && d.keys.allSatisfy { $0.hasPrefix("module.") }
        var dict = strip ? d.strippingPrefix("module.") : d
        var meta = metadata
        if let renames = KeyLayouts.esrganRenames(dict.keys) {
            dict = StateDict(dict.tensors.map { $0.renamed(renames[$0.name] ?? $0.name) })
            meta["key_layout"] = "esrgan-legacy (renamed to BasicSR RRDBNet keys)"
        }
        return LoadedCheckpoint(path: path, format: format, wrapper: wrapper, strippedModulePrefix: strip,
                                stateDict: dict, metadata: meta)
    }

    /// Finds the state dict in the unpickled object: the top-level dict if it holds tensors, else a wrapper.
    static func stateDictTensors(_ root: PValue, path: String) throws -> ([CheckpointTensor], String?) {
        guard case let .dict(top) = root else {
            throw CheckpointError.unsupported(path: path, reason: "the pickled object is not a dict")
        }
        func tensors(of d: PDict) throws -> [CheckpointTensor] {
            var out: [CheckpointTensor] = []
            for (k, v) in d.items {
                guard let key = k.asString, case let .bound(spec, bytes) = v else { continue }
                out.append(try CheckpointTensor(name: key, dtype: spec.storage.dtype, shape: spec.size, strides: spec.stride,
                                                storageOffset: spec.offset, storage: bytes, path: path))
            }
            return out
        }
        let direct = try tensors(of: top)
        if !direct.isEmpty { return (direct, nil) }
        for w in wrappers {
            if let (_, v) = top.items.first(where: { $0.0.asString == w }), case let .dict(inner) = v {
                let ts = try tensors(of: inner)
                if !ts.isEmpty { return (ts, w) }
            }
        }
        let keys = top.items.compactMap { $0.0.asString }.prefix(10).joined(separator: ", ")
        throw CheckpointError.unsupported(path: path, reason: "no tensors at the top level or under \(wrappers.joined(separator: "/")); top-level keys: \(keys)")
    }
}
