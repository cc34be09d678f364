import Hummingbird

/// The admin API under `/v1/trusted-issuers`: register an issuer whose assertions the JWT-bearer
/// grant takes, list them, remove one. The group it is added to must already require the admin token.
struct TrustedIssuerRoutes {
    let store: TrustedIssuerStore
    /// `TRUSTED_ISSUER_ALLOW_HTTP`.
    let allowHTTP: Bool

    func add(to group: RouterGroup<SignetRequestContext>) {
        group.post { request, context in
            var request = request
            let input = try NewTrustedIssuer(try await request.jsonObject(context: context), allowHTTP: allowHTTP)
            let issuer = try await store.create(input, audit: context.audit)
            context.logger.info("trusted issuer added", metadata: ["issuer.id": "\(issuer.id)"])
            return try jsonResponse(issuer, status: .created, headers: [.location: "/v1/trusted-issuers/\(issuer.id)"])
        }
        group.get { _, _ in
            try jsonResponse(["items": try await store.all()])
        }
        group.delete("{id}") { _, context in
            guard try await store.delete(id: try context.parameters.require("id"), audit: context.audit) else {
                throw SignetError.notFound("no trusted issuer with that id")
            }
            return Response(status: .noContent)
        }
    }
}
