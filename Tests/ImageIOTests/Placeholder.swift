import Testing

@Test func placeholder_ImageIOTests() { #expect(1 + 1 == 2) }
