//! `dcsd` — a data collection server (DCS) for the edge.
//!
//! # Architecture map (docs/architecture.md §10)
//! Dependencies point one way, top to bottom; no two modules import each other.
//! * `main` (the binary) — CLI → config → catalog → application state → runtime → signals.
//! * [`runtime`] — one pinned monoio runtime per core (`w<N>` threads), `SO_REUSEPORT`
//!   listeners, io_uring with `COOP_TASKRUN` or the epoll fallback, connection budgets, drain
//!   and systemd notify; generic over a per-core service that a factory builds on each worker.
//! * [`pipeline`] — the DCS service: per-core [`pipeline::Dcs`] and the shared application
//!   state ([`pipeline::Shared`]: configuration, catalog swapped on reload, profile table,
//!   event log, metrics); routing, rate limiting, `/event`, `/ibs:`, `/demoptout`, `/healthz`,
//!   `/metrics`; each answer's event-log record; start-up replay of the log into the table.
//! * [`catalog`] — the taxonomy compiled for requests: the engine plus O(1) lookups (host →
//!   customer and its flags and privacy switches, org, integration code, data-source access,
//!   redirect domains, the customer's real-time partners); immutable, shared, swapped whole
//!   on reload.
//! * [`partner`] — the real-time partner client: URL templates compiled at load (host names
//!   resolved then), per-core keep-alive pools with circuit breakers (plain TCP, or [`tls`] for
//!   `https://` URLs), one call under its time-out, answers parsed; it knows nothing of what a
//!   request does with them.
//! * [`engine`] — trait rules indexed by key, segments with recency and frequency,
//!   destinations; pure, no IO, with per-core scratch.
//! * [`eventlog`] — the durable event log: records serialized into per-core buffers, a writer
//!   thread per core (rotation, `.done`, fdatasync, group commit), reading files back for
//!   replay (which `pipeline::replay` applies to the table) and `dcsd verify-log`.
//! * [`table`] — the shared profile table (lock-free reads, RCU writes with epoch reclamation,
//!   CLOCK eviction) and its snapshot file, written by its own thread.
//! * [`identity`] — profile IDs (38-digit UUIDs), the `demdex` cookie, declared IDs; pure, no IO.
//! * [`privacy`] — IAB TCF v2.2 consent strings; pure, no IO.
//! * [`http`] — the HTTP/1.1 codec over httparse in two roles: the server's head parsing with
//!   limits, chunked bodies, response writing with a cached `Date`, the per-connection
//!   keep-alive loop and the drain signal; the partner client's response reader
//!   ([`http::client`]); and the URL grammar of redirect targets and origins with the `Location` encoder
//!   ([`http::url`], which `config` uses to validate origins); both roles read and write
//!   through the owned-buffer [`http::Transport`] (plain TCP or TLS). Needs nothing above it.
//! * [`tls`] — rustls for both roles, beside `http` (uses only its `Transport`): HTTPS on
//!   `tls.tls_listen` (certificates checked at load and swapped on reload, SNI, session
//!   tickets and cache shared by every core) and `https://` partner calls.
//! * [`config`] — the command line (clap), `dcsd.toml` and the taxonomy document: data and
//!   validation only.
//! * [`metrics`] — per-core counters and latency histograms, summed only when scraped.
//! * Leaves: [`error`] (protocol errors → statuses), [`json`] (string escaping), [`mod@log`].
//! * Apart: [`sim`] — `dcsd-partner-sim`, the real-time partner simulator for tests, benches
//!   and partners' engineers; it uses only `http`, `error`, `json` and `log`, and `main` starts
//!   one in-process for the built-in demo taxonomy.
//!
//! Threads: `runtime` starts the workers, `main` handles signals, the table's snapshot writer
//! runs on its own thread, the event log has one writer thread per core (`log<core>`), start-up
//! replay reads each core's log files on a scoped thread, and an in-process partner simulator
//! runs its own; nothing else starts one.
//!
//! # Request flow (one core, one task per connection)
//! `accept` → [`http::conn`] reads into an owned buffer → [`http::request::parse_head`]
//! (`Partial` / `Complete` / error with a status) → body (Content-Length or chunked) →
//! [`pipeline::route`] → rate limit → handler (for `/event`: [`pipeline::params`] decodes the
//! pairs once → host/org checks → [`identity::declared`] (validated, denylisted) → profile ID →
//! opt-out and consent ([`privacy::tcf`]) → [`engine`] realizes traits from the pairs and the
//! header signals ([`pipeline::signals`]) → real-time partners ([`pipeline::partners`]: a JSON
//! request with partners to call returns a future to the connection loop and waits at most
//! `partners.budget_ms` without holding any per-core borrow; a pixel request's calls run on) →
//! one atomic [`table`] update records the realizations (partner traits included), IDs and
//! segments → destinations → response; `/ibs:` and `/demoptout` share the identity steps) →
//! response bytes appended to the connection's write buffer → the request's [`eventlog`] record
//! appended to the core's buffer → (`fsync = "always"`: the batch's records on disk, one group
//! commit per core) → one write per batch of pipelined requests → keep alive or close. Nothing on the request path waits on another core.

pub mod catalog;
pub mod config;
pub mod engine;
pub mod error;
pub mod eventlog;
pub mod http;
pub mod identity;
pub mod json;
pub mod log;
pub mod metrics;
pub mod partner;
pub mod pipeline;
pub mod privacy;
pub mod runtime;
pub mod sim;
pub mod table;
pub mod tls;

/// The daemon's version, as sent in the `DCS` response header.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
