import Foundation
import Spec

/// `tests/load/config.json`: the load model of `Spec.LoadModel` as the k6 scripts read it. Written
/// by `signet-sim k6-config`; `K6ConfigTests` fails when the committed file differs from this.
public enum K6Config {
    /// The file's path inside the repository.
    public static let path = "tests/load/config.json"

    /// The JSON text: keys sorted, two-space indentation, one final newline, so the file is
    /// the same byte for byte on every machine.
    public static func rendered() throws -> String {
        var scenarios: [String: Any] = [:]
        for scenario in LoadModel.scenarios {
            scenarios[scenario.name] = [
                "virtualUsers": scenario.virtualUsers,
                "durationSeconds": scenario.durationSeconds,
                "rampUpSeconds": scenario.rampUpSeconds,
                "thinkTimeSeconds": scenario.thinkTimeSeconds,
                "requestsPerIteration": scenario.requestsPerIteration,
                "principal": scenario.principal.rawValue,
                "requestsPerWindowPerPrincipal": scenario.requestsPerWindowPerPrincipal,
            ]
        }
        let document: [String: Any] = [
            "generatedBy": "swift run signet-sim k6-config, from Sources/Spec/LoadModel.swift; do not edit by hand",
            "scenarios": scenarios,
            "thresholds": [
                "p95Milliseconds": LoadModel.p95Milliseconds,
                "maxFailedRate": LoadModel.maxFailedRate,
                "minChecksRate": LoadModel.minChecksRate,
            ],
            "targetP95Milliseconds": LoadModel.targetP95Milliseconds,
            "thinkTimeJitter": LoadModel.thinkTimeJitter,
            "rotationGraceSeconds": LoadModel.rotationGraceSeconds,
            "stackEnvironment": LoadModel.stackEnvironment,
        ]
        let data = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
