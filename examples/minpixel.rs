//! minpixel — the "minimal monoio responder" anchor of `benches/load.sh`.
//!
//! A measuring stick, not product code: the least a thread-per-core monoio HTTP/1.1 server has
//! to do to answer a tracking pixel, so that dcsd's cost per request can be read as a ratio to
//! it. Every request, whatever its method and target, gets the 43-byte transparent GIF that
//! nginx's `empty_gif` serves, with `Server`, a `Date` header (formatted once a second per
//! thread), `Content-Type`, `Content-Length`, `Cache-Control: no-store` and `Connection`.
//!
//! What it handles: keep-alive (HTTP/1.1 by default, HTTP/1.0 with `Connection: keep-alive`),
//! `Connection: close`, pipelined requests (every complete request in a read is answered, the
//! answers leave in one write), request bodies announced by `Content-Length` (read and
//! skipped). `Transfer-Encoding` gets a 501, a malformed head a 400, a head over 16 KiB a 431;
//! each of those closes the connection.
//!
//! One monoio runtime per thread, each with its own `SO_REUSEPORT` listener on `--addr`; no
//! state is shared between threads. It binds loopback addresses only.
//!
//! ```text
//! cargo build --release --example minpixel
//! target/release/examples/minpixel [--addr 127.0.0.1:18081] [--threads 1]
//!                                  [--uring-flags coop[,single,defer,taskrun,sqpoll]]
//!                                  [--driver uring|legacy]
//! ```
//! * `--uring-flags coop` sets `IORING_SETUP_COOP_TASKRUN`, as dcsd does (without it io_uring
//!   completions arrive by task-work interrupts, which cost 1.5–1.7× the CPU per request on a
//!   small VM; see `benches/README.md`). The default is monoio's own setup (no flags).
//! * `--driver legacy` uses monoio's epoll driver instead of io_uring, for comparison.
//!
//! When every thread listens it prints `minpixel listening on ADDR (...)` on stderr, which is
//! what the benchmark scripts wait for.
#![allow(missing_docs)]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{ListenerOpts, TcpListener, TcpStream};

/// The GIF of nginx's ngx_http_empty_gif_module, byte for byte.
const GIF: [u8; 43] = [
    b'G', b'I', b'F', b'8', b'9', b'a', 0x01, 0x00, 0x01, 0x00, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0xff,
    0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x01, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x01, 0x00, 0x00, 0x02, 0x02, 0x4c, 0x01, 0x00, 0x3b,
];

/// A request head longer than this is refused (431).
const MAX_HEAD: usize = 16 * 1024;
/// A request (head and body) longer than this closes the connection.
const MAX_REQUEST: usize = 1024 * 1024;
/// io_uring submission queue size per thread.
const URING_ENTRIES: u32 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Driver {
    Uring,
    Legacy,
}

#[derive(Clone, Debug)]
struct Options {
    addr: SocketAddr,
    threads: usize,
    driver: Driver,
    uring_flags: Vec<String>,
}

const USAGE: &str = "usage: minpixel [--addr 127.0.0.1:PORT] [--threads N] \
                     [--uring-flags coop,single,defer,taskrun,sqpoll] [--driver uring|legacy]";

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 18081)),
        threads: 1,
        driver: Driver::Uring,
        uring_flags: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--addr" => o.addr = value.parse().map_err(|e| format!("--addr {value}: {e}"))?,
            "--threads" => {
                o.threads = value.parse().map_err(|e| format!("--threads {value}: {e}"))?;
                if o.threads == 0 {
                    return Err("--threads must be at least 1".into());
                }
            }
            "--uring-flags" => {
                o.uring_flags = value.split(',').filter(|f| !f.is_empty()).map(String::from).collect()
            }
            "--driver" => {
                o.driver = match value.as_str() {
                    "uring" => Driver::Uring,
                    "legacy" | "epoll" => Driver::Legacy,
                    _ => return Err(format!("--driver {value}: uring or legacy")),
                }
            }
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    if !o.addr.ip().is_loopback() {
        return Err(format!("--addr {}: benchmark tools bind loopback addresses only", o.addr));
    }
    Ok(o)
}

fn uring_builder(flags: &[String]) -> Result<io_uring::Builder, String> {
    let mut b = io_uring::IoUring::builder();
    for f in flags {
        match f.as_str() {
            "coop" => b.setup_coop_taskrun(),
            "taskrun" => b.setup_taskrun_flag(),
            "single" => b.setup_single_issuer(),
            "defer" => b.setup_defer_taskrun(),
            "sqpoll" => b.setup_sqpoll(1000),
            other => return Err(format!("--uring-flags: unknown flag {other}")),
        };
    }
    Ok(b)
}

// ------------------------------------------------------------------------ Date header

thread_local! {
    /// (second it was formatted for, the formatted IMF-fixdate).
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [b' '; 29])) };
}

/// Formats `secs` since the Unix epoch as an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn imf_fixdate(secs: u64, out: &mut [u8; 29]) {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let days = secs / 86_400;
    let tod = secs % 86_400;
    // Civil date from a day count (Howard Hinnant's algorithm, shifted so eras start in March).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let mut w = 0;
    let mut put = |bytes: &[u8]| {
        out[w..w + bytes.len()].copy_from_slice(bytes);
        w += bytes.len();
    };
    put(DAYS[(days % 7) as usize]);
    put(b", ");
    put(&two(day));
    put(b" ");
    put(MONTHS[(month - 1) as usize]);
    put(b" ");
    put(&two(year / 100));
    put(&two(year));
    put(b" ");
    put(&two(tod / 3600));
    put(b":");
    put(&two(tod / 60 % 60));
    put(b":");
    put(&two(tod % 60));
    put(b" GMT");
}

fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != now {
            imf_fixdate(now, &mut cached.1);
            cached.0 = now;
        }
        out.extend_from_slice(&cached.1);
    });
}

// ------------------------------------------------------------------------ HTTP/1.1

/// What the buffered bytes hold next.
enum Next {
    /// A complete request of `len` bytes (head and body).
    Request { len: usize, keep_alive: bool },
    /// Not a complete request yet; `need` is its total length when the head is known, else 0.
    Incomplete { need: usize },
    /// Answer with this status and close.
    Refuse(&'static str),
}

fn header_has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn next_request(buf: &[u8]) -> Next {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Next::Refuse("431 Request Header Fields Too Large")
        }
        Ok(httparse::Status::Partial) => return Next::Incomplete { need: 0 },
        Err(httparse::Error::TooManyHeaders) => return Next::Refuse("431 Request Header Fields Too Large"),
        Err(_) => return Next::Refuse("400 Bad Request"),
    };
    let mut keep_alive = req.version == Some(1);
    let mut body_len = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            if header_has_token(h.value, "close") {
                keep_alive = false;
            } else if header_has_token(h.value, "keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok()) {
                Some(n) if head_len + n <= MAX_REQUEST => body_len = n,
                _ => return Next::Refuse("400 Bad Request"),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Next::Refuse("501 Not Implemented");
        }
    }
    let len = head_len + body_len;
    if buf.len() < len {
        return Next::Incomplete { need: len };
    }
    Next::Request { len, keep_alive }
}

fn push_pixel(out: &mut Vec<u8>, keep_alive: bool) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nServer: minpixel\r\nDate: ");
    push_date(out);
    out.extend_from_slice(
        b"\r\nContent-Type: image/gif\r\nContent-Length: 43\r\nCache-Control: no-store\r\n",
    );
    if keep_alive {
        out.extend_from_slice(b"Connection: keep-alive\r\n\r\n");
    } else {
        out.extend_from_slice(b"Connection: close\r\n\r\n");
    }
    out.extend_from_slice(&GIF);
}

fn push_refusal(out: &mut Vec<u8>, status: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// Serves one connection until the peer closes it, an error, or an answer that closes it.
async fn serve(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut output: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Answer every complete request already buffered (pipelining); one write for all.
        let mut consumed = 0;
        let mut need = 0;
        let mut close = false;
        loop {
            match next_request(&input[consumed..]) {
                Next::Request { len, keep_alive } => {
                    push_pixel(&mut output, keep_alive);
                    consumed += len;
                    if !keep_alive {
                        close = true;
                        break;
                    }
                }
                Next::Incomplete { need: n } => {
                    need = n;
                    break;
                }
                Next::Refuse(status) => {
                    push_refusal(&mut output, status);
                    close = true;
                    break;
                }
            }
        }
        if !output.is_empty() {
            let (res, mut buf) = conn.write_all(std::mem::take(&mut output)).await;
            buf.clear();
            output = buf;
            if res.is_err() {
                return;
            }
        }
        if close {
            return;
        }
        // Keep the unanswered tail, make room for the rest of it, read more.
        input.drain(..consumed);
        if input.capacity() < need {
            input.reserve(need - input.len());
        }
        if input.len() == input.capacity() {
            if input.len() >= MAX_REQUEST {
                return;
            }
            input.reserve(4096);
        }
        let (len, cap) = (input.len(), input.capacity());
        let (res, slice) = conn.read(input.slice_mut(len..cap)).await;
        input = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                monoio::spawn(serve(conn));
            }
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                eprintln!("minpixel: accept: {e}");
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

// ------------------------------------------------------------------------ threads

/// Thread body: build the runtime, bind this thread's listener, report, serve forever.
fn worker(o: Options, bound: mpsc::Sender<Result<(), String>>) {
    let fut = {
        let bound = bound.clone();
        async move {
            let opts = ListenerOpts::new().reuse_port(true).backlog(4096);
            match TcpListener::bind_with_config(o.addr, &opts) {
                Ok(l) => {
                    let _ = bound.send(Ok(()));
                    accept_loop(l).await;
                }
                Err(e) => {
                    let _ = bound.send(Err(format!("bind {}: {e}", o.addr)));
                }
            }
        }
    };
    let built = match o.driver {
        Driver::Uring => match uring_builder(&o.uring_flags) {
            Ok(urb) => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .uring_builder(urb)
                .with_entries(URING_ENTRIES)
                .enable_timer()
                .build()
                .map(|mut rt| rt.block_on(fut)),
            Err(e) => Err(std::io::Error::other(e)),
        },
        Driver::Legacy => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(fut)),
    };
    if let Err(e) = built {
        let _ = bound.send(Err(format!("cannot start the {:?} runtime: {e}", o.driver)));
    }
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("minpixel: {e}");
            std::process::exit(2);
        }
    };
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::with_capacity(o.threads);
    for i in 0..o.threads {
        let (o, tx) = (o.clone(), tx.clone());
        match std::thread::Builder::new().name(format!("w{i}")).spawn(move || worker(o, tx)) {
            Ok(t) => threads.push(t),
            Err(e) => {
                eprintln!("minpixel: cannot start thread {i}: {e}");
                std::process::exit(1);
            }
        }
    }
    drop(tx);
    for _ in 0..o.threads {
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("minpixel: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("minpixel: a thread ended before listening");
                std::process::exit(1);
            }
        }
    }
    eprintln!(
        "minpixel listening on {} ({} threads, driver {:?}, uring flags {:?}, pid {})",
        o.addr,
        o.threads,
        o.driver,
        o.uring_flags,
        std::process::id()
    );
    for t in threads {
        let _ = t.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(secs: u64) -> String {
        let mut b = [0u8; 29];
        imf_fixdate(secs, &mut b);
        String::from_utf8_lossy(&b).into_owned()
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(date(1_798_761_599), "Thu, 31 Dec 2026 23:59:59 GMT");
    }

    #[test]
    fn requests() {
        let two = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        let Next::Request { len, keep_alive: true } = next_request(two) else { panic!("first") };
        assert!(matches!(next_request(&two[len..]), Next::Request { keep_alive: false, .. }));
        assert!(matches!(next_request(b"GET / HTTP/1.0\r\n\r\n"), Next::Request { keep_alive: false, .. }));
        let post = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab";
        assert!(matches!(next_request(post), Next::Incomplete { need } if need == post.len() + 3));
        assert!(matches!(next_request(b"GET / HT"), Next::Incomplete { need: 0 }));
        let te = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(next_request(te), Next::Refuse(s) if s.starts_with("501")));
    }
}
