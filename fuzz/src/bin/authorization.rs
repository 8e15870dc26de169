//! The Authorization header and the canonical request: parsing never
//! panics and round-trips; canonicalizing a query is idempotent (what is
//! signed does not change when canonicalized again).
use partner_gateway::signing::{self, AuthorizationHeader};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        if let Some(header) = AuthorizationHeader::parse(&text) {
            let rendered = header.to_header_value();
            let again = AuthorizationHeader::parse(&rendered).expect("a rendered header parses");
            assert_eq!(again, header);
        }
        let (path, query) = text.split_once('?').unwrap_or((&text, ""));
        let query_once = signing::canonical_query(query);
        assert_eq!(signing::canonical_query(&query_once), query_once);
        let _ = signing::canonical_request(
            "GET",
            path,
            query,
            &[("host", "localhost"), ("x-sdk-date", "20261121T120000Z")],
            signing::EMPTY_BODY_SHA256,
        );
    });
}
