-- hybrid-trust team state, schema version 1 (issue 26). Applied by the tool on first use, in
-- the schema the state URL names (default hybrid_trust), under an advisory lock.

-- One row per tenant: the record exactly as the file ledger writes it ({"format": N, "tenant":
-- {...}}, the same serde types), so a change of the record's fields needs no new schema. The
-- columns beside it are for finding and ordering rows.
CREATE TABLE tenants (
    key        text PRIMARY KEY,          -- the record's file name in a state dir (lowercase domain)
    domain     text NOT NULL,
    tenant_id  text,
    seq        bigint NOT NULL,           -- the order tenants were added in
    record     jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT ''   -- the host that wrote it last
);
CREATE INDEX tenants_tenant_id ON tenants (lower(tenant_id));

-- The audit log: each line as a state dir's audit.log has it (written before each change).
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    logged_at timestamptz NOT NULL DEFAULT now(),
    host      text NOT NULL DEFAULT '',
    entry     text NOT NULL
);

-- The reminders delivered, read from the records (they live there, once): who sent what, when.
CREATE VIEW reminders_sent AS
SELECT t.domain,
       t.tenant_id,
       r ->> 'credential'                 AS credential,
       (r ->> 'threshold_days')::bigint   AS threshold_days,
       r ->> 'channel'                    AS channel,
       r ->> 'sent_at'                    AS sent_at,
       r ->> 'sent_by'                    AS sent_by
FROM tenants t
CROSS JOIN LATERAL jsonb_array_elements(coalesce(t.record -> 'tenant' -> 'reminders_sent', '[]'::jsonb)) r;
