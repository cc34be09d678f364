// The libFuzzer entry point over Signet's parsers (`ci/fuzz`). Built with `SIGNET_FUZZER=1 swift
// build --product signet-fuzz` (Package.swift: coverage on Signet's own modules, libFuzzer linked,
// SIGNET_FUZZER defined), its `main` hands over to libFuzzer's driver; the parser is chosen by
// SIGNET_FUZZ_TARGET (form, basic, json, jwt). Built without them it is a replayer:
// `signet-fuzz <target> FILE...` runs each file through the parser once.
import Foundation
import SignetFuzzing

#if SIGNET_FUZZER
    let selected: FuzzTarget = {
        guard let name = ProcessInfo.processInfo.environment["SIGNET_FUZZ_TARGET"], let target = FuzzTarget(rawValue: name) else {
            fatalError("set SIGNET_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return target
    }()

    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
        ParserProbes.run(selected, Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }

    /// libFuzzer's driver (`int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*)(const uint8_t *, size_t))`):
    /// SwiftPM names the executable's entry point itself, so libFuzzer's own `main` is not used.
    @_silgen_name("LLVMFuzzerRunDriver")
    func runDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
    ) -> CInt

    @main
    enum Fuzzer {
        static func main() {
            var argc = CommandLine.argc
            var argv = CommandLine.unsafeArgv
            exit(runDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) })
        }
    }
#else
    @main
    enum Replayer {
        static func main() {
            let arguments = CommandLine.arguments.dropFirst()
            guard let name = arguments.first, let target = FuzzTarget(rawValue: name) else {
                let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")
                FileHandle.standardError.write(Data("usage: signet-fuzz <\(names)> FILE...\n".utf8))
                exit(64)
            }
            for path in arguments.dropFirst() {
                guard let data = FileManager.default.contents(atPath: path) else {
                    FileHandle.standardError.write(Data("signet-fuzz: cannot read \(path)\n".utf8))
                    exit(66)
                }
                ParserProbes.run(target, Array(data))
            }
        }
    }
#endif
