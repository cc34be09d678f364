// Generated from openapi.yaml by ci/openapi; do not edit by hand.
// `OpenAPIDocumentTests` fails when the two differ.

/// The OpenAPI document of the API, served at `GET /openapi.yaml`.
public enum OpenAPIDocument {
    public static let yaml = #"""
        openapi: 3.1.0
        info:
          title: Signet
          version: "1"
          summary: Identity and credentials for autonomous software agents.
          description: |
            Operators register agents; agents exchange client credentials for short-lived ES256 JWT
            access tokens (OAuth 2.0 client credentials, RFC 9068) and rotate their credentials without
            downtime. Every response carries `X-Request-Id`, `Signet-Instance` and
            `X-Content-Type-Options: nosniff`; every rate-limited route carries `RateLimit-Policy` and
            `RateLimit`. Errors are always JSON.
          license:
            name: Proprietary
        servers:
          - url: http://127.0.0.1:8080
        tags:
          - name: agents
          - name: credentials
          - name: keys
          - name: audit
          - name: oauth
          - name: operations

        paths:
          /v1/agents:
            post:
              tags: [agents]
              operationId: registerAgent
              summary: Register an agent; its client secret is returned here only.
              description: >-
                Names and owners are 1–128 characters without control characters (surrounding white space trimmed);
                scopes are RFC 6749 scope tokens, at most 64, duplicates dropped; metadata is a JSON object of at
                most 16 KiB; unknown fields are refused, not ignored. The answer carries the agent, its
                `client_id`, its `client_secret` (shown only here) and its `credential`. 409 when the owner already
                has a live agent of that name (case-insensitive).
              security: [{ admin: [] }]
              requestBody:
                required: true
                content:
                  application/json:
                    schema: { $ref: "#/components/schemas/AgentRegistration" }
                    example: { name: crawler, owner: search-team, scopes: [read, "write:reports"], metadata: { team: search } }
              responses:
                "201":
                  description: Registered.
                  headers:
                    Location: { schema: { type: string }, description: "/v1/agents/{id}" }
                    Cache-Control: { $ref: "#/components/headers/NoStore" }
                    RateLimit: { $ref: "#/components/headers/RateLimit" }
                    RateLimit-Policy: { $ref: "#/components/headers/RateLimitPolicy" }
                    X-Request-Id: { $ref: "#/components/headers/RequestId" }
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/RegisteredAgent" }
                  links:
                    ReadAgent: { operationId: getAgent, parameters: { id: "$response.body#/id" } }
                    RotateCredential: { operationId: rotateCredential, parameters: { id: "$response.body#/id" } }
                "400": { $ref: "#/components/responses/BadRequest" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "409": { $ref: "#/components/responses/Conflict" }
                "413": { $ref: "#/components/responses/TooLarge" }
                "415": { $ref: "#/components/responses/UnsupportedMediaType" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }
            get:
              tags: [agents]
              operationId: listAgents
              summary: List agents, newest first, with cursor pagination.
              description: >-
                Oldest first (registration order). `limit` 1–100 (default 50); pass `nextCursor` back as `cursor` for the next page.
              security: [{ admin: [] }]
              parameters:
                - { name: limit, in: query, schema: { type: integer, minimum: 1, maximum: 100, default: 50 } }
                - { name: cursor, in: query, schema: { type: string, minLength: 1 }, description: "`nextCursor` of the previous page (opaque: any other value is a 400)" }
                - { name: owner, in: query, schema: { $ref: "#/components/schemas/Name" } }
                - { name: status, in: query, schema: { $ref: "#/components/schemas/AgentStatus" } }
              responses:
                "200":
                  description: A page of agents.
                  headers:
                    RateLimit: { $ref: "#/components/headers/RateLimit" }
                    RateLimit-Policy: { $ref: "#/components/headers/RateLimitPolicy" }
                  content:
                    application/json:
                      schema:
                        type: object
                        required: [items]
                        properties:
                          items: { type: array, items: { $ref: "#/components/schemas/Agent" } }
                          nextCursor: { type: [string, "null"] }
                "400": { $ref: "#/components/responses/BadRequest" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }

          /v1/agents/{id}:
            parameters:
              - $ref: "#/components/parameters/AgentID"
            get:
              tags: [agents]
              operationId: getAgent
              summary: Read an agent (any status); never its secret.
              description: >-
                The agent in any status, deactivated included.
              security: [{ admin: [] }]
              responses:
                "200":
                  description: The agent.
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/Agent" }
                "400": { $ref: "#/components/responses/BadRequest" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/NotFound" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }
            patch:
              tags: [agents]
              operationId: updateAgent
              summary: Change scopes, metadata or status (active, suspended).
              description: >-
                Only the fields given change. `status` is `active` or `suspended` (DELETE deactivates). Suspending
                the agent or removing a scope ends its live tokens at once on every instance (its token generation
                is bumped). 409 for a deactivated agent.
              security: [{ admin: [] }]
              requestBody:
                required: true
                content:
                  application/json:
                    schema: { $ref: "#/components/schemas/AgentUpdate" }
                    example: { scopes: [read], status: suspended }
              responses:
                "200":
                  description: The updated agent.
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/Agent" }
                "400": { $ref: "#/components/responses/BadRequest" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/NotFound" }
                "409": { $ref: "#/components/responses/Conflict" }
                "413": { $ref: "#/components/responses/TooLarge" }
                "415": { $ref: "#/components/responses/UnsupportedMediaType" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }
            delete:
              tags: [agents]
              operationId: deactivateAgent
              summary: Deactivate an agent for good; every credential it held is revoked.
              description: >-
                The agent is deactivated for good and every credential it held is revoked.
              security: [{ admin: [] }]
              responses:
                "204": { description: Deactivated. }
                "400": { $ref: "#/components/responses/BadRequest" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/NotFound" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }

          /v1/agents/{id}/credentials:
            parameters:
              - $ref: "#/components/parameters/AgentID"
            get:
              tags: [credentials]
              operationId: listCredentials
              summary: An agent's credentials, newest first, without secrets.
              description: >-
                Newest first, no secrets: state `active`, `expiring` (a rotated-out secret inside its grace
                period), `expired` or `revoked`.
              security: [{ admin: [] }]
              responses:
                "200":
                  description: The credentials.
                  content:
                    application/json:
                      schema:
                        type: object
                        required: [items]
                        properties:
                          items: { type: array, items: { $ref: "#/components/schemas/Credential" } }
                "400": { $ref: "#/components/responses/BadRequest" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/NotFound" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }

          /v1/agents/{id}/credentials/rotate:
            parameters:
              - $ref: "#/components/parameters/AgentID"
            post:
              tags: [credentials]
              operationId: rotateCredential
              summary: A new secret (returned here only); the previous one stays valid for the grace period.
              description: >-
                The new secret is shown only here. The previous one stays valid `graceSeconds` (default 86400, 0 =
                revoked now, at most 30 days); any older one ends now, so an agent never holds more than two.
                Allowed to the admin, and to the agent itself by its own client credentials (HTTP Basic, or
                `client_id` and `client_secret` in a form body beside `graceSeconds`) when it is registered with
                scope `credentials:rotate`. An access token is never accepted here. An agent rotates only with its
                newest valid credential: 409 while a newer one exists (an operator's rotation is not undone).
              security: [{ admin: [] }, { clientBasic: [] }, {}]
              requestBody:
                required: false
                content:
                  application/json:
                    schema:
                      type: object
                      additionalProperties: false
                      properties:
                        graceSeconds: { type: integer, minimum: 0, maximum: 2592000, default: 86400 }
                    example: { graceSeconds: 3600 }
                  application/x-www-form-urlencoded:
                    schema:
                      type: object
                      additionalProperties: false
                      properties:
                        client_id: { type: string }
                        client_secret: { type: string }
                        graceSeconds: { type: integer, minimum: 0, maximum: 2592000, default: 86400 }
              responses:
                "201":
                  description: The new credential.
                  headers:
                    Cache-Control: { $ref: "#/components/headers/NoStore" }
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/RotatedCredential" }
                "400": { $ref: "#/components/responses/BadRequest" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "403": { $ref: "#/components/responses/Forbidden" }
                "404": { $ref: "#/components/responses/NotFound" }
                "409": { $ref: "#/components/responses/Conflict" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }

          /v1/agents/{id}/credentials/{cid}:
            parameters:
              - $ref: "#/components/parameters/AgentID"
              - { name: cid, in: path, required: true, schema: { type: string, format: uuid } }
            delete:
              tags: [credentials]
              operationId: revokeCredential
              summary: That secret stops working now, on every instance.
              description: >-
                That secret stops working now, on every instance, and tokens minted with it are inactive.
              security: [{ admin: [] }]
              responses:
                "204": { description: Revoked. }
                "400": { $ref: "#/components/responses/BadRequest" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/NotFound" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }

          /v1/keys/rotate:
            post:
              tags: [keys]
              operationId: rotateSigningKey
              summary: A new ES256 signing key; the previous one stays published until its tokens expire.
              description: >-
                A new current ES256 key; the previous one stays in the JWKS until every token it signed has expired
                (token lifetime + 60 s).
              security: [{ admin: [] }]
              responses:
                "201":
                  description: Rotated.
                  content:
                    application/json:
                      schema:
                        type: object
                        required: [kid, retiredKid, retiredPublishedForSeconds]
                        properties:
                          kid: { type: string }
                          retiredKid: { type: string }
                          retiredPublishedForSeconds: { type: integer }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }

          /v1/audit:
            get:
              tags: [audit]
              operationId: listAudit
              summary: The append-only audit trail.
              description: >-
                Append-only (a trigger refuses changes), but for `token.denied`: refused requests of a known
                agent are one row per agent, address (an IPv6 one as its /64), minute and reason, whose `count`
                grows during that minute (read it as final once the minute is over). Actions: `agent.register`,
                `agent.update`, `agent.deactivate`, `credential.rotate`, `credential.revoke`, `key.rotate`,
                `token.denied`, `token.revoke`.
              security: [{ admin: [] }]
              parameters:
                - { name: agentId, in: query, schema: { type: string, format: uuid } }
                - { name: after, in: query, schema: { type: integer, minimum: 0, maximum: 9223372036854775807 }, description: "`nextCursor` of the previous page" }
                - { name: limit, in: query, schema: { type: integer, minimum: 1, maximum: 100, default: 50 } }
              responses:
                "200":
                  description: A page of events.
                  content:
                    application/json:
                      schema:
                        type: object
                        required: [items]
                        properties:
                          items: { type: array, items: { $ref: "#/components/schemas/AuditEvent" } }
                          nextCursor: { type: [string, "null"] }
                "400": { $ref: "#/components/responses/BadRequest" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }

          /oauth/token:
            post:
              tags: [oauth]
              operationId: issueToken
              summary: The client credentials grant (RFC 6749 §4.4); errors per §5.2.
              description: >-
                Client authentication by HTTP Basic (`client_secret_basic`) or `client_id` + `client_secret` form
                fields (`client_secret_post`), not both. Granted scopes are the requested ones the agent is
                registered for (when none is requested, all registered but those acting on Signet itself, such as
                `credentials:rotate`, which are granted only when asked for), narrowed by OPA when configured. Errors
                follow RFC 6749 §5.2: `invalid_request` (400), `invalid_client` (401, with `WWW-Authenticate:
                Basic` when Basic was tried), `unauthorized_client` (400, a suspended agent),
                `unsupported_grant_type` (400), `invalid_scope` (400); OPA unreachable or slow fails closed with
                503.
              security: [{ clientBasic: [] }, {}]
              requestBody:
                required: true
                content:
                  application/x-www-form-urlencoded:
                    schema:
                      type: object
                      required: [grant_type]
                      description: Unrecognized parameters are ignored (RFC 6749 §3.2); none may be given twice.
                      additionalProperties: { type: string }
                      properties:
                        grant_type: { type: string, enum: [client_credentials] }
                        scope: { type: string, description: space-separated scope tokens }
                        client_id: { type: string, description: "client_secret_post, with client_secret" }
                        client_secret: { type: string, writeOnly: true }
                    example: { grant_type: client_credentials, scope: read }
              responses:
                "200":
                  description: A token.
                  headers:
                    Cache-Control: { $ref: "#/components/headers/NoStore" }
                    RateLimit: { $ref: "#/components/headers/RateLimit" }
                    RateLimit-Policy: { $ref: "#/components/headers/RateLimitPolicy" }
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/TokenResponse" }
                  links:
                    Introspect: { operationId: introspectToken }
                    Revoke: { operationId: revokeToken }
                "400": { $ref: "#/components/responses/OAuthError" }
                "401":
                  description: Client authentication failed (`invalid_client`).
                  headers:
                    WWW-Authenticate: { $ref: "#/components/headers/WWWAuthenticate" }
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/Error" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }

          /oauth/introspect:
            post:
              tags: [oauth]
              operationId: introspectToken
              summary: RFC 7662; a client learns only about its own tokens, the admin about any.
              description: >-
                A token is active while it is signed by a published key, unexpired, for this issuer and audience,
                not revoked, its agent is active and was neither suspended nor deprived of a scope since the token
                was issued, and the credential it was minted with is neither revoked nor expired. A client learns
                only about its own tokens (any other is `{active: false}`); the admin about any.
              security: [{ admin: [] }, { clientBasic: [] }, {}]
              requestBody:
                required: true
                content:
                  application/x-www-form-urlencoded:
                    schema:
                      type: object
                      required: [token]
                      description: Unrecognized parameters are ignored (RFC 6749 §3.2); none may be given twice.
                      additionalProperties: { type: string }
                      properties:
                        token: { type: string, minLength: 1 }
                        token_type_hint: { type: string }
                        client_id: { type: string }
                        client_secret: { type: string, writeOnly: true }
              responses:
                "200":
                  description: The token's state.
                  headers:
                    Cache-Control: { $ref: "#/components/headers/NoStore" }
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/Introspection" }
                "400": { $ref: "#/components/responses/OAuthError" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }

          /oauth/revoke:
            post:
              tags: [oauth]
              operationId: revokeToken
              summary: RFC 7009; the token is inactive on every instance until it expires.
              description: >-
                RFC 7009: always 200; the token is inactive on every instance until it expires. A client may revoke
                only its own tokens (others are ignored); the admin any.
              security: [{ admin: [] }, { clientBasic: [] }, {}]
              requestBody:
                required: true
                content:
                  application/x-www-form-urlencoded:
                    schema:
                      type: object
                      required: [token]
                      description: Unrecognized parameters are ignored (RFC 6749 §3.2); none may be given twice.
                      additionalProperties: { type: string }
                      properties:
                        token: { type: string, minLength: 1 }
                        token_type_hint: { type: string, enum: [access_token, refresh_token] }
                        client_id: { type: string }
                        client_secret: { type: string, writeOnly: true }
              responses:
                "200": { description: "Revoked, or ignored (a token that is not the caller's)." }
                "400": { $ref: "#/components/responses/OAuthError" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Unavailable" }

          /.well-known/jwks.json:
            get:
              tags: [oauth]
              operationId: jwks
              summary: The current and the previous public signing key.
              description: >-
                The current and the previous public keys (ES256, `kid` = RFC 7638 thumbprint).
              security: [{}]
              responses:
                "200":
                  description: A JWK set (RFC 7517).
                  content:
                    application/jwk-set+json:
                      schema:
                        type: object
                        required: [keys]
                        properties:
                          keys:
                            type: array
                            items:
                              type: object
                              required: [kty, crv, x, y, kid, alg, use]
                              properties:
                                kty: { const: EC }
                                crv: { const: P-256 }
                                x: { type: string }
                                y: { type: string }
                                kid: { type: string }
                                alg: { const: ES256 }
                                use: { const: sig }
                "429": { $ref: "#/components/responses/RateLimited" }

          /.well-known/oauth-authorization-server:
            get:
              tags: [oauth]
              operationId: authorizationServerMetadata
              summary: RFC 8414 metadata.
              security: [{}]
              responses:
                "200":
                  description: The metadata.
                  content:
                    application/json:
                      schema:
                        type: object
                        required: [issuer, token_endpoint, jwks_uri, grant_types_supported]
                        properties:
                          issuer: { type: string }
                          token_endpoint: { type: string }
                          introspection_endpoint: { type: string }
                          revocation_endpoint: { type: string }
                          jwks_uri: { type: string }
                          grant_types_supported: { type: array, items: { type: string } }
                          token_endpoint_auth_methods_supported: { type: array, items: { type: string } }
                "429": { $ref: "#/components/responses/RateLimited" }

          /health/live:
            get:
              tags: [operations]
              operationId: live
              summary: The process answers; no dependency is touched. Never rate limited.
              security: [{}]
              responses:
                "200":
                  description: Alive.
                  content:
                    application/json:
                      schema: { type: object, properties: { status: { const: ok } } }

          /health/ready:
            get:
              tags: [operations]
              operationId: ready
              summary: Ready when the database answers; 503 while draining after SIGTERM.
              description: >-
                200 when the database answered the latest round of checks; else 503 `not_ready` with `Retry-After`;
                from SIGTERM on 503 `draining` (`SHUTDOWN_DRAIN_MS`). Vault's state is shown but does not decide.
              security: [{}]
              responses:
                "200":
                  description: Ready.
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/Readiness" }
                "503":
                  description: Not ready (the database is unreachable) or draining.
                  headers:
                    Retry-After: { $ref: "#/components/headers/RetryAfter" }
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/Readiness" }

          /health/detailed:
            get:
              tags: [operations]
              operationId: healthDetailed
              summary: Every dependency; 200 healthy, 207 degraded, 503 a dependency unreachable.
              description: >-
                200 when every dependency is healthy, 207 when any is degraded and none unreachable, 503 when any
                is unreachable. Served without a token on the operations listener (`OPS_HOST`:`OPS_PORT`); on the
                public listener only with bearer `HEALTH_DETAILED_TOKEN` (404 when it is not set); a missing or
                wrong token counts against the address's budget.
              security: [{ health: [] }, {}]
              responses:
                "200": { $ref: "#/components/responses/Health" }
                "207": { $ref: "#/components/responses/Health" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/NotFound" }
                "429": { $ref: "#/components/responses/RateLimited" }
                "503": { $ref: "#/components/responses/Health" }

          /metrics:
            get:
              tags: [operations]
              operationId: metrics
              summary: Prometheus text format (docs/operations.md lists every metric).
              description: >-
                The Prometheus text format (every metric: docs/operations.md). Served without a token, never rate
                limited, on the operations listener (`OPS_HOST`:`OPS_PORT`); on the public listener only with bearer
                `METRICS_TOKEN` (404 when it is not set); a missing or wrong token counts against the address's budget.
              security: [{ metrics: [] }, {}]
              responses:
                "200":
                  description: The exposition.
                  content:
                    text/plain:
                      schema: { type: string }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/NotFound" }
                "429": { $ref: "#/components/responses/RateLimited" }

          /openapi.yaml:
            get:
              tags: [operations]
              operationId: openapi
              summary: This document.
              security: [{}]
              responses:
                "200":
                  description: The OpenAPI document.
                  content:
                    application/yaml: {}

        components:
          securitySchemes:
            admin: { type: http, scheme: bearer, description: "SIGNET_ADMIN_TOKEN" }
            clientBasic: { type: http, scheme: basic, description: "client_secret_basic; or client_id and client_secret in the form (client_secret_post)" }
            health: { type: http, scheme: bearer, description: "HEALTH_DETAILED_TOKEN, on the public listener" }
            metrics: { type: http, scheme: bearer, description: "METRICS_TOKEN, on the public listener" }

          parameters:
            AgentID:
              name: id
              in: path
              required: true
              schema: { type: string, format: uuid }

          headers:
            NoStore: { schema: { const: no-store } }
            RequestId: { schema: { type: string }, description: "The client's X-Request-Id echoed when sane, else the server's own (Signet-Request-Id)" }
            RateLimit: { schema: { type: string }, example: "limit=100, remaining=99, reset=60" }
            RateLimitPolicy: { schema: { type: string }, example: "100;w=60" }
            RetryAfter: { schema: { type: integer, minimum: 1 }, description: whole seconds }
            WWWAuthenticate: { schema: { type: string }, example: 'Basic realm="signet"' }

          responses:
            BadRequest:
              description: Malformed input (`invalid_request`).
              content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } }
            OAuthError:
              description: "RFC 6749 §5.2: invalid_request, invalid_scope, unauthorized_client, unsupported_grant_type, unsupported_token_type."
              content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } }
            Unauthorized:
              description: No or a wrong credential.
              headers:
                WWW-Authenticate: { $ref: "#/components/headers/WWWAuthenticate" }
              content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } }
            Forbidden:
              description: Authenticated, but not allowed here.
              content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } }
            NotFound:
              description: No such agent, credential or endpoint.
              content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } }
            Conflict:
              description: A live agent of that name for the owner, or a change to a deactivated agent.
              content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } }
            TooLarge:
              description: The body is over 64 KiB.
              content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } }
            UnsupportedMediaType:
              description: The body is not application/json.
              content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } }
            RateLimited:
              description: Over the budget of the principal (or of the address, without one).
              headers:
                Retry-After: { $ref: "#/components/headers/RetryAfter" }
                RateLimit: { $ref: "#/components/headers/RateLimit" }
                RateLimit-Policy: { $ref: "#/components/headers/RateLimitPolicy" }
              content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } }
            Unavailable:
              description: A dependency failed (`temporarily_unavailable`); no partial write.
              headers:
                Retry-After: { $ref: "#/components/headers/RetryAfter" }
              content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } }
            Health:
              description: The health report.
              content: { application/json: { schema: { $ref: "#/components/schemas/HealthReport" } } }

          schemas:
            Error:
              type: object
              required: [error, error_description]
              properties:
                error: { type: string, examples: [invalid_request] }
                error_description: { type: string }
            AgentStatus: { type: string, enum: [active, suspended, deactivated] }
            Name: { type: string, minLength: 1, maxLength: 128, pattern: "^[^\\x00-\\x1F\\x7F-\\x9F]+$", description: "no control characters" }
            Scopes:
              type: array
              maxItems: 64
              items: { type: string, maxLength: 128, pattern: "^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$" }
            Metadata:
              type: object
              description: "A JSON object of at most 16 KiB; no string in it may hold NUL (PostgreSQL cannot store it)"
              propertyNames: { pattern: "^[^\\x00]*$" }
              additionalProperties: { $ref: "#/components/schemas/StorableJSON" }
            StorableJSON:
              anyOf:
                - { type: string, pattern: "^[^\\x00]*$" }
                - { type: [number, boolean, "null"] }
                - { type: array, items: { $ref: "#/components/schemas/StorableJSON" } }
                - { type: object, propertyNames: { pattern: "^[^\\x00]*$" }, additionalProperties: { $ref: "#/components/schemas/StorableJSON" } }
            AgentRegistration:
              type: object
              additionalProperties: false
              required: [name, owner]
              properties:
                name: { $ref: "#/components/schemas/Name" }
                owner: { $ref: "#/components/schemas/Name" }
                scopes: { $ref: "#/components/schemas/Scopes" }
                metadata: { $ref: "#/components/schemas/Metadata" }
            AgentUpdate:
              type: object
              minProperties: 1
              additionalProperties: false
              properties:
                scopes: { $ref: "#/components/schemas/Scopes" }
                metadata: { $ref: "#/components/schemas/Metadata" }
                status: { type: string, enum: [active, suspended] }
            Agent:
              type: object
              required: [id, name, owner, scopes, metadata, status, client_id, createdAt, updatedAt]
              properties:
                id: { type: string, format: uuid }
                name: { type: string }
                owner: { type: string }
                scopes: { $ref: "#/components/schemas/Scopes" }
                metadata: { $ref: "#/components/schemas/Metadata" }
                status: { $ref: "#/components/schemas/AgentStatus" }
                client_id: { type: string, pattern: "^sgc_" }
                createdAt: { type: string, format: date-time }
                updatedAt: { type: string, format: date-time }
            RegisteredAgent:
              allOf:
                - $ref: "#/components/schemas/Agent"
                - type: object
                  required: [client_secret, credential]
                  properties:
                    client_secret: { type: string, pattern: "^sgs_", description: Shown only here. }
                    credential:
                      type: object
                      required: [id, createdAt]
                      properties:
                        id: { type: string, format: uuid }
                        createdAt: { type: string, format: date-time }
            Credential:
              type: object
              required: [id, state, createdAt]
              properties:
                id: { type: string, format: uuid }
                state: { type: string, enum: [active, expiring, expired, revoked] }
                createdAt: { type: string, format: date-time }
                expiresAt: { type: [string, "null"], format: date-time }
                revokedAt: { type: [string, "null"], format: date-time }
                lastUsedAt: { type: [string, "null"], format: date-time }
            RotatedCredential:
              type: object
              required: [id, client_id, client_secret, createdAt]
              properties:
                id: { type: string, format: uuid }
                client_id: { type: string }
                client_secret: { type: string, description: Shown only here. }
                createdAt: { type: string, format: date-time }
                previous: { type: [object, "null"] }
                endedNow: { type: array, items: { type: string } }
            AuditEvent:
              type: object
              required: [id, occurredAt, action, actor]
              properties:
                id: { type: [integer, string] }
                occurredAt: { type: string, format: date-time }
                action: { type: string }
                actor: { type: string }
                agentId: { type: [string, "null"] }
                requestId: { type: [string, "null"], description: "The server's request id (Signet-Request-Id)" }
                clientRequestId: { type: [string, "null"], description: "The X-Request-Id the client sent, kept apart" }
                sourceAddress: { type: [string, "null"], description: "Where the request came from (TRUSTED_PROXIES applied)" }
                credentialId: { type: [string, "null"], description: "The credential a client authenticated with" }
                count: { type: integer, minimum: 1, description: "Events the row stands for: more than 1 only for token.denied" }
                details: { type: object }
            TokenResponse:
              type: object
              required: [access_token, token_type, expires_in, scope]
              properties:
                access_token: { type: string, description: "An RFC 9068 JWT: header {alg: ES256, typ: at+jwt, kid}" }
                token_type: { const: Bearer }
                expires_in: { type: integer }
                scope: { type: string }
            Introspection:
              type: object
              required: [active]
              properties:
                active: { type: boolean }
                scope: { type: string }
                client_id: { type: string }
                sub: { type: string }
                aud: { type: string }
                iss: { type: string }
                exp: { type: integer }
                iat: { type: integer }
                jti: { type: string }
                token_type: { type: string }
            Readiness:
              type: object
              required: [status]
              properties:
                status: { type: string, enum: [ready, not_ready, draining] }
                database: { type: string }
                vault: { type: string }
                latencyMs: { type: integer }
            DependencyHealth:
              type: object
              required: [status, latencyMs]
              properties:
                status: { type: string, enum: [healthy, degraded, unreachable] }
                latencyMs: { type: integer }
                message: { type: string }
            HealthReport:
              type: object
              required: [status, checkedAt, database]
              properties:
                status: { type: string, enum: [healthy, degraded, unhealthy] }
                checkedAt: { type: string, format: date-time }
                database: { $ref: "#/components/schemas/DependencyHealth" }
                redis: { $ref: "#/components/schemas/DependencyHealth" }
                vault: { $ref: "#/components/schemas/DependencyHealth" }
                opa: { $ref: "#/components/schemas/DependencyHealth" }
                credentialCache: { $ref: "#/components/schemas/DependencyHealth" }

        """#
}
