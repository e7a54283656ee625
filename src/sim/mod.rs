//! `dcsd-partner-sim`: a real-time data partner for tests, benchmarks and partners' own
//! integration work. It speaks the partner protocol (`spec/partner-protocol.md`, docs
//! `docs/partner-sim.md`) and can be told to answer late, wrongly or not at all.
//!
//! * Answers: `200 {"segments":[…]}` with segments chosen from a pool by a stable hash of the
//!   user key ([`segments_for`], documented so other languages can compute it too), or one of
//!   the failure [`Mode`]s, after a [`Delay`] drawn from a distribution. Every option can be
//!   overridden per request with `sim_*` query parameters (see [`plan`]).
//! * Admin endpoints, never counted or recorded: `GET /__sim/requests` (NDJSON of the kept
//!   requests), `GET /__sim/stats`, `POST /__sim/reset`.
//! * Threads: `threads` monoio runtimes, each with its own `SO_REUSEPORT` listener on the same
//!   port. Delays never block a thread: on io_uring they are timerfd reads through the ring
//!   (sub-millisecond precision); on the legacy driver, monoio's 1 ms timer wheel.
//! * Embedding: [`spawn`] runs a simulator on its own threads inside any process (dcsd starts
//!   one for its demo taxonomy; tests start one per case); [`run`] is the binary's blocking
//!   loop.
//!
//! State shared between the simulator's threads (counters, kept requests) sits behind atomics
//! and one `Mutex`: this is a test tool, not dcsd's request path. The module uses from the
//! crate only the HTTP codec ([`crate::http`]), JSON escaping, logging and the protocol
//! errors' statuses ([`crate::error::status_for`]).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

mod answer;
mod conn;
mod mode;
pub mod plan;
mod segments;
mod server;
mod state;
#[allow(unsafe_code)]
mod timer;

pub use answer::{GARBAGE_BODY, OVERSIZE_BYTES, WRONG_SHAPE_BODY};
pub use conn::MAX_BODY_BYTES;
pub use mode::{Delay, Mode, ParseError, MAX_DELAY, MODE_NAMES};
pub use segments::{fnv1a64, segments_for, DEFAULT_SEGMENTS};
pub use state::SimStats;

/// How a simulator is configured; `Default` is the binary's defaults except `listen`, which is
/// `127.0.0.1:0` (any free port) so that embedded simulators never collide.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Address to listen on; port 0 picks a free port ([`SimHandle::local_addr`] tells which).
    pub listen: SocketAddr,
    /// Threads, each with its own runtime and listener (at least 1).
    pub threads: usize,
    /// IO driver of the threads.
    pub driver: Driver,
    /// Delay before each answer.
    pub delay: Delay,
    /// Pool the segments are chosen from.
    pub segments: Vec<String>,
    /// Segments per user.
    pub per_user: usize,
    /// `"ttl": S` in the answers, when set.
    pub ttl_s: Option<u64>,
    /// How requests are answered.
    pub mode: Mode,
    /// Fraction of requests (0..=1) answered with `fail_mode` instead.
    pub fail_rate: f64,
    /// The mode of the failed fraction.
    pub fail_mode: Mode,
    /// Print each request as a JSON line on stdout.
    pub record: bool,
    /// Requests kept for `GET /__sim/requests` (the oldest go first); 0 keeps none.
    pub keep: usize,
    /// Seed of the delay and fail-rate draws; `None` takes one from the OS.
    pub seed: Option<u64>,
}

/// Which monoio driver the simulator's threads run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Driver {
    /// io_uring; start-up fails if it cannot be set up. Delays are timerfd-precise.
    #[default]
    Uring,
    /// epoll (monoio's legacy driver); delays use monoio's 1 ms timer wheel.
    #[value(alias = "epoll")]
    Legacy,
    /// io_uring when the kernel allows it, else epoll (one log line says so).
    Auto,
}

/// A running simulator. Dropping it stops the threads and closes every connection.
pub struct SimHandle {
    started: server::Started,
    threads: usize,
}

// === impl SimOptions ===

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            threads: 1,
            driver: Driver::Uring,
            delay: Delay::NONE,
            segments: DEFAULT_SEGMENTS.iter().map(|s| s.to_string()).collect(),
            per_user: 2,
            ttl_s: None,
            mode: Mode::Ok,
            fail_rate: 0.0,
            fail_mode: Mode::Status(500),
            record: false,
            keep: 10_000,
            seed: None,
        }
    }
}

// === impl SimHandle ===

impl SimHandle {
    /// The address the simulator listens on (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.started.addr
    }

    /// Number of threads serving.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `http://<addr><path_and_query>`, for a partner URL template.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.started.addr)
    }

    /// The counters, as `GET /__sim/stats` reports them.
    pub fn stats(&self) -> SimStats {
        self.started.shared.stats()
    }

    /// The kept requests, oldest first, each one JSON document (as `GET /__sim/requests`).
    pub fn requests(&self) -> Vec<String> {
        self.started.shared.requests()
    }

    /// Forgets the kept requests and zeroes the counters (as `POST /__sim/reset`).
    pub fn reset(&self) {
        self.started.shared.reset();
    }

    /// Stops the threads, closing every connection, and waits for them.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.started.shared.stop.store(true, std::sync::atomic::Ordering::Release);
        for j in self.started.joins.drain(..) {
            let _ = j.join();
        }
    }
}

/// Starts a simulator on its own threads and returns once every thread accepts connections.
///
/// # Errors
/// `threads` of 0 or a `fail_rate` outside 0..=1 (`InvalidInput`), the bind error, or the
/// runtime error (io_uring unavailable with [`Driver::Uring`]).
pub fn spawn(opts: SimOptions) -> io::Result<SimHandle> {
    let threads = opts.threads;
    Ok(SimHandle { started: server::start(opts)?, threads })
}

/// The binary's main loop: starts the simulator, prints the ready line
/// `dcsd-partner-sim listening on <addr> (<threads> threads)` on stderr, serves until SIGINT or
/// SIGTERM, then stops.
///
/// # Errors
/// As [`spawn`], or the signal handlers cannot be installed.
pub fn run(opts: SimOptions) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let sim = spawn(opts)?;
    eprintln!("dcsd-partner-sim listening on {} ({} threads)", sim.local_addr(), sim.threads());
    let _ = signals.forever().next();
    sim.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests;
