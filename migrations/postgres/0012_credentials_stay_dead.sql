-- Issue 15, "credentials that stay dead": a revoked credential does not come
-- back when what revoked it is undone. Kept in two dialect files (the
-- triggers' syntax differs); the rules are the same.
--
-- tokens_not_before: X-Auth-Tokens of the principal issued at or before this
-- instant are refused (set when an operator is disabled, and by
-- `partner-gateway tokens revoke`).
ALTER TABLE operators ADD COLUMN tokens_not_before TEXT;
ALTER TABLE customers ADD COLUMN tokens_not_before TEXT;
-- Why a session ended: `ended` (switched back), `operator_disabled`,
-- `on_behalf_withdrawn`, `authorization_revoked`.
ALTER TABLE partner_sessions ADD COLUMN end_reason TEXT;

CREATE FUNCTION pgw_utc_now() RETURNS TEXT AS $$
    SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
$$ LANGUAGE sql STABLE;

-- Ends the live sessions of an operator (or of every operator of a partner), recorded in the customer's
-- activity log with the reason.
CREATE FUNCTION pgw_end_sessions(by_partner BOOLEAN, who TEXT, reason TEXT) RETURNS void AS $$
BEGIN
    INSERT INTO activities (customer_id, session_id, operator_id, partner_id, action, target, detail, created_at)
        SELECT customer_id, id, operator_id, partner_id, 'end_session', id,
               json_build_object('reason', reason)::text, pgw_utc_now()
        FROM partner_sessions
        WHERE ended_at IS NULL AND (CASE WHEN by_partner THEN partner_id ELSE operator_id END) = who;
    UPDATE partner_sessions SET ended_at = pgw_utc_now(), end_reason = reason
        WHERE ended_at IS NULL AND (CASE WHEN by_partner THEN partner_id ELSE operator_id END) = who;
END;
$$ LANGUAGE plpgsql;

-- Disabling an operator revokes its tokens and ends its live sessions:
-- enabling it again revives neither. The triggers hold however the change
-- is made (seed, CLI, SQL).
CREATE FUNCTION pgw_operator_disabled() RETURNS trigger AS $$
BEGIN
    UPDATE operators SET tokens_not_before = pgw_utc_now() WHERE id = NEW.id;
    PERFORM pgw_end_sessions(FALSE, NEW.id, 'operator_disabled');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER operator_disabled AFTER UPDATE OF status ON operators
    FOR EACH ROW WHEN (NEW.status = 'disabled' AND OLD.status <> 'disabled')
    EXECUTE FUNCTION pgw_operator_disabled();

-- Withdrawing a reseller's on_behalf grant ends its operators' sessions
-- (granting it again revives none).
CREATE FUNCTION pgw_on_behalf_withdrawn() RETURNS trigger AS $$
BEGIN
    PERFORM pgw_end_sessions(TRUE, NEW.id, 'on_behalf_withdrawn');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER on_behalf_withdrawn AFTER UPDATE OF grant_on_behalf ON partners
    FOR EACH ROW WHEN (OLD.grant_on_behalf AND NOT NEW.grant_on_behalf)
    EXECUTE FUNCTION pgw_on_behalf_withdrawn();

-- A customer revoking (or rejecting) its authorization ends the sessions
-- bound to it: they are dead (R12), and the partner's session list shows
-- live sessions only.
CREATE FUNCTION pgw_authorization_withdrawn() RETURNS trigger AS $$
BEGIN
    INSERT INTO activities (customer_id, session_id, operator_id, partner_id, action, target, detail, created_at)
        SELECT customer_id, id, operator_id, partner_id, 'end_session', id,
               '{"reason":"authorization_revoked"}', pgw_utc_now()
        FROM partner_sessions WHERE authorization_id = NEW.id AND ended_at IS NULL;
    UPDATE partner_sessions SET ended_at = pgw_utc_now(), end_reason = 'authorization_revoked'
        WHERE authorization_id = NEW.id AND ended_at IS NULL;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER authorization_withdrawn AFTER UPDATE OF status ON customer_authorizations
    FOR EACH ROW WHEN (NEW.status IN ('revoked', 'rejected') AND OLD.status NOT IN ('revoked', 'rejected'))
    EXECUTE FUNCTION pgw_authorization_withdrawn();

-- Credentials are announced like entities (`credentials:<access key>`), so a
-- rotated or revoked secret is heard by every gateway at once.
CREATE FUNCTION pgw_notify_credential_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('pgw_entities', 'credentials:' || COALESCE(NEW.access_key, OLD.access_key));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER credentials_changed AFTER INSERT OR UPDATE OR DELETE ON credentials
    FOR EACH ROW EXECUTE FUNCTION pgw_notify_credential_change();
