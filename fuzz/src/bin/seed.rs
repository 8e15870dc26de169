//! The seed importer's parser: any document is a fixture or an error
//! naming the entry, never a panic.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = partner_gateway::store::seed::Fixture::parse(text);
        }
    });
}
