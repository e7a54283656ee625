//! `dcsd-partner-sim` over real sockets: the binary is started on 127.0.0.1 port 0, its ready
//! line on stderr gives the address, and each test speaks raw HTTP/1.1 to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dcsd::sim::{segments_for, DEFAULT_SEGMENTS, OVERSIZE_BYTES};

// === harness ===

/// A running simulator process, killed on drop.
struct Sim {
    child: Child,
    addr: SocketAddr,
    ready_line: String,
}

impl Sim {
    /// `dcsd-partner-sim --listen 127.0.0.1:0 ARGS`, once its ready line is out.
    fn start(args: &[&str]) -> Sim {
        Sim::start_with(args, Stdio::null())
    }

    fn start_with(args: &[&str], stdout: Stdio) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dcsd-partner-sim"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dcsd-partner-sim");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("dcsd-partner-sim listening on ") => {
                    let addr = line.split_whitespace().nth(3).unwrap().parse().unwrap();
                    return Sim { child, addr, ready_line: line };
                }
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("dcsd-partner-sim did not start: {seen:?}");
                }
            }
        }
    }

    fn connect(&self) -> Reader {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Reader { stream: s, buf: Vec::new() }
    }

    /// `GET target` on a fresh connection.
    fn get(&self, target: &str) -> Response {
        self.request(
            format!("GET {target} HTTP/1.1\r\nHost: partner\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    /// One raw request on a fresh connection; its response.
    fn request(&self, raw: &[u8]) -> Response {
        let mut r = self.connect();
        r.send(raw);
        r.response(raw.starts_with(b"HEAD ")).expect("a response")
    }

    fn stats(&self) -> String {
        self.get("/__sim/stats").body_str().to_string()
    }

    fn take_stdout(&mut self) -> ChildStdout {
        self.child.stdout.take().unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A response head and the length of the body that follows.
struct RespHead {
    status: u16,
    headers: Vec<(String, String)>,
    body_len: usize,
}

/// Reads consecutive responses from one connection (the pattern of `tests/common`).
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Reader {
    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 16384];
        match self.stream.read(&mut tmp) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    /// The head of the next response (consumed) and its body length, or `None` on close.
    fn head(&mut self, head_only: bool) -> Option<RespHead> {
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
                let len = if head_only || status == 204 {
                    0
                } else {
                    headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .map_or(0, |(_, v)| v.parse().unwrap())
                };
                self.buf.drain(..n);
                return Some(RespHead { status, headers, body_len: len });
            }
            if !self.fill() {
                return None;
            }
        }
    }

    fn response(&mut self, head_only: bool) -> Option<Response> {
        let RespHead { status, headers, body_len: len } = self.head(head_only)?;
        while self.buf.len() < len {
            if !self.fill() {
                return None;
            }
        }
        let body = self.buf.drain(..len).collect();
        Some(Response { status, headers, body })
    }

    /// True when the server closed (EOF or reset) with nothing more to read.
    fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill()
    }

    fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).unwrap();
    }
}

fn pool() -> Vec<String> {
    DEFAULT_SEGMENTS.iter().map(|s| s.to_string()).collect()
}

/// The answer body for `segments` (no special characters in the test strings).
fn body_of(segments: &[String], ttl: Option<u64>) -> String {
    let list: Vec<String> = segments.iter().map(|s| format!("\"{s}\"")).collect();
    match ttl {
        Some(t) => format!("{{\"segments\":[{}],\"ttl\":{t}}}", list.join(",")),
        None => format!("{{\"segments\":[{}]}}", list.join(",")),
    }
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

// === answers ===

#[test]
fn ready_line_is_exact() {
    let sim = Sim::start(&["--threads", "2"]);
    assert_eq!(sim.ready_line, format!("dcsd-partner-sim listening on {} (2 threads)", sim.addr));
    assert_ne!(sim.addr.port(), 0);
    for _ in 0..4 {
        assert_eq!(sim.get("/s?uid=x").status, 200);
    }
}

#[test]
fn ok_answer_has_the_users_deterministic_segments() {
    let sim = Sim::start(&[]);
    for uid in ["user-42", "7", "a%20b"] {
        let r = sim.get(&format!("/segments?uid={uid}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let key = uid.replace("%20", " ");
        assert_eq!(r.body_str(), body_of(&segments_for(key.as_bytes(), &pool(), 2), None));
        assert_eq!(r.header("content-length").unwrap(), r.body.len().to_string());
    }
    // dpuuid and uuid too, uid first; no key at all is the empty key.
    let r = sim.get("/s?uuid=u&dpuuid=d");
    assert_eq!(r.body_str(), body_of(&segments_for(b"d", &pool(), 2), None));
    let r = sim.get("/s");
    assert_eq!(r.body_str(), body_of(&segments_for(b"", &pool(), 2), None));
}

#[test]
fn pool_per_user_ttl_and_post_bodies() {
    let sim = Sim::start(&["--segments", "a,b,c,d,e", "--per-user", "3", "--ttl", "60"]);
    let p: Vec<String> = "a,b,c,d,e".split(',').map(String::from).collect();
    let body = r#"{"uuid":"12345678901234567890123456789012345678","dpuuid":"partner-7","dpid":777,"tid":"t","signals":{}}"#;
    let raw = format!(
        "POST /rt HTTP/1.1\r\nHost: p\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = sim.request(raw.as_bytes());
    assert_eq!(r.body_str(), body_of(&segments_for(b"partner-7", &p, 3), Some(60)));
    let body = r#"{"uuid":"u-1","dpuuid":null}"#;
    let raw = format!("POST /rt HTTP/1.1\r\nHost: p\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    assert_eq!(sim.request(raw.as_bytes()).body_str(), body_of(&segments_for(b"u-1", &p, 3), Some(60)));
    // A chunked body is decoded first.
    let raw = b"POST /rt HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"uui\r\n9\r\nd\":\"u-1\"}\r\n0\r\n\r\n";
    assert_eq!(sim.request(raw).body_str(), body_of(&segments_for(b"u-1", &p, 3), Some(60)));
}

#[test]
fn keep_alive_and_pipelining() {
    let sim = Sim::start(&[]);
    let mut c = sim.connect();
    c.send(
        b"GET /s?uid=1 HTTP/1.1\r\nHost: p\r\n\r\nGET /s?uid=2&sim_status=503 HTTP/1.1\r\nHost: p\r\n\r\n\
          GET /s?uid=3&sim_delay_ms=20 HTTP/1.1\r\nHost: p\r\n\r\nGET /s?uid=4 HTTP/1.1\r\nHost: p\r\n\r\n",
    );
    let want = |uid: &[u8]| body_of(&segments_for(uid, &pool(), 2), None);
    let r1 = c.response(false).unwrap();
    assert_eq!((r1.status, r1.body_str()), (200, want(b"1").as_str()));
    assert_eq!(c.response(false).unwrap().status, 503);
    assert_eq!(c.response(false).unwrap().body_str(), want(b"3"));
    let r4 = c.response(false).unwrap();
    assert_eq!(r4.body_str(), want(b"4"));
    assert!(!r4.closes());
    // Still open; then Connection: close is honoured.
    c.send(b"GET /s?uid=5 HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n");
    let r5 = c.response(false).unwrap();
    assert!(r5.closes());
    assert!(c.closed());
    // HTTP/1.0 closes unless keep-alive is asked for.
    let mut c = sim.connect();
    c.send(b"GET /s HTTP/1.0\r\n\r\n");
    assert!(c.response(false).unwrap().closes());
    assert!(c.closed());
    let mut c = sim.connect();
    c.send(b"GET /s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.response(false).unwrap().header("connection"), Some("keep-alive"));
    c.send(b"GET /s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.response(false).unwrap().status, 200);
}

// === modes ===

#[test]
fn empty_notfound_status_garbage_oversize_wrong_shape() {
    let sim = Sim::start(&[]);
    let r = sim.get("/s?sim_mode=empty");
    assert_eq!((r.status, r.body.len(), r.header("content-length")), (204, 0, None));
    let r = sim.get("/s?sim_mode=notfound");
    assert_eq!((r.status, r.body.len()), (404, 0));
    let r = sim.get("/s?sim_mode=status:418");
    assert_eq!(r.status, 418);
    assert!(r.body_str().contains("418"));
    let r = sim.get("/s?sim_mode=garbage");
    assert_eq!((r.status, r.header("content-type")), (200, Some("application/json")));
    let mut copy = r.body.clone();
    assert!(simd_json::to_borrowed_value(&mut copy).is_err(), "{}", r.body_str());
    let r = sim.get("/s?sim_mode=oversize");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("71680"));
    assert_eq!(r.body.len(), OVERSIZE_BYTES);
    assert!(r.body.len() > 64 * 1024);
    let mut copy = r.body.clone();
    assert!(simd_json::to_borrowed_value(&mut copy).is_ok());
    let r = sim.get("/s?sim_mode=wrong-shape");
    assert_eq!((r.status, r.body_str()), (200, r#"{"segments": 5}"#));
    // HEAD announces the length but sends no body; the connection stays usable.
    let mut c = sim.connect();
    c.send(b"HEAD /s?sim_mode=oversize HTTP/1.1\r\nHost: p\r\n\r\nGET /s?sim_mode=empty HTTP/1.1\r\nHost: p\r\n\r\n");
    let r = c.response(true).unwrap();
    assert_eq!((r.status, r.header("content-length")), (200, Some("71680")));
    assert_eq!(c.response(false).unwrap().status, 204);
}

#[test]
fn reset_closes_without_an_answer() {
    let sim = Sim::start(&["--mode", "reset"]);
    let mut c = sim.connect();
    c.send(b"GET /s HTTP/1.1\r\nHost: p\r\n\r\n");
    let mut buf = [0u8; 256];
    match c.stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("answered: {:?}", String::from_utf8_lossy(&buf[..n])),
    }
}

#[test]
fn hang_never_answers_while_others_are_served() {
    let sim = Sim::start(&[]);
    let mut hung = sim.connect();
    hung.stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    hung.send(b"GET /s?sim_mode=hang HTTP/1.1\r\nHost: p\r\n\r\n");
    let t = Instant::now();
    // A second connection is served meanwhile.
    assert_eq!(sim.get("/s?uid=1").status, 200);
    let mut buf = [0u8; 64];
    let err = hung.stream.read(&mut buf).expect_err("no answer to a hang");
    assert!(matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{err}");
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(sim.stats().contains("\"hang\":1"));
}

#[test]
fn slow_body_sends_the_head_at_once_and_the_body_slowly() {
    let sim = Sim::start(&[]);
    let mut c = sim.connect();
    let t = Instant::now();
    c.send(b"GET /s?sim_mode=slow-body:10&sim_segments=a HTTP/1.1\r\nHost: p\r\n\r\n");
    let RespHead { status, body_len: len, .. } = c.head(false).unwrap();
    let head_at = t.elapsed();
    let want = body_of(&["a".to_string()], None);
    assert_eq!((status, len), (200, want.len()));
    while c.buf.len() < len {
        assert!(c.fill());
    }
    let total = t.elapsed();
    assert_eq!(std::str::from_utf8(&c.buf).unwrap(), want);
    // 18 bytes, 10 ms each.
    assert!(total >= Duration::from_millis(180), "{total:?}");
    assert!(head_at < Duration::from_millis(90), "head after {head_at:?}");
}

#[test]
fn close_after_two() {
    let sim = Sim::start(&["--mode", "close-after:2"]);
    let mut c = sim.connect();
    c.send(b"GET /s?uid=1 HTTP/1.1\r\nHost: p\r\n\r\n");
    let r1 = c.response(false).unwrap();
    assert!(r1.status == 200 && !r1.closes());
    c.send(b"GET /s?uid=2 HTTP/1.1\r\nHost: p\r\n\r\n");
    let r2 = c.response(false).unwrap();
    assert_eq!(r2.body_str(), body_of(&segments_for(b"2", &pool(), 2), None));
    assert!(r2.closes());
    assert!(c.closed());
}

#[test]
fn per_request_overrides() {
    let sim = Sim::start(&["--mode", "empty", "--ttl", "30"]);
    assert_eq!(sim.get("/s").status, 204);
    let r = sim.get("/s?sim_mode=ok&sim_segments=x,y%2Cz&sim_ttl=5");
    assert_eq!(r.body_str(), r#"{"segments":["x","y","z"],"ttl":5}"#);
    let r = sim.get("/s?sim_mode=ok&sim_segments=");
    assert_eq!(r.body_str(), r#"{"segments":[],"ttl":30}"#);
    let r = sim.get("/s?sim_mode=ok&uid=k&sim_per_user=1");
    assert_eq!(r.body_str(), body_of(&segments_for(b"k", &pool(), 1), Some(30)));
    assert_eq!(sim.get("/s?sim_status=503").status, 503);
    let t = Instant::now();
    assert_eq!(sim.get("/s?sim_delay_ms=30").status, 204);
    assert!(t.elapsed() >= Duration::from_millis(30));
    let r = sim.get("/s?sim_fail_rate=1&sim_fail_mode=status:502&sim_mode=ok");
    assert_eq!(r.status, 502);
    // Unknown or bad sim_* parameters are 400 with the reason; the connection stays usable.
    let mut c = sim.connect();
    c.send(b"GET /s?sim_colour=red HTTP/1.1\r\nHost: p\r\n\r\nGET /s?sim_mode=explode HTTP/1.1\r\nHost: p\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.header("content-type")), (400, Some("text/plain; charset=utf-8")));
    assert!(r.body_str().contains("sim_colour"), "{}", r.body_str());
    let r = c.response(false).unwrap();
    assert!(r.status == 400 && r.body_str().contains("explode"), "{}", r.body_str());
    c.send(b"GET /s HTTP/1.1\r\nHost: p\r\n\r\n");
    assert_eq!(c.response(false).unwrap().status, 204);
}

#[test]
fn fail_rate_answers_with_the_fail_mode() {
    let sim = Sim::start(&["--fail-rate", "1", "--fail-mode", "notfound"]);
    assert_eq!(sim.get("/s").status, 404);
    assert_eq!(sim.get("/s?sim_fail_rate=0").status, 200);
    // Half of them, give or take, with a fixed seed.
    let sim = Sim::start(&["--fail-rate", "0.5", "--seed", "7"]);
    let mut c = sim.connect();
    let mut failed = 0;
    for _ in 0..100 {
        c.send(b"GET /s HTTP/1.1\r\nHost: p\r\n\r\n");
        failed += usize::from(c.response(false).unwrap().status == 500);
    }
    assert!((25..=75).contains(&failed), "{failed}");
}

#[test]
fn delay_is_precise() {
    let sim = Sim::start(&["--delay-ms", "5"]);
    let mut c = sim.connect();
    let mut times = Vec::new();
    for i in 0..21 {
        let t = Instant::now();
        c.send(format!("GET /s?uid={i} HTTP/1.1\r\nHost: p\r\n\r\n").as_bytes());
        assert_eq!(c.response(false).unwrap().status, 200);
        times.push(t.elapsed());
    }
    let median = median_ms(times);
    eprintln!("5 ms delay: median {median:.3} ms");
    assert!((5.0..=7.0).contains(&median), "median {median} ms");
    // A distribution: every sample within its bounds.
    let sim = Sim::start(&["--delay", "uniform:2:4"]);
    let mut c = sim.connect();
    for _ in 0..10 {
        let t = Instant::now();
        c.send(b"GET /s HTTP/1.1\r\nHost: p\r\n\r\n");
        c.response(false).unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert!((2.0..=12.0).contains(&ms), "{ms}");
    }
}

#[test]
fn delays_do_not_block_other_connections() {
    let sim = Sim::start(&["--delay-ms", "300"]);
    let mut slow = sim.connect();
    slow.send(b"GET /s HTTP/1.1\r\nHost: p\r\n\r\n");
    let t = Instant::now();
    assert_eq!(sim.get("/s?sim_delay_ms=0").status, 200);
    assert!(t.elapsed() < Duration::from_millis(250), "{:?}", t.elapsed());
    assert_eq!(slow.response(false).unwrap().status, 200);
}

#[test]
fn legacy_driver_serves_too() {
    let sim = Sim::start(&["--driver", "legacy", "--delay-ms", "5"]);
    let t = Instant::now();
    let r = sim.get("/s?uid=1");
    assert_eq!(r.body_str(), body_of(&segments_for(b"1", &pool(), 2), None));
    assert!(t.elapsed() >= Duration::from_millis(5));
}

// === bad input ===

#[test]
fn malformed_requests_get_400_and_large_bodies_413() {
    let sim = Sim::start(&[]);
    let mut c = sim.connect();
    c.send(b"GET /s\x01 HTTP/1.1\r\nHost: p\r\n\r\n");
    let r = c.response(false).unwrap();
    assert!(r.status == 400 && r.closes());
    assert!(c.closed());
    let mut c = sim.connect();
    c.send(b"POST /s HTTP/1.1\r\nHost: p\r\nContent-Length: 2000000\r\n\r\n");
    let r = c.response(false).unwrap();
    assert!(r.status == 413 && r.closes());
    let mut c = sim.connect();
    c.send(b"NONSENSE\r\n\r\n");
    assert_eq!(c.response(false).unwrap().status, 400);
    // Still serving.
    assert_eq!(sim.get("/s").status, 200);
}

// === admin endpoints ===

#[derive(serde::Deserialize)]
struct Recorded {
    ts_ms: u64,
    conn: u64,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn parse_records(ndjson: &str) -> Vec<Recorded> {
    ndjson.lines().map(|l| simd_json::serde::from_slice(&mut l.as_bytes().to_vec()).unwrap()).collect()
}

#[test]
fn requests_endpoint_returns_what_was_sent() {
    let mut sim = Sim::start_with(&["--record"], Stdio::piped());
    let stdout = sim.take_stdout();
    let body = r#"{"uuid":"u","signals":{"c_likes":"pop \"star\""}}"#;
    let raw = format!(
        "POST /rt?dpid=777 HTTP/1.1\r\nHost: partner.example\r\nAuthorization: Bearer secret\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = sim.request(raw.as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(sim.get("/s?uid=2").status, 200);
    let r = sim.get("/__sim/requests");
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let recs = parse_records(r.body_str());
    assert_eq!(recs.len(), 2, "{}", r.body_str());
    let p = &recs[0];
    assert_eq!((p.method.as_str(), p.target.as_str(), p.body.as_str()), ("POST", "/rt?dpid=777", body));
    assert!(p.ts_ms > 1_600_000_000_000);
    assert!(
        p.headers.contains(&("Authorization".to_string(), "Bearer secret".to_string())),
        "{:?}",
        p.headers
    );
    assert_eq!(p.headers[0], ("Host".to_string(), "partner.example".to_string()));
    assert_eq!((recs[1].method.as_str(), recs[1].target.as_str()), ("GET", "/s?uid=2"));
    assert_ne!(recs[0].conn, recs[1].conn);
    // --record printed the same lines on stdout.
    let mut lines = BufReader::new(stdout).lines();
    let first = parse_records(&lines.next().unwrap().unwrap());
    assert_eq!(first[0].body, body);
    // Admin requests are not recorded; reset clears.
    let r = sim
        .request(b"POST /__sim/reset HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(sim.get("/__sim/requests").body.len(), 0);
}

#[derive(serde::Deserialize)]
struct Stats {
    requests: u64,
    connections: u64,
    open_connections: u64,
    by_mode: std::collections::BTreeMap<String, u64>,
}

fn stats_of(sim: &Sim) -> Stats {
    simd_json::serde::from_slice(&mut sim.stats().into_bytes()).unwrap()
}

#[test]
fn stats_count_requests_connections_and_modes() {
    let sim = Sim::start(&["--keep", "1"]);
    let mut c = sim.connect();
    c.send(b"GET /s HTTP/1.1\r\nHost: p\r\n\r\nGET /s HTTP/1.1\r\nHost: p\r\n\r\n");
    c.send(b"GET /s?sim_mode=empty HTTP/1.1\r\nHost: p\r\n\r\n");
    for _ in 0..3 {
        c.response(false).unwrap();
    }
    assert_eq!(sim.get("/s?sim_nope=1").status, 400);
    let s = stats_of(&sim);
    assert_eq!((s.requests, s.connections), (4, 2));
    // The second connection closes right after its answer; `c` is still open.
    assert!((1..=2).contains(&s.open_connections), "{}", s.open_connections);
    assert_eq!((s.by_mode["ok"], s.by_mode["empty"], s.by_mode["rejected"]), (2, 1, 1));
    assert_eq!(s.by_mode.len(), dcsd::sim::MODE_NAMES.len());
    assert_eq!(s.by_mode.values().sum::<u64>(), 4);
    // --keep 1: only the last request is kept.
    assert_eq!(parse_records(sim.get("/__sim/requests").body_str()).len(), 1);
    assert_eq!(sim.request(b"GET /__sim/reset HTTP/1.1\r\nHost: p\r\n\r\n").status, 405);
    assert_eq!(sim.get("/__sim/nothing").status, 404);
    let r = sim.request(b"POST /__sim/reset HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    let s = stats_of(&sim);
    assert_eq!((s.requests, s.connections, s.by_mode.values().sum::<u64>()), (0, 0, 0));
    drop(c);
}
