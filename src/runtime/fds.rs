//! File descriptors: the process's `RLIMIT_NOFILE`, raised to its hard limit at start-up, and
//! the public connection budget that fits under it (docs/configuration.md §3.2).
//!
//! Every client connection is a descriptor (a TLS one too: TLS adds none), and so are the
//! listeners (public, admin and HTTPS), each worker's io_uring or epoll instance with its
//! wakers, the files (logs, signal pipe, snapshot, later the event log) and, later, the partner
//! connections. When `limits.max_connections` plus that reserve is
//! above the limit, `accept` fails with EMFILE long before the budget is reached, on every
//! listener at once, the admin one included. [`plan_connections`] lowers the public budget to
//! what fits; it is pure, so `main` prints the same result for `--check` as at start-up.
//!
//! Process-wide, decided once in `main` before any worker starts. The partner reserve is
//! computed from the taxonomy read at start; a reload that raises it is not re-checked (the
//! partner client is not built yet).

use std::fmt;

/// Descriptors kept for files whatever the configuration: stdio, the signal-hook pipe, the
/// snapshot and its temporary file, the event log's segments, the taxonomy and the TLS
/// certificates read on reload, `/proc` reads, sd_notify's socket. Generous on purpose: running
/// out costs far more than 64 fewer connections.
pub const FILES_RESERVE: usize = 64;

/// Descriptors per worker besides its listeners: the io_uring or epoll instance, its eventfd
/// waker, and room for a timer or a second ring a future monoio may open.
pub const PER_WORKER_RESERVE: usize = 4;

/// The soft `RLIMIT_NOFILE` the process runs with, and what `raise_nofile_limit` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoFileLimit {
    /// The soft limit now in effect (`u64::MAX` when unlimited).
    pub soft: u64,
    /// The soft limit before it was raised, if it was.
    pub raised_from: Option<u64>,
}

/// What, besides public client connections, needs descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdDemand {
    /// Public listen addresses (`server.listen`); each worker has a socket per address.
    pub listen_addrs: usize,
    /// Admin listen addresses (`server.admin_listen`).
    pub admin_addrs: usize,
    /// HTTPS listen addresses (`tls.tls_listen`). A TLS connection itself needs no descriptor
    /// beyond its socket, so only the listeners are reserved.
    pub tls_addrs: usize,
    /// Worker threads.
    pub workers: usize,
    /// Most partner connections one worker may hold (`Catalog::partner_conns_per_core`).
    pub partner_conns_per_core: usize,
    /// `limits.max_connections` as configured.
    pub max_connections: usize,
    /// `limits.admin_max_connections`; reserved only when there is an admin listener.
    pub admin_max_connections: usize,
}

/// The public connection budget that fits under the open-files limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionPlan {
    /// `limits.max_connections` as configured.
    pub configured: usize,
    /// The budget to run with: `configured`, or less when that does not fit (at least 1).
    pub effective: usize,
    /// The soft `RLIMIT_NOFILE` the plan was made for.
    pub nofile: u64,
    /// Descriptors for listeners, worker rings, files and partner connections.
    pub reserve: usize,
    /// Descriptors for the admin listeners' own budget (0 without an admin listener).
    pub admin: usize,
}

// === impl ConnectionPlan ===

impl ConnectionPlan {
    /// Whether `max_connections` had to be lowered.
    pub fn lowered(&self) -> bool {
        self.effective < self.configured
    }
}

impl fmt::Display for ConnectionPlan {
    /// The warning `main` logs and `--check` prints when the budget was lowered.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "limits.max_connections = {} does not fit under RLIMIT_NOFILE {} with {} descriptors \
             reserved (listeners, worker rings, files, partner connections: {}; \
             admin_max_connections: {}); using max_connections = {}",
            self.configured,
            self.nofile,
            self.reserve + self.admin,
            self.reserve,
            self.admin,
            self.effective
        )
    }
}

/// The public connection budget for `demand` under a soft open-files limit of `nofile`:
/// `nofile` − (files + workers × (listeners + ring + partner connections)) − the admin budget,
/// capped by the configured `max_connections`, and never below 1 (a box too small for its
/// reserve still starts, and says so).
pub fn plan_connections(nofile: u64, demand: &FdDemand) -> ConnectionPlan {
    let listeners = demand.listen_addrs + demand.admin_addrs + demand.tls_addrs;
    let per_worker = listeners + PER_WORKER_RESERVE + demand.partner_conns_per_core;
    let reserve = FILES_RESERVE.saturating_add(demand.workers.max(1).saturating_mul(per_worker));
    let admin = if demand.admin_addrs == 0 { 0 } else { demand.admin_max_connections };
    let room = usize::try_from(nofile).unwrap_or(usize::MAX).saturating_sub(reserve).saturating_sub(admin);
    ConnectionPlan {
        configured: demand.max_connections,
        effective: demand.max_connections.min(room).max(1),
        nofile,
        reserve,
        admin,
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (to `fs.nr_open` when the hard limit is
/// unlimited: the kernel refuses more). Raising the soft limit needs no privilege. When it
/// fails, the soft limit stays as it was and the plan is made for it.
///
/// rustix rather than libc: its `getrlimit`/`setrlimit` are safe functions, so this needs no
/// `unsafe` block under the crate's `unsafe_code = "deny"` (development.md §9).
pub fn raise_nofile_limit() -> NoFileLimit {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let soft = now.current.unwrap_or(u64::MAX);
    let target = match now.maximum {
        Some(hard) => hard,
        None => nr_open(),
    };
    if target <= soft {
        return NoFileLimit { soft, raised_from: None };
    }
    match setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: now.maximum }) {
        Ok(()) => NoFileLimit { soft: target, raised_from: Some(soft) },
        Err(_) => NoFileLimit { soft, raised_from: None },
    }
}

/// `fs.nr_open`, the most descriptors a process may have (the kernel's default if unreadable).
/// Read on the main thread at start-up.
fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(max_connections: usize) -> FdDemand {
        FdDemand {
            listen_addrs: 1,
            admin_addrs: 1,
            tls_addrs: 0,
            workers: 2,
            partner_conns_per_core: 10,
            max_connections,
            admin_max_connections: 64,
        }
    }

    #[test]
    fn fits_unchanged() {
        let p = plan_connections(1 << 20, &demand(100_000));
        assert_eq!(p.effective, 100_000);
        assert!(!p.lowered());
        // 64 files + 2 workers × (2 listeners + 4 ring + 10 partners).
        assert_eq!(p.reserve, 64 + 2 * 16);
        assert_eq!(p.admin, 64);
    }

    #[test]
    fn lowered_to_what_fits() {
        let p = plan_connections(20_000, &demand(100_000));
        assert_eq!(p.effective, 20_000 - 96 - 64);
        assert!(p.lowered());
        let line = p.to_string();
        assert!(line.contains("max_connections = 100000"), "{line}");
        assert!(line.contains("RLIMIT_NOFILE 20000"), "{line}");
        assert!(line.contains("160 descriptors reserved"), "{line}");
        assert!(line.ends_with("using max_connections = 19840"), "{line}");
    }

    #[test]
    fn exactly_at_the_limit_is_kept() {
        let p = plan_connections(20_000, &demand(20_000 - 160));
        assert!(!p.lowered());
        assert_eq!(plan_connections(20_000, &demand(20_000 - 159)).effective, 20_000 - 160);
    }

    #[test]
    fn no_admin_listener_reserves_no_admin_budget() {
        let d = FdDemand { admin_addrs: 0, ..demand(1_000_000) };
        let p = plan_connections(10_000, &d);
        assert_eq!(p.admin, 0);
        assert_eq!(p.reserve, 64 + 2 * (1 + 4 + 10));
        assert_eq!(p.effective, 10_000 - p.reserve);
    }

    #[test]
    fn tls_listeners_are_reserved_like_the_others() {
        let d = FdDemand { tls_addrs: 2, ..demand(1_000_000) };
        let p = plan_connections(10_000, &d);
        // 64 files + 2 workers × (1 public + 1 admin + 2 HTTPS listeners + 4 ring + 10 partners).
        assert_eq!(p.reserve, 64 + 2 * (1 + 1 + 2 + 4 + 10));
        assert_eq!(p.effective, 10_000 - p.reserve - p.admin);
    }

    #[test]
    fn a_limit_below_the_reserve_leaves_one_connection() {
        let p = plan_connections(100, &demand(1000));
        assert_eq!(p.effective, 1);
        assert!(p.lowered());
        // No limit and no overflow; zero workers reserve as one.
        let p = plan_connections(u64::MAX, &FdDemand { workers: 0, ..demand(usize::MAX) });
        assert_eq!(p.reserve, 64 + 16);
        assert_eq!(p.effective, usize::MAX - p.reserve - p.admin);
    }

    #[test]
    fn raising_is_idempotent() {
        let first = raise_nofile_limit();
        let second = raise_nofile_limit();
        assert_eq!(second.soft, first.soft);
        assert_eq!(second.raised_from, None);
    }
}
