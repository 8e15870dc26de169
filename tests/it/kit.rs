//! Test support shared by the unit, integration and benchmark code: a fresh,
//! real database per test on SQLite (a temporary file) or PostgreSQL (a new
//! database on the server named by `PGW_TEST_DATABASE_URL`).

use crate::crypto::SecretCipher;
use crate::store::{Backend, Store};
use sqlx::Connection;

/// The variable naming a PostgreSQL server where tests may create databases,
/// e.g. `postgres://pgw:pgw@127.0.0.1:5432/postgres` (`.ci/run` sets it).
pub const POSTGRES_ENV: &str = "PGW_TEST_DATABASE_URL";

/// A throwaway database; dropped with the value (PostgreSQL: best effort).
pub struct TestDb {
    pub url: String,
    pub store: Store,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
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
        }
    }

    /// Opens a second handle on the same database (as another process would).
    pub async fn reopen(&self) -> Store {
        Store::connect(&self.url, test_cipher())
            .await
            .expect("reopen")
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
                let db = $crate::testkit::TestDb::new($crate::store::Backend::Sqlite).await;
                super::$body(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::testkit::TestDb::new($crate::store::Backend::Postgres).await;
                super::$body(&db).await;
            }
        }
    )+};
}

/// A plain HTTP/1.1 client for tests (the gateway's own tests add TLS).
pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

pub fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// A response as tests look at it: the same shape the signing client returns.
pub use crate::client::Answer as TestResponse;

/// Sends one request and reads the whole answer.
pub async fn send(
    client: &HttpClient,
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

/// The real domain store on a loopback socket, over a fresh seeded database.
pub struct DomainServer {
    pub db: TestDb,
    pub addr: std::net::SocketAddr,
    pub key: crate::assertion::AssertionKey,
    pub client: HttpClient,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DomainServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DomainServer {
    /// Starts the store with `fixture` (DOMAIN.md section 5 JSON) loaded.
    pub async fn start(backend: Backend, fixture: &str) -> DomainServer {
        let db = TestDb::new(backend).await;
        let fx = crate::store::seed::Fixture::parse(fixture).expect("fixture parses");
        db.store.import_fixture(&fx).await.expect("fixture imports");
        let key = crate::assertion::AssertionKey::random();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = crate::domain::DomainState {
            store: db.store.clone(),
            key: key.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = crate::domain::serve(listener, state).await;
        });
        DomainServer {
            db,
            addr,
            key,
            client: http_client(),
            task,
        }
    }

    /// The identity the gateway would assert for an operator (read from the store).
    pub async fn operator(&self, id: &str) -> crate::assertion::Identity {
        let op = self
            .db
            .store
            .operator(&id.into())
            .await
            .expect("read operator")
            .unwrap_or_else(|| panic!("no operator {id}"));
        crate::assertion::Identity {
            kind: crate::assertion::CallerKind::Operator,
            id: op.id.0,
            partner: Some(op.partner.0),
            roles: op.roles,
            customer: None,
            scopes: vec![],
            source_operator: None,
        }
    }

    /// The identity of a customer signing with its own credentials.
    pub fn customer(&self, id: &str) -> crate::assertion::Identity {
        crate::assertion::Identity {
            kind: crate::assertion::CallerKind::Customer,
            id: id.to_owned(),
            partner: None,
            roles: vec![],
            customer: Some(id.to_owned()),
            scopes: vec![],
            source_operator: None,
        }
    }

    /// The identity of an assume-role session of `operator` in `customer`.
    pub async fn session(
        &self,
        session_id: &str,
        operator: &str,
        customer: &str,
        scopes: Vec<crate::model::AuthorizationScope>,
    ) -> crate::assertion::Identity {
        let op = self.operator(operator).await;
        crate::assertion::Identity {
            kind: crate::assertion::CallerKind::Session,
            id: session_id.to_owned(),
            partner: op.partner,
            roles: vec![],
            customer: Some(customer.to_owned()),
            scopes,
            source_operator: Some(op.id),
        }
    }

    /// Calls the store as `identity` (with a valid assertion for this request),
    /// or with no assertion at all when `identity` is `None`.
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        identity: Option<&crate::assertion::Identity>,
        body: Option<serde_json::Value>,
    ) -> TestResponse {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(identity) = identity {
            headers.push((
                crate::assertion::HEADER,
                self.assert(method, path_and_query, identity),
            ));
        }
        let body = body
            .map(|b| serde_json::to_vec(&b).expect("json"))
            .unwrap_or_default();
        self.call_raw(method, path_and_query, &headers, body).await
    }

    /// A valid assertion header value for one request.
    pub fn assert(
        &self,
        method: &str,
        path_and_query: &str,
        identity: &crate::assertion::Identity,
    ) -> String {
        let path = path_and_query.split('?').next().unwrap_or_default();
        self.key.sign(&crate::assertion::Claims {
            identity: identity.clone(),
            method: method.to_owned(),
            path: path.to_owned(),
            request_id: uuid::Uuid::new_v4().to_string(),
            exp: chrono::Utc::now().timestamp() + crate::assertion::ASSERTION_TTL_SECS,
        })
    }

    pub async fn call_raw(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> TestResponse {
        let url = format!("http://{}{}", self.addr, path_and_query);
        send(&self.client, method, &url, headers, body).await
    }
}

/// Like [`test_both_backends!`], for test bodies that build their own
/// database (e.g. through [`DomainServer::start`]): the body takes a [`Backend`].
#[macro_export]
macro_rules! test_on_backends {
    ($($name:ident => $body:ident;)+) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::store::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::store::Backend::Postgres).await;
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            super::replace_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            super::replace_database("postgres://h", "x"),
            "postgres://h/x"
        );
    }
}
