//! Response writing: status lines, a per-thread cached `Date`, numbers, and the plain-text
//! answers to protocol errors. Everything appends to the connection's reused write buffer.

use std::cell::RefCell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::log::civil_from_days;

/// How the response states the connection's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnHeader {
    /// HTTP/1.1 keep-alive: no header needed.
    None,
    /// HTTP/1.0 keep-alive: `Connection: keep-alive`.
    KeepAlive,
    /// `Connection: close`.
    Close,
}

/// `Date: <IMF-fixdate>\r\n` for this thread, and the instant until which it is current.
struct DateLine {
    valid_until: Option<Instant>,
    line: [u8; 37],
}

thread_local! {
    /// Formatted at most once per second per thread; checked against the caller's clock
    /// reading, so the common case reads no clock at all.
    static DATE: RefCell<DateLine> = const { RefCell::new(DateLine { valid_until: None, line: [b' '; 37] }) };
}

/// The reason phrase for the statuses dcsd sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        302 => "Found",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Appends `HTTP/1.1 <status> <reason>\r\n`.
pub fn push_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `Date: <IMF-fixdate>\r\n` for `now` (a recent `Instant::now()` of the caller),
/// reading the wall clock and formatting at most once per second per thread.
pub fn push_date_header(out: &mut Vec<u8>, now: Instant) {
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.valid_until.is_none_or(|t| now >= t) {
            let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            d.line[..6].copy_from_slice(b"Date: ");
            d.line[6..35].copy_from_slice(&imf_fixdate(wall.as_secs()));
            d.line[35..].copy_from_slice(b"\r\n");
            let to_next_second =
                Duration::from_secs(1) - Duration::from_nanos(u64::from(wall.subsec_nanos()));
            d.valid_until = Some(now + to_next_second);
        }
        out.extend_from_slice(&d.line);
    });
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for Unix seconds (RFC 9110 §5.6.7).
pub fn imf_fixdate(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let days = secs / 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let rem = secs % 86_400;
    let mut b = [b' '; 29];
    b[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    b[3] = b',';
    two(&mut b[5..7], d as u64);
    b[8..11].copy_from_slice(MONTHS[(m - 1) as usize]);
    let y = y.clamp(0, 9999) as u64;
    two(&mut b[12..14], y / 100);
    two(&mut b[14..16], y % 100);
    two(&mut b[17..19], rem / 3600);
    b[19] = b':';
    two(&mut b[20..22], rem / 60 % 60);
    b[22] = b':';
    two(&mut b[23..25], rem % 60);
    b[26..29].copy_from_slice(b"GMT");
    b
}

fn two(dst: &mut [u8], n: u64) {
    dst[0] = b'0' + (n / 10 % 10) as u8;
    dst[1] = b'0' + (n % 10) as u8;
}

/// Appends a decimal number.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Appends the `Connection` header a [`ConnHeader`] asks for.
pub fn push_conn_header(out: &mut Vec<u8>, c: ConnHeader) {
    match c {
        ConnHeader::None => {}
        ConnHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        ConnHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
}

/// Appends `Content-Length: n\r\n`.
pub fn push_content_length(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(b"Content-Length: ");
    push_u64(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixdate() {
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(1_795_347_045), b"Sun, 22 Nov 2026 11:30:45 GMT");
    }

    #[test]
    fn date_line_is_cached_until_the_next_second() {
        let mut v = Vec::new();
        let now = Instant::now();
        push_date_header(&mut v, now);
        assert!(v.starts_with(b"Date: ") && v.ends_with(b" GMT\r\n") && v.len() == 37);
        let mut w = Vec::new();
        push_date_header(&mut w, now);
        assert_eq!(v, w);
        let mut later = Vec::new();
        push_date_header(&mut later, now + Duration::from_secs(2));
        assert_eq!(later.len(), 37);
    }

    #[test]
    fn numbers_and_lines() {
        let mut v = Vec::new();
        push_u64(&mut v, 0);
        v.push(b' ');
        push_u64(&mut v, u64::MAX);
        assert_eq!(v, b"0 18446744073709551615");
        v.clear();
        push_status_line(&mut v, 431);
        assert_eq!(v, b"HTTP/1.1 431 Request Header Fields Too Large\r\n");
    }
}
