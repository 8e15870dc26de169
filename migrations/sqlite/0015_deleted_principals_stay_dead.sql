-- Issue 22: a principal deleted and created again under the same id starts
-- afresh; nothing issued to the deleted one works for the new one. Kept in
-- two dialect files (the triggers' syntax differs); the rules are the same.
--
-- Deleting an operator or a customer, however it is done (even with the
-- sqlite3 shell, where foreign keys are off by default), removes its AK/SK
-- credentials and ends its sessions.
CREATE TRIGGER operator_deleted AFTER DELETE ON operators
BEGIN
    DELETE FROM credentials WHERE principal_kind = 'operator' AND principal_id = OLD.id;
    UPDATE partner_sessions SET ended_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),
           end_reason = 'operator_deleted'
        WHERE operator_id = OLD.id AND ended_at IS NULL;
END;
CREATE TRIGGER customer_deleted AFTER DELETE ON customers
BEGIN
    DELETE FROM credentials WHERE principal_kind = 'customer' AND principal_id = OLD.id;
    UPDATE partner_sessions SET ended_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),
           end_reason = 'customer_deleted'
        WHERE customer_id = OLD.id AND ended_at IS NULL;
END;

-- Every principal row has a generation, new for every row created, that
-- its tokens carry: a token of an earlier principal of the same id names
-- another generation and is refused.
ALTER TABLE operators ADD COLUMN generation TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN generation TEXT NOT NULL DEFAULT '';
UPDATE operators SET generation = lower(hex(randomblob(16)));
UPDATE customers SET generation = lower(hex(randomblob(16)));
CREATE TRIGGER operator_created AFTER INSERT ON operators
BEGIN
    UPDATE operators SET generation = lower(hex(randomblob(16))) WHERE id = NEW.id;
END;
CREATE TRIGGER customer_created AFTER INSERT ON customers
BEGIN
    UPDATE customers SET generation = lower(hex(randomblob(16))) WHERE id = NEW.id;
END;
