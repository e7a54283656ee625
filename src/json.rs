//! JSON string escaping (RFC 8259 §7), the one place answers and generated documents escape
//! text. `<` and `>` are escaped too, so a JSONP body can never open or close a script tag;
//! `&` stays as it is (destination URLs carry many).

/// Appends `s` as the inside of a JSON string: quote, backslash and control bytes escaped, and
/// `<`, `>` as `\u00XX`; other bytes as they are (the input is UTF-8).
pub fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f | b'<' | b'>' => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
}

/// Appends `s` as a JSON string literal, quotes included.
pub fn push_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(s.as_bytes(), out);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut v = Vec::new();
        push_string(&mut v, "a\"b\\c\n</script>\u{1}é&");
        assert_eq!(String::from_utf8(v).unwrap(), r#""a\"b\\c\n\u003c/script\u003e\u0001é&""#);
    }
}
