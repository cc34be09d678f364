import Hummingbird
import Spec

/// `POST /v1/keys/rotate` (admin): a new current signing key; the previous one stays in the
/// JWKS until every token it signed has expired.
struct KeyRoutes {
    let pool: ConnectionPool
    let keyRing: KeyRing
    let tokenTTL: Duration

    struct Rotated: Encodable {
        let kid: String
        let retiredKid: String?
        let retiredPublishedForSeconds: Int64
    }

    func add(to group: RouterGroup<SignetRequestContext>) {
        group.post("rotate") { _, context in
            let publishFor = tokenTTL + .seconds(Defaults.signingKeyPublishSlackSeconds)
            let audit = context.audit
            let (current, retired) = try await pool.transaction { connection in
                let rotated = try SigningKeyStore.rotate(on: connection, publishFor: publishFor)
                try AuditLog.append(
                    .keyRotate,
                    agentID: nil,
                    context: audit,
                    details: ["kid": .string(rotated.current), "retiredKid": rotated.retired.map(JSONValue.string) ?? .null],
                    on: connection
                )
                return rotated
            }
            try await keyRing.refresh()
            context.logger.info("signing key rotated", metadata: ["kid": "\(current)", "retired": "\(retired ?? "-")"])
            return try jsonResponse(
                Rotated(kid: current, retiredKid: retired, retiredPublishedForSeconds: publishFor.components.seconds),
                status: .created
            )
        }
    }
}
