//! Connection budgets through the real binary (docs/configuration.md §3.2), on both drivers:
//! the per-address cap, the admin listener's own budget, and `max_connections` fitted under a
//! low `RLIMIT_NOFILE`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // test clients may block

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{connect, connect_from, try_request, Daemon, Reader, DRIVERS};

const EVENT: &[u8] = b"GET /event HTTP/1.1\r\nHost: localhost\r\n\r\n";
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// A keep-alive connection that has been answered once, so the daemon holds it.
fn held(stream: TcpStream) -> Reader {
    let mut r = Reader::new(stream);
    r.send(EVENT);
    assert_eq!(r.response(false).expect("held connection answered").status, 200);
    r
}

/// Whether the daemon closes `stream` at once, without answering the request sent on it.
fn refused(mut stream: TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t0 = Instant::now();
    // The daemon may already have closed it: a failed write is a refusal too.
    let _ = stream.write_all(EVENT);
    let mut buf = [0u8; 64];
    let closed = match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut,
    };
    closed && t0.elapsed() < Duration::from_secs(2)
}

fn healthz(admin: SocketAddr) -> u16 {
    try_request(admin, HEALTHZ).map_or(0, |r| r.status)
}

#[test]
fn per_ip_cap_closes_the_extra_connections_of_one_address() {
    for driver in DRIVERS {
        let d = Daemon::start(
            driver,
            "[server]\nadmin_listen = [\"127.0.0.1:0\"]\n\
             [limits]\nmax_connections_per_ip = 20\nkeepalive_timeout_ms = 60000\n",
        );
        let admin = d.admin.unwrap();
        let mut mine: Vec<Reader> = (0..20).map(|_| held(connect(d.addr))).collect();
        for i in 0..5 {
            assert!(refused(connect(d.addr)), "{driver}: connection {} of 127.0.0.1 served", 21 + i);
        }
        let mut other = Reader::new(connect_from([127, 0, 0, 2], d.addr));
        other.send(EVENT);
        assert_eq!(other.response(false).unwrap().status, 200, "{driver}: another address is served");
        assert_eq!(healthz(admin), 200, "{driver}: the admin listener has no per-address cap");
        assert_eq!(d.metric("dcsd_http_connections_rejected_per_ip_total"), 5, "{driver}");
        assert_eq!(d.metric("dcsd_http_connections_rejected_total"), 0, "{driver}");
        // A closed connection gives its place back.
        drop(mine.pop());
        let deadline = Instant::now() + Duration::from_secs(3);
        while refused(connect(d.addr)) {
            assert!(Instant::now() < deadline, "{driver}: the place was never given back");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn admin_listener_has_its_own_budget() {
    for driver in DRIVERS {
        let d = Daemon::start(
            driver,
            "[server]\nadmin_listen = [\"127.0.0.1:0\"]\n\
             [limits]\nmax_connections = 30\nmax_connections_per_ip = 0\nadmin_max_connections = 3\n\
             keepalive_timeout_ms = 60000\n",
        );
        let admin = d.admin.unwrap();
        let _public: Vec<Reader> = (0..30).map(|_| held(connect(d.addr))).collect();
        assert!(refused(connect(d.addr)), "{driver}: max_connections reached");
        for _ in 0..3 {
            assert_eq!(healthz(admin), 200, "{driver}: public traffic cannot take the admin budget");
        }
        // And the other way round: idle admin connections do not take public places.
        let idle_admin: Vec<TcpStream> = (0..3).map(|_| connect(admin)).collect();
        let deadline = Instant::now() + Duration::from_secs(3);
        while !refused(connect(admin)) {
            assert!(Instant::now() < deadline, "{driver}: admin_max_connections never reached");
        }
        drop(idle_admin);
        let deadline = Instant::now() + Duration::from_secs(3);
        while healthz(admin) != 200 {
            assert!(Instant::now() < deadline, "{driver}: admin places never given back");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(d.metric("dcsd_http_connections_rejected_total"), 1, "{driver}");
        assert!(d.metric("dcsd_http_connections_rejected_admin_total") >= 1, "{driver}");
        assert_eq!(d.metric("dcsd_http_connections_rejected_per_ip_total"), 0, "{driver}");
    }
}

/// `dcsd` started through `sh -c 'ulimit -n 256; exec dcsd …'` (soft and hard limit, so the
/// daemon cannot raise it back); the harness's `Daemon` starts the binary directly.
struct Limited {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    addr: SocketAddr,
    admin: SocketAddr,
}

const NOFILE: u32 = 256;
/// 256 − 64 (files) − 1 worker × (1 listener + 1 admin listener + 4 ring + 2 × 32 partner
/// connections of the demo taxonomy's two real-time data sources) − 64 (admin budget).
const EFFECTIVE: usize = 58;

fn under_ulimit(args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("ulimit -n {NOFILE} && exec \"$0\" \"$@\"")).arg(env!("CARGO_BIN_EXE_dcsd"));
    c.args(args);
    c
}

impl Limited {
    fn start(args: &[&str]) -> Limited {
        let mut child =
            under_ulimit(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn sh");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let (stderr, log2) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("ready: ").nth(1) {
                    let _ = tx.send(rest.to_string());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let Ok(ready) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!("dcsd did not start: {:?}", log.lock().unwrap());
        };
        let field = |name: &str| -> SocketAddr {
            let v = ready.split_whitespace().find_map(|f| f.strip_prefix(name)).unwrap();
            v.split(',').next().unwrap().parse().unwrap()
        };
        Limited { child, log, addr: field("public="), admin: field("admin=") }
    }

    fn lines(&self, needle: &str) -> Vec<String> {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).cloned().collect()
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn max_connections_is_fitted_under_rlimit_nofile() {
    let dir = common::temp_dir();
    let cfg = dir.0.join("dcsd.toml");
    std::fs::write(
        &cfg,
        "[server]\nadmin_listen = [\"127.0.0.1:0\"]\n\
         [limits]\nmax_connections = 100000\nmax_connections_per_ip = 0\nkeepalive_timeout_ms = 60000\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let fact = format!(
        "limits.max_connections = 100000 does not fit under RLIMIT_NOFILE {NOFILE} with 198 descriptors \
         reserved (listeners, worker rings, files, partner connections: 134; admin_max_connections: 64); \
         using max_connections = {EFFECTIVE}"
    );
    let check = under_ulimit(&["--config", cfg, "--threads", "1", "--check"]).output().unwrap();
    assert!(check.status.success());
    let out = String::from_utf8_lossy(&check.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ok: "), "{out}");
    assert_eq!(lines.get(1).copied(), Some(format!("warning: {fact}").as_str()), "{out}");

    for driver in DRIVERS {
        let d = Limited::start(&[
            "--config",
            cfg,
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--driver",
            driver,
        ]);
        assert_eq!(d.lines(&fact).len(), 1, "{driver}: {:?}", d.lines(""));
        assert!(d.lines(&fact)[0].contains("WARN"));
        let mut open = Vec::new();
        // Past the limit itself: without the fit, accept would fail with EMFILE first.
        while open.len() < NOFILE as usize + 16 {
            let s = connect(d.addr);
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut r = Reader::new(s);
            r.send(EVENT);
            match r.response(false) {
                Some(resp) => assert_eq!(resp.status, 200),
                None => break,
            }
            open.push(r);
        }
        assert_eq!(open.len(), EFFECTIVE, "{driver}: served until the fitted budget, then refused");
        for _ in 0..20 {
            assert!(refused(connect(d.addr)), "{driver}");
            assert_eq!(healthz(d.admin), 200, "{driver}: /healthz served with the public budget full");
        }
        let warnings = d.lines("accept failed");
        assert!(warnings.len() <= 2, "{driver}: {warnings:?}");
    }
}
