//! [`TlsStream`]: a rustls connection driven over any [`Transport`] with owned buffers, itself
//! a [`Transport`] of plaintext.
//!
//! * Reads: ciphertext is read into the spare capacity of the caller's buffer (owned, moved
//!   into the IO operation; our own `rbuf` when it has no room), handed to rustls
//!   (`read_tls`, `process_new_packets`), and the plaintext is appended to the caller's buffer
//!   from rustls' own (`fill_buf`/`consume`: no unsafe code). An idle connection so holds one
//!   read buffer, as a plain one does.
//! * Writes: plaintext goes into rustls (encrypted into records at once), the records are
//!   collected into `wbuf` and written with one `send_all`; a `close_notify` asked for by
//!   [`Transport::closing`] rides in the same write, after the data.
//! * Handshake: [`TlsStream::handshake`] drives it to the end (the partner client, under its
//!   deadline); a server stream is handed to the connection loop before it, and its first
//!   read runs the handshake, so the loop's `header_timeout` bounds handshake and first
//!   request together. Its outcome is reported once to the stream's [`Report`].
//! * Alerts: a rustls error queues an alert, which is written (best effort) before the error
//!   is returned.
//!
//! # Cancel safety
//! As [`Transport`]: a cancelled read loses the ciphertext in flight, so the stream must not be
//! read again (the loops only write an answer and close). rustls' state stays consistent:
//! it is only fed after a read completes.

use std::io::{self, BufRead, Write as _};
use std::ops::DerefMut;

use rustls::{ConnectionCommon, HandshakeKind, ProtocolVersion, SideData};

use crate::http::Transport;

use super::{Handshake, HandshakeError, Report};

/// Ciphertext read per IO operation into `rbuf`. A TLS record is up to 16 KiB + 256; smaller
/// reads are fine (rustls reassembles), and requests and handshakes fit in one.
const READ_BYTES: usize = 4096;
/// Least spare capacity of the caller's buffer worth reading ciphertext into.
const MIN_SCRATCH_BYTES: usize = 1024;
/// How long a closing connection may take to write its `close_notify`.
const CLOSE_NOTIFY_WAIT: std::time::Duration = std::time::Duration::from_millis(100);
/// A write buffer grown past this for one large answer is dropped after it.
const SHRINK_ABOVE_BYTES: usize = 64 * 1024;

/// TLS over `IO`; `C` is rustls' `ServerConnection` or `ClientConnection`.
pub struct TlsStream<IO, C> {
    /// The transport (a TCP stream).
    io: IO,
    /// The rustls state machine.
    conn: C,
    /// Ciphertext read and not yet handed to rustls (from `rpos`).
    rbuf: Vec<u8>,
    /// Consumed prefix of `rbuf`.
    rpos: usize,
    /// Ciphertext to write; kept across writes.
    wbuf: Vec<u8>,
    /// Send `close_notify` after the next write's data.
    close_after: bool,
    /// `close_notify` was queued (it is sent once).
    close_sent: bool,
    /// Told once how the handshake ended (server streams).
    report: Option<Report>,
}

// === impl TlsStream ===

impl<IO, C> TlsStream<IO, C> {
    /// Wraps a fresh rustls connection; nothing is sent yet.
    pub fn new(io: IO, conn: C, report: Option<Report>) -> TlsStream<IO, C> {
        TlsStream {
            io,
            conn,
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            close_after: false,
            close_sent: false,
            report,
        }
    }

    /// The transport (e.g. to peek at an idle pooled socket).
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The rustls connection.
    pub fn connection(&self) -> &C {
        &self.conn
    }
}

impl<IO, C, D> TlsStream<IO, C>
where
    IO: Transport,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    /// Runs the handshake to its end: both flights written, the peer's `Finished` processed,
    /// and what rustls sends right after it (TLS 1.3 session tickets) written too.
    ///
    /// # Errors
    /// How it failed; the alert rustls chose was sent first.
    pub async fn handshake(&mut self) -> Result<Handshake, HandshakeError> {
        self.handshake_with(Vec::new()).await.0
    }

    /// [`TlsStream::handshake`], reading into `scratch`'s spare capacity when it has room.
    async fn handshake_with(&mut self, scratch: Vec<u8>) -> (Result<Handshake, HandshakeError>, Vec<u8>) {
        let (result, scratch) = self.drive_handshake(scratch).await;
        if let Some(report) = self.report.take() {
            report(result);
        }
        (result, scratch)
    }

    async fn drive_handshake(
        &mut self,
        mut scratch: Vec<u8>,
    ) -> (Result<Handshake, HandshakeError>, Vec<u8>) {
        loop {
            if self.conn.wants_write() && self.flush().await.is_err() {
                return (Err(HandshakeError::Closed), scratch);
            }
            if !self.conn.is_handshaking() {
                return (Ok(self.summary()), scratch);
            }
            let (res, back) = if self.rpos < self.rbuf.len() {
                (self.feed_own().map(|_| 1), scratch)
            } else {
                self.read_tls(scratch).await
            };
            scratch = back;
            match res {
                Ok(0) | Err(Fail::Io(_)) => return (Err(HandshakeError::Closed), scratch),
                Ok(_) => {}
                Err(Fail::Tls(e)) => {
                    let _ = self.flush().await; // the alert
                    return (Err(e), scratch);
                }
            }
        }
    }

    /// What was negotiated.
    fn summary(&self) -> Handshake {
        Handshake {
            tls13: self.conn.protocol_version() == Some(ProtocolVersion::TLSv1_3),
            resumed: self.conn.handshake_kind() == Some(HandshakeKind::Resumed),
        }
    }

    /// Hands the ciphertext left in `rbuf` to rustls (after its plaintext buffer was full).
    ///
    /// # Errors
    /// A TLS error, or no progress at all (rustls can take nothing more: never expected).
    fn feed_own(&mut self) -> Result<(), Fail> {
        let used = feed(&mut self.conn, &self.rbuf[self.rpos..]).map_err(Fail::Tls)?;
        if used == 0 {
            return Err(Fail::Tls(HandshakeError::Protocol));
        }
        self.rpos += used;
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        }
        Ok(())
    }

    /// Reads ciphertext (its byte count, 0 at end of stream) and hands it to rustls. It is read
    /// into the spare capacity of `scratch`, the caller's plaintext buffer, whose contents are
    /// left as they were: an idle connection then holds one read buffer, not two. Without
    /// room there, into `rbuf`. What rustls cannot take yet is kept in `rbuf`.
    async fn read_tls(&mut self, scratch: Vec<u8>) -> (Result<usize, Fail>, Vec<u8>) {
        if scratch.capacity() - scratch.len() < MIN_SCRATCH_BYTES {
            return self.read_tls_own(scratch).await;
        }
        let keep = scratch.len();
        let (res, mut scratch) = self.io.read_spare(scratch).await;
        let n = match res {
            Ok(0) => return (Ok(0), scratch),
            Ok(n) => n,
            Err(e) => return (Err(Fail::Io(e)), scratch),
        };
        let fed = feed(&mut self.conn, &scratch[keep..]);
        if let Ok(used) = fed {
            self.rbuf.clear();
            self.rbuf.extend_from_slice(&scratch[keep + used..]);
            self.rpos = 0;
        }
        scratch.truncate(keep);
        (fed.map(|_| n).map_err(Fail::Tls), scratch)
    }

    /// [`TlsStream::read_tls`] into `rbuf`.
    async fn read_tls_own(&mut self, scratch: Vec<u8>) -> (Result<usize, Fail>, Vec<u8>) {
        let mut buf = std::mem::take(&mut self.rbuf);
        buf.clear();
        self.rpos = 0;
        buf.reserve(READ_BYTES);
        let (res, buf) = self.io.read_spare(buf).await;
        self.rbuf = buf;
        let res = match res {
            Ok(0) => Ok(0),
            Ok(n) => self.feed_own().map(|()| n),
            Err(e) => Err(Fail::Io(e)),
        };
        (res, scratch)
    }

    /// Writes everything rustls has queued.
    async fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let mut out = std::mem::take(&mut self.wbuf);
            out.clear();
            while self.conn.wants_write() {
                self.conn.write_tls(&mut out)?;
            }
            let (res, mut out) = self.io.send_all(out).await;
            if out.capacity() > SHRINK_ABOVE_BYTES {
                out = Vec::new();
            }
            self.wbuf = out;
            res?;
        }
        Ok(())
    }

    /// Moves decrypted bytes into `buf`'s spare capacity: `None` when there are none yet.
    fn take_plaintext(&mut self, buf: &mut Vec<u8>) -> Option<io::Result<usize>> {
        let mut reader = self.conn.reader();
        let mut n = 0;
        while buf.len() < buf.capacity() {
            let chunk = match reader.fill_buf() {
                Ok(c) => c,
                Err(_) if n > 0 => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => return Some(Err(e)),
            };
            if chunk.is_empty() {
                break; // close_notify received
            }
            let take = chunk.len().min(buf.capacity() - buf.len());
            buf.extend_from_slice(&chunk[..take]);
            reader.consume(take);
            n += take;
        }
        Some(Ok(n))
    }

    async fn read_plain(&mut self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if self.conn.is_handshaking() {
            let (res, back) = self.handshake_with(buf).await;
            buf = back;
            if let Err(e) = res {
                return (Err(io::Error::other(e)), buf);
            }
        }
        loop {
            if let Some(res) = self.take_plaintext(&mut buf) {
                return (res, buf);
            }
            let (res, back) = if self.rpos < self.rbuf.len() {
                // rustls' plaintext buffer was full; it has room again.
                (self.feed_own().map(|()| 1), buf)
            } else {
                if self.conn.wants_write() {
                    // A key update answer.
                    if let Err(e) = self.flush().await {
                        return (Err(e), buf);
                    }
                }
                self.read_tls(buf).await
            };
            buf = back;
            match res {
                Ok(0) => return (Ok(0), buf),
                Ok(_) => {}
                Err(Fail::Io(e)) => return (Err(e), buf),
                Err(Fail::Tls(e)) => {
                    let _ = self.flush().await; // the alert
                    return (Err(io::Error::other(e)), buf);
                }
            }
        }
    }

    async fn write_plain(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if self.conn.is_handshaking() {
            return (Err(io::Error::other("write before the TLS handshake finished")), buf);
        }
        let mut at = 0;
        while at < buf.len() {
            // rustls refuses plaintext past its buffer limit (64 KiB): flush, then go on.
            match self.conn.writer().write(&buf[at..]) {
                Ok(n) => at += n,
                Err(e) => return (Err(e), buf),
            }
            if at < buf.len() {
                if let Err(e) = self.flush().await {
                    return (Err(e), buf);
                }
            }
        }
        if std::mem::take(&mut self.close_after) && !self.close_sent {
            self.close_sent = true;
            self.conn.send_close_notify();
        }
        match self.flush().await {
            Ok(()) => (Ok(buf.len()), buf),
            Err(e) => (Err(e), buf),
        }
    }
}

/// Why a read failed.
enum Fail {
    /// The transport failed.
    Io(io::Error),
    /// rustls refused what arrived (an alert was queued).
    Tls(HandshakeError),
}

/// Hands `data` to rustls and processes it; returns how much it took (less than all when its
/// plaintext buffer filled up; the rest after a `close_notify` is dropped as taken).
fn feed<C, D>(conn: &mut C, mut data: &[u8]) -> Result<usize, HandshakeError>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    let total = data.len();
    while !data.is_empty() {
        match conn.read_tls(&mut data) {
            Ok(0) => data = &[], // after close_notify: the rest is ignored
            Ok(_) => {}
            Err(_) => break, // plaintext buffer full
        }
        conn.process_new_packets().map_err(|e| HandshakeError::from_rustls(&e))?;
    }
    Ok(total - data.len())
}

impl<IO, C, D> Transport for TlsStream<IO, C>
where
    IO: Transport,
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    fn read_spare(
        &mut self,
        buf: Vec<u8>,
    ) -> impl std::future::Future<Output = (io::Result<usize>, Vec<u8>)> {
        self.read_plain(buf)
    }

    fn send_all(&mut self, buf: Vec<u8>) -> impl std::future::Future<Output = (io::Result<usize>, Vec<u8>)> {
        self.write_plain(buf)
    }

    fn closing(&mut self) {
        self.close_after = true;
    }

    /// OpenSSL-based clients forget a session whose connection ended without `close_notify`
    /// (an "unexpected EOF"), so a closed connection would not be resumed.
    async fn close(&mut self) {
        if self.close_sent || self.conn.is_handshaking() {
            return;
        }
        self.close_sent = true;
        self.conn.send_close_notify();
        let _ = monoio::time::timeout(CLOSE_NOTIFY_WAIT, self.flush()).await;
    }
}

impl<IO, C> Drop for TlsStream<IO, C> {
    /// A server stream dropped before its handshake ended: the loop gave up on it (its
    /// `header_timeout` passed, or drain).
    fn drop(&mut self) {
        if let Some(report) = self.report.take() {
            report(Err(HandshakeError::Timeout));
        }
    }
}
