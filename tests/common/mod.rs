//! Test harness: starts the real `dcsd` binary on 127.0.0.1 port 0 and speaks raw HTTP to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Both IO drivers; tests that touch the IO path run on each (see [`for_each_driver`]).
pub const DRIVERS: [&str; 2] = ["uring", "legacy"];

/// The one driver for tests that check request semantics only (what an answer says, not how
/// its bytes move). The driver moves bytes and never looks at a request's meaning, and every
/// shape of traffic those tests send (GET and form POST, one request per fresh connection) is
/// exercised on both drivers in `tests/http.rs`.
pub const SEMANTICS_DRIVER: &str = "uring";

/// Runs `test` once per driver in [`DRIVERS`], the runs in parallel threads named after their
/// driver (time-outs overlap instead of adding up), and fails naming every driver whose run
/// failed (its panic message, printed by its thread, names the driver too).
pub fn for_each_driver(test: impl Fn(&'static str) + Sync) {
    let test = &test;
    let failed: Vec<&str> = std::thread::scope(|s| {
        let runs = DRIVERS.map(|driver| {
            let run = std::thread::Builder::new().name(driver.to_string());
            (driver, run.spawn_scoped(s, move || test(driver)).expect("spawn a test thread"))
        });
        runs.into_iter().filter_map(|(driver, run)| run.join().is_err().then_some(driver)).collect()
    });
    assert!(failed.is_empty(), "failed on driver(s) {failed:?}: see the panic above");
}

/// The profile table bound of [`Daemon::start`]'s daemons. The default (10M) sizes the
/// table's bucket arrays at start-up, which costs a debug build 0.3–1.5 s per daemon on a busy
/// 2-core machine (40 ms with this bound); no test stores more than a few hundred profiles (64 shards of 1,024 each).
pub const TEST_MAX_PROFILES: usize = 65_536;

/// `toml` with `max_profiles = TEST_MAX_PROFILES` in its `[store]` table, unless it sets one.
fn with_small_table(toml: &str) -> String {
    let line = format!("max_profiles = {TEST_MAX_PROFILES}\n");
    if toml.contains("max_profiles") {
        toml.to_string()
    } else if toml.contains("[store]\n") {
        toml.replacen("[store]\n", &format!("[store]\n{line}"), 1)
    } else {
        format!("{toml}\n[store]\n{line}")
    }
}

/// What the ready line's `driver=` says for `--driver NAME`.
fn driver_in_ready_line(name: &str) -> Option<&'static str> {
    match name {
        "uring" => Some("Uring"),
        "legacy" => Some("Epoll"),
        _ => None,
    }
}

pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    /// The first HTTPS listener (`tls.tls_listen`), from the ready line's `tls=`.
    pub tls: Option<SocketAddr>,
    /// The IO driver the daemon runs, from its ready line (`Uring` or `Epoll`).
    pub driver: String,
    log: Arc<Mutex<Vec<String>>>,
    /// The thread that copies stderr into `log`; it ends at EOF, once the process is gone.
    log_reader: Option<std::thread::JoinHandle<()>>,
    _dir: Option<TempDir>,
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir() -> TempDir {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("dcsd-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&p).unwrap();
    TempDir(p)
}

impl Daemon {
    /// `dcsd --listen 127.0.0.1:0 --threads 1 --driver D` plus a config file with `toml`, and
    /// `store.max_profiles` = [`TEST_MAX_PROFILES`] unless `toml` sets it.
    pub fn start(driver: &str, toml: &str) -> Daemon {
        let dir = temp_dir();
        let cfg = dir.0.join("dcsd.toml");
        std::fs::write(&cfg, with_small_table(toml)).unwrap();
        let args = [
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--driver",
            driver,
        ];
        let mut d = Daemon::spawn(&args);
        d._dir = Some(dir);
        d
    }

    /// Starts `dcsd` with exactly `args` and waits until it listens and `/healthz` answers.
    /// With `--driver uring` or `--driver legacy`, the ready line must name that driver.
    pub fn spawn(args: &[&str]) -> Daemon {
        Daemon::spawn_env(args, &[])
    }

    /// [`Daemon::spawn`] with extra environment variables.
    pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dcsd"));
        cmd.args(args).envs(env.iter().copied());
        let d = Daemon::spawn_command(cmd);
        let asked = args.windows(2).find(|w| w[0] == "--driver").and_then(|w| driver_in_ready_line(w[1]));
        if let Some(want) = asked {
            assert_eq!(d.driver, want, "--driver was not honoured: {:?}", d.log());
        }
        d
    }

    /// Starts `cmd` (the `dcsd` binary with its arguments) with debug logging and waits until
    /// it listens and `/healthz` answers.
    pub fn spawn_command(mut cmd: Command) -> Daemon {
        let mut child = cmd
            .env("DCSD_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dcsd");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let log2 = log.clone();
        let log_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // `ready: public=A,B admin=C|- tls=D|- workers=N driver=X`, once every listener
                // accepts.
                if let Some(rest) = line.split("ready: ").nth(1) {
                    let _ = tx.send(rest.to_string());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let ready = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(r) => r,
            Err(_) => {
                let _ = child.kill();
                panic!("dcsd did not start: {:?}", log.lock().unwrap());
            }
        };
        let field = |name: &str| -> Vec<SocketAddr> {
            let v = ready.split_whitespace().find_map(|f| f.strip_prefix(name)).unwrap_or("-");
            v.split(',').filter(|a| *a != "-" && !a.is_empty()).map(|a| a.parse().unwrap()).collect()
        };
        let addr = field("public=").first().copied();
        let admin = field("admin=").first().copied();
        let tls = field("tls=").first().copied();
        let driver =
            ready.split_whitespace().find_map(|f| f.strip_prefix("driver=")).unwrap_or("?").to_string();
        let addr = addr.expect("a public listener");
        let d = Daemon { child, addr, admin, tls, driver, log, log_reader: Some(log_reader), _dir: None };
        d.wait_healthy(admin.unwrap_or(d.addr));
        d
    }

    /// The ready line comes once every listener accepts, so `/healthz` answers at once.
    fn wait_healthy(&self, at: SocketAddr) {
        let r = try_request(at, b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(r.map(|r| r.status).ok(), Some(200), "dcsd not healthy after its ready line");
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// One request on a fresh connection; returns the first response.
    pub fn request(&self, raw: &[u8]) -> Response {
        try_request(self.addr, raw).expect("request")
    }

    pub fn signal(&self, sig: &str) {
        let ok =
            Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit, and for the last of its log to be read.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.log_reader.take() {
                    reader.join().unwrap();
                }
                return s;
            }
            assert!(Instant::now() < deadline, "dcsd did not exit: {:?}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The daemon's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to 5 s) until at least `count` log lines contain `needle`.
    pub fn wait_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.log().iter().filter(|l| l.contains(needle)).count() < count {
            assert!(Instant::now() < deadline, "fewer than {count} {needle:?} in {:?}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Value of a series in `/metrics` (0 if absent).
    pub fn metric(&self, series: &str) -> u64 {
        let at = self.admin.unwrap_or(self.addr);
        let r = try_request(at, b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
        let text = String::from_utf8(r.body).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .map_or(0, |v| v.trim().parse().unwrap())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A client socket bound to `src` (any address of 127.0.0.0/8 is loopback on Linux), so that
/// tests of the per-address cap can be several clients.
pub fn connect_from(src: [u8; 4], to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((src, 0)).into()).unwrap();
    s.connect(&to.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

pub fn try_request(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(raw)?;
    let head_only = raw.starts_with(b"HEAD ");
    let mut r = Reader::new(s);
    r.response(head_only).ok_or_else(|| std::io::Error::other("no response"))
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order (`Set-Cookie` repeats).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads consecutive responses from one connection: plain TCP, or a TLS client stream over one
/// (`tests/tls.rs`).
pub struct Reader<S = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: Read + Write> Reader<S> {
    pub fn new(stream: S) -> Reader<S> {
        Reader { stream, buf: Vec::new() }
    }

    /// Reads more bytes: false when the server closed the connection (EOF or reset). A read
    /// that times out (10 s, [`connect`]) panics: a server that neither answers nor closes must
    /// not pass for one that closed.
    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 8192];
        match self.stream.read(&mut tmp) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server neither answered nor closed the connection within its read time-out")
            }
            Err(_) => false,
        }
    }

    /// The next response, or `None` if the connection closed first (panics if neither
    /// happens within the read time-out).
    pub fn response(&mut self, head_only: bool) -> Option<Response> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = resp.parse(&self.buf) {
                let status = resp.code.unwrap();
                let headers: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect();
                let len = if head_only || status == 204 || status == 100 {
                    0
                } else {
                    headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .map_or(0, |(_, v)| v.parse().unwrap())
                };
                while self.buf.len() < n + len {
                    if !self.fill() {
                        return None;
                    }
                }
                let body = self.buf[n..n + len].to_vec();
                self.buf.drain(..n + len);
                return Some(Response { status, headers, body });
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// True when the server closed the connection (EOF or reset) with nothing more to read;
    /// false if bytes arrive; panics if neither happens within the read time-out.
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill()
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).unwrap();
    }
}

// === the partner simulator ===

/// A running `dcsd-partner-sim` process (docs/partner-sim.md), killed (by its PID) on drop.
pub struct Sim {
    child: Child,
    /// The address it listens on, from its ready line.
    pub addr: SocketAddr,
}

/// `GET /__sim/stats`.
#[derive(Debug, serde::Deserialize)]
pub struct SimStats {
    /// Partner requests (admin ones excluded).
    pub requests: u64,
    /// Connections that carried at least one partner request.
    pub connections: u64,
    /// Of those, still open.
    pub open_connections: u64,
    /// Requests by mode name (`ok`, `hang`, …, `rejected`).
    pub by_mode: std::collections::BTreeMap<String, u64>,
}

/// One line of `GET /__sim/requests`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SimRequest {
    pub ts_ms: u64,
    /// The connection's number (1, 2, … in the order they were accepted).
    pub conn: u64,
    pub method: String,
    pub target: String,
    /// In the order and spelling sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl SimRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The raw (still percent-encoded) value of query parameter `key` of the target.
    pub fn query_raw(&self, key: &str) -> Option<&str> {
        let q = self.target.split_once('?')?.1;
        q.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    /// The percent-decoded value of query parameter `key` of the target.
    pub fn query(&self, key: &str) -> Option<String> {
        self.query_raw(key).map(percent_decode)
    }
}

/// `%XX` decoded (`+` stays `+`); invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Sim {
    /// `dcsd-partner-sim --listen 127.0.0.1:0 ARGS`, once its ready line is out.
    pub fn start(args: &[&str]) -> Sim {
        Sim::start_at("127.0.0.1:0", args)
    }

    /// `dcsd-partner-sim --listen LISTEN ARGS`, once its ready line
    /// (`dcsd-partner-sim listening on ADDR (N threads)`) is out — never a sleep.
    pub fn start_at(listen: &str, args: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dcsd-partner-sim"))
            .args(["--listen", listen])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dcsd-partner-sim");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads stderr to its end (so the simulator never blocks on a full pipe).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with("dcsd-partner-sim listening on ") => {
                    let addr = line.split_whitespace().nth(3).unwrap().parse().unwrap();
                    return Sim { child, addr };
                }
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("dcsd-partner-sim did not start: {seen:?}");
                }
            }
        }
    }

    /// `http://ADDR` + `path_and_query`, for a data source's `realtime.url`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// The simulator's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One admin request on a fresh connection.
    fn admin(&self, method: &str, target: &str) -> Response {
        let raw = format!(
            "{method} {target} HTTP/1.1\r\nHost: sim\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let r = try_request(self.addr, raw.as_bytes()).expect("a simulator admin answer");
        assert_eq!(r.status, 200, "{method} {target}: {}", String::from_utf8_lossy(&r.body));
        r
    }

    /// `GET /__sim/stats`.
    pub fn stats(&self) -> SimStats {
        let mut body = self.admin("GET", "/__sim/stats").body;
        simd_json::serde::from_slice(&mut body).expect("stats JSON")
    }

    /// `GET /__sim/requests`: the kept requests, oldest first.
    pub fn requests(&self) -> Vec<SimRequest> {
        let body = self.admin("GET", "/__sim/requests").body;
        let text = String::from_utf8(body).unwrap();
        text.lines()
            .map(|l| simd_json::serde::from_slice(&mut l.as_bytes().to_vec()).expect("a request record"))
            .collect()
    }

    /// `POST /__sim/reset`.
    pub fn reset(&self) {
        self.admin("POST", "/__sim/reset");
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 10 ms until it holds; panics naming `what` after `within`.
pub fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
