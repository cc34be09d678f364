import Logging

/// One versioned schema change.
struct Migration: Sendable {
    let version: Int
    let name: String
    let sql: String
}

/// The schema, as an ordered list of migrations compiled into the binary (no resource files to
/// lose on deployment). Never edit an applied migration: add the next version.
enum Migrations {
    static let all: [Migration] = [
        Migration(
            version: 1,
            name: "agents, credentials and server keys",
            sql: """
                CREATE TABLE agents (
                    seq bigserial NOT NULL UNIQUE,
                    id uuid PRIMARY KEY,
                    name text NOT NULL,
                    owner text NOT NULL,
                    scopes jsonb NOT NULL DEFAULT '[]',
                    metadata jsonb NOT NULL DEFAULT '{}',
                    status text NOT NULL CHECK (status IN ('active', 'suspended', 'deactivated')),
                    client_id text NOT NULL UNIQUE,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    deactivated_at timestamptz
                );
                CREATE UNIQUE INDEX agents_owner_name_key ON agents (owner, lower(name)) WHERE status <> 'deactivated';
                CREATE TABLE agent_credentials (
                    id uuid PRIMARY KEY,
                    agent_id uuid NOT NULL REFERENCES agents (id),
                    secret_hash bytea NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    expires_at timestamptz,
                    revoked_at timestamptz,
                    last_used_at timestamptz
                );
                CREATE INDEX agent_credentials_agent_id ON agent_credentials (agent_id);
                CREATE TABLE server_keys (
                    name text PRIMARY KEY,
                    material bytea NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now()
                );
                """
        ),
        Migration(
            version: 2,
            name: "signing keys, revoked tokens, audit events",
            sql: """
                CREATE TABLE signing_keys (
                    kid text PRIMARY KEY,
                    algorithm text NOT NULL,
                    private_key_pem text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    retired_at timestamptz,
                    publish_until timestamptz
                );
                CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((true)) WHERE retired_at IS NULL;
                CREATE TABLE revoked_tokens (
                    jti text PRIMARY KEY,
                    expires_at timestamptz NOT NULL,
                    revoked_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
                CREATE TABLE audit_events (
                    id bigserial PRIMARY KEY,
                    occurred_at timestamptz NOT NULL DEFAULT now(),
                    action text NOT NULL,
                    actor text NOT NULL,
                    agent_id uuid,
                    request_id text,
                    details jsonb NOT NULL DEFAULT '{}'
                );
                CREATE INDEX audit_events_agent_id ON audit_events (agent_id, id);
                CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'audit_events is append-only';
                END
                $$;
                CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
                    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
                """
        ),
        Migration(
            version: 3,
            name: "token generation",
            sql: """
                -- Every token carries the generation it was issued in; it is bumped when the agent
                -- stops being active or loses a scope, so tokens issued before stay dead.
                ALTER TABLE agents ADD COLUMN token_generation integer NOT NULL DEFAULT 0;
                """
        ),
        Migration(
            version: 4,
            name: "client change notifications",
            sql: """
                -- Every change a cached client depends on announces its client_id on channel
                -- signet_clients, delivered when the transaction commits (and once per id and
                -- transaction) to every instance listening (ChangeListener). last_used_at, metadata
                -- and name do not announce anything.
                CREATE FUNCTION signet_agent_changed() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF TG_OP IN ('UPDATE', 'DELETE') THEN
                        PERFORM pg_notify('signet_clients', OLD.client_id);
                    END IF;
                    IF TG_OP IN ('INSERT', 'UPDATE') THEN
                        PERFORM pg_notify('signet_clients', NEW.client_id);
                    END IF;
                    RETURN NULL;
                END
                $$;
                CREATE TRIGGER agents_changed
                    AFTER INSERT OR DELETE OR UPDATE OF status, scopes, owner, client_id, token_generation ON agents
                    FOR EACH ROW EXECUTE FUNCTION signet_agent_changed();
                CREATE FUNCTION signet_credential_changed() RETURNS trigger LANGUAGE plpgsql AS $$
                DECLARE
                    changed text;
                BEGIN
                    IF TG_OP IN ('UPDATE', 'DELETE') THEN
                        SELECT client_id INTO changed FROM agents WHERE id = OLD.agent_id;
                        IF changed IS NOT NULL THEN PERFORM pg_notify('signet_clients', changed); END IF;
                    END IF;
                    IF TG_OP IN ('INSERT', 'UPDATE') THEN
                        SELECT client_id INTO changed FROM agents WHERE id = NEW.agent_id;
                        IF changed IS NOT NULL THEN PERFORM pg_notify('signet_clients', changed); END IF;
                    END IF;
                    RETURN NULL;
                END
                $$;
                CREATE TRIGGER agent_credentials_changed
                    AFTER INSERT OR DELETE OR UPDATE OF agent_id, secret_hash, expires_at, revoked_at ON agent_credentials
                    FOR EACH ROW EXECUTE FUNCTION signet_credential_changed();
                """
        ),
        Migration(
            version: 5,
            name: "client change notifications always fire",
            sql: """
                -- The change triggers fire under session_replication_role = replica too (logical
                -- replication's apply, pg_restore), a TRUNCATE announces every client ('*'), and
                -- the functions resolve their tables in the schema they were created in.
                -- ChangeListener checks on every heartbeat that all four are enabled ALWAYS.
                CREATE FUNCTION signet_clients_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_notify('signet_clients', '*');
                    RETURN NULL;
                END
                $$;
                CREATE TRIGGER agents_truncated AFTER TRUNCATE ON agents
                    FOR EACH STATEMENT EXECUTE FUNCTION signet_clients_truncated();
                CREATE TRIGGER agent_credentials_truncated AFTER TRUNCATE ON agent_credentials
                    FOR EACH STATEMENT EXECUTE FUNCTION signet_clients_truncated();
                ALTER FUNCTION signet_agent_changed() SET search_path FROM CURRENT;
                ALTER FUNCTION signet_credential_changed() SET search_path FROM CURRENT;
                ALTER FUNCTION signet_clients_truncated() SET search_path FROM CURRENT;
                ALTER TABLE agents ENABLE ALWAYS TRIGGER agents_changed;
                ALTER TABLE agents ENABLE ALWAYS TRIGGER agents_truncated;
                ALTER TABLE agent_credentials ENABLE ALWAYS TRIGGER agent_credentials_changed;
                ALTER TABLE agent_credentials ENABLE ALWAYS TRIGGER agent_credentials_truncated;
                """
        ),
        Migration(
            version: 6,
            name: "audit sources and aggregated denials",
            sql: """
                -- Who did it from where: the source address, the credential a client authenticated
                -- with, and the client's own X-Request-Id apart from the server's request id.
                -- Refused token requests are aggregated: one token.denied row per agent, address,
                -- minute (bucket, epoch minutes) and reason, whose count is the only column that may change.
                ALTER TABLE audit_events
                    ADD COLUMN source_address text,
                    ADD COLUMN credential_id uuid,
                    ADD COLUMN client_request_id text,
                    ADD COLUMN count integer NOT NULL DEFAULT 1,
                    ADD COLUMN bucket bigint;
                CREATE UNIQUE INDEX audit_events_denials ON audit_events (agent_id, source_address, bucket, (details->>'reason'))
                    WHERE action = 'token.denied' AND bucket IS NOT NULL;
                CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF TG_OP = 'UPDATE' AND OLD.action = 'token.denied' AND OLD.bucket IS NOT NULL
                        AND NEW.count > OLD.count
                        AND (NEW.id, NEW.occurred_at, NEW.action, NEW.actor, NEW.agent_id, NEW.request_id, NEW.details,
                             NEW.source_address, NEW.credential_id, NEW.client_request_id, NEW.bucket)
                            IS NOT DISTINCT FROM
                            (OLD.id, OLD.occurred_at, OLD.action, OLD.actor, OLD.agent_id, OLD.request_id, OLD.details,
                             OLD.source_address, OLD.credential_id, OLD.client_request_id, OLD.bucket)
                    THEN
                        RETURN NEW;
                    END IF;
                    RAISE EXCEPTION 'audit_events is append-only';
                END
                $$;
                """
        ),
        Migration(
            version: 7,
            name: "public key credentials, resources and DPoP binding",
            sql: """
                -- A credential is a secret's hash or a public key set (private_key_jwt), never both;
                -- an agent's method is fixed once it holds keys (it never gets a secret again).
                -- resources: the RFC 8707 resources its tokens may name as audience; dpop_bound:
                -- its token requests must carry a DPoP proof (RFC 9449 §5.2).
                ALTER TABLE agents
                    ADD COLUMN resources jsonb NOT NULL DEFAULT '[]',
                    ADD COLUMN dpop_bound boolean NOT NULL DEFAULT false,
                    ADD COLUMN auth_method text NOT NULL DEFAULT 'client_secret'
                        CHECK (auth_method IN ('client_secret', 'private_key_jwt'));
                ALTER TABLE agent_credentials
                    ALTER COLUMN secret_hash DROP NOT NULL,
                    ADD COLUMN jwks jsonb,
                    ADD CONSTRAINT agent_credentials_secret_or_keys CHECK ((secret_hash IS NULL) <> (jwks IS NULL));
                DROP TRIGGER agents_changed ON agents;
                CREATE TRIGGER agents_changed
                    AFTER INSERT OR DELETE OR UPDATE OF status, scopes, owner, client_id, token_generation, resources, dpop_bound,
                        auth_method ON agents
                    FOR EACH ROW EXECUTE FUNCTION signet_agent_changed();
                ALTER TABLE agents ENABLE ALWAYS TRIGGER agents_changed;
                """
        ),
        Migration(
            version: 8,
            name: "delegation and trusted issuers",
            sql: """
                -- may_act: the agents that may exchange a token this agent holds for one acting on
                -- its behalf (RFC 8693 §4.4). federated_issuer and federated_subject: the identity a
                -- trusted issuer's assertion names for this agent (RFC 7523 §2.1), one agent per pair.
                -- trusted_issuers: whose assertions the JWT-bearer grant takes, with their keys (a
                -- JWKS URI or a static set, exactly one) and the audience they must name.
                ALTER TABLE agents
                    ADD COLUMN may_act jsonb NOT NULL DEFAULT '[]',
                    ADD COLUMN federated_issuer text,
                    ADD COLUMN federated_subject text,
                    ADD CONSTRAINT agents_federated_pair CHECK ((federated_issuer IS NULL) = (federated_subject IS NULL));
                CREATE UNIQUE INDEX agents_federated_subject ON agents (federated_issuer, federated_subject)
                    WHERE federated_issuer IS NOT NULL;
                CREATE TABLE trusted_issuers (
                    id uuid PRIMARY KEY,
                    issuer text NOT NULL UNIQUE,
                    jwks_uri text,
                    jwks jsonb,
                    audience text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    CHECK ((jwks_uri IS NULL) <> (jwks IS NULL))
                );
                """
        ),
    ]

    /// An arbitrary constant: the advisory lock every instance takes while migrating.
    static let advisoryLockKey = "7309145513297051041"

    /// Applies the missing migrations, each in its own transaction, under a session advisory
    /// lock so that instances starting together apply each one exactly once. Returns the
    /// versions this call applied.
    @discardableResult
    static func apply(_ migrations: [Migration] = all, on connection: PostgresConnection, logger: Logger) throws -> [Int] {
        // Never on a standby: it could not write, and the schema it would report is the primary's.
        guard let recovery = try connection.query("SELECT pg_is_in_recovery() AS standby").records.first else {
            throw DatabaseError.unexpectedResult("pg_is_in_recovery() returned no row")
        }
        if try recovery.bool("standby") {
            throw DatabaseError.server(
                sqlState: "25006",
                message: "DATABASE_URL reached a standby (in recovery); migrations run on the primary only: name the primary, or "
                    + "every host with target_session_attrs=read-write",
                constraint: nil)
        }
        try connection.query("SELECT pg_advisory_lock($1::bigint)", [advisoryLockKey])
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1::bigint)", [advisoryLockKey]) }
        try connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        let applied = Set(
            try connection.query("SELECT version FROM schema_migrations").records.compactMap { $0["version"].flatMap(Int.init) })
        var appliedNow: [Int] = []
        for migration in migrations.sorted(by: { $0.version < $1.version }) where !applied.contains(migration.version) {
            try connection.query("BEGIN")
            do {
                try connection.execute(script: migration.sql)
                try connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [String(migration.version), migration.name])
                try connection.query("COMMIT")
            } catch {
                _ = try? connection.query("ROLLBACK")
                throw error
            }
            logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            appliedNow.append(migration.version)
        }
        return appliedNow
    }
}
