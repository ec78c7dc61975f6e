//! Fault ids: 12 hex digits, a keyed hash of a counter, so they are unguessable across
//! restarts and never reused by one process.

use std::hash::{BuildHasher, Hasher};

/// Hands out fresh ids.
pub struct IdGen {
    salt: u64,
    next: u64,
}

impl IdGen {
    /// A generator with a random key.
    pub fn new() -> Self {
        IdGen {
            salt: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
            next: 0,
        }
    }

    /// The next id for which `taken` is false.
    pub fn fresh(&mut self, taken: impl Fn(&str) -> bool) -> String {
        loop {
            self.next += 1;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write_u64(self.salt);
            h.write_u64(self.next);
            let id = format!("{:012x}", h.finish() >> 16);
            if !taken(&id) {
                return id;
            }
        }
    }
}
