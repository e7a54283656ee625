use super::*;

/// Builds TC strings field by field, as a CMP would.
struct Writer {
    bits: Vec<bool>,
}

impl Writer {
    fn new() -> Writer {
        Writer { bits: Vec::new() }
    }
    fn put(&mut self, v: u64, n: usize) -> &mut Writer {
        for i in (0..n).rev() {
            self.bits.push(v >> i & 1 == 1);
        }
        self
    }
    /// A core segment up to (not including) the vendor consent section.
    fn core(purposes: &[u8]) -> Writer {
        let mut w = Writer::new();
        w.put(2, 6).put(16_000_000_000, 36).put(16_000_000_000, 36).put(300, 12).put(2, 12).put(1, 6);
        w.put(4, 6).put(13, 6).put(150, 12).put(4, 6).put(0, 1).put(0, 1).put(0, 12);
        let mut p = 0u64;
        for &n in purposes {
            p |= 1 << (24 - n);
        }
        w.put(p, 24).put(0, 24).put(0, 1).put(3, 6).put(4, 6);
        w
    }
    fn encode(&self) -> String {
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        self.bits
            .chunks(6)
            .map(|c| {
                let v = c.iter().enumerate().fold(0usize, |v, (i, &b)| v | usize::from(b) << (5 - i));
                B64[v] as char
            })
            .collect()
    }
}

#[test]
fn public_example_header() {
    // From the IAB's @iabtcf/cli documentation.
    let tc = TcString::parse(b"COrVd1pOrVd1pACABCENAHCAAAAAAAAAAAiQAAAAAAAA").unwrap();
    assert_eq!(tc.core.cmp_id, 2);
    assert_eq!(tc.core.cmp_version, 1);
    assert_eq!(tc.core.consent_screen, 2);
    assert_eq!(&tc.core.language, b"EN");
    assert_eq!(tc.core.vendor_list_version, 7);
    assert_eq!(tc.core.policy_version, 2);
    assert_eq!(&tc.core.publisher_cc, b"ES");
    assert_eq!(tc.core.purposes_consent, 0);
    assert!(!tc.allows(565).unwrap());
}

#[test]
fn public_example_with_purposes() {
    // From the GDPR::IAB::TCFv2 (CPAN) documentation: CMP 21 v7, EN, GVL 23, purposes 1, 3, 9, 10.
    let s = b"CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA.argAC0gAAAAAAAAAAAA";
    let tc = TcString::parse(s).unwrap();
    assert_eq!(tc.core.cmp_id, 21);
    assert_eq!(tc.core.cmp_version, 7);
    assert_eq!(&tc.core.language, b"EN");
    assert_eq!(tc.core.vendor_list_version, 23);
    for p in [1, 3, 9, 10] {
        assert!(tc.purpose(p), "purpose {p}");
    }
    assert_eq!(tc.core.purposes_consent.count_ones(), 4);
    // Its vendor section is a bit field up to vendor 115.
    assert_eq!((tc.max_vendor_id, tc.range), (115, false));
    assert!(!tc.vendor(284).unwrap() && !tc.allows(565).unwrap());
}

#[test]
fn bit_field_vendor_section() {
    let mut w = Writer::core(&[1, 10]);
    w.put(600, 16).put(0, 1);
    for v in 1..=600u16 {
        w.put(u64::from(v == 565 || v == 7), 1);
    }
    let s = w.encode();
    let tc = TcString::parse(s.as_bytes()).unwrap();
    assert_eq!((tc.core.cmp_id, tc.core.cmp_version, tc.core.consent_screen), (300, 2, 1));
    assert_eq!(&tc.core.language, b"EN");
    assert_eq!(&tc.core.publisher_cc, b"DE");
    assert!(tc.purpose(1) && tc.purpose(10) && !tc.purpose(2));
    assert!(tc.vendor(565).unwrap() && tc.vendor(7).unwrap());
    assert!(!tc.vendor(564).unwrap() && !tc.vendor(601).unwrap() && !tc.vendor(0).unwrap());
    assert!(tc.allows(565).unwrap());
    assert!(!tc.allows(564).unwrap());
}

#[test]
fn range_vendor_section() {
    let mut w = Writer::core(&[1, 2, 10]);
    w.put(1000, 16).put(1, 1).put(2, 12);
    w.put(0, 1).put(42, 16); // single vendor 42
    w.put(1, 1).put(500, 16).put(600, 16); // vendors 500..=600
    let s = w.encode();
    let tc = TcString::parse(s.as_bytes()).unwrap();
    assert!(tc.vendor(42).unwrap() && tc.vendor(500).unwrap() && tc.vendor(565).unwrap());
    assert!(tc.vendor(600).unwrap() && !tc.vendor(601).unwrap() && !tc.vendor(43).unwrap());
    assert!(tc.allows(565).unwrap());
}

#[test]
fn missing_purpose_ten_denies() {
    let mut w = Writer::core(&[1]);
    w.put(565, 16).put(1, 1).put(1, 12).put(0, 1).put(565, 16);
    let s = w.encode();
    let tc = TcString::parse(s.as_bytes()).unwrap();
    assert!(tc.vendor(565).unwrap());
    assert!(!tc.allows(565).unwrap());
}

#[test]
fn errors() {
    assert_eq!(TcString::parse(b"").unwrap_err(), TcfError::Empty);
    assert_eq!(TcString::parse(b".abc").unwrap_err(), TcfError::Empty);
    assert_eq!(TcString::parse(b"CO!Vd").unwrap_err(), TcfError::BadCharacter);
    assert_eq!(TcString::parse(b"BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA").unwrap_err(), TcfError::Version(1));
    assert_eq!(TcString::parse(b"COrVd1pOrVd1pACABCENAHCAAAAA").unwrap_err(), TcfError::Truncated);
    // A vendor section cut short is reported when it is read.
    let mut w = Writer::core(&[1, 10]);
    w.put(600, 16).put(0, 1).put(0, 30);
    let s = w.encode();
    let tc = TcString::parse(s.as_bytes()).unwrap();
    assert_eq!(tc.vendor(565).unwrap_err(), TcfError::Truncated);
}
