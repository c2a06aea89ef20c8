import Foundation
import Testing
@testable import Checkpoint

@Suite struct StrictTests {
    @Test func shapeMismatchNamesKeyAndBothShapes() throws {
        let d = try CheckpointLoader.load(Paths.fixture("mixed_zip.pth")).stateDict
        do {
            _ = try d.tensor("conv.weight", shape: [2, 3, 1, 1])
            Issue.record("accepted a wrong shape")
        } catch let e as CheckpointError {
            #expect(e == .shapeMismatch(key: "conv.weight", expected: [2, 3, 1, 1], actual: [2, 3, 3, 3]))
            #expect(e.description.contains("conv.weight") && e.description.contains("[2, 3, 3, 3]") && e.description.contains("[2, 3, 1, 1]"))
        }
        #expect(throws: CheckpointError.missingKey("nope.weight")) { _ = try d.tensor("nope.weight", shape: [1]) }
    }

    @Test func verifyAllUsedNamesTheUnexpectedKeys() throws {
        let d = try CheckpointLoader.load(Paths.fixture("mixed_zip.pth")).stateDict
        _ = try d.tensor("conv.weight", shape: [2, 3, 3, 3])
        _ = try d.floats("conv.bias", shape: [2])
        let rest = d.keys.filter { $0 != "conv.weight" && $0 != "conv.bias" }
        #expect(throws: CheckpointError.unexpectedKeys(rest)) { try d.verifyAllUsed() }
        d.markUsed(rest)
        try d.verifyAllUsed()
        d.resetUsage()
        #expect(d.unusedKeys == d.keys)
    }

    @Test func inMemoryTensorsBuildAStateDict() throws {
        let t = try CheckpointTensor(name: "w", shape: [2, 2], values: [1, -2, 3.5, 0])
        let d = StateDict([t])
        #expect(try d.floats("w", shape: [2, 2]) == [1, -2, 3.5, 0])
        #expect(d.parameterCount == 4)
        #expect(throws: CheckpointError.shapeMismatch(key: "v", expected: [3], actual: [2])) {
            _ = try CheckpointTensor(name: "v", shape: [3], values: [1, 2])
        }
    }
}
