-- Issue 27: a partner's own rate for each of its principals (overriding
-- `serve --rate-limit`), and the first answer of each creating request a
-- client retries with the same `X-Client-Token`.
CREATE TABLE rate_limits (
    partner_id TEXT PRIMARY KEY REFERENCES partners(id) ON DELETE CASCADE,
    -- Requests per second, sustained; 0: unlimited.
    rate INTEGER NOT NULL,
    burst INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE client_tokens (
    -- The principal that sent it (`Operator::"op-1"`): a key is its own.
    principal TEXT NOT NULL,
    token TEXT NOT NULL,
    operation TEXT NOT NULL,
    -- SHA-256 of the request body, hex: the same key with another body is refused.
    body_sha256 TEXT NOT NULL,
    -- NULL while the first request is in flight.
    status INTEGER,
    body TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (principal, token)
);
CREATE INDEX client_tokens_created ON client_tokens (created_at);
