//! The byte stream a connection runs on: [`Transport`], owned-buffer reads and writes in
//! monoio's style, implemented by a plain [`TcpStream`] here and by a TLS stream over one in
//! `crate::tls`. The connection loop ([`super::conn`]) and the partner client
//! ([`super::client`]) are generic over it, so the plain path compiles to the same calls as
//! before (monomorphised, nothing boxed) and TLS reuses every rule of the loop.
//!
//! The methods take and give back `Vec<u8>`, the only buffer type the loops use, rather than
//! monoio's generic `IoBufMut`: a TLS stream hands the caller decrypted bytes by appending
//! them to the vector, which needs no unsafe code.
//!
//! # Cancel safety
//! A read or write moves its buffer into the IO operation; a future dropped before it
//! completes (a time-out, drain) drops the buffer with it. A stream whose read was cancelled
//! may still write (the loops answer 408 that way) and is then closed, never read again.

use std::future::Future;
use std::io;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

/// A connected byte stream with owned-buffer IO.
pub trait Transport {
    /// Reads into `buf`'s spare capacity (`len..capacity`, which must not be empty): the
    /// number of bytes appended, at least one, or 0 at the end of the stream. The buffer comes
    /// back in every case.
    fn read_spare(&mut self, buf: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;

    /// Writes all of `buf`; returns its length and the buffer.
    fn send_all(&mut self, buf: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;

    /// The connection closes after the next [`Transport::send_all`]. A TLS stream appends its
    /// `close_notify` alert to that write (one write, not two); plain TCP does nothing.
    #[inline]
    fn closing(&mut self) {}

    /// The connection is done: a TLS stream sends its `close_notify` if it has not yet (best
    /// effort, briefly bounded); plain TCP does nothing (dropping the stream closes it).
    #[inline]
    fn close(&mut self) -> impl Future<Output = ()> {
        std::future::ready(())
    }
}

// === impl Transport for TcpStream ===

impl Transport for TcpStream {
    #[inline]
    async fn read_spare(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = self.read(buf.slice_mut(len..cap)).await;
        (res, slice.into_inner())
    }

    #[inline]
    async fn send_all(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        self.write_all(buf).await
    }
}
