//! Response pieces the DCS routes share: DCS errors (`errors` and `X-Error`), the `demdex`
//! cookie, CORS and the preflight, JSON strings and the pixel.

use crate::http::conn::Request;
use crate::http::response::{push_conn_header, push_u64};
use crate::http::url::encode_location_into;
use crate::http::Method;

use super::super::{Dcs, Route};
use crate::http::host_without_port;

/// nginx's `empty_gif`: the 43-byte transparent 1×1 GIF89a.
pub const PIXEL_GIF: [u8; 43] = [
    b'G', b'I', b'F', b'8', b'9', b'a', 0x01, 0x00, 0x01, 0x00, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0xff,
    0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x01, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x01, 0x00, 0x00, 0x02, 0x02, 0x4c, 0x01, 0x00, 0x3b,
];

/// Error 311's message (docs/http-api.md §12).
pub const INVALID_PARAMETERS: &str = "Request contains invalid parameters";

/// A DCS error for the response (`errors` and `X-Error`), in the order errors arose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcsError {
    /// The code (docs/http-api.md §12).
    pub code: u16,
    /// The message, with the offending ID filled in.
    pub msg: String,
}

/// `Set-Cookie` lines of a global opt-out (docs/http-api.md §9): `demdex` and `dextp` set to
/// `NOTARGET` for 10 years, with the configured attributes.
fn push_optout_cookies(out: &mut Vec<u8>, attrs_10y: &[u8]) {
    for name in [&b"demdex"[..], b"dextp"] {
        out.extend_from_slice(b"Set-Cookie: ");
        out.extend_from_slice(name);
        out.extend_from_slice(b"=NOTARGET");
        out.extend_from_slice(attrs_10y);
    }
}

/// What an answer's head needs to know of its request: enough to write it after the request's
/// bytes are gone (an answer that waited for partners owns one).
#[derive(Clone, Copy, Debug)]
pub struct ReplyTo<'a> {
    /// The clock reading of the request's batch (for `Date`).
    pub now: std::time::Instant,
    /// What the answer says about the connection.
    pub conn: crate::http::response::ConnHeader,
    /// `HEAD`: no body.
    pub head_only: bool,
    /// The request's `Origin`, for CORS.
    pub origin: Option<&'a [u8]>,
    /// The request's host without the port (empty without one): its customer's
    /// `cors_origins` decide CORS.
    pub host: &'a [u8],
}

impl<'a> ReplyTo<'a> {
    /// The reply context of `req`.
    pub fn of(req: &Request<'a>) -> ReplyTo<'a> {
        ReplyTo {
            now: req.now,
            conn: req.conn,
            head_only: req.head.method == Method::Head,
            origin: req.head.origin.map(|o| o.get(req.buf)),
            host: req.head.host.map_or(&b""[..], |h| host_without_port(h.get(req.buf))),
        }
    }
}

/// Which cookies a pixel answer sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCookie<'a> {
    /// None.
    Nothing,
    /// `demdex=<uuid>` for 180 days.
    Profile(&'a [u8; 38]),
    /// `demdex=NOTARGET` and `dextp=NOTARGET` for 10 years.
    OptOut,
}

/// A `200` pixel answer (or `302` to `location`) with cookies, `X-Error` and CORS.
pub fn pixel(
    dcs: &Dcs,
    req: &Request<'_>,
    cookie: SetCookie<'_>,
    location: Option<&[u8]>,
    errors: &[DcsError],
    out: &mut Vec<u8>,
) -> u16 {
    let status = if location.is_some() { 302 } else { 200 };
    dcs.start_response(out, status, req.now);
    match location {
        Some(l) => {
            // Percent-encoded where the URL grammar requires it (docs/http-api.md §8), so the
            // header holds URL bytes only.
            out.extend_from_slice(b"Location: ");
            encode_location_into(l, out);
            out.extend_from_slice(b"\r\nContent-Length: 0\r\n");
        }
        None => out.extend_from_slice(b"Content-Type: image/gif\r\nContent-Length: 43\r\n"),
    }
    finish_head(dcs, &ReplyTo::of(req), cookie, errors, out);
    if location.is_none() && req.head.method != Method::Head {
        out.extend_from_slice(&PIXEL_GIF);
    }
    status
}

/// The end of every DCS answer's head: cookies, `X-Error`, CORS, the connection header and
/// the blank line.
pub fn finish_head(
    dcs: &Dcs,
    reply: &ReplyTo<'_>,
    cookie: SetCookie<'_>,
    errors: &[DcsError],
    out: &mut Vec<u8>,
) {
    match cookie {
        SetCookie::Nothing => {}
        SetCookie::Profile(digits) => {
            out.extend_from_slice(b"Set-Cookie: demdex=");
            out.extend_from_slice(digits);
            out.extend_from_slice(&dcs.cookie_attrs);
        }
        SetCookie::OptOut => push_optout_cookies(out, &dcs.optout_cookie_attrs),
    }
    push_x_error(out, errors);
    push_cors(dcs, reply, out);
    push_conn_header(out, reply.conn);
    out.extend_from_slice(b"\r\n");
}

/// `X-Error: c1,c2,…` when there are errors.
pub fn push_x_error(out: &mut Vec<u8>, errors: &[DcsError]) {
    if errors.is_empty() {
        return;
    }
    out.extend_from_slice(b"X-Error: ");
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_u64(out, u64::from(e.code));
    }
    out.extend_from_slice(b"\r\n");
}

/// `,"errors":[{"code":N,"msg":"…"},…]` when there are errors.
pub fn push_errors_field(out: &mut Vec<u8>, errors: &[DcsError]) {
    if errors.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"errors\":[");
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"code\":");
        push_u64(out, u64::from(e.code));
        out.extend_from_slice(b",\"msg\":");
        crate::json::push_string(out, &e.msg);
        out.push(b'}');
    }
    out.push(b']');
}

/// CORS for a request with `Origin` (docs/http-api.md §7): `Access-Control-Allow-Origin`
/// (the origin), `Access-Control-Allow-Credentials` and `Vary: Origin` — unless the host's
/// customer lists `cors_origins` without this origin, which gets `Vary: Origin` alone. The
/// host decides, whether or not the request is valid, so every answer for one host follows
/// the same rule. Without `Origin` nothing is looked up.
pub fn push_cors(dcs: &Dcs, reply: &ReplyTo<'_>, out: &mut Vec<u8>) {
    let Some(origin) = reply.origin else { return };
    if !dcs.catalog().cors_allows(reply.host, origin) {
        out.extend_from_slice(b"Vary: Origin\r\n");
        return;
    }
    out.extend_from_slice(b"Access-Control-Allow-Origin: ");
    out.extend_from_slice(origin);
    out.extend_from_slice(b"\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n");
}

/// `OPTIONS` on a DCS route (docs/http-api.md §7): `204` with the preflight headers when
/// `Access-Control-Request-Method` is present, else `204` with `Allow`; CORS as for any answer.
pub fn preflight(dcs: &Dcs, req: &Request<'_>, route: Route, out: &mut Vec<u8>) -> u16 {
    dcs.start_response(out, 204, req.now);
    if req.head.ac_request_method.is_some() {
        out.extend_from_slice(b"Access-Control-Allow-Methods: ");
        out.extend_from_slice(route.cors_methods().as_bytes());
        out.extend_from_slice(
            b"\r\nAccess-Control-Allow-Headers: Content-Type\r\nAccess-Control-Max-Age: 86400\r\n",
        );
    } else {
        out.extend_from_slice(b"Allow: ");
        out.extend_from_slice(route.allow().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    push_cors(dcs, &ReplyTo::of(req), out);
    push_conn_header(out, req.conn);
    out.extend_from_slice(b"\r\n");
    204
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_render_in_order() {
        let errors = [DcsError { code: 303, msg: "a".into() }, DcsError { code: 171, msg: "b\"".into() }];
        let (mut header, mut field) = (Vec::new(), Vec::new());
        push_x_error(&mut header, &errors);
        push_errors_field(&mut field, &errors);
        assert_eq!(header, b"X-Error: 303,171\r\n");
        assert_eq!(field, br#","errors":[{"code":303,"msg":"a"},{"code":171,"msg":"b\""}]"#);
    }
}
