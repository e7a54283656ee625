//! State shared by the simulator's threads: counters, the kept requests, the stop flag, and the
//! JSON the admin endpoints answer with.
//!
//! Shared, behind atomics and one `Mutex`: this is a test tool, and one lock per request is
//! far below the cost of the request itself (set `--keep 0` to skip it). Admin requests are
//! neither counted nor kept, so a test that asks `/__sim/stats` does not change the numbers.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::http::response::push_u64;

use super::mode::MODE_NAMES;
use super::SimOptions;

/// What every thread of one simulator shares.
pub struct Shared {
    /// The options it was started with.
    pub opts: SimOptions,
    /// Set once to stop every thread.
    pub stop: AtomicBool,
    /// Partner requests received (admin requests excluded).
    requests: AtomicU64,
    /// Connections that carried at least one partner request.
    connections: AtomicU64,
    /// Of those, the ones still open (a gauge: `reset` leaves it alone).
    open_connections: AtomicU64,
    /// Requests by the mode they were answered with, in [`MODE_NAMES`] order.
    by_mode: [AtomicU64; MODE_NAMES.len()],
    /// Connection numbers for the records (never reset, so records stay distinguishable).
    next_conn: AtomicU64,
    /// The last `opts.keep` requests as JSON lines.
    kept: Mutex<VecDeque<String>>,
}

/// The counters, as `/__sim/stats` reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimStats {
    /// Partner requests received (admin requests excluded).
    pub requests: u64,
    /// Connections that carried at least one partner request.
    pub connections: u64,
    /// Of those, the ones open now.
    pub open_connections: u64,
    /// Requests by mode name (every name of [`MODE_NAMES`], zeros included).
    pub by_mode: Vec<(&'static str, u64)>,
}

/// A request as recorded: borrowed from the connection's buffer.
pub struct Record<'a> {
    /// Connection number.
    pub conn: u64,
    /// Method as sent.
    pub method: &'a [u8],
    /// Request target as sent.
    pub target: &'a [u8],
    /// Every header, in order.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body (decoded when it was chunked).
    pub body: &'a [u8],
}

/// Counts one open connection while it lives.
pub struct OpenGuard(Arc<Shared>);

// === impl Shared ===

impl Shared {
    /// Fresh state for `opts`.
    pub fn new(opts: SimOptions) -> Shared {
        Shared {
            opts,
            stop: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            open_connections: AtomicU64::new(0),
            by_mode: std::array::from_fn(|_| AtomicU64::new(0)),
            next_conn: AtomicU64::new(1),
            kept: Mutex::new(VecDeque::new()),
        }
    }

    /// A number for a new connection.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a connection's first partner request; the guard uncounts it from the open ones.
    pub fn open_connection(self: &Arc<Self>) -> OpenGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        OpenGuard(self.clone())
    }

    /// Counts a request answered with mode number `index` ([`MODE_NAMES`]).
    pub fn count(&self, index: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.by_mode.get(index) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a request (`--record`, `--keep`) with every header as sent; `head` holds bytes
    /// that `parse_head` accepted.
    pub fn record_request(&self, conn: u64, head: &[u8], body: &[u8]) {
        if !self.opts.record && self.opts.keep == 0 {
            return;
        }
        // httparse parses the accepted head again: only the header list, which the codec does
        // not keep, is wanted here.
        let mut slots = [httparse::EMPTY_HEADER; crate::http::MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut slots);
        let _ = parsed.parse(head);
        let headers: Vec<(&str, &[u8])> = parsed.headers.iter().map(|h| (h.name, h.value)).collect();
        self.record(&Record {
            conn,
            method: parsed.method.unwrap_or_default().as_bytes(),
            target: parsed.path.unwrap_or_default().as_bytes(),
            headers: &headers,
            body,
        });
    }

    /// Prints the request on stdout (`--record`) and keeps it (`--keep`).
    pub fn record(&self, r: &Record<'_>) {
        if !self.opts.record && self.opts.keep == 0 {
            return;
        }
        let line = record_line(r);
        if self.opts.record {
            // One write per line, so lines of different threads never interleave.
            let mut l = String::with_capacity(line.len() + 1);
            l.push_str(&line);
            l.push('\n');
            let _ = std::io::stdout().lock().write_all(l.as_bytes());
        }
        if self.opts.keep > 0 {
            let mut kept = self.kept();
            if kept.len() >= self.opts.keep {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    }

    /// The kept requests, oldest first, one JSON document per line.
    pub fn requests_ndjson(&self) -> Vec<u8> {
        let kept = self.kept();
        let mut out = Vec::with_capacity(kept.iter().map(|l| l.len() + 1).sum());
        for l in kept.iter() {
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// The kept requests, oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.kept().iter().cloned().collect()
    }

    /// The counters now.
    pub fn stats(&self) -> SimStats {
        SimStats {
            requests: self.requests.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            open_connections: self.open_connections.load(Ordering::Relaxed),
            by_mode: MODE_NAMES
                .iter()
                .zip(&self.by_mode)
                .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
                .collect(),
        }
    }

    /// Forgets the kept requests and zeroes the counters (not the open-connection gauge).
    pub fn reset(&self) {
        self.kept().clear();
        self.requests.store(0, Ordering::Relaxed);
        self.connections.store(0, Ordering::Relaxed);
        for c in &self.by_mode {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// A panic while the lock was held cannot leave the queue half-updated (each change is
    /// one push or pop), so a poisoned lock is used as it is.
    fn kept(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

// === impl SimStats ===

impl SimStats {
    /// `{"requests":N,"connections":N,"open_connections":N,"by_mode":{"ok":N,…}}`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(256);
        b.extend_from_slice(b"{\"requests\":");
        push_u64(&mut b, self.requests);
        b.extend_from_slice(b",\"connections\":");
        push_u64(&mut b, self.connections);
        b.extend_from_slice(b",\"open_connections\":");
        push_u64(&mut b, self.open_connections);
        b.extend_from_slice(b",\"by_mode\":{");
        for (i, (name, n)) in self.by_mode.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            crate::json::push_string(&mut b, name);
            b.push(b':');
            push_u64(&mut b, *n);
        }
        b.extend_from_slice(b"}}");
        b
    }
}

// === impl OpenGuard ===

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `{"ts_ms","conn","method","target","headers":[[name,value],…],"body"}`; bytes that are not
/// UTF-8 become U+FFFD, so every line is valid JSON.
fn record_line(r: &Record<'_>) -> String {
    let ts_ms = crate::log::unix_ms();
    let mut b = Vec::with_capacity(128 + r.target.len() + r.body.len() + r.headers.len() * 32);
    b.extend_from_slice(b"{\"ts_ms\":");
    push_u64(&mut b, ts_ms);
    b.extend_from_slice(b",\"conn\":");
    push_u64(&mut b, r.conn);
    b.extend_from_slice(b",\"method\":");
    push_text(&mut b, r.method);
    b.extend_from_slice(b",\"target\":");
    push_text(&mut b, r.target);
    b.extend_from_slice(b",\"headers\":[");
    for (i, (name, value)) in r.headers.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        b.push(b'[');
        push_text(&mut b, name.as_bytes());
        b.push(b',');
        push_text(&mut b, value);
        b.push(b']');
    }
    b.extend_from_slice(b"],\"body\":");
    push_text(&mut b, r.body);
    b.push(b'}');
    // Every piece above is ASCII or came through from_utf8_lossy.
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn push_text(out: &mut Vec<u8>, bytes: &[u8]) {
    crate::json::push_string(out, &String::from_utf8_lossy(bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines_are_json() {
        let headers = [("Host", &b"p"[..]), ("X-Bin", &b"\xff\"q"[..])];
        let r =
            Record { conn: 3, method: b"POST", target: b"/s?uid=1", headers: &headers, body: b"{\"a\":1}\n" };
        let line = record_line(&r);
        assert!(line.starts_with("{\"ts_ms\":"), "{line}");
        assert!(
            line.ends_with(
                r#","conn":3,"method":"POST","target":"/s?uid=1","headers":[["Host","p"],["X-Bin","�\"q"]],"body":"{\"a\":1}\n"}"#
            ),
            "{line}"
        );
        let mut copy = line.into_bytes();
        assert!(simd_json::to_borrowed_value(&mut copy).is_ok());
    }

    #[test]
    fn keep_is_bounded_and_reset_clears() {
        let s = Arc::new(Shared::new(SimOptions { keep: 2, ..SimOptions::default() }));
        for target in [&b"/1"[..], b"/2", b"/3"] {
            s.record(&Record { conn: 1, method: b"GET", target, headers: &[], body: b"" });
            s.count(0);
        }
        let kept = s.requests();
        assert_eq!(kept.len(), 2);
        assert!(kept[0].contains("\"/2\"") && kept[1].contains("\"/3\""));
        let g = s.open_connection();
        let st = s.stats();
        assert_eq!((st.requests, st.connections, st.open_connections, st.by_mode[0]), (3, 1, 1, ("ok", 3)));
        s.reset();
        drop(g);
        let st = s.stats();
        assert_eq!((st.requests, st.connections, st.open_connections), (0, 0, 0));
        assert!(s.requests_ndjson().is_empty());
        let json = String::from_utf8(st.to_json()).unwrap();
        assert!(json.starts_with(r#"{"requests":0,"connections":0,"open_connections":0,"by_mode":{"ok":0,"#));
    }
}
