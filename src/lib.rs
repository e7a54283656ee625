//! `dcsd` — a data collection server (DCS) for the edge.
//!
//! # Architecture map
//! * [`config`] — the `dcsd` command line (clap), `dcsd.toml` (serde + toml) and the taxonomy
//!   JSON (simd-json), validated into one immutable [`config::Config`] before any socket is bound.
//! * [`runtime`] — one pinned monoio runtime per core (`w<N>` threads), `SO_REUSEPORT`
//!   listeners, io_uring with `COOP_TASKRUN` or the epoll fallback, drain and systemd notify.
//!   Only `runtime` and `main` know about threads.
//! * [`http`] — the HTTP/1.1 codec over httparse: head parsing with limits, chunked bodies,
//!   response writing with a cached `Date`, and the per-connection keep-alive loop. The framing
//!   parts do no IO, so the partner client can reuse them.
//! * [`pipeline`] — request → response steps: routing, rate limiting, `/event`, `/ibs:`,
//!   `/demoptout`, `/healthz`, `/metrics`.
//! * [`identity`] — profile IDs (38-digit UUIDs), the `demdex` cookie, declared IDs; pure, no IO.
//! * [`privacy`] — IAB TCF v2.2 consent strings; pure, no IO.
//! * [`engine`] — the compiled taxonomy: trait rules indexed by key, segments with recency and
//!   frequency, destinations; pure, no IO, immutable and shared, with per-core scratch.
//! * [`table`] — the shared profile table (lock-free reads, RCU writes with epoch reclamation,
//!   CLOCK eviction) and its snapshot file; no IO except the snapshot thread.
//! * [`metrics`] — per-core counters and latency histograms, summed only when scraped.
//! * [`error`] — where errors learn their [`error::Side`] and HTTP status.
//! * [`sim`] — `dcsd-partner-sim`, the real-time partner simulator for tests, benches and partners.
//!
//! # Request flow (one core, one task per connection)
//! `accept` → [`http::conn`] reads into an owned buffer → [`http::request::parse_head`]
//! (`Partial` / `Complete` / error with a status) → body (Content-Length or chunked) →
//! [`pipeline::route`] → rate limit → handler (for `/event`: [`pipeline::params`] decodes the
//! pairs once → host/org checks → [`identity::declared`] (validated, denylisted) → profile ID →
//! opt-out and consent ([`privacy::tcf`]) → [`engine`] realizes traits from the pairs and the
//! header signals ([`pipeline::signals`]) → one atomic [`table`] update records the
//! realizations, IDs and segments → destinations → response; `/ibs:` and `/demoptout` share the
//! identity steps) → response
//! bytes appended to the connection's write buffer → one write per batch of pipelined requests
//! → keep alive or close. Nothing on the request path waits on another core.

pub mod config;
pub mod engine;
pub mod error;
pub mod http;
pub mod identity;
pub mod json;
pub mod log;
pub mod metrics;
pub mod pipeline;
pub mod privacy;
pub mod runtime;
pub mod sim;
pub mod table;

/// The daemon's version, as sent in the `DCS` response header.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
