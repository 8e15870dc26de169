-- partner-gateway schema, version 1. Kept in two dialect files
-- (migrations/sqlite, migrations/postgres) that differ only in id auto-increment and flag types.
-- Money is integer cents (BIGINT); instants are fixed-width RFC 3339 UTC text.
-- Flags are BOOLEAN on PostgreSQL and INTEGER 0/1 on SQLite (sqlx's Any driver
-- cannot decode SQLite's BOOLEAN); read them with `store::flag`.

CREATE TABLE partners (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('solution_provider', 'distributor', 'reseller')),
    distributor_id       TEXT REFERENCES partners (id),
    grant_budget         INTEGER NOT NULL DEFAULT FALSE,
    grant_freeze         INTEGER NOT NULL DEFAULT FALSE,
    grant_on_behalf      INTEGER NOT NULL DEFAULT FALSE,
    monthly_quota_cents  BIGINT,
    one_time_quota_cents BIGINT,
    created_at           TEXT NOT NULL,
    CHECK ((kind = 'reseller') = (distributor_id IS NOT NULL))
);
CREATE INDEX partners_distributor ON partners (distributor_id);

CREATE TABLE operators (
    id         TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL REFERENCES partners (id),
    name       TEXT NOT NULL,
    roles      TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at TEXT NOT NULL
);
CREATE INDEX operators_partner ON operators (partner_id);

-- Access key -> principal. The secret is sealed (AES-256-GCM, see src/crypto.rs).
CREATE TABLE credentials (
    access_key     TEXT PRIMARY KEY,
    principal_kind TEXT NOT NULL CHECK (principal_kind IN ('operator', 'customer')),
    principal_id   TEXT NOT NULL,
    secret_sealed  TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE INDEX credentials_principal ON credentials (principal_kind, principal_id);

CREATE TABLE customers (
    id                 TEXT PRIMARY KEY,
    account_name       TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    email              TEXT,
    phone              TEXT,
    partner_id         TEXT NOT NULL REFERENCES partners (id),
    association        TEXT NOT NULL CHECK (association IN ('referral', 'reseller')),
    account_manager_id TEXT REFERENCES operators (id),
    frozen             INTEGER NOT NULL DEFAULT FALSE,
    freeze_type        TEXT CHECK (freeze_type IN ('ACCOUNT', 'ACCOUNT_AND_RESOURCE')),
    labels             TEXT NOT NULL DEFAULT '[]',
    associated_on      TEXT NOT NULL,
    created_at         TEXT NOT NULL
);
CREATE INDEX customers_partner ON customers (partner_id);
CREATE INDEX customers_account_manager ON customers (account_manager_id);

CREATE TABLE customer_authorizations (
    id            TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL REFERENCES customers (id),
    partner_id    TEXT NOT NULL REFERENCES partners (id),
    scopes        TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'revoked')),
    duration_days BIGINT,
    requested_by  TEXT REFERENCES operators (id),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
CREATE INDEX customer_authorizations_customer ON customer_authorizations (customer_id, partner_id);

CREATE TABLE budgets (
    customer_id  TEXT PRIMARY KEY REFERENCES customers (id),
    budget_type  TEXT NOT NULL CHECK (budget_type IN ('MONTHLY', 'PACKAGE')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    used_cents   BIGINT NOT NULL DEFAULT 0,
    updated_at   TEXT NOT NULL
);

CREATE TABLE budget_records (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id           TEXT NOT NULL REFERENCES customers (id),
    partner_id            TEXT REFERENCES partners (id),
    operator_id           TEXT REFERENCES operators (id),
    budget_type           TEXT NOT NULL,
    old_amount_cents      BIGINT,
    new_amount_cents      BIGINT NOT NULL,
    cancel_partner_frozen INTEGER NOT NULL DEFAULT FALSE,
    created_at            TEXT NOT NULL
);
CREATE INDEX budget_records_customer ON budget_records (customer_id);

CREATE TABLE orders (
    id                    TEXT PRIMARY KEY,
    customer_id           TEXT NOT NULL REFERENCES customers (id),
    status                BIGINT NOT NULL,
    order_type            BIGINT NOT NULL,
    service_type_code     TEXT NOT NULL,
    source_type           BIGINT NOT NULL DEFAULT 1,
    amount_cents          BIGINT NOT NULL,
    official_amount_cents BIGINT NOT NULL,
    currency              TEXT NOT NULL DEFAULT 'USD',
    created_at            TEXT NOT NULL,
    payment_time          TEXT,
    session_id            TEXT,
    source_operator_id    TEXT
);
CREATE INDEX orders_customer ON orders (customer_id, created_at);

CREATE TABLE order_line_items (
    id                 TEXT PRIMARY KEY,
    order_id           TEXT NOT NULL REFERENCES orders (id),
    product_id         TEXT NOT NULL,
    service_type_code  TEXT NOT NULL,
    resource_type_code TEXT,
    region_code        TEXT,
    period_type        BIGINT,
    period_num         BIGINT,
    subscription_num   BIGINT NOT NULL DEFAULT 1,
    amount_cents       BIGINT NOT NULL
);
CREATE INDEX order_line_items_order ON order_line_items (order_id);

CREATE TABLE price_adjustments (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id            TEXT NOT NULL REFERENCES orders (id),
    operator_id         TEXT REFERENCES operators (id),
    amount_before_cents BIGINT NOT NULL,
    amount_after_cents  BIGINT NOT NULL,
    reason              TEXT NOT NULL,
    created_at          TEXT NOT NULL
);
CREATE INDEX price_adjustments_order ON price_adjustments (order_id);

CREATE TABLE resources (
    id                 TEXT PRIMARY KEY,
    customer_id        TEXT NOT NULL REFERENCES customers (id),
    charging           TEXT NOT NULL CHECK (charging IN ('yearly_monthly', 'pay_per_use')),
    service_type_code  TEXT NOT NULL,
    resource_type_code TEXT,
    name               TEXT NOT NULL,
    region_code        TEXT,
    status             TEXT NOT NULL CHECK (status IN ('in_use', 'stopped', 'frozen', 'expired', 'closed')),
    -- the status to return to when an ACCOUNT_AND_RESOURCE freeze is lifted
    status_before_freeze TEXT,
    expire_at          TEXT,
    order_id           TEXT REFERENCES orders (id),
    created_at         TEXT NOT NULL
);
CREATE INDEX resources_customer ON resources (customer_id, charging);

CREATE TABLE coupons (
    id               TEXT PRIMARY KEY,
    customer_id      TEXT NOT NULL REFERENCES customers (id),
    face_value_cents BIGINT NOT NULL,
    balance_cents    BIGINT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('available', 'used', 'expired')),
    expire_at        TEXT NOT NULL
);
CREATE INDEX coupons_customer ON coupons (customer_id);

CREATE TABLE expenditures (
    id                TEXT PRIMARY KEY,
    customer_id       TEXT NOT NULL REFERENCES customers (id),
    service_type_code TEXT NOT NULL,
    amount_cents      BIGINT NOT NULL,
    spent_on          TEXT NOT NULL
);
CREATE INDEX expenditures_customer ON expenditures (customer_id, spent_on);

CREATE TABLE export_tasks (
    id             TEXT PRIMARY KEY,
    principal_kind TEXT NOT NULL,
    principal_id   TEXT NOT NULL,
    partner_id     TEXT REFERENCES partners (id),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    order_ids      TEXT,
    row_count      BIGINT,
    csv            TEXT,
    created_at     TEXT NOT NULL,
    completed_at   TEXT
);
CREATE INDEX export_tasks_owner ON export_tasks (principal_kind, principal_id);

-- Who acted on a customer's account on its behalf (R7: the customer can list these).
CREATE TABLE activities (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    session_id  TEXT,
    operator_id TEXT,
    partner_id  TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    detail      TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX activities_customer ON activities (customer_id, created_at);
