//! Body and query parsing into typed requests: the first byte picks the
//! operation, the rest splits at the first NUL into query and body. Any
//! input gives a typed request or a 400, never a panic.
use partner_gateway::catalog::{Input, Request, OPERATIONS};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&pick, rest)) = data.split_first() else {
            return;
        };
        let operation = &OPERATIONS[pick as usize % OPERATIONS.len()];
        let (query, body) = match rest.iter().position(|&b| b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&[][..], rest),
        };
        let query = String::from_utf8_lossy(query);
        let params: Vec<(&'static str, String)> = operation
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| (name, "id-1".to_owned()))
            .collect();
        let input = Input {
            params: &params,
            query: &query,
            body,
        };
        if let Ok(request) = Request::parse(operation.op, &input) {
            let _ = request.describe();
        }
    });
}
