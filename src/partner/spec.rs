//! A real-time data source as the partner client runs it: the URL template compiled at taxonomy
//! load (docs/partner-protocol.md §2), the address resolved then (never on the request path),
//! the limits, the TLS client configuration for an `https://` URL (docs/partner-protocol.md
//! §2.1), and the request bytes rendered from them per call.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::config::taxonomy::Realtime;

/// A compiled real-time partner. Immutable; shared by the catalog and every core's pool.
#[derive(Debug)]
pub struct PartnerSpec {
    /// The data source.
    pub dpid: u32,
    /// Where to connect, resolved at load; `None` when the name did not resolve (every call
    /// then fails as `error` until a reload resolves it).
    pub addr: Option<SocketAddr>,
    /// `host[:port]` for the `Host` header, as written in the URL.
    pub authority: Box<str>,
    /// For an `https://` URL: how to speak TLS to it.
    pub tls: Option<PartnerTls>,
    /// `GET` or `POST`.
    pub method: CallMethod,
    /// The path and query, with macros.
    template: Vec<Part>,
    /// The template names `${DPUUID}`: no call without a synced ID.
    pub needs_dpuuid: bool,
    /// Per-call time-out, connect included.
    pub timeout: Duration,
    /// How long a result stays fresh in the profile, seconds.
    pub ttl_s: u32,
    /// Connections per core.
    pub max_conns: usize,
    /// Idle pooled connections are closed after this.
    pub idle_timeout: Duration,
    /// Consecutive failures that open the circuit.
    pub breaker_failures: u32,
    /// How long the circuit stays open.
    pub breaker_open: Duration,
    /// The data source's static headers, rendered (`Name: value\r\n`…).
    static_headers: Box<[u8]>,
}

/// TLS to a partner: the client configuration (trust store, session cache) and the name the
/// certificate must carry (the URL's host, also sent as SNI).
#[derive(Clone, Debug)]
pub struct PartnerTls {
    /// Shared by every core; its session cache lets new connections resume.
    pub config: Arc<rustls::ClientConfig>,
    /// The URL's host.
    pub name: ServerName<'static>,
    /// The data source's `ca_file`, if any (`None`: the system's CAs).
    pub ca_file: Option<PathBuf>,
}

/// The HTTP method of a partner call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallMethod {
    /// `GET`, request values in the URL.
    Get,
    /// `POST` with a JSON body.
    Post,
}

/// A piece of the path-and-query template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(Box<[u8]>),
    Macro(Macro),
}

/// The macros of docs/partner-protocol.md §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Macro {
    Uuid,
    Dpuuid,
    Dpid,
    Tid,
    Gdpr,
    GdprConsent,
}

/// What one call fills the template with.
#[derive(Clone, Copy, Debug)]
pub struct CallValues<'a> {
    /// The profile ID (38 digits).
    pub uuid: &'a [u8; 38],
    /// The partner's ID for this profile, if synced.
    pub dpuuid: Option<&'a str>,
    /// The request's transaction ID.
    pub tid: &'a [u8; 12],
    /// `gdpr` (0 or 1).
    pub gdpr: u8,
    /// `gdpr_consent` (empty when absent).
    pub gdpr_consent: &'a [u8],
}

/// Why a `realtime` block cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError(pub String);

/// The `User-Agent` of every partner call.
const USER_AGENT: &str = concat!("dcsd/", env!("CARGO_PKG_VERSION"));

// === impl PartnerSpec ===

impl PartnerSpec {
    /// Compiles a data source's `realtime` block; `resolve` turns `(host, port)` into an
    /// address (the caller decides how: at load, off the workers).
    ///
    /// # Errors
    /// A URL that is not `http://host[:port]/…` or `https://host[:port]/…`, an unknown macro,
    /// a macro in the authority, a header name or value that cannot be sent, a `ca_file` that
    /// cannot be read (or with an `http://` URL).
    pub fn compile(
        dpid: u32,
        rt: &Realtime,
        resolve: impl FnOnce(&str, u16) -> Option<SocketAddr>,
    ) -> Result<PartnerSpec, SpecError> {
        let (rest, https) = match (rt.url.strip_prefix("https://"), rt.url.strip_prefix("http://")) {
            (Some(rest), _) => (rest, true),
            (None, Some(rest)) => (rest, false),
            _ => return Err(err("url: must be an http:// or https:// URL")),
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let (host, port) = split_authority(authority, if https { 443 } else { 80 })?;
        let tls = match (https, &rt.ca_file) {
            (false, Some(_)) => return Err(err("ca_file: only an https:// URL uses one")),
            (false, None) => None,
            (true, ca_file) => Some(partner_tls(host, ca_file.as_deref())?),
        };
        let template = parse_template(if path.is_empty() { "/" } else { path })?;
        let method = match rt.method.as_str() {
            "GET" => CallMethod::Get,
            "POST" => CallMethod::Post,
            _ => return Err(err("method: GET or POST")),
        };
        let mut static_headers = Vec::new();
        for (name, value) in &rt.headers {
            let token = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token || value.bytes().any(|b| b < b' ' && b != b'\t' || b == 0x7f) {
                return Err(err(&format!("headers: {name:?} cannot be sent as a header")));
            }
            static_headers.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        let breaker = rt.breaker.as_ref();
        Ok(PartnerSpec {
            dpid,
            addr: resolve(host, port),
            authority: authority.into(),
            tls,
            method,
            needs_dpuuid: template.contains(&Part::Macro(Macro::Dpuuid)),
            template,
            timeout: Duration::from_millis(u64::from(rt.timeout_ms)),
            ttl_s: rt.ttl_s,
            max_conns: rt.max_conns_per_core as usize,
            idle_timeout: Duration::from_millis(u64::from(rt.idle_timeout_ms)),
            breaker_failures: breaker.map_or(20, |b| b.failures.max(1)),
            breaker_open: Duration::from_millis(u64::from(breaker.map_or(1000, |b| b.open_ms))),
            static_headers: static_headers.into(),
        })
    }

    /// Whether a pool built for `other` can serve this spec (same address, `Host`, scheme and
    /// trust): a reload that changes none keeps the core's connections.
    pub fn same_endpoint(&self, other: &PartnerSpec) -> bool {
        let trust = |s: &PartnerSpec| s.tls.as_ref().map(|t| t.ca_file.clone());
        self.addr == other.addr && self.authority == other.authority && trust(self) == trust(other)
    }

    /// Appends the request for one call: the head, and for `POST` the JSON body with
    /// `signals` (already rendered as a JSON object: the request's `c_` and unprefixed signals
    /// only, never `p_` or `h_` ones).
    pub fn render_into(&self, v: &CallValues<'_>, signals_json: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(match self.method {
            CallMethod::Get => b"GET ",
            CallMethod::Post => b"POST ",
        });
        for part in &self.template {
            match part {
                Part::Literal(l) => out.extend_from_slice(l),
                Part::Macro(m) => self.push_macro(*m, v, out),
            }
        }
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(self.authority.as_bytes());
        out.extend_from_slice(b"\r\nUser-Agent: ");
        out.extend_from_slice(USER_AGENT.as_bytes());
        out.extend_from_slice(b"\r\nAccept: application/json\r\n");
        out.extend_from_slice(&self.static_headers);
        if self.method == CallMethod::Get {
            out.extend_from_slice(b"\r\n");
            return;
        }
        let mut body = Vec::with_capacity(128 + signals_json.len());
        body.extend_from_slice(b"{\"uuid\":\"");
        body.extend_from_slice(v.uuid);
        body.extend_from_slice(b"\",\"dpuuid\":");
        match v.dpuuid {
            Some(d) => crate::json::push_string(&mut body, d),
            None => body.extend_from_slice(b"null"),
        }
        body.extend_from_slice(format!(",\"dpid\":{},\"tid\":\"", self.dpid).as_bytes());
        body.extend_from_slice(v.tid);
        body.extend_from_slice(b"\",\"signals\":");
        body.extend_from_slice(if signals_json.is_empty() { b"{}" } else { signals_json });
        body.push(b'}');
        out.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&body);
    }

    fn push_macro(&self, m: Macro, v: &CallValues<'_>, out: &mut Vec<u8>) {
        match m {
            Macro::Uuid => out.extend_from_slice(v.uuid),
            Macro::Dpuuid => percent_encode(v.dpuuid.unwrap_or_default().as_bytes(), out),
            Macro::Dpid => out.extend_from_slice(self.dpid.to_string().as_bytes()),
            Macro::Tid => percent_encode(v.tid, out),
            Macro::Gdpr => out.push(b'0' + v.gdpr.min(1)),
            Macro::GdprConsent => percent_encode(v.gdpr_consent, out),
        }
    }
}

// === impl SpecError ===

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(msg: &str) -> SpecError {
    SpecError(msg.to_string())
}

/// The TLS side of an `https://` partner: its server name and trust store (read now, at load).
fn partner_tls(host: &str, ca_file: Option<&str>) -> Result<PartnerTls, SpecError> {
    let name = crate::tls::client::server_name(host).map_err(|e| err(&format!("url: {e}")))?;
    let ca_file = ca_file.map(PathBuf::from);
    let config = match &ca_file {
        Some(path) => crate::tls::client::ca_file_config(path).map_err(|e| err(&format!("ca_file: {e}")))?,
        None => {
            crate::tls::client::system_config().map_err(|e| err(&format!("url: https needs CAs: {e}")))?
        }
    };
    Ok(PartnerTls { config, name, ca_file })
}

/// `host[:port]` (`default_port` without one); IPv6 literals in brackets. No user info.
fn split_authority(a: &str, default_port: u16) -> Result<(&str, u16), SpecError> {
    if a.is_empty() || a.contains(['@', '$', '{', '}']) || a.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return Err(err("url: the host must be a plain host[:port] (no user info, no macros)"));
    }
    let (host, port) = match a.strip_prefix('[') {
        Some(v6) => {
            let (h, rest) = v6.split_once(']').ok_or_else(|| err("url: unclosed IPv6 literal"))?;
            (h, rest.strip_prefix(':'))
        }
        None => match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| err("url: bad port"))?,
        None => default_port,
    };
    if host.is_empty() {
        return Err(err("url: empty host"));
    }
    Ok((host, port))
}

/// Splits a path-and-query into literals and `${…}` macros.
fn parse_template(t: &str) -> Result<Vec<Part>, SpecError> {
    if t.bytes().any(|b| b <= b' ' || b >= 0x7f || b == b'#') {
        return Err(err("url: the path and query must be printable ASCII without spaces or '#'"));
    }
    let mut parts = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("${") {
        let close = rest[i..].find('}').ok_or_else(|| err("url: unclosed ${ macro"))?;
        let name = &rest[i + 2..i + close];
        let m = match name {
            "UUID" => Macro::Uuid,
            "DPUUID" => Macro::Dpuuid,
            "DPID" => Macro::Dpid,
            "TID" => Macro::Tid,
            "GDPR" => Macro::Gdpr,
            "GDPR_CONSENT" => Macro::GdprConsent,
            _ => return Err(err(&format!("url: unknown macro ${{{name}}}"))),
        };
        if i > 0 {
            parts.push(Part::Literal(rest.as_bytes()[..i].into()));
        }
        parts.push(Part::Macro(m));
        rest = &rest[i + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.as_bytes().into()));
    }
    Ok(parts)
}

/// Percent-encodes everything but RFC 3986 unreserved bytes.
fn percent_encode(v: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in v {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realtime(url: &str, method: &str) -> Realtime {
        let json =
            format!(r#"{{"url":{url:?},"method":{method:?},"headers":{{"Authorization":"Bearer s"}}}}"#);
        serde_json_like(&json)
    }

    /// The serde document type through simd-json, as the taxonomy loader reads it.
    fn serde_json_like(json: &str) -> Realtime {
        let mut b = json.as_bytes().to_vec();
        simd_json::serde::from_slice(&mut b).unwrap()
    }

    fn any_addr(_: &str, port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    const VALUES: CallValues<'static> = CallValues {
        uuid: b"01234567890123456789012345678901234567",
        dpuuid: Some("crm 42/é"),
        tid: b"AQIDBAUGBwg=",
        gdpr: 1,
        gdpr_consent: b"CP x",
    };

    #[test]
    fn get_requests_are_rendered_with_encoded_macros() {
        let url =
            "http://p.example:9000/s?u=${UUID}&d=${DPUUID}&p=${DPID}&t=${TID}&g=${GDPR}&c=${GDPR_CONSENT}";
        let spec = PartnerSpec::compile(777, &realtime(url, "GET"), any_addr).unwrap();
        assert!(spec.needs_dpuuid);
        assert_eq!(spec.addr, Some(SocketAddr::from(([127, 0, 0, 1], 9000))));
        let mut out = Vec::new();
        spec.render_into(&VALUES, b"", &mut out);
        let want = format!(
            "GET /s?u=01234567890123456789012345678901234567&d=crm%2042%2F%C3%A9&p=777&t=AQIDBAUGBwg%3D&g=1&c=CP%20x HTTP/1.1\r\nHost: p.example:9000\r\nUser-Agent: dcsd/{}\r\nAccept: application/json\r\nAuthorization: Bearer s\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    fn post_requests_carry_the_json_body() {
        let spec = PartnerSpec::compile(5, &realtime("http://p.example/x", "POST"), any_addr).unwrap();
        assert!(!spec.needs_dpuuid);
        assert_eq!(spec.addr.map(|a| a.port()), Some(80));
        let mut out = Vec::new();
        spec.render_into(&CallValues { dpuuid: None, ..VALUES }, br#"{"c_a":["1"]}"#, &mut out);
        let text = String::from_utf8(out).unwrap();
        let body = r#"{"uuid":"01234567890123456789012345678901234567","dpuuid":null,"dpid":5,"tid":"AQIDBAUGBwg=","signals":{"c_a":["1"]}}"#;
        assert!(text.starts_with("POST /x HTTP/1.1\r\nHost: p.example\r\n"), "{text}");
        assert!(text.ends_with(&format!("Content-Length: {}\r\n\r\n{body}", body.len())), "{text}");
    }

    #[test]
    fn bad_templates_are_refused() {
        for (url, want) in [
            ("ftp://p.example/", "https:// URL"),
            ("http://u@p.example/", "plain host"),
            ("http://p.example:x/", "bad port"),
            ("http://p.example/${NOPE}", "unknown macro"),
            ("http://p.example/${UUID", "unclosed"),
            ("http://${UUID}.example/", "plain host"),
            ("http://p.example/a b", "printable"),
            ("http:///x", "plain host"),
        ] {
            let e = PartnerSpec::compile(1, &realtime(url, "GET"), any_addr).unwrap_err();
            assert!(e.0.contains(want), "{url}: {e}");
        }
        assert!(PartnerSpec::compile(1, &realtime("http://p/", "PUT"), any_addr).is_err());
        let mut rt = realtime("http://p/", "GET");
        rt.headers.insert("X-Bad".into(), "a\r\nInjected: 1".into());
        assert!(PartnerSpec::compile(1, &rt, any_addr).unwrap_err().0.contains("cannot be sent"));
    }

    #[test]
    fn https_urls_carry_their_tls_settings() {
        let dir = std::env::temp_dir().join(format!("dcsd-spec-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
        let mut rt = realtime("https://p.example/s?u=${UUID}", "GET");
        rt.ca_file = Some(ca.display().to_string());
        let spec = PartnerSpec::compile(1, &rt, any_addr).unwrap();
        assert_eq!(spec.addr.map(|a| a.port()), Some(443));
        let tls = spec.tls.as_ref().unwrap();
        assert_eq!(tls.name, ServerName::try_from("p.example").unwrap());
        assert_eq!(tls.ca_file.as_deref(), Some(ca.as_path()));
        let plain = PartnerSpec::compile(1, &realtime("http://p.example:443/s", "GET"), any_addr).unwrap();
        assert!(!spec.same_endpoint(&plain), "scheme and trust are part of the endpoint");
        rt.ca_file = Some(dir.join("missing.pem").display().to_string());
        assert!(PartnerSpec::compile(1, &rt, any_addr).unwrap_err().0.starts_with("ca_file: cannot read"));
        let mut rt = realtime("http://p.example/", "GET");
        rt.ca_file = Some(ca.display().to_string());
        assert!(PartnerSpec::compile(1, &rt, any_addr).unwrap_err().0.contains("only an https:// URL"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn endpoints_compare_by_address_and_host() {
        let a = PartnerSpec::compile(1, &realtime("http://p:1/a", "GET"), any_addr).unwrap();
        let b = PartnerSpec::compile(1, &realtime("http://p:1/b?x=${UUID}", "POST"), any_addr).unwrap();
        let c = PartnerSpec::compile(1, &realtime("http://p:2/a", "GET"), any_addr).unwrap();
        assert!(a.same_endpoint(&b));
        assert!(!a.same_endpoint(&c));
        assert_eq!(split_authority("[::1]:8080", 80).unwrap(), ("::1", 8080));
    }
}
