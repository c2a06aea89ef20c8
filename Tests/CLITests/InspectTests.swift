import Foundation
import Testing
import TestSupport

/// `enhance inspect` on committed fixtures, as a user would run it.
@Suite struct InspectCLITests {
    static let root = Repository.root

    @Test func namesArchitectureAndConfiguration() throws {
        let file = Self.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x4/weights.pth").path
        let r = try EnhanceBinary.run(["inspect", file, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(json["architecture"] as? String == "SRVGGNetCompact")
        let config = try #require(json["config"] as? [String: Any])
        #expect(config["upscale"] as? Int == 4)
        #expect(config["act_type"] as? String == "prelu")
        #expect(json["wrapper"] as? String == "params_ema")
    }

    @Test func notACheckpointIsAClearErrorNamingTheFile() throws {
        let file = Self.root.appendingPathComponent("README.md").path
        let r = try EnhanceBinary.run(["inspect", file])
        #expect(r.status != 0)
        #expect(r.stderr.contains("README.md"))
        #expect(r.stderr.contains("not a recognised checkpoint"))
    }
}
