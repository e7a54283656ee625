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

/// `Date: <IMF-fixdate>\r\n`, formatted once per wall-clock second and reused until the
/// caller's monotonic clock reaches the start of the next second.
struct DateCache {
    /// When the cached line stops being current; `None` before the first use.
    valid_until: Option<Instant>,
    /// `Date: ` + 29 bytes of IMF-fixdate + CRLF.
    line: [u8; 37],
}

thread_local! {
    /// This thread's `Date` line: formatted at most once per second per thread; checked
    /// against the caller's clock reading, so the common case reads no clock at all.
    static DATE: RefCell<DateCache> = const { RefCell::new(DateCache::new()) };
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
    DATE.with(|d| out.extend_from_slice(d.borrow_mut().line(now, wall_clock)));
}

/// Time since the Unix epoch (0 if the clock is set before it).
fn wall_clock() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
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

// === impl DateCache ===

impl DateCache {
    const fn new() -> DateCache {
        DateCache { valid_until: None, line: [b' '; 37] }
    }

    /// The line for `now`. `wall` (time since the Unix epoch) is called only when the cached
    /// second has ended (`now >= valid_until`): once per second, not once per response.
    #[inline]
    fn line(&mut self, now: Instant, wall: impl FnOnce() -> Duration) -> &[u8; 37] {
        if self.valid_until.is_none_or(|t| now >= t) {
            self.refresh(now, wall());
        }
        &self.line
    }

    /// Formats `wall`'s second; it stays current for what is left of that second after `now`.
    #[cold]
    fn refresh(&mut self, now: Instant, wall: Duration) {
        self.line[..6].copy_from_slice(b"Date: ");
        self.line[6..35].copy_from_slice(&imf_fixdate(wall.as_secs()));
        self.line[35..].copy_from_slice(b"\r\n");
        let to_next_second = Duration::from_secs(1) - Duration::from_nanos(u64::from(wall.subsec_nanos()));
        self.valid_until = Some(now + to_next_second);
    }
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

    /// `Date: <imf_fixdate(secs)>\r\n`, built independently of the cache.
    fn date_line(secs: u64) -> String {
        format!("Date: {}\r\n", text(&imf_fixdate(secs)))
    }

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn date_line_is_cached_until_the_next_second() {
        // A wall clock the test sets, and counts reads of: each read is one formatting.
        let wall = std::cell::Cell::new(Duration::from_millis(1_795_347_045_250));
        let reads = std::cell::Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            wall.get()
        };
        let (mut cache, t0) = (DateCache::new(), Instant::now());

        assert_eq!(text(cache.line(t0, read)), date_line(1_795_347_045));
        assert_eq!(reads.get(), 1, "the first call formats");
        // 250 ms into the second: current for 750 ms more, whatever the wall clock says now.
        wall.set(Duration::from_secs(1_900_000_000));
        for later_ms in [0, 1, 400, 749] {
            let line = cache.line(t0 + Duration::from_millis(later_ms), read);
            assert_eq!(text(line), date_line(1_795_347_045), "+{later_ms} ms");
        }
        assert_eq!(reads.get(), 1, "calls within the same second read no clock and format nothing");

        // At the start of the next second the line is formatted again, from a new reading.
        wall.set(Duration::from_secs(1_795_347_046));
        assert_eq!(text(cache.line(t0 + Duration::from_millis(750), read)), date_line(1_795_347_046));
        assert_eq!(reads.get(), 2);
        assert_eq!(cache.valid_until, Some(t0 + Duration::from_millis(1750)), "a whole second from .000");
        assert_eq!(text(cache.line(t0 + Duration::from_millis(1749), read)), date_line(1_795_347_046));
        assert_eq!(reads.get(), 2);
        // Long after (an idle thread): one reading, the current second.
        wall.set(Duration::from_millis(1_795_347_107_999));
        assert_eq!(text(cache.line(t0 + Duration::from_secs(62), read)), date_line(1_795_347_107));
        assert_eq!(reads.get(), 3);
        assert_eq!(cache.valid_until, Some(t0 + Duration::from_secs(62) + Duration::from_millis(1)));
    }

    #[test]
    fn push_date_header_uses_this_threads_cache_and_the_wall_clock() {
        // The thread's cache answers while it is current: a planted line comes back as is.
        let now = Instant::now();
        let planted = *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
        DATE.with(|d| {
            *d.borrow_mut() = DateCache { valid_until: Some(now + Duration::from_secs(60)), line: planted }
        });
        let mut out = b"x".to_vec();
        push_date_header(&mut out, now);
        assert_eq!(text(&out), format!("x{}", text(&planted)), "appends the cached line");
        // Once it has run out, the line is the wall clock's second (read around the call).
        DATE.with(|d| d.borrow_mut().valid_until = Some(now));
        let before = wall_clock().as_secs();
        let mut out = Vec::new();
        push_date_header(&mut out, now);
        let after = wall_clock().as_secs();
        assert!(
            (before..=after).any(|s| text(&out) == date_line(s)),
            "{:?} at {before}..={after}",
            text(&out)
        );
        let until = DATE.with(|d| d.borrow().valid_until).unwrap();
        assert!(until > now && until <= now + Duration::from_secs(1), "current until the next second");
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
