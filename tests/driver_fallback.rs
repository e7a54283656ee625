//! The driver choice (docs/configuration.md §1: `driver = "auto" | "uring" | "legacy"`) and the
//! automatic epoll fallback, through the real binary.
//!
//! io_uring is taken away from one daemon in two ways:
//!
//! * A seccomp filter installed in the child before it runs `dcsd` makes `io_uring_setup` fail
//!   with `EPERM` (what Docker's default profile and `kernel.io_uring_disabled = 2` answer) or
//!   `ENOSYS` (a kernel without io_uring, gVisor). This needs no privilege and touches only that
//!   process, so these tests always run.
//! * The kernel's `kernel.io_uring_disabled` sysctl (Linux ≥ 6.6), the switch an operator
//!   would use. It needs root and is machine-wide (it would break every io_uring daemon started
//!   meanwhile, including other tests'), so that test is `#[ignore]`d: `scripts/test.sh` runs
//!   it with `--ignored` when it runs as root on a kernel that has the sysctl, and says on its
//!   output when it skips it. Run by hand where it cannot work, it fails and says why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
// `pre_exec` (run in the forked child) and the two `prctl` calls that install the filter.
#![allow(unsafe_code)]

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use common::Daemon;

const SYSCTL: &str = "/proc/sys/kernel/io_uring_disabled";
const WARNING: &str = "falling back to epoll";
const REFUSAL: &str = "io_uring cannot be set up";

/// `dcsd` with `args`, in a child process where `io_uring_setup` fails with `errno`.
fn without_io_uring(args: &[&str], errno: i32) -> Command {
    // The BPF program: `io_uring_setup` returns `errno`, every other system call runs.
    let filter = [
        bpf(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0), // seccomp_data.nr
        bpf(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, libc::SYS_io_uring_setup as u32),
        bpf(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ERRNO | errno as u32),
        bpf(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dcsd"));
    cmd.args(args);
    // SAFETY: the closure runs in the forked child before exec; it makes two system calls and
    // does not allocate or take locks. `filter` is moved into the closure, so `prog` points to
    // memory that is alive (and, after fork, the child's own copy) while the kernel copies it.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
            // Without privileges a filter may only be installed under no_new_privs.
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn bpf(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn auto_falls_back_to_epoll_with_one_log_line_and_serves() {
    for (errno, name) in [(libc::EPERM, "EPERM"), (libc::ENOSYS, "ENOSYS")] {
        let d =
            Daemon::spawn_command(without_io_uring(&["--listen", "127.0.0.1:0", "--threads", "2"], errno));
        let log = d.log();
        assert_eq!(d.driver, "Epoll", "{name}: {log:?}");
        let warnings: Vec<&String> = log.iter().filter(|l| l.contains(WARNING)).collect();
        assert_eq!(warnings.len(), 1, "{name}: one line for the process, not one per worker: {log:?}");
        assert_eq!(d.request(b"GET /event HTTP/1.1\r\nHost: localhost\r\n\r\n").status, 200);
    }
}

#[test]
fn uring_refuses_to_start_without_io_uring() {
    let args = ["--listen", "127.0.0.1:0", "--threads", "1", "--driver", "uring"];
    let out = without_io_uring(&args, libc::EPERM).output().unwrap();
    assert_eq!(out.status.code(), Some(71), "{}", stderr(&out));
    assert!(stderr(&out).contains(REFUSAL), "{}", stderr(&out));
    // `legacy` never asks for io_uring.
    let d = Daemon::spawn_command(without_io_uring(&["--listen", "127.0.0.1:0", "--driver", "legacy"], 1));
    assert_eq!(d.driver, "Epoll");
    assert!(!d.log().iter().any(|l| l.contains(WARNING)), "{:?}", d.log());
}

#[test]
fn auto_picks_io_uring_where_the_kernel_has_it() {
    // The suite's `uring` daemons need io_uring anyway; this is the choice `auto` makes then.
    let d = Daemon::spawn(&["--listen", "127.0.0.1:0", "--threads", "1", "--driver", "auto"]);
    assert_eq!(d.driver, "Uring", "{:?}", d.log());
    assert!(!d.log().iter().any(|l| l.contains(WARNING)), "{:?}", d.log());
}

/// Restores the sysctl's previous value on drop.
struct Restore(String);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, &self.0);
    }
}

#[test]
#[ignore = "needs root and kernel.io_uring_disabled (Linux >= 6.6), machine-wide; scripts/test.sh runs it with --ignored where it can"]
fn auto_falls_back_and_uring_refuses_when_the_sysctl_disables_io_uring() {
    let before = std::fs::read_to_string(SYSCTL)
        .unwrap_or_else(|e| panic!("cannot run: {SYSCTL}: {e} (kernel older than 6.6?)"));
    if let Err(e) = std::fs::write(SYSCTL, "2") {
        panic!("cannot run: writing {SYSCTL}: {e} (needs root)");
    }
    let _restore = Restore(before.trim().to_string());

    let d = Daemon::spawn(&["--listen", "127.0.0.1:0", "--threads", "1"]);
    let log = d.log();
    assert_eq!(d.driver, "Epoll", "{log:?}");
    assert_eq!(log.iter().filter(|l| l.contains(WARNING)).count(), 1, "{log:?}");
    assert_eq!(d.request(b"GET /event HTTP/1.1\r\nHost: localhost\r\n\r\n").status, 200);
    drop(d);

    let out = Command::new(env!("CARGO_BIN_EXE_dcsd"))
        .args(["--listen", "127.0.0.1:0", "--threads", "1", "--driver", "uring"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(71), "{}", stderr(&out));
    assert!(stderr(&out).contains(REFUSAL), "{}", stderr(&out));
}
