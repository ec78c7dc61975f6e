//! Fault ids: 12 hex digits, a keyed hash of a counter, so they are unguessable across
//! restarts and never reused by one process.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// Hex digits in an id.
const DIGITS: usize = 12;

/// A fault id, held as its 48-bit value: the table's ordered maps compare it inline, where a
/// string key costs a pointer chase (a cache miss) per comparison, most of the time of a
/// 100,000-fault insert. Numeric order is the order of the fixed-width hex spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FaultId(u64);

impl FaultId {
    /// The id spelled `s`: exactly 12 lowercase hex digits, as [`fmt::Display`] writes them.
    /// Anything else names no fault.
    pub fn parse(s: &str) -> Option<FaultId> {
        let canonical = s.len() == DIGITS
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        canonical
            .then(|| u64::from_str_radix(s, 16).ok())
            .flatten()
            .map(FaultId)
    }
}

impl fmt::Display for FaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012x}", self.0)
    }
}

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

    /// How many ids were drawn so far: increases with every [`IdGen::fresh`], so it orders
    /// what they were given to.
    pub fn issued(&self) -> u64 {
        self.next
    }

    /// The next id for which `taken` is false.
    pub fn fresh(&mut self, taken: impl Fn(FaultId) -> bool) -> FaultId {
        loop {
            self.next += 1;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write_u64(self.salt);
            h.write_u64(self.next);
            let id = FaultId(h.finish() >> 16);
            if !taken(id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_back_as_written_and_nothing_else_parses() {
        let mut ids = IdGen::new();
        for _ in 0..1000 {
            let id = ids.fresh(|_| false);
            let text = id.to_string();
            assert_eq!(text.len(), DIGITS);
            assert_eq!(FaultId::parse(&text), Some(id));
        }
        for bad in [
            "",
            "abc",
            "0000000000000",
            "00000000000G",
            "ABCDEF012345",
            "+0000000000f",
        ] {
            assert_eq!(FaultId::parse(bad), None, "{bad:?}");
        }
        // Numeric order is the order of the spelling, as the listing promises.
        let (a, b) = (FaultId(0x0f), FaultId(0xa0));
        assert!(a < b && a.to_string() < b.to_string());
    }
}
