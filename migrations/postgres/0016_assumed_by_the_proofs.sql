-- Issue 25: what the invariant proofs assume of partners
-- (policies/invariants/assumptions.cedar), enforced whoever writes the
-- table. Kept in two dialect files (the triggers' syntax differs); the rules
-- are the same.
--
-- A reseller's distributor is a distributor, and a partner with resellers
-- stays one.
CREATE FUNCTION partners_distributor_is_a_distributor() RETURNS trigger AS $$
BEGIN
    IF (NEW.distributor_id IS NOT NULL
        AND (SELECT kind FROM partners WHERE id = NEW.distributor_id) IS DISTINCT FROM 'distributor')
       OR (TG_OP = 'UPDATE' AND NEW.kind <> 'distributor'
           AND EXISTS (SELECT 1 FROM partners r WHERE r.distributor_id = NEW.id)) THEN
        RAISE EXCEPTION 'a reseller''s distributor must be a distributor'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER partners_distributor_is_a_distributor
    BEFORE INSERT OR UPDATE OF kind, distributor_id ON partners
    FOR EACH ROW EXECUTE FUNCTION partners_distributor_is_a_distributor();

-- Quotas lie in [0, 2147483647.00], as the API's amounts.
ALTER TABLE partners ADD CONSTRAINT partners_quotas_within_bounds CHECK (
    monthly_quota_cents BETWEEN 0 AND 214748364700
    AND one_time_quota_cents BETWEEN 0 AND 214748364700);
