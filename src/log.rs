//! Logging: one line per event on stderr, suitable for journald.
//!
//! The level comes from `DCSD_LOG` (`error`, `warn`, `info` (default), `debug`, `trace`). Under
//! systemd (`JOURNAL_STREAM` set) lines carry the `<N>` syslog priority prefix that journald
//! understands and no timestamp (journald adds its own); otherwise they start with an RFC 3339
//! UTC timestamp. Logging is never done per request on the hot path.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Something failed and needs an operator.
    Error = 1,
    /// Something unusual that the daemon handled.
    Warn = 2,
    /// Lifecycle events (start, listen, reload, drain).
    Info = 3,
    /// Details for debugging.
    Debug = 4,
    /// Very verbose details.
    Trace = 5,
}

static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static JOURNAL: OnceLock<bool> = OnceLock::new();

// === impl Level ===

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    /// The syslog priority journald reads from a `<N>` prefix.
    fn syslog_priority(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug | Level::Trace => 7,
        }
    }

    /// Parses a `DCSD_LOG` value; `None` for an unknown name.
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            "trace" => Some(Level::Trace),
            _ => None,
        }
    }
}

/// Reads `DCSD_LOG` and `JOURNAL_STREAM`. Call once at start-up; an unknown level name is
/// reported and `info` is used.
pub fn init_from_env() {
    let _ = JOURNAL.set(std::env::var_os("JOURNAL_STREAM").is_some());
    if let Ok(v) = std::env::var("DCSD_LOG") {
        match Level::parse(&v) {
            Some(l) => MAX_LEVEL.store(l as u8, Ordering::Relaxed),
            None => write(Level::Warn, format_args!("DCSD_LOG={v:?} is not a level; using info")),
        }
    }
}

/// Whether lines of `level` are written.
#[inline]
pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Writes one line (used through the [`log!`](crate::log!) macro).
pub fn write(level: Level, args: std::fmt::Arguments<'_>) {
    let mut line = String::with_capacity(128);
    use std::fmt::Write as _;
    if *JOURNAL.get().unwrap_or(&false) {
        let _ = write!(line, "<{}>{} ", level.syslog_priority(), level.name());
    } else {
        push_rfc3339(&mut line, SystemTime::now());
        let _ = write!(line, " {:5} ", level.name());
    }
    let _ = line.write_fmt(args);
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Appends `2026-11-22T10:00:00.123Z`.
fn push_rfc3339(out: &mut String, t: SystemTime) {
    use std::fmt::Write as _;
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, mo, da) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{da:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    );
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Logs one line at a level: `log!(Info, "listening on {addr}")`.
#[macro_export]
macro_rules! log {
    ($lvl:ident, $($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::$lvl) {
            $crate::log::write($crate::log::Level::$lvl, format_args!($($arg)+));
        }
    };
}

/// Now, Unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
    }

    #[test]
    fn level_names() {
        assert_eq!(Level::parse("WARN"), Some(Level::Warn));
        assert_eq!(Level::parse("loud"), None);
    }
}
