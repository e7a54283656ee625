//! `/demoptout` and `/demoptout.jpg` — opt-out (docs/http-api.md §9).
//!
//! Without ID parameters the browser opts out of everything: `demdex=NOTARGET` and
//! `dextp=NOTARGET` for 10 years, and the profile of a valid `demdex` cookie is marked opted
//! out globally. This works on any host (the global opt-out is served from a host no customer
//! owns). With `d_uuid`, `d_mid` + `d_orgid`, or declared IDs the named profile opts out of the
//! host's customer only, and no cookie changes: `d_uuid` first; else, for declared IDs, the
//! profile most recently mapped to one of them, the cookie's, or a new one that the IDs are
//! then mapped to; else, for an ECID, the profile mapped to it, the cookie's or a new one,
//! which the ECID is then mapped to. Later `/event` calls for that profile answer 171.
//! A customer with a `uuid_token` takes `d_uuid` only with that token (`X-DCS-Token`); without
//! it `d_uuid` is refused with 102 and ignored, as an invalid one is (docs/http-api.md §5.1).
//! `OPTIONS` is the CORS preflight (§7).

use crate::catalog::{Catalog, Customer};
use crate::http::conn::Request;
use crate::http::Method;
use crate::identity::Uuid;

use super::super::logging::RequestPart;
use super::super::params::Control;
use super::super::{Dcs, Route};
use super::identity::{
    check_host_and_org, cookie_id, declared_ids, ecid, fresh_id, now_s, opt_out, uuid_param, CookieId,
};
use super::render::{pixel, preflight, DcsError, SetCookie, INVALID_PARAMETERS};
use crate::eventlog::record::{Kind, OptOut};

/// Answers `/demoptout` and `/demoptout.jpg` (GET, HEAD; OPTIONS is the CORS preflight).
pub fn optout(dcs: &Dcs, req: &Request<'_>, out: &mut Vec<u8>) -> u16 {
    if req.head.method == Method::Options {
        return preflight(dcs, req, Route::Optout, out);
    }
    let query = req.head.query.map_or(&b""[..], |q| q.get(req.buf));
    let tax = dcs.catalog();
    let mut pairs = dcs.pairs.borrow_mut();
    let mut errors = Vec::new();
    let Ok(view) = pairs.decode(query, b"") else {
        errors.push(DcsError { code: 311, msg: INVALID_PARAMETERS.into() });
        let status = pixel(dcs, req, SetCookie::Nothing, None, &errors, out);
        dcs.log_identity(RequestPart::Invalid(req), Kind::Optout, None, None, "pixel", &errors);
        return status;
    };
    let ctl = Control::from_view(&view);
    let now = now_s();
    let partner_level =
        ctl.uuid.is_some() || !ctl.declared.is_empty() || (ctl.mid.is_some() && ctl.orgid.is_some());
    if !partner_level {
        if let CookieId::Profile(uuid, digits) = cookie_id(req, false) {
            dcs.shared.table.update(uuid, now, |p| p.opt_out_globally());
            dcs.note_facts(|f| {
                f.uuid = Some(digits);
                f.opt_out = Some(OptOut::Global);
            });
        }
        let status = pixel(dcs, req, SetCookie::OptOut, None, &errors, out);
        dcs.log_identity(RequestPart::Valid(req, &view), Kind::Optout, None, None, "pixel", &errors);
        return status;
    }
    let customer = check_host_and_org(&tax, req, &ctl, &mut errors);
    if let Some(customer) = customer {
        opt_out_partner(dcs, &tax, req, &ctl, customer, now, &mut errors);
    }
    let status = pixel(dcs, req, SetCookie::Nothing, None, &errors, out);
    dcs.log_identity(
        RequestPart::Valid(req, &view),
        Kind::Optout,
        customer.map(|c| c.id),
        None,
        "pixel",
        &errors,
    );
    status
}

/// The partner-level opt-out of the profile the request names.
fn opt_out_partner(
    dcs: &Dcs,
    tax: &Catalog,
    req: &Request<'_>,
    ctl: &Control<'_>,
    customer: Customer,
    now: u64,
    errors: &mut Vec<DcsError>,
) {
    let table = &dcs.shared.table;
    let uuid_allowed = tax.uuid_token_ok(customer, req.head.dcs_token.map(|t| t.get(req.buf)));
    let from_param = uuid_param(ctl, uuid_allowed, errors).and_then(Uuid::parse);
    let customer = customer.id;
    let declared = declared_ids(dcs, tax, ctl, customer, now, errors);
    let ecid = ctl.orgid.and_then(|_| ecid(ctl, errors));
    let from_cookie = || match cookie_id(req, ctl.coppa) {
        CookieId::Profile(uuid, _) => Some(uuid),
        CookieId::Absent | CookieId::OptedOut => None,
    };
    let uuid = if let Some(u) = from_param {
        u
    } else if !declared.is_empty() {
        table
            .most_recent_declared(declared.iter().map(|d| (d.dpid, d.dpuuid)))
            .or_else(from_cookie)
            .unwrap_or_else(|| fresh_id(dcs).uuid)
    } else if let Some(e) = ecid {
        table.lookup_ecid(e).or_else(from_cookie).unwrap_or_else(|| fresh_id(dcs).uuid)
    } else {
        return; // only an invalid d_uuid or ECID, already reported
    };
    opt_out(dcs, uuid, customer, &declared, now);
    if let Some(e) = ecid.filter(|_| from_param.is_none() && declared.is_empty()) {
        table.update(uuid, now, |p| p.set_ecid(Some(e)));
        table.map_ecid(e, uuid);
    }
}
