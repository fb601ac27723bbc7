//! The span context the host sends in a request's metadata: W3C
//! `traceparent` and `tracestate`, where the shim (and containerd 2.x's
//! otelttrpc interceptor) put them.

use std::collections::HashMap;

/// A remote parent: the host's span a guest span hangs under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    /// W3C trace flags; only `sampled` (bit 0) is kept, as the SDK does.
    pub flags: u8,
    pub state: String,
}

impl Parent {
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// The parent in `metadata`, if it holds a valid `traceparent`.
pub fn extract(metadata: &HashMap<String, Vec<String>>) -> Option<Parent> {
    let first = |key: &str| metadata.get(key).and_then(|v| v.first());
    let mut parent = parse(first("traceparent")?)?;
    parent.state = first("tracestate").cloned().unwrap_or_default();
    Some(parent)
}

/// `VERSION-TRACEID-SPANID-FLAGS`, lowercase hex. Version `ff` is invalid,
/// version 00 has exactly four fields, later versions may add more.
fn parse(header: &str) -> Option<Parent> {
    let mut fields = header.trim().split('-');
    let version = hex(fields.next()?, 1)?[0];
    let trace_id = hex(fields.next()?, 16)?;
    let span_id = hex(fields.next()?, 8)?;
    let flags = hex(fields.next()?, 1)?[0];
    let valid = version != 0xff
        && (version != 0 || fields.next().is_none())
        && trace_id.iter().any(|b| *b != 0)
        && span_id.iter().any(|b| *b != 0);
    valid.then(|| Parent {
        trace_id,
        span_id,
        flags: flags & 1,
        state: String::new(),
    })
}

/// Lowercase hex only, as W3C asks.
fn hex(s: &str, bytes: usize) -> Option<Vec<u8>> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if s.len() != bytes * 2 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes);
    for pair in s.as_bytes().chunks_exact(2) {
        out.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(traceparent: &str) -> HashMap<String, Vec<String>> {
        let mut md = HashMap::new();
        md.insert("traceparent".into(), vec![traceparent.into()]);
        md.insert("tracestate".into(), vec!["vendor=x".into()]);
        md
    }

    #[test]
    fn a_valid_traceparent_is_the_parent() {
        let p = extract(&md("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).unwrap();
        assert_eq!(p.trace_id[..2], [0x4b, 0xf9]);
        assert_eq!(p.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert!(p.sampled());
        assert_eq!(p.state, "vendor=x");
        let unsampled = extract(&md("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")).unwrap();
        assert!(!unsampled.sampled());
        // A later version may carry more fields.
        assert!(extract(&md("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")).is_some());
    }

    #[test]
    fn an_invalid_traceparent_is_no_parent() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(extract(&md(bad)), None, "{bad:?}");
        }
        assert_eq!(extract(&HashMap::new()), None);
    }
}
