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

-- Every change to what the policies read is announced on channel
-- `pgw_entities` as `<table>:<id>`, so that every gateway sharing this
-- database drops its cached copy at once (LISTEN in src/sessions/changes.rs).
CREATE FUNCTION pgw_notify_entity_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('pgw_entities', TG_TABLE_NAME || ':' || COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER partners_changed AFTER INSERT OR UPDATE OR DELETE ON partners
    FOR EACH ROW EXECUTE FUNCTION pgw_notify_entity_change();
CREATE TRIGGER operators_changed AFTER INSERT OR UPDATE OR DELETE ON operators
    FOR EACH ROW EXECUTE FUNCTION pgw_notify_entity_change();
CREATE TRIGGER customers_changed AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION pgw_notify_entity_change();
CREATE TRIGGER customer_authorizations_changed AFTER INSERT OR UPDATE OR DELETE ON customer_authorizations
    FOR EACH ROW EXECUTE FUNCTION pgw_notify_entity_change();
CREATE TRIGGER partner_sessions_changed AFTER INSERT OR UPDATE OR DELETE ON partner_sessions
    FOR EACH ROW EXECUTE FUNCTION pgw_notify_entity_change();
