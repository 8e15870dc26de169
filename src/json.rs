//! JSON written by hand, field by field, where serde's generic path was a
//! visible part of every request's cost: the decision log's line and the
//! identity assertion's claims. Keys are the schema's own words and are
//! written as they are; strings are written as they are unless one needs
//! escaping (serde_json escapes those); anything else is serde_json's.
//! What reads these objects back is serde (the console, the domain store),
//! and the tests of their writers read them back so.

use crate::refs::EntityRef;

/// A JSON object written into bytes, one field after the other: keys as
/// they are (they are the schema's), strings as they are unless one needs
/// escaping, the rest by serde_json.
pub struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    opened: bool,
}

impl<'a> JsonObject<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> JsonObject<'a> {
        JsonObject { out, opened: false }
    }

    pub fn key(&mut self, key: &str) {
        self.out
            .extend_from_slice(if self.opened { b",\"" } else { b"{\"" });
        self.opened = true;
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    pub fn text(&mut self, key: &str, value: Option<&str>) {
        self.key(key);
        match value {
            Some(text) => string(self.out, text),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    /// An entity as its text, `Type::"id"`.
    pub fn entity(&mut self, key: &str, value: Option<&EntityRef>) {
        self.key(key);
        match value {
            Some(entity) => entity_text(self.out, entity),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    /// An array, each item written by `item`.
    pub fn list<T>(&mut self, key: &str, items: &[T], mut item: impl FnMut(&mut Vec<u8>, &T)) {
        self.key(key);
        self.out.push(b'[');
        for (i, each) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            item(self.out, each);
        }
        self.out.push(b']');
    }

    pub fn value(&mut self, key: &str, value: &impl serde::Serialize) -> serde_json::Result<()> {
        self.key(key);
        serde_json::to_writer(&mut *self.out, value)
    }

    pub fn end(self) {
        self.out
            .extend_from_slice(if self.opened { b"}" } else { b"{}" });
    }
}

/// `text` as a JSON string. Escaped by serde_json only when it has a quote,
/// a backslash or a control character: the gateway's own words and ids
/// never do, and checking is cheaper than escaping.
pub fn string(out: &mut Vec<u8>, text: &str) {
    let plain = !text.bytes().fold(false, |escape, b| {
        escape | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, text).expect("a string serializes into memory");
    }
}

/// An entity's text, `Type::"id"`, as a JSON string: its quotes escaped.
pub fn entity_text(out: &mut Vec<u8>, entity: &EntityRef) {
    match entity.plain_id() {
        Some(id) => {
            out.push(b'"');
            out.extend_from_slice(entity.type_name().as_bytes());
            out.extend_from_slice(b"::\\\"");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b"\\\"\"");
        }
        None => string(out, &entity.to_string()),
    }
}
