//! Sleeping with sub-millisecond precision without blocking the thread.
//!
//! monoio's timer is a wheel with 1 ms slots: asked for 5 ms it answered after ~6.3 ms
//! (shared/bench partner tool). On io_uring we arm a one-shot `timerfd` (an hrtimer, ns
//! resolution) and read it through the ring: the read completes when the timer fires, and the
//! thread serves other connections meanwhile. On the legacy (epoll) driver monoio would read
//! the timerfd with a blocking `read(2)`, stalling the thread, so there the wheel is used and
//! delays come out up to ~1.3 ms long. Per-thread: each sleep owns its own timerfd.

use std::time::{Duration, Instant};

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec,
};

/// Sleeps until `deadline`; returns at once if it has passed. `precise` selects the timerfd
/// (io_uring runtimes only).
///
/// # Cancel safety
/// Dropping the future cancels the ring read; the timerfd closes with it.
pub async fn sleep_until(deadline: Instant, precise: bool) {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return;
    }
    if precise {
        if let Some(file) = arm(left) {
            // Eight bytes: the expiration count, which we do not need.
            let (res, _) = file.read_at(vec![0u8; 8], 0).await;
            if res.is_ok() {
                return;
            }
        }
    }
    // No timerfd (or it failed): the wheel is late, never early.
    let left = deadline.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        monoio::time::sleep(left).await;
    }
}

/// A timerfd that fires once after `d`, as a monoio file.
fn arm(d: Duration) -> Option<monoio::fs::File> {
    let fd = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::CLOEXEC).ok()?;
    let spec = Itimerspec {
        it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
        it_value: Timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ },
    };
    timerfd_settime(&fd, TimerfdTimerFlags::empty(), &spec).ok()?;
    monoio::fs::File::from_std(std::fs::File::from(fd)).ok()
}
