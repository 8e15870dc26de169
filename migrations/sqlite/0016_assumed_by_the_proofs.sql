-- Issue 25: what the invariant proofs assume of partners
-- (policies/invariants/assumptions.cedar), enforced whoever writes the
-- table. Kept in two dialect files (the triggers' syntax differs); the rules
-- are the same.
--
-- A reseller's distributor is a distributor, and a partner with resellers
-- stays one.
CREATE TRIGGER partners_distributor_is_a_distributor BEFORE INSERT ON partners
WHEN NEW.distributor_id IS NOT NULL
 AND (SELECT kind FROM partners WHERE id = NEW.distributor_id) IS NOT 'distributor'
BEGIN
    SELECT RAISE(ABORT, 'a reseller''s distributor must be a distributor');
END;
CREATE TRIGGER partners_distributor_stays_a_distributor BEFORE UPDATE OF kind, distributor_id ON partners
WHEN (NEW.distributor_id IS NOT NULL
      AND (SELECT kind FROM partners WHERE id = NEW.distributor_id) IS NOT 'distributor')
  OR (NEW.kind <> 'distributor'
      AND EXISTS (SELECT 1 FROM partners r WHERE r.distributor_id = NEW.id))
BEGIN
    SELECT RAISE(ABORT, 'a reseller''s distributor must be a distributor');
END;

-- Quotas lie in [0, 2147483647.00], as the API's amounts.
CREATE TRIGGER partners_quotas_within_bounds BEFORE INSERT ON partners
WHEN NEW.monthly_quota_cents NOT BETWEEN 0 AND 214748364700
  OR NEW.one_time_quota_cents NOT BETWEEN 0 AND 214748364700
BEGIN
    SELECT RAISE(ABORT, 'a quota lies in [0, 2147483647]');
END;
CREATE TRIGGER partners_quotas_stay_within_bounds
BEFORE UPDATE OF monthly_quota_cents, one_time_quota_cents ON partners
WHEN NEW.monthly_quota_cents NOT BETWEEN 0 AND 214748364700
  OR NEW.one_time_quota_cents NOT BETWEEN 0 AND 214748364700
BEGIN
    SELECT RAISE(ABORT, 'a quota lies in [0, 2147483647]');
END;
