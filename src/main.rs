//! The `partner-gateway` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use partner_gateway::config::DatabaseArgs;
use partner_gateway::store::seed::Fixture;
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
}

#[derive(Subcommand)]
enum Command {
    /// Import a fixture file (DOMAIN.md section 5) into the database, idempotently.
    Seed {
        /// The fixture JSON file, e.g. examples/demo.json.
        file: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "partner_gateway=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
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
