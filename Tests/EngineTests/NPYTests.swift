import Foundation
import Testing
import TensorCore

@Suite struct NPYTests {
    @Test func roundTripsFloat32AndUInt8() throws {
        let a = NPYArray(shape: [2, 3], floats: [1, -2, 3.5, 0, 1e-7, 42])
        let back = try NPYArray(data: a.encoded())
        #expect(back == a)
        #expect(back.floats() == [1, -2, 3.5, 0, 1e-7, 42])
        let u = NPYArray(shape: [1, 1, 4], uint8s: [0, 1, 254, 255])
        #expect(try NPYArray(data: u.encoded()).uint8s() == [0, 1, 254, 255])
        let s = NPYArray(shape: [3], uint16s: [0, 65535, 300])
        #expect(try NPYArray(data: s.encoded()).uint16s() == [0, 65535, 300])
    }

    @Test func headerIsPaddedTo64Bytes() {
        let data = NPYArray(shape: [5], floats: [1, 2, 3, 4, 5]).encoded()
        #expect((data.count - 20) % 64 == 0)
    }

    @Test func rejectsGarbageAndTruncation() throws {
        #expect(throws: NPYError.self) { try NPYArray(data: Data("hello world".utf8)) }
        let good = NPYArray(shape: [4], floats: [1, 2, 3, 4]).encoded()
        #expect(throws: NPYError.self) { try NPYArray(data: good.prefix(good.count - 3)) }
    }

    @Test func readsFortranOrder() throws {
        // Hand-built Fortran-ordered 2x3 int64-free float32 array: columns stored first.
        var header = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        var d = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0])
        d.append(contentsOf: Array(header.utf8))
        let fortran: [Float] = [1, 4, 2, 5, 3, 6]
        d.append(contentsOf: fortran.withUnsafeBytes { Array($0) })
        #expect(try NPYArray(data: d).floats() == [1, 2, 3, 4, 5, 6])
    }
}
