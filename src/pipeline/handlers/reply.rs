//! The `/event` answer (docs/http-api.md §6.2–§6.4): the pixel, or the JSON object (JSONP when
//! asked) with its destinations, written with the `demdex` cookie, `X-Error` and CORS. Used by
//! the synchronous path and by an answer that waited for partners alike.

use rand::RngCore;

use crate::catalog::Catalog;
use crate::engine::DestRequest;
use crate::http::response::push_u64;
use crate::identity::declared::DeclaredId;
use crate::identity::encode_tid;

use super::super::params::{valid_callback, Control};
use super::super::{Dcs, Work};
use super::render::{
    finish_head, push_errors_field, DcsError, ReplyTo, SetCookie, INVALID_PARAMETERS, PIXEL_GIF,
};

/// What a valid request's answer carries besides the errors.
#[derive(Clone, Copy, Debug)]
pub struct Answer {
    /// The profile ID, unless refused (opted out, denylisted, no consent).
    pub uuid: Option<[u8; 38]>,
    /// The host's customer has `cts` (the `traits` and `segments` fields).
    pub cts: bool,
}

/// The answer's options, from the control parameters.
#[derive(Clone, Copy, Debug)]
pub struct Opts<'a> {
    /// `d_rtbd=json`
    pub json: bool,
    /// `d_cb` (validated when the answer is written)
    pub callback: Option<&'a [u8]>,
    /// `d_dst=1`
    pub dests: bool,
    /// `d_cts`
    pub cts: u8,
    /// `d_coppa=1`: no cookie
    pub coppa: bool,
}

/// What destinations are rendered for, besides the segments and the profile ID.
#[derive(Clone, Copy, Debug)]
pub struct DestCtx<'a> {
    /// The host's customer.
    pub customer: u32,
    /// `d_ptfm`
    pub platform: Option<&'a [u8]>,
    /// `gdpr=1`
    pub gdpr: bool,
    /// `gdpr_consent`
    pub gdpr_consent: Option<&'a [u8]>,
    /// Now, UTC seconds (`%timestamp%`).
    pub now_s: u64,
}

/// The event-log record's `mode` of an `/event` answer with these options.
pub fn event_mode(opts: &Opts<'_>) -> &'static str {
    match opts.callback {
        _ if !opts.json => "pixel",
        Some(cb) if valid_callback(cb) => "jsonp",
        _ => "json",
    }
}

// === impl Opts ===

impl<'a> Opts<'a> {
    /// The options `ctl` asks for.
    pub fn of(ctl: &Control<'a>) -> Opts<'a> {
        Opts { json: ctl.json, callback: ctl.callback, dests: ctl.dests, cts: ctl.cts, coppa: ctl.coppa }
    }
}

/// Renders the `stuff` and `dests` arrays for the profile's segments (`w.segments`) into `w`.
pub fn render_destinations(
    dcs: &Dcs,
    tax: &Catalog,
    w: &mut Work,
    ctx: &DestCtx<'_>,
    uuid: &[u8; 38],
    declared: &[DeclaredId<'_>],
) {
    let ids: Vec<(u32, &[u8])> = declared.iter().map(|d| (d.dpid, d.dpuuid.as_bytes())).collect();
    let request = DestRequest {
        customer: ctx.customer,
        segments: &w.segments,
        uuid: std::str::from_utf8(uuid).unwrap_or_default(),
        platform: ctx.platform,
        declared: &ids,
        gdpr: u8::from(ctx.gdpr),
        gdpr_consent: ctx.gdpr_consent.unwrap_or_default(),
        rnd: dcs.rng.borrow_mut().next_u64(),
        timestamp_s: ctx.now_s,
        region: dcs.shared.config.server.region,
    };
    tax.engine.render_destinations(&mut w.engine, &request, &mut w.stuff, &mut w.dests);
}

/// Writes the answer: pixel, JSON or JSONP, with the cookie, `X-Error` and CORS. `tid` is the
/// request's transaction ID.
#[allow(clippy::too_many_arguments)]
pub fn respond(
    dcs: &Dcs,
    tax: &Catalog,
    reply: &ReplyTo<'_>,
    opts: &Opts<'_>,
    answer: Option<&Answer>,
    work: &Work,
    tid: u64,
    errors: &mut Vec<DcsError>,
    out: &mut Vec<u8>,
) -> u16 {
    let digits = answer.and_then(|a| a.uuid);
    let mut scratch = dcs.scratch.borrow_mut();
    scratch.clear();
    // Content-Type line and the start of Content-Length, as one copy.
    let type_and_length: &[u8] = if opts.json {
        let cb = opts.callback.filter(|cb| {
            let ok = valid_callback(cb);
            if !ok {
                errors.push(DcsError { code: 311, msg: INVALID_PARAMETERS.into() });
            }
            ok
        });
        let json = Json { uuid: digits.as_ref(), tid: &encode_tid(tid), cb, errors };
        render_json(&mut scratch, dcs, tax, opts, answer, work, &json);
        if cb.is_some() {
            b"Content-Type: application/javascript\r\nContent-Length: "
        } else {
            b"Content-Type: application/json\r\nContent-Length: "
        }
    } else {
        scratch.extend_from_slice(&PIXEL_GIF);
        b"Content-Type: image/gif\r\nContent-Length: "
    };

    dcs.start_response(out, 200, reply.now);
    out.extend_from_slice(type_and_length);
    push_u64(out, scratch.len() as u64);
    out.extend_from_slice(b"\r\n");
    let cookie = digits.as_ref().filter(|_| !opts.coppa).map_or(SetCookie::Nothing, SetCookie::Profile);
    finish_head(dcs, reply, cookie, errors, out);
    if !reply.head_only {
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

/// The JSON object of docs/http-api.md §6.3, fields in the contract's order, wrapped for JSONP.
/// An invalid request (`answer` is `None`) has only `stuff`, `dcs_region`, `tid` and `errors`.
fn render_json(
    out: &mut Vec<u8>,
    dcs: &Dcs,
    tax: &Catalog,
    opts: &Opts<'_>,
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
    if answer.is_some() && opts.dests {
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
    if answer.is_some_and(|a| a.cts) && opts.cts != 0 {
        out.extend_from_slice(b",\"traits\":");
        push_ids(out, work.realized.iter().map(|&t| u64::from(t)));
        out.extend_from_slice(b",\"segments\":");
        if opts.cts == 1 {
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
