//! `dcsd`: CLI → config → catalog → application state (table restored) → workers → wait for a
//! signal → drain. No logic here: each step is a call into the library.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dcsd::catalog::{self, Catalog};
use dcsd::config::{Cli, Command, Config, ConfigError};
use dcsd::log;
use dcsd::pipeline::{Dcs, Shared};
use dcsd::runtime::fds::{self, ConnectionPlan, FdDemand};
use dcsd::runtime::notify::sd_notify;
use dcsd::runtime::{worker_count, RuntimeConfig, Server};
use dcsd::tls::{CertFiles, CertSummary, ServerTls};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// EX_USAGE: bad command line or configuration.
const EXIT_USAGE: u8 = 64;
/// EX_OSERR: sockets or threads could not be set up.
const EXIT_OSERR: u8 = 71;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    dcsd::log::init_from_env();
    if let Some(Command::VerifyLog { dir }) = &cli.command {
        return dcsd::eventlog::verify::run(dir);
    }
    let (config, catalog, tls) = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let threads = worker_count(config.server.threads);
    let plan = connection_plan(&config, &catalog, threads);
    if cli.check {
        // The first line stays `ok: …` for scripts (with the TLS summary when there is one); a
        // lowered budget follows it.
        let tls_summary = tls.as_ref().map(|t| format!("; {}", describe_tls(&config, &t.summary())));
        println!("{}{}", config.summary(catalog.counts()), tls_summary.unwrap_or_default());
        if plan.lowered() {
            println!("warning: {plan}");
        }
        return ExitCode::SUCCESS;
    }
    if plan.lowered() {
        log!(Warn, "{plan}");
    }
    // Registered before any worker exists, so no thread runs the default SIGTERM action.
    let mut signals = match Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            log!(Error, "cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_OSERR);
        }
    };
    // Held for the life of the process: dropping it stops the demo partner.
    let _demo_partner = start_demo_partner(&cli, &config);
    let drain_ms = config.server.drain_ms;
    let mut rt = RuntimeConfig::from_config(&config, threads);
    rt.max_connections = plan.effective;
    rt.tls = tls.clone();
    // The snapshot is restored here, before any socket is bound.
    if let Some(t) = &tls {
        log!(Info, "TLS: {}", describe_tls(&config, &t.summary()));
    }
    // Restores the snapshot, replays the event log after it and starts the log's writers.
    let shared = match Shared::new(config, catalog, rt.threads) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            log!(Error, "cannot start the event log's writers: {e}");
            return ExitCode::from(EXIT_OSERR);
        }
    };
    if let Some(t) = &tls {
        shared.metrics.tls.certificates(t.summary().not_after);
    }
    let snapshotter = match shared.start_snapshotter() {
        Ok(s) => s,
        Err(e) => {
            log!(Error, "cannot start the snapshot thread: {e}");
            return ExitCode::from(EXIT_OSERR);
        }
    };
    let factory = {
        let shared = shared.clone();
        move |core| Dcs::new(core, shared.clone())
    };
    let server = match Server::start(rt, shared.metrics.clone(), factory) {
        Ok(s) => s,
        Err(e) => {
            log!(Error, "cannot start: {e}");
            return ExitCode::from(EXIT_OSERR);
        }
    };
    log_ready(&server);
    sd_notify("READY=1");
    for sig in signals.forever() {
        if sig == SIGHUP {
            reload(&shared, tls.as_deref());
        } else {
            break;
        }
    }
    log!(Info, "draining (up to {drain_ms} ms)");
    sd_notify("STOPPING=1");
    if server.drain(Duration::from_millis(drain_ms)) {
        log!(Info, "stopped");
    } else {
        log!(Warn, "drain time ({drain_ms} ms) ran out with requests in flight; exiting");
    }
    if let Some(log) = &shared.eventlog {
        // Every core handed over what it held when it drained; each writer now syncs and
        // renames its file `.done`. Before the final snapshot, whose note then says "all".
        log.finish();
        log!(Info, "event log: every file synced and renamed .done");
    }
    if let Some(s) = snapshotter {
        match s.stop_and_write_final() {
            Ok(st) => log!(Info, "snapshot written: {} profiles, {} bytes", st.profiles, st.bytes),
            Err(e) => log!(Error, "final snapshot failed: {e}"),
        }
    }
    ExitCode::SUCCESS
}

/// The configuration, the compiled taxonomy and the TLS certificates (read and checked); every
/// problem of any is reported.
fn load(cli: &Cli) -> Result<(Config, Catalog, Option<Arc<ServerTls>>), ConfigError> {
    let config = Config::load(cli)?;
    let tls = match &config.tls {
        Some(t) => {
            let files = t.certs.iter().map(|(cert, key)| CertFiles { cert: cert.clone(), key: key.clone() });
            Some(Arc::new(ServerTls::load(files.collect()).map_err(|e| ConfigError(vec![e]))?))
        }
        None => None,
    };
    let catalog = catalog::load(&config.taxonomy_source, config.taxonomy_limits())?;
    Ok((config, catalog, tls))
}

/// `tls_listen A,B with N certificate(s) (…), the earliest expiring on DATE`.
fn describe_tls(config: &Config, s: &CertSummary) -> String {
    let listen = config.tls.as_ref().map(|t| t.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    format!(
        "tls_listen {} with {} certificate(s) (default for {}), the earliest expiring {}",
        listen.unwrap_or_default().join(","),
        s.certificates,
        if s.names.is_empty() { "no DNS name".to_string() } else { s.names.join(" ") },
        dcsd::tls::x509::format_utc(s.not_after)
    )
}

/// Where the built-in demo taxonomy's real-time partners live (its `realtime` URLs).
const DEMO_PARTNER: &str = "127.0.0.1:9000";

/// Without `--config` and with the built-in demo taxonomy, serves the demo's partners
/// in-process (a `dcsd-partner-sim` on its own thread), so that the README's requests show
/// partner segments arriving: partner-x answers `auto-intender` for every user at once,
/// partner-y `frequent-flyer` after 150 ms (its URL asks for it), past the 80 ms budget. A
/// taken port is logged and the daemon runs on; the calls then go to whatever listens there.
fn start_demo_partner(cli: &Cli, config: &Config) -> Option<dcsd::sim::SimHandle> {
    use dcsd::config::TaxonomySource;
    if cli.config.is_some() || config.taxonomy_source != TaxonomySource::BuiltIn {
        return None;
    }
    let opts = dcsd::sim::SimOptions {
        listen: DEMO_PARTNER.parse().ok()?,
        driver: dcsd::sim::Driver::Auto,
        segments: vec!["auto-intender".into()],
        per_user: 1,
        keep: 0,
        ..Default::default()
    };
    match dcsd::sim::spawn(opts) {
        Ok(sim) => {
            log!(
                Info,
                "demo partner (dcsd-partner-sim) listening on {} for the built-in taxonomy",
                sim.local_addr()
            );
            Some(sim)
        }
        Err(e) => {
            log!(Info, "demo partner not started on {DEMO_PARTNER} ({e}); the demo's partner calls go to whatever listens there");
            None
        }
    }
}

/// Raises `RLIMIT_NOFILE` to its hard limit and fits `limits.max_connections` under it
/// (docs/configuration.md §3.2).
fn connection_plan(config: &Config, catalog: &Catalog, threads: usize) -> ConnectionPlan {
    let nofile = fds::raise_nofile_limit();
    if let Some(from) = nofile.raised_from {
        log!(Info, "raised the open-files limit (RLIMIT_NOFILE) from {from} to {}", nofile.soft);
    }
    fds::plan_connections(
        nofile.soft,
        &FdDemand {
            listen_addrs: config.server.listen.len(),
            admin_addrs: config.server.admin_listen.len(),
            tls_addrs: config.tls.as_ref().map_or(0, |t| t.listen.len()),
            workers: threads,
            partner_conns_per_core: catalog.partner_conns_per_core(),
            max_connections: config.limits.max_connections,
            admin_max_connections: config.limits.admin_max_connections,
        },
    )
}

/// One line per listener, then one `ready` line naming every listener (what tests and
/// operators wait for).
fn log_ready(server: &Server) {
    let join = |v: &[std::net::SocketAddr]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
    for a in server.local_addrs() {
        log!(Info, "listening on {a} ({} workers, {:?} driver)", server.threads(), server.driver());
    }
    for a in server.admin_addrs() {
        log!(Info, "admin listening on {a}");
    }
    for a in server.tls_addrs() {
        log!(Info, "listening on {a} (HTTPS)");
    }
    let or_dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    log!(
        Info,
        "ready: public={} admin={} tls={} workers={} driver={:?}",
        join(server.local_addrs()),
        or_dash(join(server.admin_addrs())),
        or_dash(join(server.tls_addrs())),
        server.threads(),
        server.driver()
    );
}

/// SIGHUP: read, validate and compile the taxonomy again and swap it in, or keep the old one;
/// the same for the TLS certificates, independently.
fn reload(shared: &Shared, tls: Option<&ServerTls>) {
    sd_notify("RELOADING=1");
    if let Some(tls) = tls {
        match tls.reload() {
            Ok(s) => {
                shared.metrics.tls.reloaded(true);
                shared.metrics.tls.certificates(s.not_after);
                log!(Info, "reloaded TLS certificates: {}", describe_tls(&shared.config, &s));
            }
            Err(e) => {
                shared.metrics.tls.reloaded(false);
                log!(Error, "TLS reload rejected; keeping the previous certificates: {e}");
            }
        }
    }
    match catalog::load(&shared.config.taxonomy_source, shared.config.taxonomy_limits()) {
        Ok(c) => {
            let n = c.counts();
            shared.swap_catalog(c);
            log!(
                Info,
                "reloaded taxonomy: {} traits, {} segments, {} destinations",
                n.traits,
                n.segments,
                n.destinations
            );
        }
        Err(e) => log!(Error, "reload rejected; keeping the previous taxonomy:\n{e}"),
    }
    sd_notify("READY=1");
}
