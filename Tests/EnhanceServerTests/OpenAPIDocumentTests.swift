import EnhanceServer
import Foundation
import Testing
import TestSupport

/// docs/openapi.yaml is the service's contract for clients and for `scripts/serve-check` (schemathesis): it must parse
/// as YAML, list exactly the routes the server serves with their methods, and name exactly the error codes the server
/// answers with and their statuses (as docs/serve.md's table does). It was invalid YAML for a while unnoticed, and the
/// `cancelled` code was never in it.
@Suite(.serialized) struct OpenAPIDocumentTests {
    static let document = Repository.root.appendingPathComponent("docs/openapi.yaml")

    /// The document as JSON objects, parsed by PyYAML's safe loader: the first `python3` on the PATH that has it, else
    /// Debian's (python3-yaml, installed by scripts/setup).
    static func load() throws -> [String: Any] {
        let parse = "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout, default=str)"
        let r = try EnhanceBinary.run(executable: URL(fileURLWithPath: "/bin/sh"), ["-c", """
            for py in python3 /usr/bin/python3; do "$py" -c 'import yaml' 2>/dev/null && exec "$py" -c '\(parse)' "$1"; done
            echo 'no python3 with PyYAML here' >&2; exit 3
            """, "sh", document.path])
        try #require(r.status == 0, "\(document.path) does not parse as YAML (or python3-yaml is missing: scripts/setup installs it):\n\(r.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    /// `code` → status from a text listing codes in backticks, each group followed by its status: "`a`, `b` (400); `c` (404, …)".
    static func codeList(_ text: String) -> [String: Int] {
        var result: [String: Int] = [:], pending: [String] = []
        let token = /`([a-z_]+)`|\((\d{3})\b/
        for m in text.matches(of: token) {
            if let code = m.output.1 { pending.append(String(code)) }
            if let status = m.output.2.flatMap({ Int($0) }) {
                for c in pending { result[c] = status }
                pending = []
            }
        }
        return result
    }

    /// Every `error.code` in the document's examples.
    static func exampleCodes(_ value: Any) -> Set<String> {
        if let d = value as? [String: Any] {
            var codes = Set(d.values.flatMap { exampleCodes($0) })
            if let e = d["error"] as? [String: Any], let c = e["code"] as? String { codes.insert(c) }
            return codes
        }
        if let a = value as? [Any] { return Set(a.flatMap { exampleCodes($0) }) }
        return []
    }

    @Test func theErrorCodesAreTheServers() throws {
        let doc = try Self.load()
        let server = Dictionary(uniqueKeysWithValues: APIError.Code.allCases.map { ($0.rawValue, Int($0.status.code)) })
        let description = try #require((doc["info"] as? [String: Any])?["description"] as? String)
        let after = try #require(description.range(of: "Codes:"), "openapi.yaml's description has no \"Codes:\" list").upperBound
        let codes = String(description[after...]).components(separatedBy: "\n\n")[0]
        #expect(Self.codeList(codes) == server, "openapi.yaml's code list differs from APIError.Code: \(Self.codeList(codes)) vs \(server)")
        let examples = Self.exampleCodes(doc)
        #expect(!examples.isEmpty && examples.isSubset(of: Set(server.keys)), "examples with codes the server never sends: \(examples.subtracting(server.keys))")

        let serveMD = try String(contentsOf: Repository.root.appendingPathComponent("docs/serve.md"), encoding: .utf8)
        var table: [String: Int] = [:]
        for m in serveMD.matches(of: /\n\| (\d{3}) \| `([a-z_]+)` \|/) { table[String(m.output.2)] = Int(m.output.1) }
        #expect(table == server, "docs/serve.md's error table differs from APIError.Code: \(table) vs \(server)")
    }

    @Test func thePathsAreTheServersRoutes() async throws {
        let doc = try Self.load()
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
        var documented: [String: String] = [:]
        for (path, item) in paths {
            let ms = item.keys.filter(methods.contains)
            #expect(ms.count == 1, "\(path): \(ms)")
            documented[path] = ms.first?.uppercased()
        }
        #expect(documented == EnhanceServer.routes.mapValues(\.rawValue), "openapi.yaml paths \(documented) vs the server's \(EnhanceServer.routes)")

        // the live server answers each documented route with its method, and a known path with another method is 405
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        let s = try await InProcessServer(ServeTests.configuration(ws))
        for (path, method) in documented.sorted(by: { $0.key < $1.key }) {
            let r = try await HTTP.send(s.base + path, method: method, body: method == "POST" ? [] : nil,
                                        contentType: method == "POST" ? "image/png" : nil)
            #expect(r.status != 404 && r.status != 405, "\(method) \(path): \(r.status) \(r.text.prefix(200))")
            let other = method == "GET" ? "POST" : "GET"
            let wrong = try await HTTP.send(s.base + path, method: other, body: other == "POST" ? [] : nil)
            #expect(wrong.status == 405 && wrong.errorCode == "method_not_allowed" && wrong.headers["allow"] == method,
                    "\(other) \(path): \(wrong.status) \(wrong.text.prefix(200))")
        }
        #expect(try await HTTP.send(s.base + "/v1/nope").status == 404)
        await s.stop()
    }
}
