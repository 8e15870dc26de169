//! The most recent decision records and shadow disagreements, kept in memory
//! (bounded, oldest dropped first) for the console on the admin listener.
//! The decision log stays the record; this is only what a person watching
//! wants to see right now.

use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;

/// A bounded buffer of entries, kept as they are given and made into JSON
/// only when read: the request that adds one pays for no formatting.
pub struct Recent<T = Value> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
    /// Every entry ever pushed, the dropped ones too.
    pushed: std::sync::atomic::AtomicU64,
}

/// How many decision records a gateway keeps for its console.
pub const DECISIONS: usize = 1000;
/// How many shadow disagreements an authorizer keeps for the console.
pub const DISAGREEMENTS: usize = 200;

impl<T: Serialize> Recent<T> {
    pub const fn new(capacity: usize) -> Recent<T> {
        Recent {
            items: Mutex::new(VecDeque::new()),
            capacity,
            pushed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many entries were ever pushed.
    pub fn pushed(&self) -> u64 {
        self.pushed.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn push(&self, entry: T) {
        self.pushed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        if items.len() == self.capacity {
            items.pop_front();
        }
        items.push_back(entry);
    }

    /// Every entry, newest first.
    pub fn newest_first(&self) -> Vec<Value> {
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items
            .iter()
            .rev()
            .map(|item| serde_json::to_value(item).expect("an entry serializes"))
            .collect()
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
