//! The one socket option monoio's `TcpStream` cannot set: `SO_LINGER` 0, which makes the close
//! send a TCP reset (the `reset` mode).
//!
//! Unsafe because monoio's stream exposes only its raw descriptor (`AsRawFd`, no `AsFd`), and
//! borrowing a raw descriptor is `unsafe` in std. The borrow lasts for one `setsockopt` call
//! while the stream, which owns the descriptor, is borrowed too.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Sets `SO_LINGER` to 0 so that dropping `stream` resets the connection instead of closing it.
///
/// # Errors
/// The `setsockopt` error.
pub fn reset_on_close(stream: &monoio::net::TcpStream) -> std::io::Result<()> {
    // SAFETY: `stream` owns this descriptor and is borrowed for the whole life of `fd`, so the
    // descriptor stays open and is not reused while `fd` exists.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO))
}
