import ArgumentParser

/// `enhance info`: what this build can do (codecs, engine, threads).
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the build's version and capabilities.")

    func run() throws {
        print("enhance \(Enhance.version)")
    }
}
