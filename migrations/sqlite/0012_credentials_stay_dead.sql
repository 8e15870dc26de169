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

-- Disabling an operator revokes its tokens and ends its live sessions, each
-- recorded in the customer's activity log with the reason: enabling it again
-- revives neither. The triggers hold however the change is made (seed,
-- CLI, SQL).
CREATE TRIGGER operator_disabled AFTER UPDATE OF status ON operators
WHEN NEW.status = 'disabled' AND OLD.status <> 'disabled'
BEGIN
    UPDATE operators SET tokens_not_before = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
        WHERE id = NEW.id;
    INSERT INTO activities (customer_id, session_id, operator_id, partner_id, action, target, detail, created_at)
        SELECT customer_id, id, operator_id, partner_id, 'end_session', id,
               '{"reason":"operator_disabled"}', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
        FROM partner_sessions WHERE operator_id = NEW.id AND ended_at IS NULL;
    UPDATE partner_sessions SET ended_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),
           end_reason = 'operator_disabled'
        WHERE operator_id = NEW.id AND ended_at IS NULL;
END;

-- Withdrawing a reseller's on_behalf grant ends its operators' sessions
-- (granting it again revives none).
CREATE TRIGGER on_behalf_withdrawn AFTER UPDATE OF grant_on_behalf ON partners
WHEN OLD.grant_on_behalf <> 0 AND NEW.grant_on_behalf = 0
BEGIN
    INSERT INTO activities (customer_id, session_id, operator_id, partner_id, action, target, detail, created_at)
        SELECT customer_id, id, operator_id, partner_id, 'end_session', id,
               '{"reason":"on_behalf_withdrawn"}', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
        FROM partner_sessions WHERE partner_id = NEW.id AND ended_at IS NULL;
    UPDATE partner_sessions SET ended_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),
           end_reason = 'on_behalf_withdrawn'
        WHERE partner_id = NEW.id AND ended_at IS NULL;
END;

-- A customer revoking (or rejecting) its authorization ends the sessions
-- bound to it: they are dead (R12), and the partner's session list shows
-- live sessions only.
CREATE TRIGGER authorization_withdrawn AFTER UPDATE OF status ON customer_authorizations
WHEN NEW.status IN ('revoked', 'rejected') AND OLD.status NOT IN ('revoked', 'rejected')
BEGIN
    INSERT INTO activities (customer_id, session_id, operator_id, partner_id, action, target, detail, created_at)
        SELECT customer_id, id, operator_id, partner_id, 'end_session', id,
               '{"reason":"authorization_revoked"}', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
        FROM partner_sessions WHERE authorization_id = NEW.id AND ended_at IS NULL;
    UPDATE partner_sessions SET ended_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),
           end_reason = 'authorization_revoked'
        WHERE authorization_id = NEW.id AND ended_at IS NULL;
END;
