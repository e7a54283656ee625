//! `/event`: the pixel, JSON and JSONP answers (docs/http-api.md §5, §6, §7, §9, §10).
//!
//! Steps, in order (§6.1): decode the pairs (311 on a bad escape) → host and org (1, 100, 2) →
//! declared IDs (3xx, denylisted ones 303/306) → the profile ID (`d_uuid` or 102, the `demdex`
//! cookie, the UUID most recently mapped to a declared ID, else a new one) → the ECID (101) → a
//! globally opted-out browser (171), a denylisted ECID (307), consent (315) → one atomic
//! update of the profile that checks the per-customer opt-out (171) and the profile ID's
//! denylist (307) before it records the declared IDs and the ECID → the mappings → the answer
//! with the `demdex` cookie and the errors in the order they arose. An invalid, opted-out or
//! denylisted request gets no profile ID and no cookie, and stores nothing.

use rand::RngCore;

use crate::catalog::Catalog;
use crate::engine::{DestRequest, RealizeCtx};
use crate::http::conn::Request;
use crate::http::response::push_u64;
use crate::http::Method;
use crate::identity::declared::DeclaredId;
use crate::identity::encode_tid;
use crate::table::{day_of, IdRef};

use super::super::params::{valid_callback, Control, View};
use super::super::signals::HeaderSignals;
use super::super::{Dcs, Route, Work};
use super::identity::{
    check_host_and_org, consent_ok, cookie_id, declared_ids, ecid, host_without_port, now_s,
    opt_out_for_consent, opted_out, record, resolve_uuid, CookieId,
};
use super::render::{
    finish_head, preflight, push_errors_field, DcsError, SetCookie, INVALID_PARAMETERS, PIXEL_GIF,
};

/// What a valid request's answer carries besides the errors.
struct Answer {
    /// The profile ID, unless opted out or denylisted.
    uuid: Option<[u8; 38]>,
    /// The host's customer has `cts` (the `traits` and `segments` fields).
    cts: bool,
}

/// Answers `/event` (GET, HEAD, POST; OPTIONS is the CORS preflight).
pub fn event(dcs: &Dcs, req: &Request<'_>, out: &mut Vec<u8>) -> u16 {
    if req.head.method == Method::Options {
        return preflight(dcs, req, Route::Event, out);
    }
    let tax = dcs.catalog();
    let buf = req.buf;
    let query = req.head.query.map_or(&b""[..], |q| q.get(buf));
    let form = if req.head.method == Method::Post && is_form(req) { req.body } else { &b""[..] };
    let mut pairs = dcs.pairs.borrow_mut();
    let mut work = dcs.work.borrow_mut();
    work.clear();
    let mut errors: Vec<DcsError> = Vec::new();
    let (ctl, view) = match pairs.decode(query, form) {
        Ok(view) => (Control::from_view(&view), Some(view)),
        Err(_) => {
            errors.push(DcsError { code: 311, msg: INVALID_PARAMETERS.into() });
            (Control::scan_raw(query, form), None)
        }
    };
    // An invalid request (311, 1, 100, 2) gets no profile ID and no cookie (docs/http-api.md §6.5).
    let answer = view.and_then(|view| {
        let customer = check_host_and_org(&tax, req, &ctl, &mut errors)?;
        let uuid_allowed = tax.uuid_token_ok(customer, req.head.dcs_token.map(|t| t.get(buf)));
        let request = Valid { tax: &tax, req, view, ctl: &ctl, customer: customer.id, uuid_allowed };
        Some(Answer { uuid: request.evaluate(dcs, &mut work, &mut errors), cts: customer.cts })
    });
    respond(dcs, &tax, req, &ctl, answer.as_ref(), &work, &mut errors, out)
}

/// A valid request and what it is evaluated against.
struct Valid<'r, 'a> {
    tax: &'r Catalog,
    req: &'r Request<'a>,
    view: View<'r>,
    ctl: &'r Control<'r>,
    customer: u32,
    /// `d_uuid` may name the profile (the customer's `uuid_token`, docs/http-api.md §5.1).
    uuid_allowed: bool,
}

impl Valid<'_, '_> {
    /// Identity, opt-out, consent, traits, the profile update, segments and (JSON mode)
    /// destinations; returns the profile ID for the answer, or `None` when the request was
    /// refused (171, 307, 315).
    fn evaluate(&self, dcs: &Dcs, w: &mut Work, errors: &mut Vec<DcsError>) -> Option<[u8; 38]> {
        let (ctl, customer) = (self.ctl, self.customer);
        let (now, table) = (now_s(), &dcs.shared.table);
        let cookie = cookie_id(self.req, ctl.coppa);
        let declared = declared_ids(dcs, self.tax, ctl, customer, now, errors);
        let id = resolve_uuid(dcs, ctl, self.uuid_allowed, cookie, &declared, errors);
        let ecid = ecid(ctl, errors);
        if cookie == CookieId::OptedOut {
            errors.push(opted_out(b"NOTARGET"));
            return None;
        }
        if let Some(e) = ecid.filter(|&e| table.note_id(IdRef::Ecid(e), now)) {
            let digits = crate::identity::Uuid(e).to_digits();
            let msg = format!("Blocked profile operation for {}", String::from_utf8_lossy(&digits));
            errors.push(DcsError { code: 307, msg });
            return None;
        }
        if !consent_ok(dcs, ctl, errors) {
            opt_out_for_consent(dcs, &id, customer, &declared, now);
            return None;
        }
        let ignored = self.realize(dcs, w);
        let metrics = dcs.shared.metrics.core(dcs.index);
        if id.fresh && w.realized.is_empty() && declared.is_empty() && ecid.is_none() {
            // A new ID with nothing to record: no profile is created (it would hold nothing);
            // the browser's next request, with the cookie, finds none and starts one.
            metrics.realized(0, ignored);
            return Some(id.digits); // no segments, so no destinations either
        }
        let (engine, today) = (&self.tax.engine, day_of(now));
        let Work { realized, segments, merged, .. } = w;
        let recorded = record(dcs, &id, customer, &declared, ecid, now, |p| {
            for &t in realized.iter() {
                p.realize(t, now);
            }
            engine.segments(p, today, customer, segments);
            // The profile keeps other customers' segments; this customer's are replaced, and
            // segments the taxonomy no longer has are dropped.
            merged.clear();
            merged.extend(
                p.segments().iter().filter(|&&s| engine.segment_customer(s).is_some_and(|c| c != customer)),
            );
            merged.extend_from_slice(segments);
            p.set_segments(merged.iter().copied());
        });
        if let Err(e) = recorded {
            errors.push(e);
            w.realized.clear();
            w.segments.clear();
            metrics.realized(0, ignored);
            return None;
        }
        metrics.realized(w.realized.len(), ignored);
        if ctl.json {
            self.destinations(dcs, w, &id.digits, &declared, now);
        }
        Some(id.digits)
    }

    /// The traits the request realizes: rule traits from its signals (pairs and headers) and
    /// `d_sid` traits, for the host's customer (and `d_tdpid`'s data source). Returns the
    /// `d_sid` values ignored, by [`crate::metrics::SID_IGNORED`] reason.
    fn realize(&self, dcs: &Dcs, w: &mut Work) -> [u32; 3] {
        let (ctl, req) = (self.ctl, self.req);
        w.sids.clear();
        // A value that is not a number names no trait: counted as unknown.
        w.sids.extend(ctl.sids.iter().map(|v| parse_u64(v).unwrap_or(u64::MAX)));
        let tdpid = match (ctl.tdpid, ctl.tdpid_ic) {
            (Some(v), _) => {
                Some(std::str::from_utf8(v).ok().and_then(|v| v.parse().ok()).unwrap_or(u32::MAX))
            }
            (None, Some(ic)) => Some(self.tax.dpid_for_ic(ic).unwrap_or(u32::MAX)),
            (None, None) => None,
        };
        let host = req.head.host.map(|h| host_without_port(h.get(req.buf)));
        let engine = &self.tax.engine;
        let obfuscate = dcs.shared.config.privacy.ip_obfuscation;
        let headers = HeaderSignals::of(req, host, obfuscate, |k| engine.uses_key(k));
        let ctx = RealizeCtx { customer: self.customer, tdpid, d_sid: &w.sids };
        let signals = self.view.signals().chain(headers.iter());
        let stats = self.tax.engine.realize(&mut w.engine, signals, &ctx, &mut w.realized);
        [stats.sid_unknown, stats.sid_folder, stats.sid_foreign]
    }

    /// The `stuff` and `dests` arrays for the profile's segments.
    fn destinations(&self, dcs: &Dcs, w: &mut Work, uuid: &[u8; 38], declared: &[DeclaredId<'_>], now: u64) {
        let ids: Vec<(u32, &[u8])> = declared.iter().map(|d| (d.dpid, d.dpuuid.as_bytes())).collect();
        let request = DestRequest {
            customer: self.customer,
            segments: &w.segments,
            uuid: std::str::from_utf8(uuid).unwrap_or_default(),
            platform: self.ctl.platform,
            declared: &ids,
            gdpr: u8::from(self.ctl.gdpr),
            gdpr_consent: self.ctl.gdpr_consent.unwrap_or_default(),
            rnd: dcs.rng.borrow_mut().next_u64(),
            timestamp_s: now,
            region: dcs.shared.config.server.region,
        };
        self.tax.engine.render_destinations(&mut w.engine, &request, &mut w.stuff, &mut w.dests);
    }
}

/// Decimal digits → `u64`.
fn parse_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Writes the answer: pixel, JSON or JSONP, with the cookie, `X-Error` and CORS.
#[allow(clippy::too_many_arguments)]
fn respond(
    dcs: &Dcs,
    tax: &Catalog,
    req: &Request<'_>,
    ctl: &Control<'_>,
    answer: Option<&Answer>,
    work: &Work,
    errors: &mut Vec<DcsError>,
    out: &mut Vec<u8>,
) -> u16 {
    let digits = answer.and_then(|a| a.uuid);
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
        let json = Json { uuid: digits.as_ref(), tid: &encode_tid(dcs.tid()), cb, errors };
        render_json(&mut scratch, dcs, tax, ctl, answer, work, &json);
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
    let cookie = digits.as_ref().filter(|_| !ctl.coppa).map_or(SetCookie::Nothing, SetCookie::Profile);
    finish_head(dcs, req, cookie, errors, out);
    if req.head.method != Method::Head {
        out.extend_from_slice(&scratch);
    }
    200
}

/// The parts of a JSON answer that are not the request's evaluation.
struct Json<'a> {
    uuid: Option<&'a [u8; 38]>,
    tid: &'a [u8; 12],
    cb: Option<&'a [u8]>,
    errors: &'a [DcsError],
}

/// The JSON object of docs/http-api.md §6.3, fields in the contract's order, wrapped for JSONP. An
/// invalid request (`answer` is `None`) has only `stuff`, `dcs_region`, `tid` and `errors`.
fn render_json(
    out: &mut Vec<u8>,
    dcs: &Dcs,
    tax: &Catalog,
    ctl: &Control<'_>,
    answer: Option<&Answer>,
    work: &Work,
    j: &Json<'_>,
) {
    if let Some(cb) = j.cb {
        out.extend_from_slice(cb);
        out.push(b'(');
    }
    out.extend_from_slice(b"{\"stuff\":");
    out.extend_from_slice(or_empty_array(&work.stuff));
    if answer.is_some() && ctl.dests {
        out.extend_from_slice(b",\"dests\":");
        out.extend_from_slice(or_empty_array(&work.dests));
    }
    if let Some(uuid) = j.uuid {
        out.extend_from_slice(b",\"uuid\":\"");
        out.extend_from_slice(uuid);
        out.push(b'"');
    }
    out.extend_from_slice(b",\"dcs_region\":");
    push_u64(out, u64::from(dcs.shared.config.server.region));
    out.extend_from_slice(b",\"tid\":\"");
    out.extend_from_slice(j.tid);
    out.push(b'"');
    if answer.is_some_and(|a| a.cts) && ctl.cts != 0 {
        out.extend_from_slice(b",\"traits\":");
        push_ids(out, work.realized.iter().map(|&t| u64::from(t)));
        out.extend_from_slice(b",\"segments\":");
        if ctl.cts == 1 {
            let mut legacy = Vec::new();
            tax.engine.legacy_ids_into(&work.segments, &mut legacy);
            push_ids(out, legacy.into_iter());
        } else {
            push_ids(out, work.segments.iter().map(|&s| u64::from(s)));
        }
    }
    push_errors_field(out, j.errors);
    out.push(b'}');
    if j.cb.is_some() {
        out.push(b')');
    }
}

/// A rendered JSON array, or `[]` when none was rendered.
fn or_empty_array(v: &[u8]) -> &[u8] {
    if v.is_empty() {
        b"[]"
    } else {
        v
    }
}

/// `[1,2,3]`
fn push_ids(out: &mut Vec<u8>, ids: impl Iterator<Item = u64>) {
    out.push(b'[');
    for (i, id) in ids.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_u64(out, id);
    }
    out.push(b']');
}

fn is_form(req: &Request<'_>) -> bool {
    req.head.content_type.is_some_and(|ct| {
        let ct = ct.get(req.buf);
        let media = ct.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
        media.eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
    })
}
