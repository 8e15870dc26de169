-- Issue 12: the policies alone decide who may switch into an account. A
-- session is bound to the customer's live authorization when there is one;
-- a session made without one (only a policy set that allows it can make
-- one) has none, and the R12 guardrail denies it everything.
CREATE TABLE partner_sessions_new (
    id               TEXT PRIMARY KEY,
    access_key       TEXT NOT NULL UNIQUE,
    operator_id      TEXT NOT NULL REFERENCES operators (id),
    partner_id       TEXT NOT NULL REFERENCES partners (id),
    customer_id      TEXT NOT NULL REFERENCES customers (id),
    authorization_id TEXT REFERENCES customer_authorizations (id),
    scopes           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    ended_at         TEXT
);
INSERT INTO partner_sessions_new (id, access_key, operator_id, partner_id, customer_id,
    authorization_id, scopes, created_at, expires_at, ended_at)
SELECT id, access_key, operator_id, partner_id, customer_id,
    authorization_id, scopes, created_at, expires_at, ended_at FROM partner_sessions;
DROP TABLE partner_sessions;
ALTER TABLE partner_sessions_new RENAME TO partner_sessions;
CREATE INDEX partner_sessions_operator ON partner_sessions (operator_id, expires_at);
