//! The `partner-gateway` command line: `partner_gateway::cli`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    partner_gateway::cli::main().await
}
