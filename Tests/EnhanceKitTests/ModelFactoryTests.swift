import Foundation
import Testing
@testable import EnhanceKit

/// `ModelFactory`: devices, and what typed configurations ask for.
@Suite struct ModelFactoryTests {
    @Test func devices() throws {
        var e = EngineConfiguration()
        #expect(e.device == .auto)
        #expect(try ModelFactory.makeBackend(e).name.contains("oneDNN"))
        e.device = .reference
        #expect(try ModelFactory.makeBackend(e).name == "reference")
        e.device = .cuda
        do {
            _ = try ModelFactory.makeBackend(e)
            Issue.record("cuda was created in a build without it")
        } catch let err as EnhanceError {
            #expect(err.category == .unsupported && err.message.contains("cuda"))
        }
        #expect(ModelFactory.devices.map(\.device) == [.cpu, .reference, .cuda])
        #expect(ModelFactory.devices.first { $0.device == .cuda }?.available == false)
    }

    @Test func configurationsNameTheModelsTheyNeed() {
        var up = UpscaleConfiguration()
        #expect(up.modelNames == ["RealESRGAN_x4plus"])
        up.model = .name("realesr-general-x4v3")
        #expect(up.modelNames == ["realesr-general-x4v3", "realesr-general-wdn-x4v3"])
        up.denoiseStrength = 1
        #expect(up.modelNames == ["realesr-general-x4v3"])
        up.model = .file("/x.pth")
        #expect(up.modelNames.isEmpty)
        var rs = RestoreConfiguration(gpen: "GPEN-BFR-512")
        #expect(rs.modelNames == ["GPEN-BFR-512", "RetinaFace-R50", "ParseNet-latest"])
        rs.options.aligned = true
        rs.backgroundUpsampler = "RealESRGAN_x2plus"
        #expect(rs.modelNames == ["GPEN-BFR-512", "RealESRGAN_x2plus"])
    }

    @Test func lookupErrorsHaveCategories() {
        let locator = ModelLocator(dirs: [FileManager.default.temporaryDirectory.appendingPathComponent("no-models-\(UUID().uuidString)")])
        #expect(throws: EnhanceError.self) { _ = try locator.resolve(name: "NoSuchModel", denoiseStrength: 0.5) }
        do { _ = try locator.resolve(name: "NoSuchModel", denoiseStrength: 0.5) } catch { #expect(error.category == .badInput) }
        do { _ = try locator.resolve(name: "RealESRGAN_x2plus", denoiseStrength: 0.5) } catch {
            #expect(error.category == .missingResource && error.message.contains("enhance models fetch RealESRGAN_x2plus"))
        }
        do { _ = try locator.detector(nil) } catch { #expect(error.category == .missingResource && error.message.contains("no detector")) }
    }
}
