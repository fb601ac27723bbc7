//! Trace and span ids: random, never all zero.
//!
//! A SplitMix64 sequence from one random seed: ids need to be unique and
//! unguessable enough not to collide with the host's, not secret, and this
//! costs no system call per span.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

fn state() -> &'static AtomicU64 {
    static STATE: OnceLock<AtomicU64> = OnceLock::new();
    // std seeds RandomState from the kernel's random source (getrandom,
    // which does not block here): one seed for the guest's life.
    STATE.get_or_init(|| AtomicU64::new(RandomState::new().build_hasher().finish()))
}

fn next() -> u64 {
    let mut z = state().fetch_add(GOLDEN, Ordering::Relaxed).wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn nonzero() -> u64 {
    loop {
        let n = next();
        if n != 0 {
            return n;
        }
    }
}

pub fn span_id() -> Vec<u8> {
    nonzero().to_be_bytes().to_vec()
}

pub fn trace_id() -> Vec<u8> {
    let mut id = nonzero().to_be_bytes().to_vec();
    id.extend_from_slice(&next().to_be_bytes());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sized_nonzero_and_distinct() {
        let spans: std::collections::HashSet<Vec<u8>> = (0..10_000).map(|_| span_id()).collect();
        assert_eq!(spans.len(), 10_000);
        assert!(spans.iter().all(|s| s.len() == 8 && s.iter().any(|b| *b != 0)));
        let t = trace_id();
        assert_eq!(t.len(), 16);
        assert_ne!(t, trace_id());
    }
}
