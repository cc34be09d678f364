import Hummingbird
import Spec

/// `POST /v1/keys/rotate` (admin): a new current signing key; the previous one stays in the
/// JWKS until every token it signed has expired.
struct KeyRoutes {
    let store: any SecretStore
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
            let (current, retired) = try await store.rotateSigningKey(publishFor: publishFor, audit: context.audit)
            try await keyRing.refresh()
            context.logger.info("signing key rotated", metadata: ["kid": "\(current)", "retired": "\(retired ?? "-")"])
            return try jsonResponse(
                Rotated(kid: current, retiredKid: retired, retiredPublishedForSeconds: publishFor.components.seconds),
                status: .created
            )
        }
    }
}
