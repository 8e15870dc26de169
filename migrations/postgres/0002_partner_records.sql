-- partner-gateway schema, version 2: records of partner-side changes (who did
-- what, when) that version 1 had no place for, and two columns the partner
-- routes keep. Kept in two dialect files that differ only in id auto-increment
-- and flag types, like 0001.

-- Every change of a customer's freeze state: by the freeze/unfreeze routes or
-- by a budget update with cancel_partner_frozen = "1".
CREATE TABLE freeze_records (
    id          BIGSERIAL PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    action      TEXT NOT NULL CHECK (action IN ('freeze', 'unfreeze')),
    freeze_type TEXT NOT NULL CHECK (freeze_type IN ('ACCOUNT', 'ACCOUNT_AND_RESOURCE')),
    reason      TEXT NOT NULL,
    via         TEXT NOT NULL CHECK (via IN ('freeze', 'unfreeze', 'budget')),
    partner_id  TEXT REFERENCES partners (id),
    operator_id TEXT REFERENCES operators (id),
    created_at  TEXT NOT NULL
);
CREATE INDEX freeze_records_customer ON freeze_records (customer_id, created_at);

-- Every change of a reseller's grants (R5): the values set, by whom, when.
CREATE TABLE grant_records (
    id                   BIGSERIAL PRIMARY KEY,
    partner_id           TEXT NOT NULL REFERENCES partners (id),
    operator_id          TEXT REFERENCES operators (id),
    grant_budget         BOOLEAN NOT NULL,
    grant_freeze         BOOLEAN NOT NULL,
    grant_on_behalf      BOOLEAN NOT NULL,
    monthly_quota_cents  BIGINT,
    one_time_quota_cents BIGINT,
    created_at           TEXT NOT NULL
);
CREATE INDEX grant_records_partner ON grant_records (partner_id, created_at);

-- UpdateSubCustomerBudget's frozen_operate_type: 0 manual freeze, 1 freeze
-- automatically once the budget is used up; NULL = never set.
ALTER TABLE budgets ADD COLUMN frozen_operate_type BIGINT;

-- When the customer approved; the validity runs from here (expires_at =
-- approved_at + duration_days).
ALTER TABLE customer_authorizations ADD COLUMN approved_at TEXT;
