//! The `partner-gateway` command line, run by `src/main.rs` (and by
//! `examples/counted_gateway.rs`, the same command with its allocations counted).

use crate::config::DatabaseArgs;
use crate::store::seed::Fixture;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "partner-gateway",
    version,
    about = "Authorization gateway for a cloud Partner Center API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The log on stderr: `text` (coloured only on a terminal without
    /// NO_COLOR) or `json` (one object per line).
    #[arg(
        long,
        global = true,
        env = "PGW_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: crate::audit::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (TLS front door, AK/SK authentication, Cedar on every
    /// call), with the domain store in this process unless --upstream is given.
    Serve {
        #[command(flatten)]
        args: Box<crate::config::ServeArgs>,
    },
    /// Run the domain store alone (the partner API behind the gateway).
    Store {
        /// Address to listen on (plain HTTP: keep it on a private network).
        #[arg(long, env = "PGW_STORE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Base64 (at least 32 bytes) key shared with the gateway's --assertion-key.
        #[arg(long, env = "PGW_ASSERTION_KEY", hide_env_values = true)]
        assertion_key: String,
        /// Serve TLS with this certificate chain (PEM); the gateway then
        /// reaches it at https://... with --upstream-ca.
        #[arg(long, env = "PGW_STORE_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, env = "PGW_STORE_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// With --tls-cert: accept only clients presenting a certificate
        /// that chains to one in this PEM file (the gateway's
        /// --upstream-cert).
        #[arg(long, env = "PGW_STORE_CLIENT_CA", requires = "tls_cert")]
        client_ca: Option<PathBuf>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Send one signed request, exactly as the official SDK signs it; print
    /// the status and headers on stderr and the body on stdout.
    Call {
        /// The gateway's base URL.
        #[arg(long, env = "PGW_ENDPOINT", default_value = "https://127.0.0.1:8443")]
        endpoint: String,
        /// Access key (or env PGW_AK).
        #[arg(long, env = "PGW_AK")]
        ak: String,
        /// Secret key (or env PGW_SK).
        #[arg(long, env = "PGW_SK", hide_env_values = true)]
        sk: String,
        /// Security token of assume-role session credentials.
        #[arg(long, env = "PGW_SECURITY_TOKEN", hide_env_values = true)]
        security_token: Option<String>,
        /// Trust this PEM certificate (e.g. data/dev-cert.pem) instead of the system roots.
        #[arg(long)]
        cacert: Option<PathBuf>,
        /// Do not verify the server certificate (development only).
        #[arg(long, conflicts_with = "cacert")]
        insecure: bool,
        /// Extra header to send and sign, as NAME:VALUE (repeatable).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// HTTP method, e.g. GET or POST.
        method: String,
        /// Path with query, e.g. /v2/orders/customer-orders?limit=10
        path: String,
        /// JSON body.
        body: Option<String>,
    },
    /// Validate, test and explain the Cedar policies (for security teams).
    Policy {
        #[command(subcommand)]
        command: crate::policy_tools::cli::PolicyCommand,
    },
    /// Partners' own rate limits: set, clear, list (heard by running gateways within 5 s).
    Limits {
        #[command(subcommand)]
        command: crate::credentials_cli::LimitsCommand,
    },
    /// Operators: add, disable, enable, set roles (heard by running gateways at once).
    Operators {
        #[command(subcommand)]
        command: crate::credentials_cli::OperatorsCommand,
    },
    /// Access keys of operators and customers: create, rotate, revoke. Secrets
    /// are generated and printed once, or read from stdin; never from argv.
    Keys {
        #[command(subcommand)]
        command: crate::credentials_cli::KeysCommand,
    },
    /// X-Auth-Tokens: revoke every token of an operator or a customer.
    Tokens {
        #[command(subcommand)]
        command: crate::credentials_cli::TokensCommand,
    },
    /// Print the OpenAPI 3.1 document of the API (docs/openapi.json is a
    /// copy; the gateway serves it at GET /openapi.json).
    Openapi,
    /// Import a fixture file (docs/domain.md section 5) into the database, idempotently.
    Seed {
        /// The fixture JSON file, e.g. examples/demo.json.
        file: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// Parses the command line and runs the command.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve`'s options decide whether spans are exported, so they are read
    // before the log subscriber is installed.
    let serve = match &cli.command {
        Command::Serve { args } => match args.clone().resolve() {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let otlp = match serve
        .as_ref()
        .and_then(|c| c.operations.otlp_endpoint.as_deref())
    {
        Some(endpoint) => match crate::otlp::Otlp::start(endpoint) {
            Ok(otlp) => Some(otlp),
            Err(e) => {
                eprintln!("error: cannot set up the OTLP export to {endpoint}: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    crate::audit::init_logging(cli.log_format, otlp.as_ref());
    let code = match run(cli, serve).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    if let Some(otlp) = otlp {
        // The server has stopped: the spans of its last requests, still
        // queued for the batch, go now. It waits on the collector: not on
        // a runtime thread.
        tokio::task::block_in_place(|| otlp.shutdown());
    }
    code
}

async fn run(cli: Cli, serve: Option<crate::config::ServeConfig>) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { .. } => {
            let config = serve.context("serve options not resolved")?;
            let demo = config.demo;
            // With the decision log on stdout, stdout carries JSON lines only.
            let to_stdout = config.operations.decision_log.as_deref() == Some("-");
            let say = |text: String| {
                if to_stdout {
                    eprintln!("{text}")
                } else {
                    println!("{text}")
                }
            };
            let otlp = config.operations.otlp_endpoint.clone();
            let running = crate::serve::start(config).await?;
            let scheme = if running.certificate.is_some() {
                "https"
            } else {
                "http"
            };
            say(format!(
                "partner-gateway listening on {scheme}://{} (admin: {}://{})",
                running.addr, running.admin_scheme, running.admin_addr
            ));
            if let Some(cert) = &running.certificate {
                say(format!("TLS certificate: {}", cert.display()));
            }
            if let Some(file) = &running.admin_token_file {
                say(format!(
                    "admin token: in {} (send it as Authorization: Bearer)",
                    file.display()
                ));
            }
            say(format!("domain store: {}", running.upstream));
            if let Some(url) = otlp {
                say(format!("OTLP trace export: {url}"));
            }
            if demo {
                say(crate::serve::demo_banner(&running));
            }
            let decision_log = running.gateway.decision_log.clone();
            running.wait_for_signal().await;
            // The records of the last requests, still queued for the writer.
            if let Some(log) = decision_log {
                log.flush();
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Store {
            listen,
            assertion_key,
            tls_cert,
            tls_key,
            client_ca,
            db,
        } => {
            let key =
                crate::assertion::AssertionKey::from_base64(&assertion_key).map_err(|_| {
                    anyhow::anyhow!("--assertion-key must be base64 of at least 32 bytes")
                })?;
            let store = db.open_store().await?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            // The worker runs for the store's life: its stop is never sent.
            let (_keep_running, running) = tokio::sync::watch::channel(false);
            let (exports, _worker) = crate::domain::start_export_worker(store.clone(), running);
            let state = crate::domain::DomainState::new(store, key, exports);
            let local = listener.local_addr()?;
            match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => {
                    let mode = crate::config::TlsMode::Files { cert, key };
                    let (acceptor, _) =
                        crate::listener::tls_acceptor(&mode, &db.data_dir(), client_ca.as_deref())?
                            .expect("a certificate was given");
                    println!("domain store listening on https://{local}");
                    crate::domain::serve_tls(listener, state, acceptor).await?;
                }
                _ => {
                    println!("domain store listening on http://{local}");
                    crate::domain::serve(listener, state).await?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Call {
            endpoint,
            ak,
            sk,
            security_token,
            cacert,
            insecure,
            headers,
            method,
            path,
            body,
        } => {
            use crate::client::{self, Credentials, Trust};
            let trust = match (cacert, insecure) {
                (Some(path), _) => Trust::CaFile(path),
                (None, true) => Trust::Insecure,
                (None, false) => Trust::System,
            };
            let extra: Vec<(String, String)> = headers
                .iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                        .ok_or_else(|| anyhow::anyhow!("--header takes NAME:VALUE, got {h:?}"))
                })
                .collect::<Result<_, _>>()?;
            let extra: Vec<(&str, &str)> = extra
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let credentials = Credentials {
                access_key: ak,
                secret_key: sk,
                security_token,
            };
            let http = client::https_client(&trust)?;
            let answer = client::call(
                &http,
                &endpoint,
                Some(&credentials),
                &method.to_ascii_uppercase(),
                &path,
                body.as_deref().unwrap_or_default().as_bytes(),
                &extra,
            )
            .await?;
            // The status and headers on stderr, the body alone on stdout:
            // `call ... | jq` reads the answer as it is.
            eprintln!("{}", answer.status);
            for name in ["x-subject-token", "x-request-id"] {
                if let Some(v) = answer.headers.get(name).and_then(|v| v.to_str().ok()) {
                    eprintln!("{name}: {v}");
                }
            }
            let out = match serde_json::from_slice::<serde_json::Value>(&answer.body) {
                Ok(json) => format!("{}\n", serde_json::to_string_pretty(&json)?),
                Err(_) if answer.body.is_empty() => String::new(),
                Err(_) => format!("{}\n", String::from_utf8_lossy(&answer.body)),
            };
            // `call ... | head` closes the pipe early: that is not an error.
            match std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                written => written.context("cannot write the answer")?,
            }
            Ok(if answer.status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Policy { command } => crate::policy_tools::cli::run(command).await,
        Command::Operators { command } => {
            crate::credentials_cli::operators(command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Limits { command } => {
            crate::credentials_cli::limits(command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => {
            crate::credentials_cli::keys(command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tokens { command } => {
            crate::credentials_cli::tokens(command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            println!("{}", crate::openapi::text());
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed { file, db } => {
            let fixture = Fixture::load(&file)?;
            let store = db.open_store().await?;
            let summary = store.import_fixture(&fixture).await.with_context(|| {
                format!("{} was not imported; nothing was written", file.display())
            })?;
            println!(
                "imported {} into {}: {summary}",
                file.display(),
                db.database_url
            );
            for (table, n) in store.table_counts().await? {
                println!("  {table:<24} {n}");
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}
