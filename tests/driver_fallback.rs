//! The automatic epoll fallback (docs/configuration.md §1: `driver = "auto"`), through the real binary.
//!
//! io_uring is made unavailable with the kernel's `kernel.io_uring_disabled` sysctl (Linux
//! 6.6+), which is process-wide for the machine, so this test lives in its own test binary:
//! cargo runs test binaries one after another, so no other test's daemon is running while
//! the sysctl is set, and a guard restores it even if an assertion fails. Where the sysctl is
//! missing or not writable (no root), the test says so on stderr and checks nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::process::Command;

use common::Daemon;

const SYSCTL: &str = "/proc/sys/kernel/io_uring_disabled";

/// Restores the sysctl's previous value on drop.
struct Restore(String);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, &self.0);
    }
}

#[test]
fn auto_falls_back_to_epoll_with_one_log_line_and_uring_refuses() {
    let Ok(before) = std::fs::read_to_string(SYSCTL) else {
        eprintln!("SKIPPED: {SYSCTL} does not exist (kernel older than 6.6)");
        return;
    };
    if std::fs::write(SYSCTL, "2").is_err() {
        eprintln!("SKIPPED: {SYSCTL} is not writable (not root)");
        return;
    }
    let _restore = Restore(before.trim().to_string());

    let d = Daemon::spawn(&["--listen", "127.0.0.1:0", "--threads", "1"]);
    let log = d.log();
    let warnings: Vec<&String> = log.iter().filter(|l| l.contains("falling back to epoll")).collect();
    assert_eq!(warnings.len(), 1, "{log:?}");
    assert!(log.iter().any(|l| l.contains("Epoll driver")), "{log:?}");
    assert_eq!(d.request(b"GET /event HTTP/1.1\r\nHost: localhost\r\n\r\n").status, 200);
    drop(d);

    let out = Command::new(env!("CARGO_BIN_EXE_dcsd"))
        .args(["--listen", "127.0.0.1:0", "--threads", "1", "--driver", "uring"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(71));
    assert!(String::from_utf8_lossy(&out.stderr).contains("io_uring cannot be set up"));
}
