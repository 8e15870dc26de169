-- Issue 22: a principal deleted and created again under the same id starts
-- afresh; nothing issued to the deleted one works for the new one. Kept in
-- two dialect files (the triggers' syntax differs); the rules are the same.
--
-- Deleting an operator or a customer, however it is done, removes its AK/SK
-- credentials and ends its sessions. (TG_ARGV[0]: `operator` or `customer`.)
CREATE FUNCTION pgw_principal_deleted() RETURNS trigger AS $$
BEGIN
    DELETE FROM credentials WHERE principal_kind = TG_ARGV[0] AND principal_id = OLD.id;
    UPDATE partner_sessions SET ended_at = pgw_utc_now(), end_reason = TG_ARGV[0] || '_deleted'
        WHERE ended_at IS NULL
          AND OLD.id = CASE TG_ARGV[0] WHEN 'operator' THEN operator_id ELSE customer_id END;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER operator_deleted AFTER DELETE ON operators
    FOR EACH ROW EXECUTE FUNCTION pgw_principal_deleted('operator');
CREATE TRIGGER customer_deleted AFTER DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION pgw_principal_deleted('customer');

-- Every principal row has a generation, new for every row created, that
-- its tokens carry: a token of an earlier principal of the same id names
-- another generation and is refused.
ALTER TABLE operators ADD COLUMN generation TEXT NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text);
ALTER TABLE customers ADD COLUMN generation TEXT NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text);
