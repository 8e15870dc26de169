//! The most recent decision records and shadow disagreements, kept in memory
//! (bounded, oldest dropped first) for the console on the admin listener.
//! The decision log stays the record; this is only what a person watching
//! wants to see right now.

use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;

/// A bounded buffer of JSON entries.
pub struct Recent {
    items: Mutex<VecDeque<Value>>,
    capacity: usize,
}

/// How many decision records a gateway keeps for its console.
pub const DECISIONS: usize = 1000;
/// How many shadow disagreements an authorizer keeps for the console.
pub const DISAGREEMENTS: usize = 200;

impl Recent {
    pub const fn new(capacity: usize) -> Recent {
        Recent {
            items: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    pub fn push(&self, entry: Value) {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        if items.len() == self.capacity {
            items.pop_front();
        }
        items.push_back(entry);
    }

    /// Every entry, newest first.
    pub fn newest_first(&self) -> Vec<Value> {
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_up_to_capacity() {
        let r = Recent::new(2);
        for i in 0..3 {
            r.push(Value::from(i));
        }
        assert_eq!(r.newest_first(), [Value::from(2), Value::from(1)]);
    }
}
