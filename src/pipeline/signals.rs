//! Header-derived signals (docs/http-api.md §3.3): `h_host` (Host without its port), `h_user-agent`,
//! `h_accept-language`, `h_referer`, `h_date` and `h_ip` (the client address, with its last
//! IPv4 octet or last 80 IPv6 bits zeroed when `privacy.ip_obfuscation` is on). Absent headers
//! add nothing, and neither do keys no trait rule tests (they could not change the result; the
//! address is then not even formatted). Requests cannot forge them: `h_` pairs a request sends are dropped by
//! [`super::params::View::signals`].

use std::io::Write as _;
use std::net::IpAddr;

use crate::http::conn::Request;

/// Longest textual IP address (an IPv6 address with an embedded IPv4 one).
const IP_TEXT: usize = 45;

/// The header signals of one request, borrowed from its bytes (no allocation).
#[derive(Debug)]
pub struct HeaderSignals<'a> {
    pairs: [(&'static [u8], &'a [u8]); 5],
    len: usize,
    ip: [u8; IP_TEXT],
    ip_len: usize,
}

// === impl HeaderSignals ===

impl<'a> HeaderSignals<'a> {
    /// The signals of `req` that `wanted` (the taxonomy tests the key); `host` is its Host
    /// without the port.
    pub fn of(
        req: &Request<'a>,
        host: Option<&'a [u8]>,
        obfuscate_ip: bool,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> HeaderSignals<'a> {
        let h = &req.head;
        let found = [
            (&b"h_host"[..], host),
            (b"h_user-agent", h.user_agent.map(|s| s.get(req.buf))),
            (b"h_accept-language", h.accept_language.map(|s| s.get(req.buf))),
            (b"h_referer", h.referer.map(|s| s.get(req.buf))),
            (b"h_date", h.date.map(|s| s.get(req.buf))),
        ];
        let mut pairs: [(&'static [u8], &'a [u8]); 5] = [(&[], &[]); 5];
        let mut len = 0;
        for (k, v) in found {
            if let Some(v) = v.filter(|_| wanted(k)) {
                pairs[len] = (k, v);
                len += 1;
            }
        }
        let mut ip = [0u8; IP_TEXT];
        let ip_len = if !wanted(b"h_ip") {
            0
        } else {
            let mut cursor = &mut ip[..];
            let addr = if obfuscate_ip { obfuscate(req.peer.ip()) } else { req.peer.ip() };
            // An address always fits in 45 bytes.
            let _fits = write!(cursor, "{}", addr.to_canonical());
            IP_TEXT - cursor.len()
        };
        HeaderSignals { pairs, len, ip, ip_len }
    }

    /// The signals as (key, value) pairs, `h_ip` last.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let ip = (self.ip_len > 0).then_some((&b"h_ip"[..], &self.ip[..self.ip_len]));
        self.pairs[..self.len].iter().map(|&(k, v)| (k, v)).chain(ip)
    }
}

/// The last IPv4 octet, or the last 80 bits of an IPv6 address, zeroed.
pub fn obfuscate(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & !0xff).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 80) - 1)).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obfuscation_zeroes_the_host_part() {
        assert_eq!(obfuscate("192.0.2.77".parse().unwrap()), "192.0.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(
            obfuscate("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(obfuscate("::ffff:192.0.2.77".parse().unwrap()), "192.0.2.0".parse::<IpAddr>().unwrap());
    }
}
