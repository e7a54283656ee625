//! The command line (docs/configuration.md §1). Flags override `dcsd.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// `dcsd [--config PATH] [--listen ADDR:PORT]... [--threads N] [--driver auto|uring|legacy]
/// [--taxonomy PATH] [--check]`, or `dcsd verify-log DIR`
#[derive(Debug, Default, Parser)]
#[command(name = "dcsd", version, about = "Data collection server for the edge")]
pub struct Cli {
    /// `dcsd.toml` to load; without it the built-in defaults and demo taxonomy are used.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address to listen on (repeatable); replaces `server.listen`.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,
    /// Worker threads, one per core; 0 = every available core. Replaces `server.threads`.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// IO driver; replaces `server.driver`.
    #[arg(long, value_enum)]
    pub driver: Option<Driver>,
    /// Taxonomy JSON; replaces `server.taxonomy`.
    #[arg(long, value_name = "PATH")]
    pub taxonomy: Option<PathBuf>,
    /// Validate the configuration and taxonomy, print a summary, exit 0 or 64.
    #[arg(long)]
    pub check: bool,
    /// A tool instead of the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `dcsd <COMMAND>`: tools that run instead of the daemon.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check every event-log file in DIR (docs/eventlog.md §6): each line a record of the
    /// schema, only a crash's last line incomplete, names and sequences consistent; prints
    /// counts per file and per kind; exits 1 on any violation.
    VerifyLog {
        /// The event-log directory (`eventlog.dir`).
        dir: PathBuf,
    },
}

/// Which monoio driver the workers run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// io_uring when the kernel allows it, else epoll (one log line says so).
    #[default]
    Auto,
    /// io_uring only; start-up fails if it cannot be set up.
    Uring,
    /// epoll (monoio's legacy driver).
    #[value(alias = "epoll")]
    #[serde(alias = "epoll")]
    Legacy,
}
