//! `/ibs:` — inbound ID sync (docs/http-api.md §8).
//!
//! The pairs follow the colon (`/ibs:dpid=24&dpuuid=98765`), then any query string. The
//! declared IDs (`dpid` + `dpuuid`, `d_cid`, `d_cid_ic`, `d_dpid` + `d_dpuuid`) are validated
//! and denylisted as on `/event` (§5.2, §5.3) and mapped to the profile of the `demdex` cookie,
//! else a new one. `redir` sends the browser on with `302` when it is an absolute `http`/`https`
//! URL whose authority every URL parser reads alike ([`crate::http::url::redirect_host`]) and
//! whose host is allowed for the data source of a kept ID (`sync_redirect_domains`: the
//! domain itself or a subdomain of it), with every `${DD_UUID}` replaced by the profile ID and
//! the result percent-encoded for `Location`; any other `redir` is answered with the pixel and
//! error 311. A refused sync (opt-out 171, denylisted 307, no consent 315, invalid request)
//! maps nothing, sets no cookie and does not redirect. With `d_coppa=1` the `demdex` cookie is
//! neither read nor set (§4). `OPTIONS` is the CORS preflight (§7).

use crate::catalog::Catalog;
use crate::http::conn::Request;
use crate::http::url::redirect_host;
use crate::http::Method;
use crate::identity::declared::DeclaredId;

use super::super::logging::RequestPart;
use super::super::params::Control;
use super::super::{Dcs, Route};
use super::identity::{
    check_host_and_org, consent_ok, cookie_id, declared_ids, fresh_id, now_s, opt_out_for_consent, opted_out,
    record, CookieId, ProfileId,
};
use super::render::{pixel, preflight, DcsError, SetCookie, INVALID_PARAMETERS};
use crate::eventlog::record::Kind;

/// The substitution marker in `redir`.
const DD_UUID: &[u8] = b"${DD_UUID}";

/// Answers `/ibs:…` (GET, HEAD; OPTIONS is the CORS preflight).
pub fn ibs(dcs: &Dcs, req: &Request<'_>, out: &mut Vec<u8>) -> u16 {
    if req.head.method == Method::Options {
        return preflight(dcs, req, Route::Ibs, out);
    }
    let path = req.head.path.get(req.buf);
    let after_colon = path.iter().position(|&b| b == b':').map_or(&b""[..], |i| &path[i + 1..]);
    let query = req.head.query.map_or(&b""[..], |q| q.get(req.buf));
    let tax = dcs.catalog();
    let mut pairs = dcs.pairs.borrow_mut();
    let mut errors = Vec::new();
    let Ok(view) = pairs.decode(after_colon, query) else {
        errors.push(DcsError { code: 311, msg: INVALID_PARAMETERS.into() });
        let status = pixel(dcs, req, SetCookie::Nothing, None, &errors, out);
        dcs.log_identity(RequestPart::Invalid(req), Kind::Ibs, None, None, "pixel", &errors);
        return status;
    };
    let ctl = Control::from_view(&view);
    let redir = view.raw_first(b"redir");
    let Some(customer) = check_host_and_org(&tax, req, &ctl, &mut errors).map(|c| c.id) else {
        let status = pixel(dcs, req, SetCookie::Nothing, None, &errors, out);
        dcs.log_identity(RequestPart::Valid(req, &view), Kind::Ibs, None, None, "pixel", &errors);
        return status;
    };
    let now = now_s();
    let declared = declared_ids(dcs, &tax, &ctl, customer, now, &mut errors);
    let Some(digits) = sync(dcs, req, &ctl, customer, &declared, now, &mut errors) else {
        let status = pixel(dcs, req, SetCookie::Nothing, None, &errors, out);
        dcs.log_identity(RequestPart::Valid(req, &view), Kind::Ibs, Some(customer), None, "pixel", &errors);
        return status;
    };
    let location = redir.and_then(|r| {
        let allowed = allowed_redirect(&tax, r, &declared);
        if !allowed {
            errors.push(DcsError { code: 311, msg: INVALID_PARAMETERS.into() });
        }
        allowed.then(|| substitute(r, &digits))
    });
    // d_coppa=1: no third-party cookie, neither read (in `sync`) nor set (docs/http-api.md §4).
    let cookie = if ctl.coppa { SetCookie::Nothing } else { SetCookie::Profile(&digits) };
    let status = pixel(dcs, req, cookie, location.as_deref(), &errors, out);
    let mode = if location.is_some() { "redirect" } else { "pixel" };
    dcs.log_identity(RequestPart::Valid(req, &view), Kind::Ibs, Some(customer), Some(&digits), mode, &errors);
    status
}

/// Maps `declared` to the profile of the cookie (else a new one); returns its ID, or `None`
/// when the sync was refused.
fn sync(
    dcs: &Dcs,
    req: &Request<'_>,
    ctl: &Control<'_>,
    customer: u32,
    declared: &[DeclaredId<'_>],
    now: u64,
    errors: &mut Vec<DcsError>,
) -> Option<[u8; 38]> {
    let id = match cookie_id(req, ctl.coppa) {
        CookieId::OptedOut => {
            errors.push(opted_out(b"NOTARGET"));
            return None;
        }
        CookieId::Profile(uuid, digits) => ProfileId { uuid, digits, fresh: false },
        CookieId::Absent => fresh_id(dcs),
    };
    if !consent_ok(dcs, ctl, errors) {
        opt_out_for_consent(dcs, &id, customer, declared, now);
        return None;
    }
    match record(dcs, &id, customer, declared, None, now, |_| {}) {
        Ok(()) => Some(id.digits),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// Whether `url` is an absolute `http`/`https` URL whose authority every parser reads alike,
/// and whose host is a `sync_redirect_domains` entry (or a subdomain of one) of a kept ID's
/// data source.
fn allowed_redirect(catalog: &Catalog, url: &[u8], declared: &[DeclaredId<'_>]) -> bool {
    let Some(host) = redirect_host(url) else { return false };
    declared.iter().any(|d| catalog.redirect_allowed(d.dpid, host))
}

/// `url` with every `${DD_UUID}` replaced by `uuid`.
fn substitute(url: &[u8], uuid: &[u8; 38]) -> Vec<u8> {
    let mut out = Vec::with_capacity(url.len() + 38);
    let mut rest = url;
    while let Some(i) = rest.windows(DD_UUID.len()).position(|w| w == DD_UUID) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(uuid);
        rest = &rest[i + DD_UUID.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_is_replaced() {
        let uuid = [b'7'; 38];
        let got = substitute(b"https://p.example/s?a=${DD_UUID}&b=${DD_UUID}", &uuid);
        let want = format!("https://p.example/s?a={0}&b={0}", "7".repeat(38));
        assert_eq!(String::from_utf8(got).unwrap(), want);
        assert_eq!(substitute(b"https://p.example/", &uuid), b"https://p.example/");
    }
}
