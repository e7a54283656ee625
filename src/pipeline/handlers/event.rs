//! `/event`: the pixel, JSON and JSONP answers (http-api §5.1, §6.2, §6.3, §7).
//!
//! Steps, in order: decode the pairs (311 on a bad escape) → host, org and ECID checks (1, 100,
//! 2, 101) → declared IDs (3xx) → profile ID (`d_uuid`, the `demdex` cookie, the UUID mapped
//! to a declared ID, else a new one) → sync the declared IDs into the profile table → render
//! the answer with the `demdex` cookie and the errors in the order they arose. An invalid
//! request gets no profile ID and no cookie. Signals, traits, segments, destinations and
//! partners are later steps of the same request path.

use crate::http::conn::Request;
use crate::http::response::{push_conn_header, push_u64};
use crate::http::Method;
use crate::identity::declared::DeclaredId;
use crate::identity::{cookie_value, encode_tid, Uuid};

use super::super::params::{valid_callback, Control};
use super::super::Dcs;

/// nginx's `empty_gif`: the 43-byte transparent 1×1 GIF89a.
pub const PIXEL_GIF: [u8; 43] = [
    b'G', b'I', b'F', b'8', b'9', b'a', 0x01, 0x00, 0x01, 0x00, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0xff,
    0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x01, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x01, 0x00, 0x00, 0x02, 0x02, 0x4c, 0x01, 0x00, 0x3b,
];

const INVALID_PARAMETERS: &str = "Request contains invalid parameters";

/// The profile ID (http-api §5.1): valid `d_uuid`, else the `demdex` cookie (unless
/// `d_coppa=1`), else the UUID mapped to a declared ID of the request, else a new one. An
/// invalid `d_uuid` is error 102.
///
/// Returns the ID with its 38 digits (copied from the request when it came from there).
fn resolve_uuid(
    dcs: &Dcs,
    req: &Request<'_>,
    ctl: &Control<'_>,
    declared: &[DeclaredId<'_>],
    errors: &mut Vec<DcsError>,
) -> (Uuid, [u8; 38]) {
    let with_digits = |v: &[u8]| Some((Uuid::parse(v)?, <[u8; 38]>::try_from(v).ok()?));
    let from_param = ctl.uuid.and_then(|v| {
        let u = with_digits(v);
        if u.is_none() {
            let msg = format!("Invalid AAM ID passed in request {}", String::from_utf8_lossy(v));
            errors.push(DcsError { code: 102, msg });
        }
        u
    });
    let from_cookie = || {
        let cookie = req.head.cookie.filter(|_| !ctl.coppa)?;
        cookie_value(cookie.get(req.buf), b"demdex").and_then(with_digits)
    };
    // Step 3: the UUID mapped to one of the request's declared IDs (the first that has one).
    let from_declared = || {
        let u = declared.iter().find_map(|d| dcs.shared.table.lookup_declared(d.dpid, d.dpuuid))?;
        Some((u, u.to_digits()))
    };
    from_param
        .or_else(from_cookie)
        .or_else(from_declared)
        .unwrap_or_else(|| Uuid::generate_with_digits(&mut *dcs.rng.borrow_mut()))
}

/// The request's declared IDs, validated for the host's customer (http-api §5.2).
fn declared_ids<'a>(
    dcs: &Dcs,
    ctl: &Control<'a>,
    customer: u32,
    errors: &mut Vec<DcsError>,
) -> Vec<DeclaredId<'a>> {
    if ctl.declared.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let kept = crate::identity::declared::resolve(&ctl.declared, &dcs.taxonomy(), customer, &mut found);
    errors.extend(found.into_iter().map(|(code, msg)| DcsError { code, msg }));
    kept
}

/// Maps each kept declared ID to the profile (most recent mapping wins) and records it on
/// the profile.
fn sync_declared(dcs: &Dcs, uuid: Uuid, declared: &[DeclaredId<'_>]) {
    if declared.is_empty() {
        return;
    }
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for d in declared {
        dcs.shared.table.sync_declared(uuid, d.dpid, d.dpuuid, now_s);
    }
}

/// The host's customer (http-api §6.5): error 100 without a `Host` (HTTP/1.0), 1 for an unknown
/// host, 2 for a `d_orgid` the taxonomy does not know. Any of them makes the request invalid.
fn check_host_and_org(
    dcs: &Dcs,
    req: &Request<'_>,
    ctl: &Control<'_>,
    errors: &mut Vec<DcsError>,
) -> Option<u32> {
    let taxonomy = dcs.taxonomy();
    let Some(host) = req.head.host.map(|h| host_without_port(h.get(req.buf))) else {
        errors.push(DcsError { code: 100, msg: "Could not retrieve host name for the request".into() });
        return None;
    };
    let Some(customer) = taxonomy.customer_for_host(host) else {
        let msg = format!("Could not find config for hostname: {}", String::from_utf8_lossy(host));
        errors.push(DcsError { code: 1, msg });
        return None;
    };
    if let Some(org) = ctl.orgid.filter(|o| taxonomy.customer_for_org(o).is_none()) {
        let msg = format!(
            "Invalid d_orgid value (could not find a config for this org id): {}",
            String::from_utf8_lossy(org)
        );
        errors.push(DcsError { code: 2, msg });
        return None;
    }
    Some(customer)
}

/// `d_mid` must be 38 ASCII digits; otherwise error 101 and it is ignored (http-api §4).
fn check_ecid(ctl: &Control<'_>, errors: &mut Vec<DcsError>) {
    if let Some(mid) = ctl.mid.filter(|m| Uuid::parse(m).is_none()) {
        let msg = format!("Invalid Experience Cloud id passed in {}", String::from_utf8_lossy(mid));
        errors.push(DcsError { code: 101, msg });
    }
}

/// `host[:port]` or `[v6]:port` → the host part (http-api §6.5: matched without the port).
fn host_without_port(h: &[u8]) -> &[u8] {
    if h.first() == Some(&b'[') {
        return h.iter().position(|&b| b == b']').map_or(h, |i| &h[..=i]);
    }
    h.iter().position(|&b| b == b':').map_or(h, |i| &h[..i])
}

/// A DCS error for the response (`errors` and `X-Error`).
struct DcsError {
    code: u16,
    msg: String,
}

/// Answers `/event` (GET, HEAD, POST; OPTIONS is the CORS preflight).
pub fn event(dcs: &Dcs, req: &Request<'_>, out: &mut Vec<u8>) -> u16 {
    if req.head.method == Method::Options {
        return preflight(dcs, req, out);
    }
    let buf = req.buf;
    let query = req.head.query.map_or(&b""[..], |q| q.get(buf));
    let form = if req.head.method == Method::Post && is_form(req) { req.body } else { &b""[..] };
    let mut pairs = dcs.pairs.borrow_mut();
    let mut errors: Vec<DcsError> = Vec::new();
    let (ctl, view) = match pairs.decode(query, form) {
        Ok(view) => (Control::from_view(&view), Some(view)),
        Err(_) => {
            errors.push(DcsError { code: 311, msg: INVALID_PARAMETERS.into() });
            (Control::scan_raw(query, form), None)
        }
    };
    // An invalid request (311, 1, 100, 2) gets no profile ID and no cookie (http-api §6.5).
    let customer = view.and_then(|_| check_host_and_org(dcs, req, &ctl, &mut errors));
    let declared = customer.map_or_else(Vec::new, |c| declared_ids(dcs, &ctl, c, &mut errors));
    let ids = customer.map(|_| resolve_uuid(dcs, req, &ctl, &declared, &mut errors));
    if let Some((uuid, _)) = ids {
        check_ecid(&ctl, &mut errors);
        sync_declared(dcs, uuid, &declared);
    }
    let digits = ids.map(|(_, d)| d);

    let mut scratch = dcs.scratch.borrow_mut();
    scratch.clear();
    // Content-Type line and the start of Content-Length, as one copy.
    let type_and_length: &[u8] = if ctl.json {
        let cb = ctl.callback.filter(|cb| {
            let ok = valid_callback(cb);
            if !ok {
                errors.push(DcsError { code: 311, msg: INVALID_PARAMETERS.into() });
            }
            ok
        });
        render_json(&mut scratch, dcs, digits.as_ref(), &encode_tid(dcs.tid()), cb, &errors);
        if cb.is_some() {
            b"Content-Type: application/javascript\r\nContent-Length: "
        } else {
            b"Content-Type: application/json\r\nContent-Length: "
        }
    } else {
        scratch.extend_from_slice(&PIXEL_GIF);
        b"Content-Type: image/gif\r\nContent-Length: "
    };

    dcs.start_response(out, 200, req.now);
    out.extend_from_slice(type_and_length);
    push_u64(out, scratch.len() as u64);
    out.extend_from_slice(b"\r\n");
    if let Some(digits) = digits.filter(|_| !ctl.coppa) {
        out.extend_from_slice(b"Set-Cookie: demdex=");
        out.extend_from_slice(&digits);
        out.extend_from_slice(&dcs.cookie_attrs);
    }
    if !errors.is_empty() {
        out.extend_from_slice(b"X-Error: ");
        for (i, e) in errors.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_u64(out, u64::from(e.code));
        }
        out.extend_from_slice(b"\r\n");
    }
    push_cors(req, out);
    push_conn_header(out, req.conn);
    out.extend_from_slice(b"\r\n");
    if req.head.method != Method::Head {
        out.extend_from_slice(&scratch);
    }
    200
}

/// `{"stuff":[],"uuid":"…","dcs_region":R,"tid":"…"[,"errors":[…]]}`, wrapped for JSONP.
fn render_json(
    out: &mut Vec<u8>,
    dcs: &Dcs,
    uuid: Option<&[u8; 38]>,
    tid: &[u8; 12],
    cb: Option<&[u8]>,
    errors: &[DcsError],
) {
    if let Some(cb) = cb {
        out.extend_from_slice(cb);
        out.push(b'(');
    }
    out.extend_from_slice(b"{\"stuff\":[]");
    if let Some(uuid) = uuid {
        out.extend_from_slice(b",\"uuid\":\"");
        out.extend_from_slice(uuid);
        out.push(b'"');
    }
    out.extend_from_slice(b",\"dcs_region\":");
    push_u64(out, u64::from(dcs.shared.config.server.region));
    out.extend_from_slice(b",\"tid\":\"");
    out.extend_from_slice(tid);
    out.push(b'"');
    if !errors.is_empty() {
        out.extend_from_slice(b",\"errors\":[");
        for (i, e) in errors.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"code\":");
            push_u64(out, u64::from(e.code));
            out.extend_from_slice(b",\"msg\":");
            push_json_string(out, &e.msg);
            out.push(b'}');
        }
        out.push(b']');
    }
    out.push(b'}');
    if cb.is_some() {
        out.push(b')');
    }
}

/// Appends `s` as a JSON string literal (RFC 8259 §7), also escaping `<`, `>` and `&` so a
/// JSONP body can never close a surrounding script tag.
pub fn push_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f | b'<' | b'>' | b'&' => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn is_form(req: &Request<'_>) -> bool {
    req.head.content_type.is_some_and(|ct| {
        let ct = ct.get(req.buf);
        let media = ct.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
        media.eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
    })
}

/// `Access-Control-Allow-Origin` for a request with `Origin` (http-api §7).
fn push_cors(req: &Request<'_>, out: &mut Vec<u8>) {
    if let Some(origin) = req.head.origin {
        out.extend_from_slice(b"Access-Control-Allow-Origin: ");
        out.extend_from_slice(origin.get(req.buf));
        out.extend_from_slice(b"\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n");
    }
}

/// `OPTIONS`: 204 with the preflight headers when `Access-Control-Request-Method` is present,
/// else 204 with `Allow`.
fn preflight(dcs: &Dcs, req: &Request<'_>, out: &mut Vec<u8>) -> u16 {
    dcs.start_response(out, 204, req.now);
    if req.head.ac_request_method.is_some() {
        out.extend_from_slice(
            b"Access-Control-Allow-Methods: GET, POST, OPTIONS\r\nAccess-Control-Allow-Headers: Content-Type\r\nAccess-Control-Max-Age: 86400\r\n",
        );
    } else {
        out.extend_from_slice(b"Allow: GET, HEAD, POST, OPTIONS\r\n");
    }
    push_cors(req, out);
    push_conn_header(out, req.conn);
    out.extend_from_slice(b"\r\n");
    204
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped() {
        assert_eq!(host_without_port(b"acme.example:8080"), b"acme.example");
        assert_eq!(host_without_port(b"acme.example"), b"acme.example");
        assert_eq!(host_without_port(b"[::1]:80"), b"[::1]");
        assert_eq!(host_without_port(b"[::1"), b"[::1");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut v = Vec::new();
        push_json_string(&mut v, "a\"b\\c\n</script>\u{1}é");
        assert_eq!(String::from_utf8(v).unwrap(), r#""a\"b\\c\n\u003c/script\u003e\u0001é""#);
    }
}
