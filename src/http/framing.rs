//! Message framing rules both roles share (RFC 9112 §6): `Content-Length` values,
//! `Transfer-Encoding: chunked`, connection tokens. The server role ([`super::request`]) and the
//! client role ([`super::client`]) each turn a violation into their own error: a 400 for an
//! inbound request, a failed call for a partner's answer.

/// `Content-Length` may repeat (as headers or as a list) only with one value (RFC 9110 §8.6).
/// Returns the value, or `None` for a malformed or conflicting one.
pub fn merge_content_length(prev: Option<u64>, v: &[u8]) -> Option<u64> {
    let mut value = prev;
    for part in v.split(|&b| b == b',') {
        let digits = part.trim_ascii();
        if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if value.is_some_and(|p| p != n) {
            return None;
        }
        value = Some(n);
    }
    value
}

/// Only `chunked` alone is accepted: any other coding cannot be framed safely.
pub fn is_chunked(v: &[u8]) -> bool {
    v.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&c| c == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_values_must_agree() {
        assert_eq!(merge_content_length(None, b"42"), Some(42));
        assert_eq!(merge_content_length(None, b" 42 , 42"), Some(42));
        assert_eq!(merge_content_length(Some(42), b"42"), Some(42));
        assert_eq!(merge_content_length(Some(41), b"42"), None);
        assert_eq!(merge_content_length(None, b"4 2"), None);
        assert_eq!(merge_content_length(None, b""), None);
        assert_eq!(merge_content_length(None, b"-1"), None);
        assert_eq!(merge_content_length(None, &[b'9'; 19]), None);
    }

    #[test]
    fn tokens_and_codings() {
        assert!(has_token(b"keep-alive, Close", b"close"));
        assert!(!has_token(b"closed", b"close"));
        assert!(is_chunked(b" Chunked "));
        assert!(!is_chunked(b"gzip, chunked"));
    }
}
