//! The messages a node has handed over, by (sender's bare JID, origin id),
//! so that a resent message is not handed over twice (docs/PROTOCOL.md
//! §5.2). Only the most recent ones are kept.

use std::collections::{HashSet, VecDeque};

/// How many (sender, origin id) pairs a node remembers.
pub const DEDUPE_KEPT: usize = 65_536;

/// A set of the last `capacity` keys inserted, oldest forgotten first.
#[derive(Debug)]
pub(crate) struct Dedupe {
    seen: HashSet<(String, String)>,
    order: VecDeque<(String, String)>,
    capacity: usize,
}

impl Dedupe {
    pub(crate) fn new(capacity: usize) -> Dedupe {
        Dedupe {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// True when the message from `sender` (a bare JID) with `origin_id`
    /// was handed over already.
    pub(crate) fn contains(&self, sender: &str, origin_id: &str) -> bool {
        // A tuple of Strings cannot be looked up with borrowed parts without
        // allocating; the lookup is one per message.
        self.seen
            .contains(&(sender.to_owned(), origin_id.to_owned()))
    }

    /// Remembers a message handed over.
    pub(crate) fn insert(&mut self, sender: &str, origin_id: &str) {
        let key = (sender.to_owned(), origin_id.to_owned());
        if !self.seen.insert(key.clone()) {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_ones_by_sender_and_id() {
        let mut d = Dedupe::new(3);
        d.insert("a@x", "1");
        assert!(d.contains("a@x", "1"));
        assert!(!d.contains("b@x", "1"), "another sender, another space");
        d.insert("a@x", "1");
        assert_eq!(d.len(), 1, "inserting twice keeps one");
        d.insert("a@x", "2");
        d.insert("a@x", "3");
        d.insert("a@x", "4");
        assert!(!d.contains("a@x", "1"), "the oldest is forgotten");
        assert!(d.contains("a@x", "2") && d.contains("a@x", "4"));
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn the_default_capacity_holds_65536() {
        let mut d = Dedupe::new(DEDUPE_KEPT);
        for i in 0..=DEDUPE_KEPT {
            d.insert("a@x", &i.to_string());
        }
        assert!(!d.contains("a@x", "0"));
        assert!(d.contains("a@x", "1"));
        assert!(d.contains("a@x", &DEDUPE_KEPT.to_string()));
    }
}
