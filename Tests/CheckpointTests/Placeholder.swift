import Testing

@Test func placeholder_CheckpointTests() { #expect(1 + 1 == 2) }
