import Testing

@Test func placeholder_ModelsTests() { #expect(1 + 1 == 2) }
