//! The two facts dcsd reads from a certificate itself: its validity period and its DNS names
//! (subjectAltName). rustls checks signatures and key usage; it does not say whether our own
//! certificate has expired, and SNI needs the names. A minimal DER walk over RFC 5280's
//! `TBSCertificate`, refusing anything it does not expect rather than guessing; fuzzed by
//! `fuzz/fuzz_targets/x509.rs`.

use std::fmt;

/// What a certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// `notBefore`, Unix seconds.
    pub not_before: i64,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
    /// The `dNSName` entries of subjectAltName, lower-cased (`*.` wildcards kept).
    pub dns_names: Vec<String>,
}

/// Why a certificate could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct X509Error(&'static str);

/// DER tags used below.
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version`, `[3] EXPLICIT Extensions`.
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;
/// `dNSName [2] IA5String` inside `GeneralNames`.
const DNS_NAME: u8 = 0x82;
/// id-ce-subjectAltName, 2.5.29.17.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// A cursor over DER content.
struct Der<'a>(&'a [u8]);

// === impl X509Error ===

impl fmt::Display for X509Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed certificate: {}", self.0)
    }
}

impl std::error::Error for X509Error {}

// === impl Der ===

impl<'a> Der<'a> {
    /// The next element: its tag and contents.
    fn next(&mut self) -> Result<(u8, &'a [u8]), X509Error> {
        let bad = X509Error("truncated or bad length");
        let (&tag, rest) = self.0.split_first().ok_or(bad)?;
        let (&first, mut rest) = rest.split_first().ok_or(bad)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(bad);
            }
            let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(bad);
        }
        let (content, after) = rest.split_at(len);
        self.0 = after;
        Ok((tag, content))
    }

    /// The next element, which must have `tag`.
    fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], X509Error> {
        match self.next()? {
            (t, c) if t == tag => Ok(c),
            _ => Err(X509Error(what)),
        }
    }

    /// Skips the next element if it has `tag`.
    fn skip_if(&mut self, tag: u8) -> Result<(), X509Error> {
        if self.0.first() == Some(&tag) {
            self.next()?;
        }
        Ok(())
    }
}

/// Reads the validity and DNS names of a DER certificate.
///
/// # Errors
/// Anything that is not a well-formed X.509 v1–v3 certificate as far as these fields go.
pub fn parse(der: &[u8]) -> Result<CertInfo, X509Error> {
    let cert = Der(der).expect(SEQUENCE, "not a SEQUENCE")?;
    let mut tbs = Der(Der(cert).expect(SEQUENCE, "no tbsCertificate")?);
    tbs.skip_if(VERSION)?;
    tbs.expect(INTEGER, "no serial number")?;
    tbs.expect(SEQUENCE, "no signature algorithm")?;
    tbs.expect(SEQUENCE, "no issuer")?;
    let mut validity = Der(tbs.expect(SEQUENCE, "no validity")?);
    let not_before = time(validity.next()?)?;
    let not_after = time(validity.next()?)?;
    tbs.expect(SEQUENCE, "no subject")?;
    tbs.expect(SEQUENCE, "no subject public key")?;
    let mut dns_names = Vec::new();
    while !tbs.0.is_empty() {
        let (tag, content) = tbs.next()?;
        if tag == EXTENSIONS {
            dns_names = san_dns_names(Der(content).expect(SEQUENCE, "bad extensions")?)?;
        }
    }
    Ok(CertInfo { not_before, not_after, dns_names })
}

/// The `dNSName`s of the subjectAltName extension, if present.
fn san_dns_names(extensions: &[u8]) -> Result<Vec<String>, X509Error> {
    let mut exts = Der(extensions);
    let mut names = Vec::new();
    while !exts.0.is_empty() {
        let mut ext = Der(exts.expect(SEQUENCE, "bad extension")?);
        let oid = ext.expect(OID, "extension without OID")?;
        ext.skip_if(BOOLEAN)?;
        let value = ext.expect(OCTET_STRING, "extension without value")?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        let mut general = Der(Der(value).expect(SEQUENCE, "bad subjectAltName")?);
        while !general.0.is_empty() {
            let (tag, name) = general.next()?;
            if tag == DNS_NAME {
                let name = std::str::from_utf8(name).map_err(|_| X509Error("dNSName is not ASCII"))?;
                names.push(name.to_ascii_lowercase());
            }
        }
    }
    Ok(names)
}

/// `UTCTime` (`YYMMDDHHMMSSZ`, RFC 5280: 1950–2049) or `GeneralizedTime`
/// (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn time((tag, v): (u8, &[u8])) -> Result<i64, X509Error> {
    let bad = X509Error("bad time");
    let digits = |s: &[u8]| -> Result<i64, X509Error> {
        s.iter().try_fold(0i64, |acc, &b| {
            if b.is_ascii_digit() {
                Ok(acc * 10 + i64::from(b - b'0'))
            } else {
                Err(bad)
            }
        })
    };
    let (year, rest) = match (tag, v.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(&v[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &v[2..])
        }
        (GENERALIZED_TIME, 15) => (digits(&v[..4])?, &v[4..]),
        _ => return Err(bad),
    };
    if rest[10] != b'Z' {
        return Err(bad);
    }
    let [mo, d, h, mi, s] = [0, 2, 4, 6, 8].map(|i| digits(&rest[i..i + 2]));
    let (mo, d, h, mi, s) = (mo?, d?, h?, mi?, s?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad);
    }
    Ok(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD HH:MM:SS UTC` of Unix seconds, for messages.
pub fn format_utc(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = crate::log::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_both_ways() {
        assert_eq!(time((UTC_TIME, b"700101000000Z")), Ok(0));
        assert_eq!(time((UTC_TIME, b"491231235959Z")), Ok(2_524_607_999));
        assert_eq!(time((GENERALIZED_TIME, b"20240229120000Z")), Ok(1_709_208_000));
        assert_eq!(format_utc(1_709_208_000), "2024-02-29 12:00:00 UTC");
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert!(time((UTC_TIME, b"700101000000+0100")).is_err());
        assert!(time((GENERALIZED_TIME, b"2024133112000Z")).is_err());
        assert!(time((OID, b"700101000000Z")).is_err());
    }

    #[test]
    fn garbage_is_refused_not_misread() {
        assert!(parse(b"").is_err());
        assert!(parse(&[0x30, 0x82, 0xff]).is_err());
        assert!(parse(&[0x30, 0x00]).is_err());
        assert!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
