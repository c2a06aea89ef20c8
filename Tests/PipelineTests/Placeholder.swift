import Testing

@Test func placeholder_PipelineTests() { #expect(1 + 1 == 2) }
