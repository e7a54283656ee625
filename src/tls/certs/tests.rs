use std::path::Path;

use rcgen::{CertificateParams, KeyPair};

use super::*;

/// A self-signed certificate for `names`, valid from `from` to `to` (Unix seconds), written as
/// `<stem>.pem` and `<stem>.key` in `dir`.
fn write_cert(dir: &Path, stem: &str, names: &[&str], from: i64, to: i64) -> CertFiles {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    p.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp(to).unwrap();
    let cert = p.self_signed(&key).unwrap();
    let files = CertFiles { cert: dir.join(format!("{stem}.pem")), key: dir.join(format!("{stem}.key")) };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("dcsd-certs-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const DAY: i64 = 86_400;

#[test]
fn certificates_are_checked_and_chosen_by_name() {
    let d = dir("sni");
    let now = unix_now();
    let a = write_cert(&d, "a", &["a.example", "*.acme.example"], now - DAY, now + 30 * DAY);
    let b = write_cert(&d, "b", &["B.example"], now - DAY, now + 10 * DAY);
    let set = CertSet::load(&[a.clone(), b], now).unwrap();
    assert_eq!(set.summary().certificates, 2);
    assert_eq!(set.summary().names, ["a.example", "*.acme.example"]);
    // rcgen writes whole seconds; the earliest notAfter is b's.
    assert!((set.summary().not_after - (now + 10 * DAY)).abs() <= 1, "{:?}", set.summary());
    let default = set.pick(None).clone();
    assert!(Arc::ptr_eq(set.pick(Some("unknown.example")), &default));
    assert!(Arc::ptr_eq(set.pick(Some("x.acme.example")), &default), "wildcard of the default");
    assert!(!Arc::ptr_eq(set.pick(Some("b.example")), &default), "case-insensitive exact name");
    assert!(Arc::ptr_eq(set.pick(Some("y.x.acme.example")), &default));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_files_are_refused_with_the_reason() {
    let d = dir("bad");
    let now = unix_now();
    let good = write_cert(&d, "good", &["good.example"], now - DAY, now + DAY);
    let other = write_cert(&d, "other", &["other.example"], now - DAY, now + DAY);
    let expired = write_cert(&d, "expired", &["e.example"], now - 10 * DAY, now - DAY);
    let early = write_cert(&d, "early", &["f.example"], now + DAY, now + 10 * DAY);
    let err = |f: CertFiles| CertSet::load(&[f], now).unwrap_err();
    let mismatched = CertFiles { cert: good.cert.clone(), key: other.key.clone() };
    assert!(err(mismatched).contains("does not belong to the certificate"));
    assert!(err(expired).contains("the server certificate expired on"));
    assert!(err(early).contains("is not valid before"));
    let missing = CertFiles { cert: d.join("nope.pem"), key: good.key.clone() };
    assert!(err(missing).contains("nope.pem: cannot read"));
    let swapped = CertFiles { cert: good.key.clone(), key: good.cert.clone() };
    let e = err(swapped);
    assert!(e.contains("no certificate in the file") || e.contains("cannot read"), "{e}");
    assert!(CertSet::load(&[], now).is_err());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn x509_fields_are_read_from_a_real_certificate() {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["a.example".into(), "*.b.example".into()]).unwrap();
    p.not_before = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp(4_102_444_800).unwrap(); // 2100: GeneralizedTime
    let cert = p.self_signed(&key).unwrap();
    let info = x509::parse(cert.der()).unwrap();
    assert_eq!(info.not_before, 1_700_000_000);
    assert_eq!(info.not_after, 4_102_444_800);
    assert_eq!(info.dns_names, ["a.example", "*.b.example"]);
    for cut in [1, 10, 100, cert.der().len() - 1] {
        assert!(x509::parse(&cert.der()[..cut]).is_err());
    }
}
