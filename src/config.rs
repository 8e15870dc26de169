//! Configuration shared by every command: where the database is and how
//! credential secrets are sealed at rest.

use crate::crypto::{CryptoError, SecretCipher};
use crate::store::limits::PartnerLimit;
use crate::store::{data_dir_for, DEFAULT_DATABASE_URL};
use std::path::PathBuf;

/// A secret given as text (a key in base64, a token): `Debug` shows
/// `[redacted]`, so that printing a configuration never shows it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Database and master-key options (flag > environment > default).
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// sqlite://PATH (embedded default, created on first use) or postgres://...
    #[arg(long, env = "PGW_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Base64 of the 32-byte key that seals AK/SK secrets at rest. When neither
    /// this nor --master-key-file is given, a key is generated once into
    /// `<data dir>/master.key` (mode 0600).
    #[arg(long, env = "PGW_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<Secret>,

    /// File holding the master key (base64).
    #[arg(long, env = "PGW_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

impl DatabaseArgs {
    pub fn for_url(url: &str) -> Self {
        Self {
            database_url: url.to_owned(),
            master_key: None,
            master_key_file: None,
        }
    }

    /// The directory for generated files (master key, development certificate).
    pub fn data_dir(&self) -> PathBuf {
        data_dir_for(&self.database_url)
    }

    pub fn secret_cipher(&self) -> Result<SecretCipher, CryptoError> {
        match (&self.master_key, &self.master_key_file) {
            (Some(key), _) => SecretCipher::from_base64(key.expose()),
            (None, Some(path)) => SecretCipher::load_or_create(path),
            (None, None) => SecretCipher::load_or_create(&self.data_dir().join("master.key")),
        }
    }

    pub async fn open_store(&self) -> anyhow::Result<crate::store::Store> {
        let cipher = self.secret_cipher()?;
        Ok(crate::store::Store::connect(&self.database_url, cipher).await?)
    }
}

/// `partner-gateway serve` options as given on the command line or in the
/// environment. Every option is optional here so that a value from the TOML
/// file (`--config`) can fill what flags and environment leave unset:
/// flag > environment > file > default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML file with any of the options below (same names, snake_case).
    #[arg(long, env = "PGW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the API listener [default: 127.0.0.1:8443].
    #[arg(long, env = "PGW_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// Address of the admin listener (health, readiness) [default: 127.0.0.1:9090].
    #[arg(long, env = "PGW_ADMIN_LISTEN")]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Bearer token required on every admin request (at least 16
    /// characters); required when --admin-listen is not a loopback address.
    #[arg(long, env = "PGW_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Host names the admin listener answers to besides its own address
    /// (e.g. the name a proxy in front of it uses); comma-separated in the
    /// environment.
    #[arg(long = "admin-host", env = "PGW_ADMIN_HOSTS", value_delimiter = ',')]
    pub admin_hosts: Vec<String>,
    /// sqlite://PATH or postgres://... [default: sqlite://data/partner-gateway.db].
    #[arg(long, env = "PGW_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Base64 master key sealing AK/SK secrets (see `seed --help`).
    #[arg(long, env = "PGW_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<Secret>,
    /// File holding the master key.
    #[arg(long, env = "PGW_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// A fixture to import at start (idempotent).
    #[arg(long, env = "PGW_SEED")]
    pub seed: Option<PathBuf>,
    /// Load examples/demo.json (once: a database that holds it keeps its
    /// data across restarts) and print the demo principals and an example call.
    #[arg(long)]
    pub demo: bool,
    /// With --demo: load the demo data again over what the database holds,
    /// undoing the changes made since.
    #[arg(long, requires = "demo")]
    pub demo_reset: bool,
    /// Base URL of a separately running domain store (`partner-gateway store`).
    /// Without it the store runs in this process on a loopback port.
    #[arg(long, env = "PGW_UPSTREAM")]
    pub upstream: Option<String>,
    /// With an `https://` --upstream: the PEM file of the certificates the
    /// store's certificate is verified against (else the system's roots).
    #[arg(long, env = "PGW_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,
    /// A client certificate chain (PEM) to present to an `https://`
    /// --upstream that asks for one (`store --client-ca`); with --upstream-key.
    #[arg(long, env = "PGW_UPSTREAM_CERT")]
    pub upstream_cert: Option<PathBuf>,
    /// The private key of --upstream-cert (PEM).
    #[arg(long, env = "PGW_UPSTREAM_KEY")]
    pub upstream_key: Option<PathBuf>,
    /// Base64 (≥ 32 bytes) key for identity assertions; required with --upstream
    /// and must equal the store's --assertion-key. Generated per process otherwise.
    #[arg(long, env = "PGW_ASSERTION_KEY", hide_env_values = true)]
    pub assertion_key: Option<Secret>,
    /// Directory of *.cedar policies [default: ./policies].
    #[arg(long, env = "PGW_POLICIES")]
    pub policies: Option<PathBuf>,
    /// Directory of the Cedar schema [default: ./schema].
    #[arg(long, env = "PGW_SCHEMA")]
    pub schema: Option<PathBuf>,
    /// PEM certificate chain for TLS (with --tls-key). Without both, a
    /// self-signed development certificate is generated once into the data directory.
    #[arg(long, env = "PGW_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, env = "PGW_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (behind another TLS terminator, or for benchmarks).
    #[arg(long, env = "PGW_PLAINTEXT")]
    pub plaintext: bool,
    /// PEM certificate chain for the admin listener (with
    /// --admin-tls-key); required, with a token, off loopback.
    #[arg(long, env = "PGW_ADMIN_TLS_CERT")]
    pub admin_tls_cert: Option<PathBuf>,
    /// PEM private key of --admin-tls-cert.
    #[arg(long, env = "PGW_ADMIN_TLS_KEY")]
    pub admin_tls_key: Option<PathBuf>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "PGW_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most concurrent client connections [default: 1024].
    #[arg(long, env = "PGW_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// A second directory of *.cedar policies, validated against --schema and
    /// evaluated next to the live set on every decision without deciding
    /// anything; disagreements are logged (target `shadow`) and counted.
    #[arg(long, env = "PGW_SHADOW_POLICIES")]
    pub shadow_policies: Option<PathBuf>,
    /// Where the policies come from: `files` (--policies, --schema) or
    /// `database`, the latest live publication (`policy publish`); a
    /// gateway with nothing published does not start [default: files].
    #[arg(long, env = "PGW_POLICY_SOURCE", value_enum)]
    pub policy_source: Option<PolicySource>,
    /// The invariants the live set must meet [default: <policies>/invariants;
    /// with `--policy-source database`, the publication's own]. A gateway's
    /// own invariants win over the stored ones: a writer of the database
    /// alone cannot weaken a guardrail.
    #[arg(long, env = "PGW_INVARIANTS")]
    pub invariants: Option<PathBuf>,
    /// This gateway's name in `policy fleet` [default: HOST:PORT of the API
    /// listener, so a restart is the same instance; with port 0, the host
    /// name and a random suffix].
    #[arg(long, env = "PGW_INSTANCE")]
    pub instance: Option<String>,
    /// How often the gateway reports what it serves to the fleet status,
    /// and looks for a publication whose notification it missed, in
    /// seconds [default: 5].
    #[arg(long, env = "PGW_FLEET_HEARTBEAT_SECS")]
    pub fleet_heartbeat_secs: Option<u64>,
    /// Do not watch the policy and schema directories; reload on SIGHUP only.
    #[arg(long, env = "PGW_NO_POLICY_WATCH")]
    pub no_policy_watch: bool,
    /// How long proving the invariants of a policy set may take, at start and
    /// on each reload, in seconds; past it the set is refused [default: 120].
    #[arg(long, env = "PGW_POLICY_VERIFY_TIMEOUT_SECS")]
    pub policy_verify_timeout_secs: Option<u64>,
    /// Write decision records as JSON lines to this file (appended), or to
    /// stdout with `-`. Without it they go to the log on stderr.
    #[arg(long, env = "PGW_DECISION_LOG", value_name = "PATH|-")]
    pub decision_log: Option<String>,
    /// Share of allowed decisions written to --decision-log, 0.0..=1.0
    /// [default: 1.0]. Denies are always written.
    #[arg(long, env = "PGW_DECISION_LOG_SAMPLE_ALLOWED")]
    pub decision_log_sample_allowed: Option<f64>,
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish
    /// before the process exits anyway [default: 10].
    #[arg(long, env = "PGW_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Export the gateway's trace spans to this OpenTelemetry collector over
    /// OTLP/HTTP (protobuf), e.g. http://collector:4318/v1/traces (the path
    /// defaults to /v1/traces). Off when unset.
    #[arg(long, env = "PGW_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Requests per second each principal may make, sustained (an
    /// operator's keys, tokens and sessions share one budget); 0 turns the
    /// limit off. Default 100. A partner's own limit (`limits set`) wins.
    #[arg(long, env = "PGW_RATE_LIMIT", value_name = "RPS")]
    pub rate_limit: Option<u32>,
    /// Requests at once after a quiet spell; default twice the rate.
    #[arg(long, env = "PGW_RATE_LIMIT_BURST", value_name = "N")]
    pub rate_limit_burst: Option<u32>,
    /// Requests in flight to the domain store at most; beyond it the gateway
    /// answers 503 at once instead of queueing. Default 512.
    #[arg(long, env = "PGW_MAX_UPSTREAM_IN_FLIGHT", value_name = "N")]
    pub max_upstream_in_flight: Option<usize>,
    /// Memory for cached entity records, in MiB, as their weights count it
    /// (the callers' rows, credentials and absent ids: an eighth more each).
    /// Default 16.
    #[arg(long, env = "PGW_ENTITY_CACHE_MIB", value_name = "MIB")]
    pub entity_cache_mib: Option<u64>,
    /// Memory for decisions kept for reuse, in MiB; 0 turns reuse off (every
    /// decision is evaluated). Default 4.
    #[arg(long, env = "PGW_DECISION_CACHE_MIB", value_name = "MIB")]
    pub decision_cache_mib: Option<u64>,
    /// Load balancers or proxies (CIDR blocks, comma-separated) whose
    /// `X-Forwarded-For` names the client; from any other peer it is ignored.
    #[arg(
        long,
        env = "PGW_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Connections from the trusted proxies begin with a PROXY protocol
    /// header (version 1 or 2), which names the client; one without is closed.
    #[arg(long, env = "PGW_PROXY_PROTOCOL")]
    pub proxy_protocol: bool,
}

/// The TOML file: the same options, all optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeFile {
    listen: Option<std::net::SocketAddr>,
    admin_listen: Option<std::net::SocketAddr>,
    admin_token: Option<Secret>,
    admin_hosts: Option<Vec<String>>,
    database_url: Option<String>,
    master_key: Option<Secret>,
    master_key_file: Option<PathBuf>,
    seed: Option<PathBuf>,
    demo: Option<bool>,
    upstream: Option<String>,
    upstream_ca: Option<PathBuf>,
    upstream_cert: Option<PathBuf>,
    upstream_key: Option<PathBuf>,
    assertion_key: Option<Secret>,
    policies: Option<PathBuf>,
    schema: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    admin_tls_cert: Option<PathBuf>,
    admin_tls_key: Option<PathBuf>,
    plaintext: Option<bool>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    max_connections_per_ip: Option<usize>,
    max_unauthenticated_body_bytes: Option<usize>,
    http2_max_concurrent_streams: Option<u32>,
    upstream_timeout_secs: Option<u64>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    shadow_policies: Option<PathBuf>,
    policy_source: Option<PolicySource>,
    invariants: Option<PathBuf>,
    instance: Option<String>,
    fleet_heartbeat_secs: Option<u64>,
    policy_watch: Option<bool>,
    policy_verify_timeout_secs: Option<u64>,
    decision_log: Option<String>,
    decision_log_sample_allowed: Option<f64>,
    shutdown_grace_secs: Option<u64>,
    otlp_endpoint: Option<String>,
    rate_limit: Option<u32>,
    rate_limit_burst: Option<u32>,
    max_upstream_in_flight: Option<usize>,
    entity_cache_mib: Option<u64>,
    decision_cache_mib: Option<u64>,
    trusted_proxies: Option<Vec<ipnet::IpNet>>,
    proxy_protocol: Option<bool>,
}

/// How the API listener speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Certificate and key given by the operator.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate generated once into the data directory.
    Development,
    /// Plain HTTP.
    Plaintext,
}

/// The validated configuration of `serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: std::net::SocketAddr,
    pub admin_listen: std::net::SocketAddr,
    pub database: DatabaseArgs,
    pub seed: Option<PathBuf>,
    pub demo: bool,
    /// Import the demo data even when the database already holds it.
    pub demo_reset: bool,
    pub upstream: Option<String>,
    /// How to reach an `https://` upstream.
    pub upstream_tls: crate::client::UpstreamTls,
    pub assertion_key: Option<Secret>,
    pub policies: PathBuf,
    pub schema: PathBuf,
    pub tls: TlsMode,
    /// The admin listener's TLS: `Files` or `Plaintext`.
    pub admin_tls: TlsMode,
    pub limits: Limits,
    pub trusted_proxies: TrustedProxies,
    pub operations: Operations,
}

/// The load balancers in front of the gateway, which name the client: in
/// `X-Forwarded-For`, or in a PROXY protocol header when `proxy_protocol`.
/// Their own connections carry many clients, so the per-address connection
/// limit counts the client they name (PROXY protocol), or does not apply.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    pub nets: Vec<ipnet::IpNet>,
    pub proxy_protocol: bool,
}

impl TrustedProxies {
    pub fn contains(&self, ip: &std::net::IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }
}

impl ServeConfig {
    /// A gateway on ephemeral loopback ports over plain HTTP, with the store
    /// in-process and every other option at its default: what a program
    /// embedding the gateway (the examples, the tests) starts from, adjusting
    /// fields with struct update syntax.
    pub fn local(database: DatabaseArgs, policies: PathBuf, schema: PathBuf) -> ServeConfig {
        let loopback = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
        ServeConfig {
            listen: loopback,
            admin_listen: loopback,
            database,
            seed: None,
            demo: false,
            demo_reset: false,
            upstream: None,
            upstream_tls: Default::default(),
            assertion_key: None,
            policies,
            schema,
            tls: TlsMode::Plaintext,
            admin_tls: TlsMode::Plaintext,
            limits: Limits::default(),
            trusted_proxies: TrustedProxies::default(),
            operations: Operations::default(),
        }
    }
}

/// Living with the policies in production: reload, shadow, decision log, shutdown.
#[derive(Debug, Clone, PartialEq)]
pub struct Operations {
    /// Shadow policy directory (validated against the live `--schema`).
    pub shadow_policies: Option<PathBuf>,
    /// Files or the database's publications.
    pub policy_source: PolicySource,
    /// The live set's invariants, instead of its own.
    pub invariants: Option<PathBuf>,
    /// The name in the fleet status.
    pub instance: Option<String>,
    /// How often the fleet status is written (and publications looked for).
    pub fleet_heartbeat: std::time::Duration,
    /// Watch the policy, schema and shadow directories (SIGHUP reloads either way).
    pub policy_watch: bool,
    /// The time limit for proving a policy set's invariants; a set not
    /// proved within it does not serve.
    pub policy_verify_timeout: std::time::Duration,
    /// `-` (stdout) or a file for JSON-lines decision records, opened when
    /// the gateway starts.
    pub decision_log: Option<String>,
    /// An open decision log, used instead of `decision_log` (tests and
    /// programs that embed the gateway).
    pub decision_log_writer: Option<crate::audit::DecisionLog>,
    /// Share of allowed decisions written to the decision log (denies: all).
    pub decision_log_sample_allowed: f64,
    /// How long requests in flight may take to finish at shutdown.
    pub shutdown_grace: std::time::Duration,
    /// The OTLP/HTTP URL trace spans are exported to (`crate::otlp::traces_url`);
    /// read by `main` when it installs the log subscriber. None: no export.
    pub otlp_endpoint: Option<String>,
    /// Who may use the admin listener.
    pub admin: AdminAccess,
}

/// Where a gateway's policies come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicySource {
    /// `--policies` and `--schema`, watched.
    #[default]
    Files,
    /// The latest live publication in the database (`policy publish`).
    Database,
}

/// The admin listener's gate (`crate::admin`): a bearer token, when
/// configured, and the host names it answers to besides its own address.
#[derive(Clone, Default, PartialEq)]
pub struct AdminAccess {
    pub token: Option<String>,
    pub hosts: Vec<String>,
    /// No token was given and this is no `--demo`: the token is read from
    /// `<data dir>/admin-token`, generated there on the first start.
    pub token_from_data_dir: bool,
}

/// The shortest admin token accepted: long enough not to be guessed.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

impl std::fmt::Debug for AdminAccess {
    // The token never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccess")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("hosts", &self.hosts)
            .field("token_from_data_dir", &self.token_from_data_dir)
            .finish()
    }
}

impl Default for Operations {
    fn default() -> Self {
        Operations {
            shadow_policies: None,
            policy_source: PolicySource::Files,
            invariants: None,
            instance: None,
            fleet_heartbeat: std::time::Duration::from_secs(5),
            policy_watch: true,
            policy_verify_timeout: crate::verify::DEFAULT_TIMEOUT,
            decision_log: None,
            decision_log_writer: None,
            decision_log_sample_allowed: 1.0,
            shutdown_grace: std::time::Duration::from_secs(10),
            otlp_endpoint: None,
            admin: AdminAccess::default(),
        }
    }
}

/// Resource limits of the API listener and the upstream client.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// From accept (TLS handshake included) to the first complete request
    /// head; also hyper's limit on reading any later head once it started.
    pub header_read_timeout: std::time::Duration,
    /// How long a connection may sit with no request in flight between requests.
    pub idle_timeout: std::time::Duration,
    /// From a request head to its complete body (slow bodies are cut: 408).
    pub body_timeout: std::time::Duration,
    /// Open connections from one client address; more are closed at accept.
    pub max_connections_per_ip: usize,
    /// Body bytes held, all connections together, for requests whose
    /// signature is not yet verified (the body hash is part of it); past it: 503.
    pub max_unauthenticated_body_bytes: usize,
    pub http2_max_concurrent_streams: u32,
    pub upstream_timeout: std::time::Duration,
    /// Each principal's rate (`rate` 0: no limit).
    pub rate_limit: PartnerLimit,
    /// Requests in flight to the domain store at most; beyond: 503 at once.
    pub max_upstream_in_flight: usize,
    /// Bytes of cached entity records at most, as their weights count them.
    pub entity_cache_bytes: u64,
    /// Bytes of decisions kept for reuse at most; 0: no reuse.
    pub decision_cache_bytes: u64,
}

const MIB: u64 = 1024 * 1024;

/// The default rate limit: 100 requests per second per principal, bursts
/// of 200. Far above what one partner's people and scripts send by hand
/// (a console page makes a handful of calls), it holds a runaway loop to a
/// small share of one gateway: measured on 2 cores, a reused decision costs
/// about 75 µs of CPU, so 100 per second is under 1 % of a core.
pub const DEFAULT_RATE_LIMIT: PartnerLimit = PartnerLimit {
    rate: 100,
    burst: 200,
};

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_connections: 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 64,
            header_read_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(60),
            body_timeout: std::time::Duration::from_secs(30),
            max_connections_per_ip: 256,
            max_unauthenticated_body_bytes: 64 * 1024 * 1024,
            http2_max_concurrent_streams: 16,
            upstream_timeout: std::time::Duration::from_secs(30),
            rate_limit: DEFAULT_RATE_LIMIT,
            max_upstream_in_flight: 512,
            entity_cache_bytes: 16 * MIB,
            decision_cache_bytes: 4 * MIB,
        }
    }
}

impl ServeArgs {
    /// Merges flags/environment over the file over the defaults, and checks the result.
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        use anyhow::Context;
        let file: ServeFile = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => ServeFile::default(),
        };
        let defaults = Limits::default();
        let secs = |v: Option<u64>, d: std::time::Duration| {
            v.map(std::time::Duration::from_secs).unwrap_or(d)
        };
        let trusted_proxies = TrustedProxies {
            nets: if self.trusted_proxies.is_empty() {
                file.trusted_proxies.unwrap_or_default()
            } else {
                self.trusted_proxies
            },
            proxy_protocol: self.proxy_protocol || file.proxy_protocol.unwrap_or(false),
        };
        anyhow::ensure!(
            !trusted_proxies.proxy_protocol || !trusted_proxies.nets.is_empty(),
            "proxy_protocol needs trusted_proxies: the peers whose PROXY header is read"
        );
        let limits = Limits {
            max_body_bytes: self
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(defaults.max_body_bytes),
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.max_connections),
            max_header_bytes: file.max_header_bytes.unwrap_or(defaults.max_header_bytes),
            max_headers: file.max_headers.unwrap_or(defaults.max_headers),
            header_read_timeout: secs(file.header_read_timeout_secs, defaults.header_read_timeout),
            idle_timeout: secs(file.idle_timeout_secs, defaults.idle_timeout),
            body_timeout: secs(file.body_timeout_secs, defaults.body_timeout),
            max_connections_per_ip: file
                .max_connections_per_ip
                .unwrap_or(defaults.max_connections_per_ip),
            max_unauthenticated_body_bytes: file
                .max_unauthenticated_body_bytes
                .unwrap_or(defaults.max_unauthenticated_body_bytes),
            http2_max_concurrent_streams: file
                .http2_max_concurrent_streams
                .unwrap_or(defaults.http2_max_concurrent_streams),
            upstream_timeout: secs(file.upstream_timeout_secs, defaults.upstream_timeout),
            rate_limit: PartnerLimit::new(
                self.rate_limit
                    .or(file.rate_limit)
                    .unwrap_or(defaults.rate_limit.rate),
                self.rate_limit_burst.or(file.rate_limit_burst),
            )
            .map_err(|why| anyhow::anyhow!("--rate-limit, --rate-limit-burst: {why}"))?,
            max_upstream_in_flight: self
                .max_upstream_in_flight
                .or(file.max_upstream_in_flight)
                .unwrap_or(defaults.max_upstream_in_flight),
            entity_cache_bytes: self
                .entity_cache_mib
                .or(file.entity_cache_mib)
                .map_or(defaults.entity_cache_bytes, |m| m.saturating_mul(MIB)),
            decision_cache_bytes: self
                .decision_cache_mib
                .or(file.decision_cache_mib)
                .map_or(defaults.decision_cache_bytes, |m| m.saturating_mul(MIB)),
        };
        anyhow::ensure!(
            limits.entity_cache_bytes > 0,
            "--entity-cache-mib must be at least 1: a slice is read through the cache"
        );
        anyhow::ensure!(
            limits.max_upstream_in_flight > 0,
            "--max-upstream-in-flight must be at least 1"
        );
        anyhow::ensure!(
            limits.max_connections > 0,
            "max_connections must be at least 1"
        );
        anyhow::ensure!(
            limits.max_body_bytes > 0,
            "max_body_bytes must be at least 1"
        );
        anyhow::ensure!(
            limits.max_connections_per_ip > 0 && limits.http2_max_concurrent_streams > 0,
            "max_connections_per_ip and http2_max_concurrent_streams must be at least 1"
        );
        anyhow::ensure!(
            limits.max_unauthenticated_body_bytes >= limits.max_body_bytes,
            "max_unauthenticated_body_bytes must be at least max_body_bytes"
        );
        for (name, d) in [
            ("header_read_timeout_secs", limits.header_read_timeout),
            ("idle_timeout_secs", limits.idle_timeout),
            ("body_timeout_secs", limits.body_timeout),
        ] {
            anyhow::ensure!(!d.is_zero(), "{name} must be at least 1");
        }

        let plaintext = self.plaintext || file.plaintext.unwrap_or(false);
        let cert = self.tls_cert.or(file.tls_cert);
        let key = self.tls_key.or(file.tls_key);
        let tls = match (plaintext, cert, key) {
            (true, None, None) => TlsMode::Plaintext,
            (true, _, _) => {
                anyhow::bail!("--plaintext cannot be combined with --tls-cert/--tls-key")
            }
            (false, Some(cert), Some(key)) => TlsMode::Files { cert, key },
            (false, None, None) => TlsMode::Development,
            (false, _, _) => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        let admin_tls = match (
            self.admin_tls_cert.or(file.admin_tls_cert),
            self.admin_tls_key.or(file.admin_tls_key),
        ) {
            (Some(cert), Some(key)) => TlsMode::Files { cert, key },
            (None, None) => TlsMode::Plaintext,
            _ => anyhow::bail!("--admin-tls-cert and --admin-tls-key go together"),
        };
        let demo = self.demo || file.demo.unwrap_or(false);
        let admin_token = self
            .admin_token
            .or(file.admin_token)
            .map(Secret::into_inner);
        let op_defaults = Operations::default();
        let operations = Operations {
            shadow_policies: self.shadow_policies.or(file.shadow_policies),
            policy_source: self
                .policy_source
                .or(file.policy_source)
                .unwrap_or_default(),
            invariants: self.invariants.or(file.invariants),
            instance: self.instance.or(file.instance),
            fleet_heartbeat: secs(
                self.fleet_heartbeat_secs.or(file.fleet_heartbeat_secs),
                op_defaults.fleet_heartbeat,
            ),
            policy_watch: !self.no_policy_watch
                && file.policy_watch.unwrap_or(op_defaults.policy_watch),
            policy_verify_timeout: secs(
                self.policy_verify_timeout_secs
                    .or(file.policy_verify_timeout_secs),
                op_defaults.policy_verify_timeout,
            ),
            decision_log: self.decision_log.or(file.decision_log),
            decision_log_writer: None,
            decision_log_sample_allowed: self
                .decision_log_sample_allowed
                .or(file.decision_log_sample_allowed)
                .unwrap_or(op_defaults.decision_log_sample_allowed),
            shutdown_grace: secs(
                self.shutdown_grace_secs.or(file.shutdown_grace_secs),
                op_defaults.shutdown_grace,
            ),
            otlp_endpoint: self
                .otlp_endpoint
                .or(file.otlp_endpoint)
                .map(|e| crate::otlp::traces_url(&e))
                .transpose()?,
            admin: AdminAccess {
                hosts: if self.admin_hosts.is_empty() {
                    file.admin_hosts.unwrap_or_default()
                } else {
                    self.admin_hosts
                },
                // Only the demo runs an admin listener without a token.
                token_from_data_dir: admin_token.is_none() && !demo,
                token: admin_token,
            },
        };
        anyhow::ensure!(
            !operations.policy_verify_timeout.is_zero(),
            "policy_verify_timeout_secs must be at least 1"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&operations.decision_log_sample_allowed),
            "decision_log_sample_allowed must be within 0.0..=1.0"
        );
        anyhow::ensure!(
            operations.decision_log.as_deref() != Some(""),
            "decision_log must be a file path or - (stdout)"
        );
        let admin_listen = self
            .admin_listen
            .or(file.admin_listen)
            .unwrap_or(([127, 0, 0, 1], 9090).into());
        match &operations.admin.token {
            Some(t) => anyhow::ensure!(
                t.chars().count() >= MIN_ADMIN_TOKEN_CHARS,
                "admin_token must be at least {MIN_ADMIN_TOKEN_CHARS} characters"
            ),
            // Off loopback, explain, sessions and AuthZEN would face the
            // network: a token chosen for that, not one in a file.
            None => anyhow::ensure!(
                admin_listen.ip().is_loopback(),
                "the admin listener binds {admin_listen}, which is not a loopback address: set --admin-token (PGW_ADMIN_TOKEN)"
            ),
        }
        // ...and never sent in clear across it.
        anyhow::ensure!(
            admin_listen.ip().is_loopback() || admin_tls != TlsMode::Plaintext,
            "the admin listener binds {admin_listen}, which is not a loopback address: its token must not cross the network in clear; set --admin-tls-cert and --admin-tls-key"
        );
        anyhow::ensure!(
            operations.admin.hosts.iter().all(|h| !h.trim().is_empty()),
            "admin_hosts must not hold an empty name"
        );
        let upstream = self.upstream.or(file.upstream);
        let upstream_tls = crate::client::UpstreamTls {
            trust: match self.upstream_ca.or(file.upstream_ca) {
                Some(file) => crate::client::Trust::CaFile(file),
                None => crate::client::Trust::System,
            },
            client_cert: match (
                self.upstream_cert.or(file.upstream_cert),
                self.upstream_key.or(file.upstream_key),
            ) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => anyhow::bail!("--upstream-cert and --upstream-key go together"),
            },
        };
        let assertion_key = self.assertion_key.or(file.assertion_key);
        if upstream.is_some() && assertion_key.is_none() {
            anyhow::bail!(
                "--upstream needs --assertion-key (the same key the store was started with)"
            );
        }
        Ok(ServeConfig {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or(([127, 0, 0, 1], 8443).into()),
            admin_listen,
            database: DatabaseArgs {
                database_url: self
                    .database_url
                    .or(file.database_url)
                    .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
                master_key: self.master_key.or(file.master_key),
                master_key_file: self.master_key_file.or(file.master_key_file),
            },
            seed: self.seed.or(file.seed),
            demo,
            demo_reset: self.demo_reset,
            upstream,
            upstream_tls,
            assertion_key,
            policies: self
                .policies
                .or(file.policies)
                .unwrap_or_else(|| PathBuf::from("policies")),
            schema: self
                .schema
                .or(file.schema)
                .unwrap_or_else(|| PathBuf::from("schema")),
            tls,
            admin_tls,
            limits,
            trusted_proxies,
            operations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7000\"\nadmin_listen = \"127.0.0.1:7001\"\nmax_body_bytes = 10\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:6000".parse().unwrap()),
            ..Default::default()
        };
        let cfg = args.resolve().unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(cfg.admin_listen, "127.0.0.1:7001".parse().unwrap());
        assert_eq!(cfg.limits.max_body_bytes, 10);
        assert_eq!(cfg.database.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(cfg.tls, TlsMode::Development);
    }

    #[test]
    fn operations_options_resolve_and_are_checked() {
        let defaults = ServeArgs::default().resolve().unwrap().operations;
        // Outside the demo, an admin token from the data directory.
        let from_data_dir = AdminAccess {
            token_from_data_dir: true,
            ..AdminAccess::default()
        };
        assert_eq!(
            defaults,
            Operations {
                admin: from_data_dir,
                ..Operations::default()
            }
        );
        let demo = ServeArgs {
            demo: true,
            ..Default::default()
        };
        assert_eq!(demo.resolve().unwrap().operations, Operations::default());
        assert!(defaults.policy_watch);
        assert_eq!(defaults.shutdown_grace, std::time::Duration::from_secs(10));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(
            &path,
            "shadow_policies = \"trial\"\npolicy_watch = false\npolicy_verify_timeout_secs = 30\ndecision_log = \"-\"\ndecision_log_sample_allowed = 0.25\nshutdown_grace_secs = 3\n",
        )
        .unwrap();
        let from_file = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        }
        .resolve()
        .unwrap()
        .operations;
        assert_eq!(from_file.shadow_policies, Some(PathBuf::from("trial")));
        assert!(!from_file.policy_watch);
        assert_eq!(
            from_file.policy_verify_timeout,
            std::time::Duration::from_secs(30)
        );
        assert_eq!(from_file.decision_log.as_deref(), Some("-"));
        assert_eq!(from_file.decision_log_sample_allowed, 0.25);
        assert_eq!(from_file.shutdown_grace, std::time::Duration::from_secs(3));
        let flags = ServeArgs {
            config: Some(path),
            decision_log: Some("decisions.jsonl".into()),
            decision_log_sample_allowed: Some(1.0),
            shutdown_grace_secs: Some(0),
            ..Default::default()
        };
        let flags = flags.resolve().unwrap().operations;
        assert_eq!(flags.decision_log.as_deref(), Some("decisions.jsonl"));
        assert_eq!(flags.decision_log_sample_allowed, 1.0);
        assert_eq!(flags.shutdown_grace, std::time::Duration::ZERO);

        for rate in [-0.1, 1.01, f64::NAN] {
            let args = ServeArgs {
                decision_log_sample_allowed: Some(rate),
                ..Default::default()
            };
            assert!(args.resolve().is_err(), "{rate}");
        }
        let empty = ServeArgs {
            decision_log: Some(String::new()),
            ..Default::default()
        };
        assert!(empty.resolve().is_err());
    }

    #[cfg(feature = "otlp")]
    #[test]
    fn otlp_export_is_off_unless_an_http_endpoint_is_given() {
        assert_eq!(
            ServeArgs::default()
                .resolve()
                .unwrap()
                .operations
                .otlp_endpoint,
            None
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(&path, "otlp_endpoint = \"http://collector:4318\"\n").unwrap();
        let from_file = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        assert_eq!(
            from_file
                .resolve()
                .unwrap()
                .operations
                .otlp_endpoint
                .as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        let flag = ServeArgs {
            config: Some(path),
            otlp_endpoint: Some("http://127.0.0.1:4318/v1/traces".into()),
            ..Default::default()
        };
        assert_eq!(
            flag.resolve().unwrap().operations.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        let tls = ServeArgs {
            otlp_endpoint: Some("https://collector:4318".into()),
            ..Default::default()
        };
        assert!(tls.resolve().is_err());
    }

    #[test]
    fn contradictions_are_refused() {
        let both = ServeArgs {
            plaintext: true,
            tls_cert: Some("c".into()),
            tls_key: Some("k".into()),
            ..Default::default()
        };
        assert!(both.resolve().is_err());
        let half = ServeArgs {
            tls_cert: Some("c".into()),
            ..Default::default()
        };
        assert!(half.resolve().is_err());
        let remote = ServeArgs {
            upstream: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        };
        assert!(remote.resolve().is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(&path, "listne = \"127.0.0.1:7000\"\n").unwrap();
        let typo = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(format!("{:#}", typo.resolve().unwrap_err()).contains("listne"));
    }

    /// `--proxy-protocol` on the command line may name its proxies in the
    /// file; with none anywhere it is refused.
    #[test]
    fn the_proxy_protocol_reads_its_proxies_from_the_flags_or_the_file() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(&path, "trusted_proxies = [\"10.0.0.0/8\"]\n").unwrap();
        let config = path.to_str().unwrap();
        let cfg = Cli::try_parse_from(["gw", "--proxy-protocol", "--config", config])
            .unwrap()
            .serve
            .resolve()
            .unwrap();
        assert!(cfg.trusted_proxies.proxy_protocol);
        assert!(cfg.trusted_proxies.contains(&"10.1.2.3".parse().unwrap()));
        let alone = Cli::try_parse_from(["gw", "--proxy-protocol"]).unwrap();
        let refused = format!("{:#}", alone.serve.resolve().unwrap_err());
        assert!(refused.contains("trusted_proxies"), "{refused}");
    }

    #[test]
    fn the_admin_gate_comes_from_the_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(
            &path,
            "admin_listen = \"0.0.0.0:7001\"\nadmin_token = \"0123456789abcdef\"\nadmin_hosts = [\"admin.internal\"]\nadmin_tls_cert = \"admin.pem\"\nadmin_tls_key = \"admin-key.pem\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        let cfg = args.resolve().unwrap();
        assert_eq!(
            cfg.operations.admin.token.as_deref(),
            Some("0123456789abcdef")
        );
        assert_eq!(cfg.operations.admin.hosts, ["admin.internal"]);
        assert_eq!(
            cfg.admin_tls,
            TlsMode::Files {
                cert: "admin.pem".into(),
                key: "admin-key.pem".into()
            }
        );
        // The token never shows in a debug print of the configuration.
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn keys_never_show_in_a_debug_print() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(
            &path,
            "assertion_key = \"ASSERTION-KEY-TEXT-0123456789abcdef\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            master_key: Some("MASTER-KEY-TEXT".to_owned().into()),
            admin_token: Some("ADMIN-TOKEN-TEXT-0123456789".to_owned().into()),
            ..ServeArgs::default()
        };
        let given = format!("{args:?}");
        let cfg = args.resolve().unwrap();
        let printed = format!("{given}{cfg:?}");
        assert!(!printed.contains("MASTER-KEY-TEXT"), "{printed}");
        assert!(!printed.contains("ASSERTION-KEY-TEXT"), "{printed}");
        assert!(!printed.contains("ADMIN-TOKEN-TEXT"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
