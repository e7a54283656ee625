//! HTTPS on `tls.tls_listen` through the real binary, with real TLS clients: rustls (in the
//! test), curl and headless Chromium. Every certificate is generated here at test time by a
//! throw-away CA (rcgen); nothing secret is in the repository.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{for_each_driver, temp_dir, Daemon, Reader, TempDir, SEMANTICS_DRIVER};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

type Tls = StreamOwned<ClientConnection, TcpStream>;

const DAY: i64 = 86_400;

// === a CA and its certificates ===

/// A throw-away CA and a directory for the files it issues.
struct Pki {
    dir: TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

/// A certificate and key on disk, and the certificate's DER.
struct Issued {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, "dcsd test CA");
        let ca = p.self_signed(&ca_key).unwrap();
        let pki = Pki { dir: temp_dir(), ca, ca_key };
        std::fs::write(pki.ca_file(), pki.ca.pem()).unwrap();
        pki
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.0.join("ca.pem")
    }

    /// A server certificate for `names`, valid now (from yesterday for 30 days).
    fn issue(&self, stem: &str, names: &[&str]) -> Issued {
        self.issue_valid(stem, names, now() - DAY, now() + 30 * DAY)
    }

    fn issue_valid(&self, stem: &str, names: &[&str], from: i64, to: i64) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        p.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
        p.not_after = time::OffsetDateTime::from_unix_timestamp(to).unwrap();
        // Not the CA's name: OpenSSL takes a certificate whose issuer is its subject for a
        // self-signed one.
        p.distinguished_name.push(rcgen::DnType::CommonName, format!("dcsd test {stem}"));
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let issued = Issued {
            cert: self.dir.0.join(format!("{stem}.pem")),
            key: self.dir.0.join(format!("{stem}.key")),
            der: cert.der().clone(),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }

    /// A client trusting this CA only, offering `versions`.
    fn client(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut c = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(c)
    }
}

/// `[tls]` serving `cert` on 127.0.0.1 port 0, plus `extra` lines.
fn tls_toml(cert: &Issued, extra: &str) -> String {
    format!(
        "[tls]\ncert = {:?}\nkey = {:?}\ntls_listen = [\"127.0.0.1:0\"]\n{extra}",
        cert.cert.display().to_string(),
        cert.key.display().to_string()
    )
}

/// A finished TLS handshake to `addr` with SNI `name`.
fn tls_connect(addr: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> Reader<Tls> {
    try_tls(common::connect(addr), config, name).unwrap()
}

/// A TLS handshake with SNI `name` over `tcp`; the error if it could not finish.
fn try_tls(tcp: TcpStream, config: &Arc<ClientConfig>, name: &str) -> std::io::Result<Reader<Tls>> {
    let conn =
        ClientConnection::new(config.clone(), ServerName::try_from(name.to_string()).unwrap()).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(Reader::new(s))
}

fn peer_cert(r: &Reader<Tls>) -> CertificateDer<'static> {
    r.stream.conn.peer_certificates().unwrap()[0].clone()
}

const PIXEL: &[u8] = b"GET /event?d_sid=4242 HTTP/1.1\r\nHost: localhost\r\n\r\n";
const JSON: &[u8] = b"GET /event?d_rtbd=json&d_sid=4242 HTTP/1.1\r\nHost: localhost\r\n\r\n";

// === the tests ===

#[test]
fn pixel_json_and_cookie_over_https_beside_plain_http() {
    let pki = Pki::new();
    let cert = pki.issue("server", &["localhost", "127.0.0.1"]);
    let config = pki.client(rustls::DEFAULT_VERSIONS);
    for_each_driver(|driver| {
        let d = Daemon::start(driver, &tls_toml(&cert, ""));
        let tls = d.tls.expect("a tls= address in the ready line");
        let mut r = tls_connect(tls, &config, "localhost");
        assert_eq!(r.stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]), "ALPN http/1.1 (h2 refused)");
        assert_eq!(r.stream.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
        r.send(PIXEL);
        let px = r.response(false).unwrap();
        assert_eq!((px.status, px.header("content-type"), px.body.len()), (200, Some("image/gif"), 43));
        let cookie = px.header("set-cookie").unwrap();
        assert!(
            cookie.starts_with("demdex=") && cookie.contains("; Secure") && cookie.contains("SameSite=None")
        );
        r.send(JSON);
        let js = r.response(false).unwrap();
        assert!(js.status == 200 && js.body_str().contains("\"uuid\":\""), "{}", js.body_str());
        // The plain listener serves beside it.
        assert_eq!(d.request(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
        assert_eq!(d.metric("dcsd_tls_handshakes_total{version=\"1.3\",kind=\"full\"}"), 1);
    });
}

#[test]
fn keep_alive_pipelining_close_notify_and_resumption() {
    let pki = Pki::new();
    let cert = pki.issue("server", &["localhost"]);
    for_each_driver(|driver| {
        let d = Daemon::start(driver, &tls_toml(&cert, ""));
        let tls = d.tls.unwrap();
        for (versions, label) in
            [(&[&rustls::version::TLS13][..], "1.3"), (&[&rustls::version::TLS12][..], "1.2")]
        {
            let config = pki.client(versions);
            let mut r = tls_connect(tls, &config, "localhost");
            // Three pipelined requests in one write, answered in order; then one more.
            r.send(&[PIXEL, JSON, PIXEL].concat());
            let kinds: Vec<_> = (0..3)
                .map(|_| r.response(false).unwrap().header("content-type").unwrap().to_string())
                .collect();
            assert_eq!(kinds, ["image/gif", "application/json", "image/gif"], "TLS {label}");
            // More than rustls buffers at once (16 KiB of plaintext): 400 pipelined requests,
            // then a 30 KB form body (several TLS records).
            r.send(&PIXEL.repeat(400));
            for _ in 0..400 {
                assert_eq!(r.response(false).unwrap().status, 200);
            }
            let body = format!("c_big={}", "x".repeat(30_000));
            let post = format!(
                "POST /event HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            r.send(post.as_bytes());
            assert_eq!(r.response(false).unwrap().status, 200);
            r.send(b"GET /event?d_sid=4242 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            let last = r.response(false).unwrap();
            assert!(last.closes());
            // A clean TLS close: close_notify, not a bare TCP close.
            let mut rest = Vec::new();
            assert_eq!(r.stream.read_to_end(&mut rest).unwrap(), 0, "TLS {label}: close_notify expected");
            // A new connection with the same client resumes the session.
            let mut again = tls_connect(tls, &config, "localhost");
            assert_eq!(
                again.stream.conn.handshake_kind(),
                Some(rustls::HandshakeKind::Resumed),
                "TLS {label}"
            );
            again.send(PIXEL);
            assert_eq!(again.response(false).unwrap().status, 200);
            let series = format!("dcsd_tls_handshakes_total{{version=\"{label}\",kind=\"resumed\"}}");
            assert_eq!(d.metric(&series), 1, "{series}");
        }
    });
}

#[test]
fn curl_fetches_the_pixel_over_https() {
    if Command::new("curl").arg("--version").output().is_err() {
        println!("SKIPPED: curl is not installed (scripts/test.sh installs it)");
        return;
    }
    let pki = Pki::new();
    let cert = pki.issue("server", &["localhost"]);
    for_each_driver(|driver| {
        let d = Daemon::start(driver, &tls_toml(&cert, ""));
        let port = d.tls.unwrap().port();
        let url = format!("https://localhost:{port}/event?d_sid=4242");
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(pki.ca_file())
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1"), "-D", "-", "-o", "/dev/null"])
            .args(["-w", "%{http_code} %{http_version} %{ssl_verify_result}\n", &url, &url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "curl: {text} {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(text.matches("200 1.1 0").count(), 2, "{text}");
        assert!(text.contains("Secure") && text.contains("SameSite=None"), "{text}");
        // Both URLs on one connection (keep-alive): one handshake.
        assert_eq!(d.metric("dcsd_tls_handshakes_total{version=\"1.3\",kind=\"full\"}"), 1);
    });
}

#[test]
fn sighup_swaps_certificates_for_new_connections_and_refuses_bad_ones() {
    let pki = Pki::new();
    let first = pki.issue("server", &["localhost"]);
    // A fresh client per connection: a resumed session would show the certificate of the
    // session it resumes.
    let fresh = || pki.client(rustls::DEFAULT_VERSIONS);
    let d = Daemon::start(SEMANTICS_DRIVER, &tls_toml(&first, ""));
    let tls = d.tls.unwrap();
    let mut old = tls_connect(tls, &fresh(), "localhost");
    old.send(PIXEL);
    assert_eq!(old.response(false).unwrap().status, 200);
    assert_eq!(peer_cert(&old), first.der);
    // New files in place, then SIGHUP: new connections get them.
    let second = pki.issue("next", &["localhost"]);
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    d.signal("HUP");
    d.wait_log("reloaded TLS certificates", 1);
    let mut new = tls_connect(tls, &fresh(), "localhost");
    assert_eq!(peer_cert(&new), second.der);
    new.send(PIXEL);
    assert_eq!(new.response(false).unwrap().status, 200);
    // The connection from before the reload carries on.
    old.send(PIXEL);
    assert_eq!(old.response(false).unwrap().status, 200);
    // An expired certificate, then a key of another certificate: refused, the second stays.
    let expired = pki.issue_valid("expired", &["localhost"], now() - 10 * DAY, now() - DAY);
    std::fs::copy(&expired.cert, &first.cert).unwrap();
    std::fs::copy(&expired.key, &first.key).unwrap();
    d.signal("HUP");
    d.wait_log("TLS reload rejected", 1);
    let other = pki.issue("other", &["localhost"]);
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&other.key, &first.key).unwrap();
    d.signal("HUP");
    d.wait_log("TLS reload rejected", 2);
    let log = d.log().join("\n");
    assert!(log.contains("expired on") && log.contains("does not belong to the certificate"), "{log}");
    let mut after = tls_connect(tls, &fresh(), "localhost");
    assert_eq!(peer_cert(&after), second.der);
    after.send(PIXEL);
    assert_eq!(after.response(false).unwrap().status, 200);
    assert_eq!(d.metric("dcsd_tls_certificate_reloads_total{result=\"applied\"}"), 1);
    assert_eq!(d.metric("dcsd_tls_certificate_reloads_total{result=\"refused\"}"), 2);
}

#[test]
fn sni_chooses_among_certificates() {
    let pki = Pki::new();
    let default = pki.issue("default", &["localhost"]);
    let acme = pki.issue("acme", &["*.acme.example"]);
    let extra = format!(
        "[[tls.sni]]\ncert = {:?}\nkey = {:?}\n",
        acme.cert.display().to_string(),
        acme.key.display().to_string()
    );
    let d = Daemon::start(SEMANTICS_DRIVER, &tls_toml(&default, &extra));
    let config = pki.client(rustls::DEFAULT_VERSIONS);
    let tls = d.tls.unwrap();
    assert_eq!(peer_cert(&tls_connect(tls, &config, "localhost")), default.der);
    let mut r = tls_connect(tls, &config, "dcs.acme.example");
    assert_eq!(peer_cert(&r), acme.der);
    r.send(b"GET /healthz HTTP/1.1\r\nHost: dcs.acme.example\r\n\r\n");
    assert_eq!(r.response(false).unwrap().status, 200);
}

/// A TLS 1.1 ClientHello (no extensions, two CBC suites): what an old client sends.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[7u8; 32]);
    body.extend_from_slice(&[0x00, 0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f, 0x01, 0x00]);
    let mut hs = vec![0x01, 0x00, 0x00, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01, 0x00, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

/// Reads until the server closes; what it sent.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("the server neither answered nor closed")
            }
            Err(_) => return out,
        }
    }
}

#[test]
fn old_protocols_are_refused_and_stalled_handshakes_closed() {
    let pki = Pki::new();
    let cert = pki.issue("server", &["localhost"]);
    let config = pki.client(rustls::DEFAULT_VERSIONS);
    for_each_driver(|driver| {
        let d = Daemon::start(driver, &tls_toml(&cert, "[limits]\nheader_timeout_ms = 1000\n"));
        let tls = d.tls.unwrap();
        let mut old = common::connect(tls);
        old.write_all(&tls11_client_hello()).unwrap();
        let answer = read_until_closed(&mut old);
        assert_eq!(answer.first(), Some(&0x15), "an alert record, then close: {answer:?}");
        // Silent, and stuck half-way through a ClientHello: closed at header_timeout_ms.
        let mut silent = common::connect(tls);
        let mut stuck = common::connect(tls);
        stuck.write_all(&tls11_client_hello()[..20]).unwrap();
        let t0 = Instant::now();
        assert!(read_until_closed(&mut silent).is_empty());
        assert!(read_until_closed(&mut stuck).is_empty());
        assert!(t0.elapsed() < Duration::from_secs(5));
        // The handshake counts against the header time-out: a client that finishes it late and
        // sends nothing is closed at 1 s from accept, not 1 s after its handshake.
        let conn = ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
        let t0 = Instant::now();
        let mut late = StreamOwned::new(conn, common::connect(tls));
        std::thread::sleep(Duration::from_millis(600));
        while late.conn.is_handshaking() {
            late.conn.complete_io(&mut late.sock).unwrap();
        }
        let mut rest = Vec::new();
        let _ = late.read_to_end(&mut rest);
        assert!(rest.is_empty());
        assert!(t0.elapsed() < Duration::from_millis(1500), "closed after {:?}", t0.elapsed());
        assert_eq!(d.metric("dcsd_tls_handshake_failures_total{reason=\"incompatible\"}"), 1);
        assert_eq!(d.metric("dcsd_tls_handshake_failures_total{reason=\"timeout\"}"), 2);
        assert_eq!(d.metric("dcsd_tls_handshakes_total{version=\"1.3\",kind=\"full\"}"), 1);
    });
}

/// Whether the daemon closes a connection from `src` to the HTTPS listener `tls` at once,
/// before any handshake: a ClientHello sent on it gets nothing back.
fn refused_before_handshake(src: [u8; 4], tls: SocketAddr, config: &Arc<ClientConfig>) -> bool {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(config.clone(), name).unwrap();
    let mut tcp = common::connect_from(src, tls);
    let t0 = Instant::now();
    // The daemon may already have closed it: a failed write is a refusal too.
    let _ = conn.write_tls(&mut tcp);
    read_until_closed(&mut tcp).is_empty() && t0.elapsed() < Duration::from_secs(2)
}

#[test]
fn https_connections_take_their_places_in_the_public_budgets() {
    let pki = Pki::new();
    let cert = pki.issue("server", &["localhost"]);
    let config = pki.client(rustls::DEFAULT_VERSIONS);
    let limits = "[server]\nadmin_listen = [\"127.0.0.1:0\"]\n\
                  [limits]\nmax_connections = 6\nmax_connections_per_ip = 3\nkeepalive_timeout_ms = 60000\n";
    let (a, b, c) = ([127, 0, 0, 1], [127, 0, 0, 2], [127, 0, 0, 3]);
    for_each_driver(|driver| {
        let d = Daemon::start(driver, &tls_toml(&cert, limits));
        let tls = d.tls.unwrap();
        let held_tls = |src: [u8; 4]| {
            let mut r = try_tls(common::connect_from(src, tls), &config, "localhost").unwrap();
            r.send(PIXEL);
            assert_eq!(r.response(false).unwrap().status, 200, "{driver}: held over HTTPS");
            r
        };
        let held_plain = |src: [u8; 4]| {
            let mut r = Reader::new(common::connect_from(src, d.addr));
            r.send(PIXEL);
            assert_eq!(r.response(false).unwrap().status, 200, "{driver}: held over HTTP");
            r
        };
        // One address's plain and HTTPS connections share its cap.
        let mut https = vec![held_tls(a), held_tls(a)];
        let mut plain = vec![held_plain(a)];
        assert!(refused_before_handshake(a, tls, &config), "{driver}: a 4th connection of {a:?} served");
        assert_eq!(d.metric("dcsd_http_connections_rejected_per_ip_total"), 1, "{driver}");
        // And every address's share max_connections.
        https.extend([held_tls(b), held_tls(b)]);
        plain.push(held_plain(b));
        assert!(refused_before_handshake(c, tls, &config), "{driver}: a 7th connection served");
        assert_eq!(d.metric("dcsd_http_connections_rejected_total"), 1, "{driver}");
        assert_eq!(d.metric("dcsd_http_connections_rejected_per_ip_total"), 1, "{driver}");
        // The refused connections never reached the handshake.
        let handshakes: u64 = ["full", "resumed"]
            .map(|k| d.metric(&format!("dcsd_tls_handshakes_total{{version=\"1.3\",kind=\"{k}\"}}")))
            .iter()
            .sum();
        assert_eq!(handshakes, 4, "{driver}");
        for reason in ["timeout", "closed", "incompatible", "alert", "protocol"] {
            let series = format!("dcsd_tls_handshake_failures_total{{reason=\"{reason}\"}}");
            assert_eq!(d.metric(&series), 0, "{driver}: {series}");
        }
        // A closed HTTPS connection gives its place back.
        drop(https.pop());
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut served = loop {
            if let Ok(r) = try_tls(common::connect_from(c, tls), &config, "localhost") {
                break r;
            }
            assert!(Instant::now() < deadline, "{driver}: the place was never given back");
            std::thread::sleep(Duration::from_millis(20));
        };
        served.send(PIXEL);
        assert_eq!(served.response(false).unwrap().status, 200, "{driver}");
        drop(plain);
    });
}

/// `dcsd --config DIR/dcsd.toml --check` with `toml`: exit code and stdout + stderr.
fn check(dir: &Path, toml: &str) -> (i32, String) {
    let cfg = dir.join("dcsd.toml");
    std::fs::write(&cfg, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dcsd"))
        .args(["--config", cfg.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn bad_certificates_stop_the_start_with_the_reason() {
    let pki = Pki::new();
    let dir = &pki.dir.0;
    let good = pki.issue("good", &["localhost"]);
    let (code, text) = check(dir, &tls_toml(&good, ""));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("tls_listen 127.0.0.1:0 with 1 certificate(s) (default for localhost)"), "{text}");
    let expired = pki.issue_valid("expired", &["localhost"], now() - 10 * DAY, now() - DAY);
    let early = pki.issue_valid("early", &["localhost"], now() + DAY, now() + 10 * DAY);
    let other = pki.issue("other", &["localhost"]);
    let mismatched = Issued { cert: good.cert.clone(), key: other.key.clone(), der: good.der.clone() };
    let missing = Issued { cert: dir.join("missing.pem"), key: good.key.clone(), der: good.der.clone() };
    std::fs::write(dir.join("garbage.pem"), "not a certificate\n").unwrap();
    let garbage = Issued { cert: dir.join("garbage.pem"), key: good.key.clone(), der: good.der.clone() };
    for (files, want) in [
        (&expired, "the server certificate expired on"),
        (&early, "is not valid before"),
        (&mismatched, "does not belong to the certificate"),
        (&missing, "missing.pem: cannot read"),
        (&garbage, "no certificate in the file"),
    ] {
        let (code, text) = check(dir, &tls_toml(files, ""));
        assert_eq!(code, 64, "{want}: {text}");
        assert!(text.contains(want), "{want}: {text}");
    }
    // The same refusal at start-up, not only with --check.
    let cfg = dir.join("dcsd.toml");
    std::fs::write(&cfg, tls_toml(&expired, "")).unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_dcsd")).args(["--config", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn an_rsa_certificate_is_served_over_tls_12_and_13() {
    let pki = Pki::new();
    let dir = &pki.dir.0;
    // rcgen cannot make RSA keys with ring: openssl does.
    let key = dir.join("rsa.key");
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&key)
        .output();
    if !made.is_ok_and(|o| o.status.success()) {
        println!("SKIPPED: openssl cannot make an RSA key here (scripts/test.sh installs openssl)");
        return;
    }
    let key_pair = KeyPair::from_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "dcsd test rsa");
    let cert = params.signed_by(&key_pair, &pki.ca, &pki.ca_key).unwrap();
    let rsa = Issued { cert: dir.join("rsa.pem"), key, der: cert.der().clone() };
    std::fs::write(&rsa.cert, cert.pem()).unwrap();
    let d = Daemon::start(SEMANTICS_DRIVER, &tls_toml(&rsa, ""));
    for versions in [&[&rustls::version::TLS12][..], &[&rustls::version::TLS13][..]] {
        let mut r = tls_connect(d.tls.unwrap(), &pki.client(versions), "localhost");
        assert_eq!(peer_cert(&r), rsa.der);
        r.send(PIXEL);
        assert_eq!(r.response(false).unwrap().status, 200);
    }
}

// === a partner over https ===

/// A tiny HTTPS partner: answers every request on every connection with `{"segments":[…]}`,
/// and counts connections and resumed handshakes.
struct TlsPartner {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    resumed: Arc<AtomicUsize>,
}

impl TlsPartner {
    fn start(cert: &Issued) -> TlsPartner {
        let chain = vec![cert.der.clone()];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&cert.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (conns, resumed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (c2, r2) = (conns.clone(), resumed.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming().map_while(Result::ok) {
                let (config, conns, resumed) = (config.clone(), c2.clone(), r2.clone());
                std::thread::spawn(move || TlsPartner::serve(tcp, config, &conns, &resumed));
            }
        });
        TlsPartner { addr, conns, resumed }
    }

    fn serve(tcp: TcpStream, config: Arc<rustls::ServerConfig>, conns: &AtomicUsize, resumed: &AtomicUsize) {
        let mut s = StreamOwned::new(rustls::ServerConnection::new(config).unwrap(), tcp);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while s.conn.is_handshaking() {
            if s.conn.complete_io(&mut s.sock).is_err() {
                return;
            }
        }
        conns.fetch_add(1, Ordering::SeqCst);
        if s.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            resumed.fetch_add(1, Ordering::SeqCst);
        }
        loop {
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                buf.drain(..end + 4);
                let body = br#"{"segments":["auto-intender"]}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if s.write_all(&[head.as_bytes(), body].concat()).is_err() {
                    return;
                }
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

#[test]
fn partners_are_called_over_https_and_resume_their_sessions() {
    let pki = Pki::new();
    let partner_cert = pki.issue("partner", &["127.0.0.1"]);
    let partner = TlsPartner::start(&partner_cert);
    // The demo taxonomy, its two partners moved to https on the test partner, trusting the test
    // CA, generous time-outs (a debug build on a busy machine), and idle connections dropped at
    // once so that every call opens a connection (and resumes the TLS session).
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/config/demo_taxonomy.json"))
        .unwrap();
    let url = format!("https://127.0.0.1:{}/segments?u=${{UUID}}", partner.addr.port());
    let taxonomy = demo
        .replace("http://127.0.0.1:9000/segments?uid=${DPUUID}", &url)
        .replace(
            "\"method\": \"GET\"",
            &format!("\"method\": \"GET\", \"ca_file\": {:?}", pki.ca_file().display().to_string()),
        )
        .replace("\"timeout_ms\": 50", "\"timeout_ms\": 3000")
        .replace("\"idle_timeout_ms\": 30000", "\"idle_timeout_ms\": 1");
    assert_eq!(taxonomy.matches("ca_file").count(), 2, "both partners patched");
    let path = pki.dir.0.join("taxonomy.json");
    std::fs::write(&path, taxonomy).unwrap();
    let d = Daemon::start(
        SEMANTICS_DRIVER,
        &format!("[server]\ntaxonomy = {:?}\n[partners]\nbudget_ms = 3000\n", path.display().to_string()),
    );
    for _ in 0..3 {
        // Past the 1 ms idle time-out of partner-x's pooled connection.
        std::thread::sleep(Duration::from_millis(20));
        // Segment 984263 = 1234T AND (5678T OR 9001T): trait 9001 comes from the partner.
        let r = d.request(b"GET /event?d_rtbd=json&c_likes=famous%20popstar HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        assert!(
            r.body_str().contains("seg=984263"),
            "segment 984263 needs the https partner: {}",
            r.body_str()
        );
    }
    assert_eq!(d.metric("dcsd_partner_outcomes_total{dpid=\"777\",outcome=\"ok\"}"), 3);
    let (conns, resumed) = (partner.conns.load(Ordering::SeqCst), partner.resumed.load(Ordering::SeqCst));
    assert!(conns >= 3 && resumed >= 1, "{conns} connections, {resumed} resumed");
}

// === a real browser ===

/// Serves two HTML pages over HTTPS on localhost (the same site as the collector): the first
/// loads the collector's pixel and then moves to the second, which loads it again.
fn serve_pages(cert: &Issued, collector: u16) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der.clone()], key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().map_while(Result::ok) {
            let (config, seen) = (config.clone(), seen2.clone());
            std::thread::spawn(move || {
                let mut s = StreamOwned::new(rustls::ServerConnection::new(config).unwrap(), tcp);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                seen.lock().unwrap().push(head);
                let px = format!("https://localhost:{collector}/event?d_sid=4242");
                let body = match path.as_str() {
                    "/visit1" => format!("<img src=\"{px}&v=1\" onload=\"location.href='/visit2'\">"),
                    "/visit2" => {
                        format!("<img src=\"{px}&v=2\" onload=\"document.title='done'\"><p>visit 2</p>")
                    }
                    _ => String::new(),
                };
                let page =
                    format!("<!doctype html><html><head><title>t</title></head><body>{body}</body></html>");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = s.write_all(resp.as_bytes());
                s.conn.send_close_notify();
                let _ = s.flush();
            });
        }
    });
    (port, seen)
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
}

#[test]
fn a_browser_keeps_the_secure_cookie_across_two_visits() {
    let Some(browser) = chromium() else {
        println!("SKIPPED: no chromium here (scripts/test.sh installs Debian's chromium package)");
        return;
    };
    let pki = Pki::new();
    let cert = pki.issue("localhost", &["localhost"]);
    let d = Daemon::start(SEMANTICS_DRIVER, &tls_toml(&cert, ""));
    let (pages, seen) = serve_pages(&cert, d.tls.unwrap().port());
    let profile = temp_dir();
    let out = Command::new("timeout")
        .arg("60")
        .arg(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .args(["--ignore-certificate-errors", "--virtual-time-budget=10000", "--dump-dom"])
        .arg(format!("https://localhost:{pages}/visit1"))
        .env("HOME", &profile.0)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("visit 2"),
        "the browser reached the second page: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Daemon side: two pixel requests, one profile: the second carried the demdex cookie the
    // first set (without it, the second would have minted a second profile).
    assert_eq!(d.metric("dcsd_http_requests_total{route=\"event\",status=\"200\"}"), 2, "{dom}");
    assert_eq!(d.metric("dcsd_profiles"), 1);
    assert!(d.metric("dcsd_tls_handshakes_total{version=\"1.3\",kind=\"full\"}") >= 1);
    // The page server (same site) sees it too, on the second visit.
    let heads = seen.lock().unwrap().join("\n");
    assert!(heads.contains("demdex="), "{heads}");
}
