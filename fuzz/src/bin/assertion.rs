//! Identity assertions as the store reads them: any header value is
//! refused or verified, never a panic; claims that decode sign and verify
//! back to themselves.
use partner_gateway::assertion::{AssertionKey, Bound, Claims};

fn main() {
    let key = AssertionKey::new(vec![7u8; 32]).expect("a 32-byte key");
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        let bound = Bound {
            method: "GET",
            target: "/v2/orders/customer-orders",
            body: b"",
        };
        let _ = key.verify(Some(&text), bound, 1_700_000_000);
        if let Ok(claims) = serde_json::from_slice::<Claims>(data) {
            let header = key.sign(&claims);
            let bound = Bound {
                method: &claims.method,
                target: &claims.target,
                body: b"",
            };
            if let Ok(back) = key.verify(Some(&header), bound, claims.exp - 1) {
                assert_eq!(back.request_id, claims.request_id);
            }
        }
    });
}
