//! Request target normalization: any request line and headers either give
//! one canonical target or a refusal, never a panic; an accepted target
//! canonicalizes for signing without a panic and re-parses as itself, its
//! path and query those that were checked.
use partner_gateway::gateway::normalize;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        let mut lines = text.split('\n');
        let target = lines.next().unwrap_or_default();
        let mut request = http::Request::builder().method("POST").uri(target);
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                request = request.header(name, value);
            }
        }
        let Ok(request) = request.body(()) else {
            return;
        };
        let (parts, ()) = request.into_parts();
        if let Ok(t) = normalize::check(&parts) {
            let _ = partner_gateway::signing::canonical_uri(t.path());
            let again: http::Uri = t
                .path_and_query()
                .parse()
                .expect("a checked target re-parses");
            // What is signed and forwarded is the path and query checked.
            assert_eq!(again.path(), t.path());
            assert_eq!(again.query().unwrap_or_default(), t.query());
            assert_eq!(t.to_path_and_query().as_str(), t.path_and_query());
        }
    });
}
