//! Limits on every field a command carries, in one place, units last.
//! docs/format.md and docs/http.md list them; `decide` checks them before
//! anything is appended, so an oversize or malformed field is refused with
//! `too_long`, `empty_field` or `invalid_chars` and nothing is written.

use crate::error::LifecycleError;

/// `session_id`, `parent_id` and a start's `next_id`.
pub const SESSION_ID_LEN_MAX_BYTES: usize = 128;
/// Session keys. Real gateway keys get long
/// (`agent:main:slack:group:T0…:C0…:thread:…:U…`).
pub const KEY_LEN_MAX_BYTES: usize = 1024;
/// `platform`, `user_id` and `source`.
pub const LABEL_LEN_MAX_BYTES: usize = 256;
/// End reasons and reopen reasons (a short name; see [`NAME_CHARSET`]).
pub const REASON_LEN_MAX_BYTES: usize = 64;
/// Flush markers (a short name; see [`NAME_CHARSET`]).
pub const MARKER_LEN_MAX_BYTES: usize = 64;
/// Attribute names (a short name; see [`NAME_CHARSET`]).
pub const ATTR_NAME_LEN_MAX_BYTES: usize = 64;
/// Attributes of one start: names and values together.
pub const ATTRS_TOTAL_MAX_BYTES: usize = 16 * 1024;
/// Attributes of one start.
pub const ATTRS_COUNT_MAX: usize = 64;
/// `finalize_failed` error text; longer text is cut at a character boundary.
pub const ERROR_LEN_MAX_BYTES: usize = 4096;
/// How far ahead of the clock a command's `at` may be.
pub const CLOCK_SKEW_MAX_MS_DEFAULT: u64 = 5 * 60_000;

/// What reasons, markers and attribute names may hold.
pub const NAME_CHARSET: &str =
    "lowercase ASCII letters, digits, '_', '-', '.' and ':', starting with a letter or digit";

/// A session id, key or label: not empty, not too long, and no control
/// characters (they would reach terminals and logs).
pub(crate) fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), LifecycleError> {
    if value.is_empty() {
        return Err(LifecycleError::Empty { field });
    }
    if value.len() > max {
        return Err(LifecycleError::TooLong { field, len: value.len(), max });
    }
    if value.chars().any(char::is_control) {
        return Err(LifecycleError::Charset { field, allowed: "no control characters" });
    }
    Ok(())
}

/// A reason, marker or attribute name: a short name from [`NAME_CHARSET`].
pub(crate) fn check_name(field: &'static str, value: &str, max: usize) -> Result<(), LifecycleError> {
    if value.is_empty() {
        return Err(LifecycleError::Empty { field });
    }
    if value.len() > max {
        return Err(LifecycleError::TooLong { field, len: value.len(), max });
    }
    let allowed =
        |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b':');
    let first_ok = value.as_bytes()[0].is_ascii_alphanumeric();
    if !first_ok || !value.bytes().all(allowed) {
        return Err(LifecycleError::Charset { field, allowed: NAME_CHARSET });
    }
    Ok(())
}

/// A start's attributes: each name a short name, each value text, all of
/// them together within [`ATTRS_TOTAL_MAX_BYTES`].
pub(crate) fn check_attrs(attrs: &std::collections::BTreeMap<String, String>) -> Result<(), LifecycleError> {
    if attrs.len() > ATTRS_COUNT_MAX {
        return Err(LifecycleError::TooMany { field: "attrs", count: attrs.len(), max: ATTRS_COUNT_MAX });
    }
    let total: usize = attrs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > ATTRS_TOTAL_MAX_BYTES {
        return Err(LifecycleError::TooLong { field: "attrs", len: total, max: ATTRS_TOTAL_MAX_BYTES });
    }
    for name in attrs.keys() {
        check_name("attrs name", name, ATTR_NAME_LEN_MAX_BYTES)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_plain() {
        assert!(check_name("reason", "manual_reset", REASON_LEN_MAX_BYTES).is_ok());
        assert!(check_name("reason", "v1.2:resume-x", REASON_LEN_MAX_BYTES).is_ok());
        for bad in ["Manual", "_x", "a b", "x\u{1b}[2K", "é"] {
            let e = check_name("reason", bad, REASON_LEN_MAX_BYTES).unwrap_err();
            assert_eq!(e.kind(), "invalid_chars", "{bad:?}");
        }
        let long = "a".repeat(REASON_LEN_MAX_BYTES + 1);
        assert_eq!(check_name("reason", &long, REASON_LEN_MAX_BYTES).unwrap_err().kind(), "too_long");
        assert_eq!(check_name("reason", "", REASON_LEN_MAX_BYTES).unwrap_err().kind(), "empty_field");
    }

    #[test]
    fn text_has_no_control_characters() {
        assert!(
            check_text("key", "agent:main:slack:group:T01:C02:thread:1.2:U03", KEY_LEN_MAX_BYTES).is_ok()
        );
        assert!(check_text("key", "über:chat", KEY_LEN_MAX_BYTES).is_ok());
        assert_eq!(check_text("key", "a\rOK", KEY_LEN_MAX_BYTES).unwrap_err().kind(), "invalid_chars");
        let long = "k".repeat(KEY_LEN_MAX_BYTES + 1);
        assert_eq!(check_text("key", &long, KEY_LEN_MAX_BYTES).unwrap_err().kind(), "too_long");
    }

    #[test]
    fn attrs_are_bounded_in_total() {
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("model".to_string(), "m".repeat(ATTRS_TOTAL_MAX_BYTES));
        assert_eq!(check_attrs(&attrs).unwrap_err().kind(), "too_long");
        attrs.insert("model".to_string(), "m1".to_string());
        assert!(check_attrs(&attrs).is_ok());
        attrs.insert("Bad Name".to_string(), "x".to_string());
        assert_eq!(check_attrs(&attrs).unwrap_err().kind(), "invalid_chars");
    }
}
