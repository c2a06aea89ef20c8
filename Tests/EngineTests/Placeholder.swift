import Testing

@Test func placeholder_EngineTests() { #expect(1 + 1 == 2) }
