//! Socket calls monoio's `TcpStream` does not offer, for both roles: resetting a connection on
//! close (`SO_LINGER` 0) and checking that an idle pooled connection has nothing to read.
//!
//! Unsafe in one place, [`fd_of`]: monoio's stream exposes only its raw descriptor (`AsRawFd`,
//! no `AsFd`), and borrowing a raw descriptor is `unsafe` in std. The borrow is tied to the
//! stream's own borrow, so the descriptor stays open and is not reused while it is in use.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use rustix::net::RecvFlags;

/// The descriptor of `stream`, borrowed for as long as `stream` is.
fn fd_of<S: AsRawFd>(stream: &S) -> BorrowedFd<'_> {
    // SAFETY: `stream` owns this descriptor (the `AsRawFd` contract of monoio's streams) and is
    // borrowed for the whole life of the returned `BorrowedFd`, so the descriptor stays open
    // and is not closed or reused while the borrow exists.
    unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }
}

/// Sets `SO_LINGER` to 0 so that dropping `stream` resets the connection instead of closing it.
///
/// # Errors
/// The `setsockopt` error.
pub fn reset_on_close<S: AsRawFd>(stream: &S) -> io::Result<()> {
    socket2::SockRef::from(&fd_of(stream)).set_linger(Some(Duration::ZERO))
}

/// Whether an idle connection is still clean: open, and with no unread bytes. A peer that
/// closed (EOF), reset, or sent anything while nobody asked makes it unusable. One
/// non-blocking `recv(MSG_PEEK)`; it never waits.
pub fn idle_is_clean<S: AsRawFd>(stream: &S) -> bool {
    let mut byte = [0u8; 1];
    match rustix::net::recv(fd_of(stream), &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
        Err(e) => e == rustix::io::Errno::AGAIN,
        Ok(_) => false, // bytes waiting, or 0 = the peer closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn idle_connections_with_bytes_or_eof_are_dirty() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut server, _) = l.accept().unwrap();
        assert!(idle_is_clean(&client));
        server.write_all(b"x").unwrap();
        server.flush().unwrap();
        // Wait (bounded) until the byte is readable: a peek that blocks would hang here.
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(client.peek(&mut b).unwrap(), 1);
        assert!(!idle_is_clean(&client), "unread bytes");
        let (c2, s2) = {
            let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            (c, s)
        };
        drop(s2);
        c2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(c2.peek(&mut b).unwrap(), 0);
        assert!(!idle_is_clean(&c2), "the peer closed");
    }
}
