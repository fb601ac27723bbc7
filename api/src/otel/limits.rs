//! What a span from the guest may hold. The guest is untrusted: a span over
//! a limit that truncating would falsify (its name, its ids, its counts) is
//! refused whole, with the reason; a value that can lose its tail (a string,
//! an array) is cut and the cut counted. docs/security.md lists them all.

use std::fmt;

/// Bytes in a span's or an event's name.
pub const MAX_NAME_LEN: usize = 256;
/// Attributes on a span, an event or a link (the SDK's own default).
pub const MAX_ATTRIBUTES: usize = 128;
/// Bytes in an attribute's key.
pub const MAX_KEY_LEN: usize = 256;
/// Bytes in a string value (an attribute's, an array element's, the status
/// message); longer ones are cut at a character boundary.
pub const MAX_VALUE_LEN: usize = 4096;
/// Elements of an array value; the rest are cut.
pub const MAX_ARRAY_LEN: usize = 128;
/// Events on a span (the SDK's own default).
pub const MAX_EVENTS: usize = 128;
/// Links on a span (the SDK's own default).
pub const MAX_LINKS: usize = 128;
/// Bytes of a W3C trace state (the spec's 32 members fit); a longer one is
/// dropped and the span kept.
pub const MAX_TRACE_STATE_LEN: usize = 512;
/// Bytes of the instrumentation scope's name and version; longer are cut.
pub const MAX_SCOPE_LEN: usize = 256;

/// Why a guest span was refused. `reason` labels the shim's
/// `voidbox.guest.rejected` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// A trace or span id (its own, its parent's, a link's) of the wrong
    /// length or all zeros.
    MalformedId,
    /// A span or event name over [`MAX_NAME_LEN`].
    NameTooLong,
    /// Over [`MAX_ATTRIBUTES`] on the span, an event or a link.
    TooManyAttributes,
    /// An attribute key over [`MAX_KEY_LEN`].
    AttributeKeyTooLong,
    /// An array nested in an array: OpenTelemetry has none.
    MalformedAttribute,
    /// Over [`MAX_EVENTS`].
    TooManyEvents,
    /// Over [`MAX_LINKS`].
    TooManyLinks,
    /// A timestamp the host clock could not place within the VM's life.
    TimestampOutOfWindow,
}

impl Rejection {
    /// The counter's `reason` attribute.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::MalformedId => "span_malformed_id",
            Rejection::NameTooLong => "span_name_too_long",
            Rejection::TooManyAttributes => "span_too_many_attributes",
            Rejection::AttributeKeyTooLong => "span_attribute_key_too_long",
            Rejection::MalformedAttribute => "span_malformed_attribute",
            Rejection::TooManyEvents => "span_too_many_events",
            Rejection::TooManyLinks => "span_too_many_links",
            Rejection::TimestampOutOfWindow => "timestamp_out_of_window",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "guest span refused: {}", self.reason())
    }
}

impl std::error::Error for Rejection {}

/// Counts what a conversion cut to fit.
#[derive(Debug, Default)]
pub(super) struct Cuts(pub u32);

impl Cuts {
    /// `s`, cut to at most `max` bytes at a character boundary.
    pub fn string(&mut self, s: &str, max: usize) -> String {
        if s.len() <= max {
            return s.to_string();
        }
        self.0 += 1;
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    }
}

/// Refuses a count over its limit.
pub(super) fn at_most(n: usize, max: usize, why: Rejection) -> Result<(), Rejection> {
    if n > max {
        Err(why)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_cut_at_a_character_boundary() {
        let mut cuts = Cuts::default();
        assert_eq!(cuts.string("abc", 3), "abc");
        assert_eq!(cuts.0, 0);
        // 'é' is two bytes: cutting at 2 would split it.
        assert_eq!(cuts.string("aéb", 2), "a");
        assert_eq!(cuts.0, 1);
    }
}
