import EnhanceCLI

/// The executable is only this: parse the command line and run the library's command tree.
@main
enum EnhanceMain {
    static func main() async {
        HugePages.prepareProcess()
        await Enhance.runFromCommandLine()
    }
}
