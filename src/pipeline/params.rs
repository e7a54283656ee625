//! The control parameters the foundation needs from a request's pairs (http-api §4):
//! `d_rtbd`, `d_cb`, `d_uuid`, `d_coppa`. Query pairs first, then form-body pairs.
//!
//! Values are compared as sent (not percent-decoded): the full pair decoder with its 311
//! handling replaces this scan when request semantics land.

/// Control parameters of one request; slices borrow the request's bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Control<'a> {
    /// `d_rtbd=json`
    pub json: bool,
    /// `d_cb`
    pub callback: Option<&'a [u8]>,
    /// `d_uuid`
    pub uuid: Option<&'a [u8]>,
    /// `d_coppa=1`
    pub coppa: bool,
}

// === impl Control ===

impl<'a> Control<'a> {
    /// Scans the query, then the form body; the first occurrence of a key wins.
    pub fn scan(query: &'a [u8], form: &'a [u8]) -> Control<'a> {
        let mut c = Control::default();
        let (mut rtbd, mut coppa) = (None, None);
        for pair in query.split(|&b| b == b'&').chain(form.split(|&b| b == b'&')) {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let slot = match k {
                b"d_rtbd" => &mut rtbd,
                b"d_cb" => &mut c.callback,
                b"d_uuid" => &mut c.uuid,
                b"d_coppa" => &mut coppa,
                _ => continue,
            };
            slot.get_or_insert(v);
        }
        c.json = rtbd == Some(b"json");
        c.coppa = coppa == Some(b"1");
        c
    }
}

/// `^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$` (http-api §4).
pub fn valid_callback(cb: &[u8]) -> bool {
    let first_ok = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b'$';
    match cb.split_first() {
        Some((&f, rest)) => {
            first_ok(f)
                && rest.len() <= 63
                && rest.iter().all(|&b| first_ok(b) || b.is_ascii_digit() || b == b'.')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_query_then_form() {
        let c = Control::scan(b"d_sid=1&d_rtbd=json&d_cb=cb", b"d_uuid=1&d_rtbd=x");
        assert!(c.json);
        assert_eq!(c.callback, Some(&b"cb"[..]));
        assert_eq!(c.uuid, Some(&b"1"[..]));
        assert!(!c.coppa);
        assert!(!Control::scan(b"d_rtbd=JSON", b"").json);
        assert!(Control::scan(b"", b"d_coppa=1&d_rtbd=json").coppa);
    }

    #[test]
    fn callbacks() {
        assert!(valid_callback(b"jQuery123_456.cb$"));
        assert!(valid_callback(b"_"));
        assert!(!valid_callback(b""));
        assert!(!valid_callback(b"1abc"));
        assert!(!valid_callback(b"a(b)"));
        assert!(!valid_callback(&[b'a'; 65]));
        assert!(valid_callback(&[b'a'; 64]));
    }
}
