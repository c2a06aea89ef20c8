import Foundation

/// Renames older community key layouts onto the BasicSR names the Models module loads.
enum KeyLayouts {
    /// Old ESRGAN layouts (x4, two upsampling convs) → BasicSR RRDBNet keys, or nil when `keys` is not one of them.
    /// - "model.N" (ESRGAN "new-arch" as in many community upscalers): model.0, model.1.sub.I.RDBr.convj.0,
    ///   model.1.sub.B, model.3, model.6, model.8, model.10;
    /// - "RRDB_trunk" (original ESRGAN repository): RRDB_trunk.I.RDBr.convj, trunk_conv, upconv1/2, HRconv.
    static func esrganRenames(_ keys: [String]) -> [String: String]? {
        guard keys.contains("model.0.weight") || keys.contains("RRDB_trunk.0.RDB1.conv1.weight") else { return nil }
        var blocks = 0
        for k in keys {
            for prefix in ["model.1.sub.", "RRDB_trunk."] where k.hasPrefix(prefix) {
                let rest = k.dropFirst(prefix.count)
                if let dot = rest.firstIndex(of: "."), let i = Int(rest[..<dot]), rest[dot...].hasPrefix(".RDB") { blocks = max(blocks, i + 1) }
            }
        }
        guard blocks > 0 else { return nil }
        var map: [String: String] = [:]
        let fixed: [String: String] = [
            "model.0": "conv_first", "model.1.sub.\(blocks)": "conv_body", "model.3": "conv_up1", "model.6": "conv_up2",
            "model.8": "conv_hr", "model.10": "conv_last", "conv_first": "conv_first", "trunk_conv": "conv_body",
            "upconv1": "conv_up1", "upconv2": "conv_up2", "HRconv": "conv_hr", "conv_last": "conv_last",
        ]
        for k in keys {
            guard let dot = k.lastIndex(of: ".") else { return nil }
            let module = String(k[..<dot]), param = String(k[k.index(after: dot)...])
            guard param == "weight" || param == "bias" else { return nil }
            if let f = fixed[module] { map[k] = "\(f).\(param)"; continue }
            // model.1.sub.I.RDBr.convj.0 or RRDB_trunk.I.RDBr.convj
            var m = module
            if m.hasPrefix("model.1.sub."), m.hasSuffix(".0") { m = String(m.dropFirst("model.1.sub.".count).dropLast(2)) }
            else if m.hasPrefix("RRDB_trunk.") { m = String(m.dropFirst("RRDB_trunk.".count)) }
            else { return nil }
            let parts = m.split(separator: ".")
            guard parts.count == 3, let i = Int(parts[0]), parts[1].hasPrefix("RDB"), let r = Int(parts[1].dropFirst(3)),
                  parts[2].hasPrefix("conv"), let j = Int(parts[2].dropFirst(4)), (1...3).contains(r), (1...5).contains(j) else { return nil }
            map[k] = "body.\(i).rdb\(r).conv\(j).\(param)"
        }
        return Set(map.values).count == map.count ? map : nil
    }
}
