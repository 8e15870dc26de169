//! What the system tests share (outside the shipped library): a fresh, real
//! database per test on SQLite (a temporary file) or PostgreSQL (a new
//! database on the server named by `PGW_TEST_DATABASE_URL`), and
//! [`DomainServer`], the real gateway and domain store over such a database,
//! called as any principal with real signatures.

use partner_gateway::assertion::{AssertionKey, CallerKind, Identity};
use partner_gateway::client::{self, Credentials, HttpsClient, Trust};
use partner_gateway::config::{DatabaseArgs, ServeConfig};
use partner_gateway::crypto::SecretCipher;
use partner_gateway::model::AuthorizationScope;
use partner_gateway::serve::{self, RunningGateway};
use partner_gateway::sessions::SessionKeys;
use partner_gateway::store::{Backend, Store};
use partner_gateway::time::Timestamp;
use sqlx::Connection;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The variable naming a PostgreSQL server where tests may create databases,
/// e.g. `postgres://pgw:pgw@127.0.0.1:5432/postgres` (`.ci/run` sets it).
pub const POSTGRES_ENV: &str = "PGW_TEST_DATABASE_URL";

/// A throwaway database, removed with the value: SQLite's directory, or the
/// PostgreSQL database (`DROP DATABASE`, best effort), so that runs of the
/// suite do not fill the server's disk.
pub struct TestDb {
    pub url: String,
    pub store: Store,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database's name, and the server's admin URL.
    postgres: Option<(String, String)>,
}

/// A fixed master key, so tests that reopen a database can unseal secrets.
pub fn test_cipher() -> SecretCipher {
    SecretCipher::from_bytes(&[42u8; 32]).expect("32-byte key")
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres().await,
        }
    }

    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/test.db", dir.path().display());
        let store = Store::connect(&url, test_cipher())
            .await
            .expect("open SQLite");
        TestDb {
            url,
            store,
            backend: Backend::Sqlite,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A new, empty PostgreSQL database. Panics with instructions when the
    /// server is not configured: the suite must run against both databases.
    pub async fn postgres() -> TestDb {
        let admin = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
            panic!("{POSTGRES_ENV} is not set: run the suite with `bash .ci/run`, which starts PostgreSQL, or set it to a server URL such as postgres://pgw:pgw@127.0.0.1:5432/postgres")
        });
        sqlx::any::install_default_drivers();
        let name = format!("pgw_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::AnyConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {POSTGRES_ENV}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let url = replace_database(&admin, &name);
        let store = Store::connect(&url, test_cipher())
            .await
            .expect("open PostgreSQL");
        TestDb {
            url,
            store,
            backend: Backend::Postgres,
            _dir: None,
            postgres: Some((name, admin)),
        }
    }

    /// Opens a second handle on the same database (as another process would).
    pub async fn reopen(&self) -> Store {
        Store::connect(&self.url, test_cipher())
            .await
            .expect("reopen")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((name, admin)) = self.postgres.take() else {
            return;
        };
        // On a thread of its own: a drop inside the test's runtime cannot
        // block on a future there. FORCE ends the connections still open
        // (this value's pool, a gateway's).
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::AnyConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("note: test database left behind on the PostgreSQL server");
        }
    }
}

/// The decision log every gateway of this test process writes to (as the
/// gateways' default config here): its lines, from all of them, in one
/// buffer. Readers filter on what is theirs.
pub struct Decisions {
    pub log: partner_gateway::audit::DecisionLog,
    lines: SharedBuffer,
}

/// A writer into a buffer that its clones share.
#[derive(Clone, Default)]
pub struct SharedBuffer(std::sync::Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// What was written, one JSON value per line.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("line is not JSON ({e}): {l}"))
            })
            .collect()
    }
}

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn decisions() -> &'static Decisions {
    static DECISIONS: std::sync::OnceLock<Decisions> = std::sync::OnceLock::new();
    DECISIONS.get_or_init(|| {
        let lines = SharedBuffer::default();
        let log = partner_gateway::audit::DecisionLog::to_writer(lines.clone(), 1.0)
            .expect("a decision log in memory");
        Decisions { log, lines }
    })
}

impl Decisions {
    /// Every line written so far, as JSON.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.log.flush();
        self.lines.json_lines()
    }
}

/// `postgres://u:p@h:5432/postgres?x=y` with the database name replaced.
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs one async test body against a fresh database of each backend, as two
/// named tests: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! test_both_backends {
    ($($name:ident => $body:ident;)+) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::kit::TestDb::new(partner_gateway::store::Backend::Sqlite).await;
                super::$body(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::kit::TestDb::new(partner_gateway::store::Backend::Postgres).await;
                super::$body(&db).await;
            }
        }
    )+};
}

/// Like [`test_both_backends!`], for test bodies that build their own
/// database (e.g. through [`DomainServer::start`]): the body takes a [`Backend`].
#[macro_export]
macro_rules! test_on_backends {
    ($($name:ident => $body:ident;)+) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body(partner_gateway::store::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body(partner_gateway::store::Backend::Postgres).await;
            }
        }
    )+};
}

/// A response as tests look at it: what the signing client returns.
pub use partner_gateway::client::Answer as TestResponse;

/// The base64 of the master key [`test_cipher`] uses.
pub fn test_master_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

/// The assertion key the harness's gateway and store share.
const ASSERTION_KEY: [u8; 32] = [7u8; 32];

/// The assertion key every [`DomainServer`]'s store checks, in base64 (as
/// `--assertion-key` takes it).
pub fn assertion_key_base64() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(ASSERTION_KEY)
}

/// The shipped policies and schema.
pub fn policies_dir() -> PathBuf {
    concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into()
}

/// The database arguments of `db`, with the tests' master key.
pub fn test_database(db: &TestDb) -> DatabaseArgs {
    DatabaseArgs {
        database_url: db.url.clone(),
        master_key: Some(test_master_key().into()),
        master_key_file: None,
    }
}

/// Gives the experimental policy set in `dir` an invariant that holds of
/// every set, so the gateway serves it: the tests that run permit-all,
/// forbid-all or a shipped set with guardrails cut are about decisions, and
/// a set without invariants is refused (policies/README.md, "Invariants").
pub fn promise_nothing(dir: &Path) {
    let invariants = dir.join("invariants");
    std::fs::create_dir_all(&invariants).unwrap();
    std::fs::write(
        invariants.join("none.cedar"),
        "// This experimental set promises nothing beyond the built-in never-errors.\n\
         @id(\"TEST-promises-nothing\")\n@check(\"only_when\")\npermit (principal, action, resource)\nwhen { true };\n",
    )
    .unwrap();
}

pub fn schema_dir() -> PathBuf {
    concat!(env!("CARGO_MANIFEST_DIR"), "/schema").into()
}

/// The real gateway (plain HTTP) and domain store over a fresh database
/// seeded with a fixture; [`DomainServer::call`] signs as any principal of
/// it, as the official SDK does.
pub struct DomainServer {
    pub db: TestDb,
    pub running: RunningGateway,
    /// `http://127.0.0.1:port` of the gateway.
    pub endpoint: String,
    /// `http://127.0.0.1:port` of the domain store behind it.
    pub store_url: String,
    /// The key the store checks identity assertions with.
    pub key: AssertionKey,
    /// The moment the fixture was loaded: its relative instants count from it.
    pub loaded_at: Timestamp,
    client: HttpsClient,
    credentials: Mutex<HashMap<(String, String), Credentials>>,
}

/// No rate limit.
pub const UNLIMITED: partner_gateway::store::limits::PartnerLimit =
    partner_gateway::store::limits::PartnerLimit { rate: 0, burst: 0 };

impl DomainServer {
    /// Starts with `fixture` (docs/domain.md section 5 JSON) loaded and the
    /// shipped policies.
    pub async fn start(backend: Backend, fixture: &str) -> DomainServer {
        Self::start_with(backend, fixture, &policies_dir()).await
    }

    /// Starts with `fixture` loaded and the policies of `policies`.
    pub async fn start_with(backend: Backend, fixture: &str, policies: &Path) -> DomainServer {
        Self::start_tuned(backend, fixture, policies, |_| {}).await
    }

    /// [`DomainServer::start_with`], with the configuration changed by `tune`.
    pub async fn start_tuned(
        backend: Backend,
        fixture: &str,
        policies: &Path,
        tune: impl FnOnce(&mut ServeConfig),
    ) -> DomainServer {
        let db = TestDb::new(backend).await;
        let loaded_at = partner_gateway::time::now();
        let fx = partner_gateway::store::seed::Fixture::parse_at(fixture, loaded_at)
            .expect("fixture parses");
        db.store.import_fixture(&fx).await.expect("fixture imports");
        let key_text = assertion_key_base64();
        let mut config = ServeConfig {
            assertion_key: Some(key_text.into()),
            ..ServeConfig::local(test_database(&db), policies.to_owned(), schema_dir())
        };
        // The tests send many requests from one principal; the rate-limit
        // tests turn the limit on.
        config.limits.rate_limit = UNLIMITED;
        config.operations.decision_log_writer = Some(decisions().log.clone());
        tune(&mut config);
        let running = serve::start(config).await.expect("gateway starts");
        DomainServer {
            endpoint: format!("http://127.0.0.1:{}", running.addr.port()),
            store_url: running.upstream.clone(),
            key: AssertionKey::new(ASSERTION_KEY.to_vec()).expect("key"),
            loaded_at,
            running,
            db,
            client: http_client(),
            credentials: Mutex::new(HashMap::new()),
        }
    }

    /// A fixture instant (`"now-51d4h"`, or absolute) as the store answers
    /// it: counted from when this server's fixture was loaded.
    pub fn at(&self, instant: &str) -> String {
        at(self.loaded_at, instant)
    }

    /// An operator of the fixture, as the gateway will identify it.
    pub async fn operator(&self, id: &str) -> Identity {
        let op = self
            .db
            .store
            .operator(&id.into())
            .await
            .expect("read operator")
            .unwrap_or_else(|| panic!("no operator {id}"));
        Identity {
            kind: CallerKind::Operator,
            id: op.id.0,
            partner: Some(op.partner.0),
            customer: None,
            source_operator: None,
        }
    }

    /// A customer of the fixture signing with its own credentials.
    pub fn customer(&self, id: &str) -> Identity {
        Identity {
            kind: CallerKind::Customer,
            id: id.to_owned(),
            partner: None,
            customer: Some(id.to_owned()),
            source_operator: None,
        }
    }

    /// An assume-role session `session_id` of `operator` in `customer`
    /// (stored now, live for an hour, bound to the customer's live
    /// authorization), with its temporary credentials.
    pub async fn session(
        &self,
        session_id: &str,
        operator: &str,
        customer: &str,
        scopes: Vec<AuthorizationScope>,
    ) -> Identity {
        use partner_gateway::store::sessions::SessionRecord;
        let op = self.operator(operator).await;
        let store = &self.db.store;
        let c = store
            .customer(&customer.into())
            .await
            .expect("read customer")
            .unwrap_or_else(|| panic!("no customer {customer}"));
        let authorization = store
            .live_authorization(&c.id, &c.partner)
            .await
            .expect("read authorization")
            .map(|a| a.id);
        let now = partner_gateway::time::now();
        let (_, access_key) = SessionKeys::new_ids();
        let record = SessionRecord {
            id: session_id.into(),
            access_key: access_key.clone(),
            operator: operator.into(),
            partner: op
                .partner
                .clone()
                .expect("an operator has a partner")
                .as_str()
                .into(),
            customer: customer.into(),
            authorization,
            scopes,
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
            ended_at: None,
            end_reason: None,
        };
        // Stored as fixture data: no switch-in activity, unlike a session
        // made through the gateway. Made again, it starts afresh.
        sqlx::query("DELETE FROM partner_sessions WHERE id = $1")
            .bind(record.id.0.clone())
            .execute(store.pool())
            .await
            .expect("replace session");
        sqlx::query(
            "INSERT INTO partner_sessions (id, access_key, operator_id, partner_id, customer_id,
                authorization_id, scopes, created_at, expires_at, ended_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
        )
        .bind(record.id.0.clone())
        .bind(record.access_key.clone())
        .bind(record.operator.0.clone())
        .bind(record.partner.0.clone())
        .bind(record.customer.0.clone())
        .bind(record.authorization.as_ref().map(|a| a.0.clone()))
        .bind(partner_gateway::model::join_set(&record.scopes))
        .bind(partner_gateway::time::format(record.created_at))
        .bind(partner_gateway::time::format(record.expires_at))
        .execute(store.pool())
        .await
        .expect("store session");
        let keys = SessionKeys::from_cipher(&test_cipher());
        let credentials = Credentials {
            secret_key: keys.secret_for(&access_key),
            security_token: Some(keys.security_token(
                &record.id,
                &access_key,
                record.expires_at.timestamp(),
            )),
            access_key,
        };
        self.credentials
            .lock()
            .unwrap()
            .insert(("session".into(), session_id.to_owned()), credentials);
        Identity {
            kind: CallerKind::Session,
            id: session_id.to_owned(),
            partner: op.partner,
            customer: Some(customer.to_owned()),
            source_operator: Some(operator.to_owned()),
        }
    }

    /// Keeps the temporary credentials (`{"access", "secret",
    /// "securitytoken"}`) of a session made through the gateway, to sign as it.
    pub fn remember_session(&self, session: &Identity, credential: &serde_json::Value) {
        let field = |name: &str| {
            credential[name]
                .as_str()
                .expect("a session credential")
                .to_owned()
        };
        self.credentials.lock().unwrap().insert(
            ("session".into(), session.id.clone()),
            Credentials {
                access_key: field("access"),
                secret_key: field("secret"),
                security_token: Some(field("securitytoken")),
            },
        );
    }

    /// Signing credentials of `who`: a session's from [`DomainServer::session`];
    /// an operator or customer gets an access key made for it on first use.
    pub async fn credentials(&self, who: &Identity) -> Credentials {
        let kind = match who.kind {
            CallerKind::Operator => "operator",
            CallerKind::Customer => "customer",
            CallerKind::Session => "session",
        };
        let key = (kind.to_owned(), who.id.clone());
        if let Some(c) = self.credentials.lock().unwrap().get(&key) {
            return c.clone();
        }
        assert_ne!(
            kind, "session",
            "session {} was not made with DomainServer::session",
            who.id
        );
        let access_key = format!(
            "TK{}",
            uuid::Uuid::new_v4().simple().to_string()[..18].to_ascii_uppercase()
        );
        let secret_key = format!("test-secret-{}", uuid::Uuid::new_v4().simple());
        sqlx::query(
            "INSERT INTO credentials (access_key, principal_kind, principal_id, secret_sealed, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(access_key.clone())
        .bind(kind)
        .bind(who.id.clone())
        .bind(test_cipher().seal(&access_key, &secret_key))
        .bind(partner_gateway::time::format(partner_gateway::time::now()))
        .execute(self.db.store.pool())
        .await
        .expect("store credentials");
        let credentials = Credentials {
            access_key,
            secret_key,
            security_token: None,
        };
        self.credentials
            .lock()
            .unwrap()
            .insert(key, credentials.clone());
        credentials
    }

    /// Calls the gateway as `who` (signed), or unsigned when `None`.
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        who: Option<&Identity>,
        body: Option<serde_json::Value>,
    ) -> TestResponse {
        let body = body
            .map(|b| serde_json::to_vec(&b).expect("json"))
            .unwrap_or_default();
        self.call_with(method, path_and_query, who, &body, &[])
            .await
    }

    /// [`DomainServer::call`] with body bytes and extra (signed) headers.
    pub async fn call_with(
        &self,
        method: &str,
        path_and_query: &str,
        who: Option<&Identity>,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> TestResponse {
        let credentials = match who {
            Some(who) => Some(self.credentials(who).await),
            None => None,
        };
        client::call(
            &self.client,
            &self.endpoint,
            credentials.as_ref(),
            method,
            path_and_query,
            body,
            extra,
        )
        .await
        .expect("call")
    }

    /// Sends a request to the domain store directly, past the gateway.
    pub async fn store_raw(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> TestResponse {
        let url = format!("{}{path_and_query}", self.store_url);
        send(&self.client, method, &url, headers, body).await
    }
}

/// An HTTP (and HTTPS, trusting the system roots) client for tests.
pub fn http_client() -> HttpsClient {
    client::https_client(&Trust::System).expect("client")
}

/// Sends one unsigned request and reads the whole answer.
pub async fn send(
    client: &HttpsClient,
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> TestResponse {
    use http_body_util::BodyExt;
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = client
        .request(
            req.body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .expect("request"),
        )
        .await
        .expect("send request");
    let (parts, body) = resp.into_parts();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.expect("read body").to_bytes(),
    }
}

#[test]
fn replaces_the_database_name() {
    assert_eq!(
        replace_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
        "postgres://u:p@h:5432/x?sslmode=disable"
    );
    assert_eq!(replace_database("postgres://h", "x"), "postgres://h/x");
}

/// A fixture instant resolved against `loaded_at`, in the stored form.
pub fn at(loaded_at: Timestamp, instant: &str) -> String {
    let instant = partner_gateway::store::seed::Instant::parse(instant).expect("a fixture instant");
    partner_gateway::time::format(instant.resolve(loaded_at))
}

/// A JSON POST to an admin listener.
pub async fn post_admin(
    admin: std::net::SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> TestResponse {
    send(
        &http_client(),
        "POST",
        &format!("http://{admin}{path}"),
        &[("content-type", "application/json".into())],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}
