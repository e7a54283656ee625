//! JSON string escaping (RFC 8259 §7), the one place answers and generated documents escape
//! text. Besides what JSON requires (quote, backslash, C0 controls), it escapes:
//! * `<` and `>`, so a JSONP body can never open or close a script tag;
//! * DEL and the C1 controls (U+0080–U+009F), so no control character is ever written raw;
//! * U+2028 and U+2029 (line and paragraph separator), which JSON allows raw but JavaScript
//!   before ES2019 reads as line ends, so a raw one inside a JSONP string literal is a syntax
//!   error — or, with the rest of the request's text, a way out of the string.
//!
//! `&` stays as it is (destination URLs carry many). Runs of bytes that need nothing are
//! copied whole.

/// What a byte needs: copied, escaped, or a look at the bytes after it (the lead bytes of
/// C1 controls and of U+2028/U+2029).
const COPY: u8 = 0;
const ESCAPE: u8 = 1;
const LEAD: u8 = 2;

static CLASS: [u8; 256] = {
    let mut t = [COPY; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = ESCAPE;
        b += 1;
    }
    t[b'"' as usize] = ESCAPE;
    t[b'\\' as usize] = ESCAPE;
    t[b'<' as usize] = ESCAPE;
    t[b'>' as usize] = ESCAPE;
    t[0x7f] = ESCAPE;
    t[0xc2] = LEAD; // U+0080–U+00BF, the C1 controls among them
    t[0xe2] = LEAD; // U+2000–U+2FFF, U+2028 and U+2029 among them
    t
};

/// Appends `s` as the inside of a JSON string: quote and backslash as `\"` and `\\`, newline,
/// carriage return and tab as `\n`, `\r`, `\t`, every other control character (C0, DEL, C1),
/// `<`, `>`, U+2028 and U+2029 as `\uXXXX`; other bytes as they are (the input is UTF-8).
pub fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    let mut copied = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let (len, code) = match CLASS[usize::from(b)] {
            COPY => {
                i += 1;
                continue;
            }
            ESCAPE => (1, u16::from(b)),
            _ => match (b, s.get(i + 1), s.get(i + 2)) {
                (0xc2, Some(&c @ 0x80..=0x9f), _) => (2, u16::from(c)),
                (0xe2, Some(&0x80), Some(&c @ (0xa8 | 0xa9))) => (3, 0x2000 | u16::from(c - 0x80)),
                _ => {
                    i += 1;
                    continue;
                }
            },
        };
        out.extend_from_slice(&s[copied..i]);
        push_escape(code, out);
        i += len;
        copied = i;
    }
    out.extend_from_slice(&s[copied..]);
}

/// One escape: the short forms JSON has, else `\uXXXX` (lower-case hex).
fn push_escape(code: u16, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match code {
        0x22 => out.extend_from_slice(b"\\\""),
        0x5c => out.extend_from_slice(b"\\\\"),
        0x0a => out.extend_from_slice(b"\\n"),
        0x0d => out.extend_from_slice(b"\\r"),
        0x09 => out.extend_from_slice(b"\\t"),
        _ => {
            let nibble = |shift: u16| HEX[usize::from((code >> shift) & 0xf)];
            out.extend_from_slice(&[b'\\', b'u', nibble(12), nibble(8), nibble(4), nibble(0)]);
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

    fn escaped(s: &str) -> String {
        let mut v = Vec::new();
        push_string(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(escaped("a\"b\\c\n</script>\u{1}é&"), r#""a\"b\\c\n\u003c/script\u003e\u0001é&""#);
        assert_eq!(escaped(""), r#""""#);
        assert_eq!(escaped("plain"), r#""plain""#);
    }

    #[test]
    fn line_separators_and_every_control_character_are_escaped() {
        assert_eq!(escaped("a\u{2028}b\u{2029}c"), r#""a\u2028b\u2029c""#);
        assert_eq!(escaped("\u{7f}\u{80}\u{9f}\r\t\u{1f}"), r#""\u007f\u0080\u009f\r\t\u001f""#);
        // Neighbours of the escaped code points stay as they are.
        assert_eq!(escaped("\u{a0}é\u{2027}\u{202a}€"), "\"\u{a0}é\u{2027}\u{202a}€\"");
        // A lead byte at the end (not UTF-8, but no panic and nothing lost).
        let mut v = Vec::new();
        escape_into(b"x\xe2\x80", &mut v);
        assert_eq!(v, b"x\xe2\x80");
        let mut v = Vec::new();
        escape_into(b"\xc2", &mut v);
        assert_eq!(v, b"\xc2");
    }

    #[test]
    fn the_output_parses_back_to_the_input() {
        let s = "k\u{0}\u{2028}<\"\\>\u{85}\u{2029}\u{10ffff}x";
        let mut v = Vec::new();
        push_string(&mut v, s);
        let parsed: String = simd_json::serde::from_slice(&mut v).unwrap();
        assert_eq!(parsed, s);
    }
}
