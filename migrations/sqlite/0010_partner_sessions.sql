-- Assume-role sessions (issue 6): an operator switched into a customer account.
-- No secret is stored: the temporary secret is derived from the access key
-- with a key derived from the master key (src/sessions), so a copy of this
-- table alone cannot sign requests.
CREATE TABLE partner_sessions (
    id               TEXT PRIMARY KEY,
    access_key       TEXT NOT NULL UNIQUE,
    operator_id      TEXT NOT NULL REFERENCES operators (id),
    partner_id       TEXT NOT NULL REFERENCES partners (id),
    customer_id      TEXT NOT NULL REFERENCES customers (id),
    authorization_id TEXT NOT NULL REFERENCES customer_authorizations (id),
    scopes           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    ended_at         TEXT
);
CREATE INDEX partner_sessions_operator ON partner_sessions (operator_id, expires_at);
