// swift-tools-version: 6.1
import PackageDescription

/// `SIGNET_FUZZER=1 swift build --product signet-fuzz` (ci/fuzz): libFuzzer's coverage
/// instrumentation on Signet's own modules only, unoptimised (libFuzzer needs their coverage, not
/// their speed, and they compile sooner), in an existing build folder, so a fuzzer build
/// recompiles Spec, Service and the fuzz targets and none of the dependencies (which
/// `swift build --sanitize=fuzzer` would build again, instrumented, in a folder of their own).
/// Set it on that one command only: every build made while it is set instruments these modules,
/// and any other product then fails to link (only signet-fuzz links libFuzzer).
let fuzzer = Context.environment["SIGNET_FUZZER"] == "1"
let instrumented: [SwiftSetting] = fuzzer ? [.unsafeFlags(["-sanitize=fuzzer", "-Onone"])] : []

/// `SIGNET_TESTABLE=1` (ci/lib.sh's `swift_build`, for CI's one build, `-c release`): Signet's
/// modules compiled for `@testable import`, which a release build otherwise is not, and the code
/// that only drives the service (the tests, the Simulator, the fuzz targets) left unoptimised.
/// The tests and the load suite then run against one build: the service optimised as
/// `swift build -c release` builds it (plus `-enable-testing`), the rest compiled in a fraction
/// of the time. Set it on
/// every build of a folder or on none: a build without it compiles these modules again.
let testable = Context.environment["SIGNET_TESTABLE"] == "1"
let forTesting: [SwiftSetting] = testable ? [.unsafeFlags(["-enable-testing"])] : []
let driverOnly: [SwiftSetting] = testable ? forTesting + [.unsafeFlags(["-Onone"])] : []

let package = Package(
    name: "signet",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "signet", targets: ["signet"]),
        .library(name: "Service", targets: ["Service"]),
        .library(name: "Spec", targets: ["Spec"]),
        .library(name: "SignetJOSE", targets: ["SignetJOSE"]),
        .library(name: "SignetResourceServer", targets: ["SignetResourceServer"]),
        .executable(name: "signet-sim", targets: ["signet-sim"]),
        .executable(name: "signet-fuzz", targets: ["signet-fuzz"]),
        .library(name: "Simulator", targets: ["Simulator"]),
    ],
    dependencies: [
        // Traits named explicitly: with the default set SwiftPM re-plans hummingbird whenever an
        // environment variable changes (DESIGN.md, pitfalls).
        .package(
            url: "https://github.com/hummingbird-project/hummingbird.git",
            from: "2.28.1",
            traits: ["ConfigurationSupport", "FullFoundation"]
        ),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // NIOHTTPTypes: the request parts a channel handler sees (already built for hummingbird).
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // The OpenAPI document's test only (a YAML reader; ci/test validates the document itself).
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        .target(name: "Spec", swiftSettings: instrumented + forTesting),
        // Public keys, compact JWS and their signatures (RFC 7515, 7517, 7638): what Signet and a
        // resource server verify client assertions and DPoP proofs with.
        .target(
            name: "SignetJOSE",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: instrumented + forTesting
        ),
        // What a resource server (an MCP server among them) accepts Signet tokens with: JWKS with
        // a deadline, the token's claims, DPoP proofs, introspection, the challenges. Signet's own
        // token-authority route uses it too.
        .target(
            name: "SignetResourceServer",
            dependencies: [
                "SignetJOSE",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: instrumented + forTesting
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "Service",
            dependencies: [
                "Spec",
                "SignetJOSE",
                "SignetResourceServer",
                "CLibPQ",
                "CHiredis",
                // Vault and OPA over HTTP (DESIGN.md); already built for the Simulator.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The API's contract, served at GET /openapi.yaml: Resources/openapi.yaml links to the
            // repository's openapi.yaml, which SwiftPM embeds as bytes when it builds.
            resources: [.embedInCode("Resources/openapi.yaml")],
            swiftSettings: instrumented + forTesting
        ),
        .executableTarget(
            name: "signet",
            dependencies: [
                "Service",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Simulator",
            dependencies: [
                "Service",
                "SignetJOSE",
                "Spec",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: driverOnly
        ),
        .executableTarget(
            name: "signet-sim",
            dependencies: [
                "Simulator",
                "Spec",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: driverOnly
        ),
        // The parsers under libFuzzer (ci/fuzz-parsers) and their corpus replayed by ServiceTests.
        .target(
            name: "SignetFuzzing",
            dependencies: [
                "Service",
                "SignetJOSE",
                "Spec",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: instrumented + driverOnly
        ),
        .executableTarget(
            name: "signet-fuzz",
            dependencies: ["SignetFuzzing"],
            swiftSettings: (fuzzer ? [.unsafeFlags(["-sanitize=fuzzer"]), .define("SIGNET_FUZZER")] : []) + driverOnly,
            linkerSettings: fuzzer ? [.unsafeFlags(["-sanitize=fuzzer"])] : []
        ),
        // What tests share: the manual clock the pure rules' tests drive.
        .target(name: "SignetTestSupport", path: "Tests/SignetTestSupport", swiftSettings: driverOnly),
        .testTarget(
            name: "ServiceTests",
            dependencies: [
                "Service",
                "SignetJOSE",
                "SignetResourceServer",
                "SignetTestSupport",
                "SignetFuzzing",
                "Spec",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            swiftSettings: driverOnly
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "Service",
                "SignetJOSE",
                "SignetResourceServer",
                "SignetTestSupport",
                "Simulator",
                "Spec",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: driverOnly
        ),
        .testTarget(
            name: "SimulatorTests",
            dependencies: [
                "Simulator",
                "Spec",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: driverOnly
        ),
        .testTarget(
            name: "ScenarioTests",
            dependencies: ["Simulator"],
            swiftSettings: driverOnly
        ),
    ]
)
