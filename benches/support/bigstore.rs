//! A large generated store for the benchmarks: `DISTRIBUTORS` distributors
//! with `RESELLERS_PER_DISTRIBUTOR` resellers each, three operators per
//! partner (admin, finance, account manager), and any number of customers
//! with one authorization each. Shared by `benches/decision.rs` and
//! `examples/bench_tool.rs` (included with `#[path]`), so the gateway's load
//! test and the decision bench read the very same data.
//!
//! Generation is multi-row `INSERT`s of generated ids in one transaction
//! (1M customers: well under a minute on SQLite). SQLite files are cached
//! in `<target>/bench-data/`, PostgreSQL databases stay in the cluster as
//! `pgw_bench_<n>`; either is reused when its customer count matches.

use partner_gateway::crypto::SecretCipher;
use partner_gateway::store::Store;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const DISTRIBUTORS: usize = 10;
pub const RESELLERS_PER_DISTRIBUTOR: usize = 10;
/// The instant every generated row is created at (the demo's "now").
pub const NOW: &str = "2026-11-21T12:00:00Z";
/// When the generated authorizations expire: a century ahead, so that a load
/// run against the real clock finds them live whatever the date.
const AUTHORIZATIONS_EXPIRE: &str = "2126-01-01T00:00:00Z";

/// The cipher sealing generated secrets (only bench credentials use it).
pub fn cipher() -> SecretCipher {
    SecretCipher::from_bytes(&[7u8; 32]).expect("32-byte key")
}

/// `<target dir>/bench-data`, honouring `CARGO_TARGET_DIR`.
pub fn data_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let target = if target.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(target)
    } else {
        target
    };
    target.join("bench-data")
}

/// Every generated partner: `(id, Some(distributor))` for resellers.
pub fn partners() -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for d in 0..DISTRIBUTORS {
        out.push((format!("dist-{d:02}"), None));
        for r in 0..RESELLERS_PER_DISTRIBUTOR {
            out.push((format!("res-{d:02}-{r:02}"), Some(format!("dist-{d:02}"))));
        }
    }
    out
}

pub fn customer_id(i: usize) -> String {
    format!("c-{i:06}")
}

/// The distributor at the top of customer `i`'s hierarchy.
pub fn customer_distributor(i: usize) -> String {
    format!("dist-{:02}", i % DISTRIBUTORS)
}

/// The partner of customer `i`: mostly resellers, every 11th a distributor's own.
pub fn customer_partner(i: usize) -> String {
    let d = i % DISTRIBUTORS;
    let slot = (i / DISTRIBUTORS) % (RESELLERS_PER_DISTRIBUTOR + 1);
    if slot == RESELLERS_PER_DISTRIBUTOR {
        format!("dist-{d:02}")
    } else {
        format!("res-{d:02}-{slot:02}")
    }
}

/// Whether customer `i` is a resale customer (budgets apply); one in ten is a referral.
pub fn is_resale(i: usize) -> bool {
    i % 10 != 9
}

/// Opens the SQLite bench database for `customers`, generating it when it
/// is missing or holds another count.
pub async fn sqlite(customers: usize) -> Store {
    let dir = data_dir();
    std::fs::create_dir_all(&dir).expect("creating the bench data directory");
    sqlite_at(&dir.join(format!("decision-{customers}.db")), customers).await
}

/// Opens the SQLite bench database at `path`, generating it when it is
/// missing or holds another count.
pub async fn sqlite_at(path: &Path, customers: usize) -> Store {
    let url = format!("sqlite://{}", path.display());
    if path.exists() {
        let store = Store::connect(&url, cipher())
            .await
            .expect("opening the bench database");
        if count(&store).await == customers {
            return store;
        }
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    let store = Store::connect(&url, cipher())
        .await
        .expect("creating the bench database");
    generate(&store, customers, &path.display().to_string()).await;
    store
}

/// Opens (or creates and generates) `pgw_bench_<customers>` in the
/// PostgreSQL cluster that `admin_url` reaches.
pub async fn postgres(admin_url: &str, customers: usize) -> Store {
    let name = format!("pgw_bench_{customers}");
    let url = database_url(admin_url, &name);
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&admin)
        .await
        .expect("listing databases");
    if exists.is_some() {
        let store = Store::connect(&url, cipher())
            .await
            .expect("opening the bench database");
        if count(&store).await == customers {
            admin.close().await;
            return store;
        }
        store.close().await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&admin)
            .await
            .expect("dropping a stale bench database");
    }
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("creating the bench database");
    admin.close().await;
    let store = Store::connect(&url, cipher())
        .await
        .expect("opening the bench database");
    generate(&store, customers, &name).await;
    store
}

/// `admin_url` with its database name replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let (server, _) = base
        .rsplit_once('/')
        .expect("a postgres:// URL with a database");
    format!("{server}/{name}{query}")
}

async fn count(store: &Store) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM customer_authorizations")
        .fetch_one(store.pool())
        .await
        .unwrap_or(0) as usize
}

/// Multi-row INSERTs in one transaction: generated ids only, no user text.
/// `TRUE`/`FALSE` literals suit both dialects (SQLite stores them as 1/0).
async fn generate(store: &Store, customers: usize, label: &str) {
    let started = Instant::now();
    let now = NOW;
    let flag = |b: bool| if b { "TRUE" } else { "FALSE" };
    let mut tx = store.pool().begin().await.expect("begin");
    let partner_rows: Vec<String> = partners()
        .iter()
        .enumerate()
        .map(|(i, (id, dist))| match dist {
            None => format!(
                "('{id}', '{id}', 'distributor', NULL, FALSE, FALSE, FALSE, NULL, NULL, '{now}')"
            ),
            // Half the resellers hold every grant with a monthly quota.
            Some(d) => {
                let g = flag(i % 2 == 0);
                let quota = if i % 2 == 0 { "500000" } else { "NULL" };
                format!(
                    "('{id}', '{id}', 'reseller', '{d}', {g}, {g}, {g}, {quota}, NULL, '{now}')"
                )
            }
        })
        .collect();
    let mut operator_rows = Vec::new();
    for (id, _) in partners() {
        for role in ["admin", "finance", "account_manager"] {
            operator_rows.push(format!(
                "('op-{id}-{role}', '{id}', '{id} {role}', '{role}', 'active', '{now}')"
            ));
        }
    }
    for statement in [
        format!(
            "INSERT INTO partners (id, name, kind, distributor_id, grant_budget, grant_freeze, \
             grant_on_behalf, monthly_quota_cents, one_time_quota_cents, created_at) VALUES {}",
            partner_rows.join(",")
        ),
        format!(
            "INSERT INTO operators (id, partner_id, name, roles, status, created_at) VALUES {}",
            operator_rows.join(",")
        ),
    ] {
        sqlx::query(&statement)
            .execute(&mut *tx)
            .await
            .expect("inserting partners");
    }
    const CHUNK: usize = 1_000;
    let mut start = 0;
    while start < customers {
        let end = (start + CHUNK).min(customers);
        let mut cust = Vec::with_capacity(end - start);
        let mut auth = Vec::with_capacity(end - start);
        for i in start..end {
            let partner = customer_partner(i);
            let association = if is_resale(i) { "reseller" } else { "referral" };
            let am = if i % 3 == 0 {
                format!("'op-{partner}-account_manager'")
            } else {
                "NULL".into()
            };
            let (frozen, ft) = if i % 50 == 7 {
                ("TRUE", "'ACCOUNT'")
            } else {
                ("FALSE", "NULL")
            };
            cust.push(format!(
                "('c-{i:06}', 'acct-{i:06}', 'Customer {i}', NULL, NULL, '{partner}', '{association}', \
                 {am}, {frozen}, {ft}, '[]', '{now}', '{now}')"
            ));
            let status = ["approved", "approved", "pending", "revoked"][i % 4];
            auth.push(format!(
                "('a-{i:06}', 'c-{i:06}', '{partner}', 'om,order', '{status}', NULL, NULL, \
                 '{now}', '{now}', '{AUTHORIZATIONS_EXPIRE}')"
            ));
        }
        sqlx::query(&format!(
            "INSERT INTO customers (id, account_name, name, email, phone, partner_id, association, \
             account_manager_id, frozen, freeze_type, labels, associated_on, created_at) VALUES {}",
            cust.join(",")
        ))
        .execute(&mut *tx)
        .await
        .expect("inserting customers");
        sqlx::query(&format!(
            "INSERT INTO customer_authorizations (id, customer_id, partner_id, scopes, status, \
             duration_days, requested_by, created_at, updated_at, expires_at) VALUES {}",
            auth.join(",")
        ))
        .execute(&mut *tx)
        .await
        .expect("inserting authorizations");
        start = end;
    }
    tx.commit().await.expect("commit");
    eprintln!(
        "generated {customers} customers into {label} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
