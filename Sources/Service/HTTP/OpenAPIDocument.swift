/// The OpenAPI document of the API, served at `GET /openapi.yaml`: the repository's
/// `openapi.yaml`, embedded by SwiftPM when it builds (`Resources/openapi.yaml`, a link to it), so
/// the binary carries it and nothing can drift.
public enum OpenAPIDocument {
    public static let bytes: [UInt8] = PackageResources.openapi_yaml
    public static var yaml: String { String(decoding: bytes, as: UTF8.self) }
}
