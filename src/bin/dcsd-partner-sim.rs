//! `dcsd-partner-sim`: the command line of the partner simulator ([`dcsd::sim`]); all the
//! behaviour lives in the library. Usage and examples: `docs/partner-sim.md`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dcsd::sim::{self, plan, Delay, Driver, Mode, SimOptions};

/// A real-time data partner for dcsd's tests and benchmarks, and for partners testing their own
/// integration. Every option can be overridden per request with a `sim_*` query parameter.
#[derive(Debug, Parser)]
#[command(name = "dcsd-partner-sim", version)]
struct Cli {
    /// Address to listen on (port 0: any free port; the ready line says which).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Threads, each with its own runtime and SO_REUSEPORT listener.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
    /// IO driver (legacy: delays use monoio's 1 ms timer wheel).
    #[arg(long, value_enum, default_value_t = Driver::Uring)]
    driver: Driver,
    /// Fixed delay before each answer, milliseconds.
    #[arg(long, value_name = "N", conflicts_with = "delay_us")]
    delay_ms: Option<u64>,
    /// Fixed delay before each answer, microseconds.
    #[arg(long, value_name = "N")]
    delay_us: Option<u64>,
    /// Delay distribution: fixed | fixed:MS | uniform:MIN_MS:MAX_MS | lognormal:MEDIAN_MS:SIGMA |
    /// pareto:SCALE_MS:ALPHA (every sample capped at 10 s).
    #[arg(long, value_name = "DIST")]
    delay: Option<Delay>,
    /// Pool of segments, comma-separated.
    #[arg(long, value_name = "A,B,...", default_value = "auto-intender,sports,travel,finance,parent,gamer")]
    segments: String,
    /// Segments per user, chosen from the pool by a stable hash of the user key.
    #[arg(long, value_name = "K", default_value_t = 2)]
    per_user: usize,
    /// Add "ttl": S to the answers.
    #[arg(long, value_name = "S")]
    ttl: Option<u64>,
    /// ok | empty | notfound | status:CODE | reset | hang | slow-body:MS_PER_BYTE | garbage |
    /// oversize | close-after:N | wrong-shape
    #[arg(long, value_name = "MODE", default_value = "ok")]
    mode: Mode,
    /// Fraction (0..1) of requests answered with --fail-mode instead.
    #[arg(long, value_name = "P", default_value = "0", value_parser = rate)]
    fail_rate: f64,
    /// Mode of the failed fraction.
    #[arg(long, value_name = "MODE", default_value = "status:500")]
    fail_mode: Mode,
    /// Print every request received as one JSON line on stdout.
    #[arg(long)]
    record: bool,
    /// Keep the last N requests for GET /__sim/requests (0: none).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    keep: usize,
    /// Seed of the delay and fail-rate draws (default: from the OS).
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
}

fn rate(s: &str) -> Result<f64, sim::ParseError> {
    plan::parse_rate(s)
}

/// `--delay-ms`/`--delay-us` are `fixed` with a value; with another distribution they conflict.
fn delay(cli: &Cli) -> Result<Delay, String> {
    let fixed = match (cli.delay_ms, cli.delay_us) {
        (Some(ms), _) => Some(Duration::from_millis(ms)),
        (None, Some(us)) => Some(Duration::from_micros(us)),
        (None, None) => None,
    };
    match (cli.delay, fixed) {
        (None, None) => Ok(Delay::NONE),
        (None | Some(Delay::Fixed(Duration::ZERO)), Some(d)) => Ok(Delay::Fixed(d)),
        (Some(dist), None) => Ok(dist),
        (Some(dist), Some(_)) => Err(format!("--delay {dist} and --delay-ms/--delay-us: give one")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let delay = match delay(&cli) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("dcsd-partner-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = SimOptions {
        listen: cli.listen,
        threads: cli.threads,
        driver: cli.driver,
        delay,
        segments: plan::split_list(&cli.segments),
        per_user: cli.per_user,
        ttl_s: cli.ttl,
        mode: cli.mode,
        fail_rate: cli.fail_rate,
        fail_mode: cli.fail_mode,
        record: cli.record,
        keep: cli.keep,
        seed: cli.seed,
    };
    match sim::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dcsd-partner-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
