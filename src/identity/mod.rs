//! Profile IDs: the 38-digit UUID, the `demdex` cookie, transaction IDs, and the constant-time
//! comparison of the server token that may name a profile. Pure, no IO.
//!
//! A UUID is a number in `[0, 10^38)` written as exactly 38 ASCII digits (leading zeros are
//! significant), kept as a `u128`. New ones are drawn uniformly from the worker's CSPRNG
//! (ChaCha12, seeded from the OS) by rejection sampling, so no value is more likely than
//! another.

pub mod declared;

use rand::RngCore;

/// A profile ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub u128);

/// 10^38: UUIDs are below this.
#[cfg(test)]
const UUID_LIMIT: u128 = 100_000_000_000_000_000_000_000_000_000_000_000_000;
/// 10^19, for printing a UUID as two 19-digit halves.
const HALF: u128 = 10_000_000_000_000_000_000;

// === impl Uuid ===

impl Uuid {
    /// Length of the text form.
    pub const LEN: usize = 38;

    /// Parses exactly 38 ASCII digits.
    pub fn parse(s: &[u8]) -> Option<Uuid> {
        if s.len() != Self::LEN || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(Uuid(s.iter().fold(0u128, |n, d| n * 10 + u128::from(d - b'0'))))
    }

    /// A uniformly random UUID and its 38 digits. The two 19-digit halves are drawn
    /// independently and uniformly from `[0, 10^19)` (rejection sampling on 64 bits), which
    /// makes the whole uniform on `[0, 10^38)` and needs no 128-bit division to print.
    pub fn generate_with_digits(rng: &mut impl RngCore) -> (Uuid, [u8; 38]) {
        let mut half = || loop {
            let n = rng.next_u64();
            if n < HALF as u64 {
                return n;
            }
        };
        let (hi, lo) = (half(), half());
        let mut digits = [b'0'; 38];
        write_padded(&mut digits[..19], hi);
        write_padded(&mut digits[19..], lo);
        (Uuid(u128::from(hi) * HALF + u128::from(lo)), digits)
    }

    /// The 38 digits.
    pub fn to_digits(self) -> [u8; 38] {
        let mut out = [b'0'; 38];
        let hi = (self.0 / HALF) as u64;
        let lo = (self.0 % HALF) as u64;
        write_padded(&mut out[..19], hi);
        write_padded(&mut out[19..], lo);
        out
    }
}

fn write_padded(dst: &mut [u8], mut n: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The value of cookie `name` in a `Cookie` header, if present.
pub fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (&pair[..eq] == name).then(|| pair[eq + 1..].trim_ascii())
    })
}

/// Whether a presented secret equals `secret`, in time that depends on the lengths only
/// (never on where the first differing byte is): a server token (`uuid_token`, docs/http-api.md
/// §5.1) cannot be guessed byte by byte from answer times.
pub fn constant_time_eq(secret: &[u8], presented: &[u8]) -> bool {
    let mut diff = u8::from(secret.len() != presented.len());
    for (i, &s) in secret.iter().enumerate() {
        diff |= s ^ presented.get(i).copied().unwrap_or(!s);
    }
    std::hint::black_box(diff) == 0
}

/// A transaction ID: the standard base64 (12 characters, padded) of 8 bytes.
pub fn encode_tid(id: u64) -> [u8; 12] {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = id.to_be_bytes();
    let mut out = [b'='; 12];
    for (i, chunk) in b.chunks(3).enumerate() {
        let n = chunk.iter().enumerate().fold(0u32, |n, (k, &x)| n | u32::from(x) << (16 - 8 * k));
        let chars = chunk.len() + 1;
        for j in 0..chars {
            out[i * 4 + j] = B64[(n >> (18 - 6 * j) & 63) as usize];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn uuid_round_trip_keeps_leading_zeros() {
        let s = b"00012345678901234567890123456789012345";
        let u = Uuid::parse(s).unwrap();
        assert_eq!(&u.to_digits(), s);
        let max = [b'9'; 38];
        assert_eq!(Uuid::parse(&max).unwrap().to_digits(), max);
    }

    #[test]
    fn uuid_rejects_bad_text() {
        assert!(Uuid::parse(b"1234").is_none());
        assert!(Uuid::parse(b"0001234567890123456789012345678901234x").is_none());
        assert!(Uuid::parse(&[b'1'; 39]).is_none());
    }

    #[test]
    fn generated_uuids_are_in_range_and_differ() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = Uuid::generate_with_digits(&mut rng).0;
        let b = Uuid::generate_with_digits(&mut rng).0;
        assert!(a.0 < UUID_LIMIT && b.0 < UUID_LIMIT && a != b);
        // The top digit is spread over 0..=9 (uniform, not biased to small values).
        let tops: std::collections::BTreeSet<u8> =
            (0..200).map(|_| Uuid::generate_with_digits(&mut rng).0.to_digits()[0]).collect();
        assert_eq!(tops.len(), 10);
    }

    #[test]
    fn generated_digits_match_the_value() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for _ in 0..100 {
            let (u, d) = Uuid::generate_with_digits(&mut rng);
            assert_eq!(u.to_digits(), d);
            assert_eq!(Uuid::parse(&d), Some(u));
        }
    }

    #[test]
    fn cookies() {
        let h = b"a=1; demdex=00012345678901234567890123456789012345 ;b=2";
        assert_eq!(cookie_value(h, b"demdex"), Some(&b"00012345678901234567890123456789012345"[..]));
        assert_eq!(cookie_value(h, b"b"), Some(&b"2"[..]));
        assert_eq!(cookie_value(b"xdemdex=1", b"demdex"), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdef\0"));
        assert!(!constant_time_eq(b"0123456789abcdef", b""));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn tid_is_standard_base64() {
        assert_eq!(&encode_tid(0), b"AAAAAAAAAAA=");
        // base64 of bytes 01 02 03 04 05 06 07 08
        assert_eq!(&encode_tid(0x0102_0304_0506_0708), b"AQIDBAUGBwg=");
    }
}
