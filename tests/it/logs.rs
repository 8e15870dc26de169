//! The log on stderr of the real binary: `--log-format json` writes one JSON
//! object per line, and a request's lines carry its request id; `text`
//! written to a file has no colour codes.

use crate::kit::{http_client, send};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) endpoint: String,
    /// The lines of stdout after the first (the banner's rest); read by
    /// the OTLP test, which only a build with the `otlp` feature has.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub(crate) banner: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Ours: started by this test, ended by its id.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, format: &str) -> Server {
    serve_with(dir, format, &[], &[])
}

/// `serve --demo` in plain HTTP on ephemeral ports, with `args` and `env`
/// added; its log on stderr goes to `dir/FORMAT.log`.
pub(crate) fn serve_with(dir: &Path, format: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
        .args([
            "serve",
            "--demo",
            "--plaintext",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--no-policy-watch",
            "--log-format",
            format,
        ])
        .arg("--database-url")
        .arg(format!(
            "sqlite://{}",
            dir.join(format!("{format}.db")).display()
        ))
        .arg("--policies")
        .arg(Path::new(REPO).join("policies"))
        .arg("--schema")
        .arg(Path::new(REPO).join("schema"))
        .args(args)
        .envs(env.iter().copied())
        .env("PGW_MASTER_KEY", crate::kit::test_master_key())
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join(format!("{format}.log"))).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a banner").unwrap();
    // "partner-gateway listening on http://ADDR (admin: ...)"
    let endpoint = first.split_whitespace().nth(3).unwrap().to_owned();
    let banner = std::sync::Arc::<std::sync::Mutex<Vec<String>>>::default();
    let rest = banner.clone();
    std::thread::spawn(move || {
        lines
            .map_while(Result::ok)
            .for_each(|l| rest.lock().unwrap().push(l))
    });
    Server {
        child,
        endpoint,
        banner,
    }
}

/// Sends an unsigned request (a 401) and returns its request id.
async fn unauthenticated(server: &Server) -> String {
    let answer = send(
        &http_client(),
        "POST",
        &format!("{}/v2/partners/sub-customers/query", server.endpoint),
        &[("content-type", "application/json".to_owned())],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(answer.status, 401);
    answer.headers["x-request-id"].to_str().unwrap().to_owned()
}

/// The log's text once it holds `needle` (bounded wait: the line is written
/// before the response, but the file may be read before the flush).
fn log_with(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "{needle} never logged:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_parse_and_text_has_no_colour_in_a_file() {
    let dir = tempfile::tempdir().unwrap();

    let json = serve(dir.path(), "json");
    let id = unauthenticated(&json).await;
    let text = log_with(&dir.path().join("json.log"), &id);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines
        .iter()
        .all(|l| l["timestamp"].is_string() && l["level"].is_string()));
    // The authentication failure, inside the request's span, and its decision record.
    let failed = lines
        .iter()
        .find(|l| l["message"] == "authentication failed")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(failed["span"]["request_id"], id.as_str(), "{failed}");
    assert_eq!(failed["reason"], "no_credentials");
    let record = lines
        .iter()
        .find(|l| l["target"] == "decision" && l["request_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(record["auth_failure"], "no_credentials");
    drop(json);

    let plain = serve(dir.path(), "text");
    let id = unauthenticated(&plain).await;
    let text = log_with(&dir.path().join("text.log"), &id);
    assert!(text.contains("authentication failed"), "{text}");
    assert!(!text.contains('\u{1b}'), "no ANSI codes in a file:\n{text}");
    assert!(serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).is_err());
}
