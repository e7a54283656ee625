//! `dcsd`: CLI → config → logging → workers → wait for a signal → drain. No logic here.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dcsd::config::{load_taxonomy, Cli, Config};
use dcsd::log;
use dcsd::runtime::notify::sd_notify;
use dcsd::runtime::Server;
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
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if cli.check {
        println!("{}", config.summary());
        return ExitCode::SUCCESS;
    }
    for s in config.inactive_settings() {
        log!(Warn, "setting has no effect in this version: {s}");
    }
    // Registered before any worker exists, so no thread runs the default SIGTERM action.
    let mut signals = match Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            log!(Error, "cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_OSERR);
        }
    };
    let drain_ms = config.server.drain_ms;
    let server = match Server::start(config) {
        Ok(s) => s,
        Err(e) => {
            log!(Error, "cannot start: {e}");
            return ExitCode::from(EXIT_OSERR);
        }
    };
    for a in server.local_addrs() {
        log!(Info, "listening on {a} ({} workers, {:?} driver)", server.threads(), server.driver());
    }
    for a in server.admin_addrs() {
        log!(Info, "admin listening on {a}");
    }
    sd_notify("READY=1");
    for sig in signals.forever() {
        if sig == SIGHUP {
            reload(&server);
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
    ExitCode::SUCCESS
}

/// SIGHUP: read and validate the taxonomy again; swap it in, or keep the old one.
fn reload(server: &Server) {
    sd_notify("RELOADING=1");
    let shared = server.shared();
    match load_taxonomy(&shared.config.taxonomy_source) {
        Ok(t) => {
            let c = t.counts();
            shared.swap_taxonomy(std::sync::Arc::new(t));
            log!(
                Info,
                "reloaded taxonomy: {} traits, {} segments, {} destinations",
                c.traits,
                c.segments,
                c.destinations
            );
        }
        Err(e) => log!(Error, "reload rejected; keeping the previous taxonomy:\n{e}"),
    }
    sd_notify("READY=1");
}
