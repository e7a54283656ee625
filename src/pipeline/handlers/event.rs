//! `/event`: the pixel, JSON and JSONP answers (docs/http-api.md §5, §6, §7, §9, §10, §11).
//!
//! Steps, in order (§6.1): decode the pairs (311 on a bad escape) → host and org (1, 100, 2) →
//! declared IDs (3xx, denylisted ones 303/306) → the profile ID (`d_uuid` or 102, the `demdex`
//! cookie, the UUID most recently mapped to a declared ID, else a new one) → the ECID (101) → a
//! globally opted-out browser (171), a denylisted ECID (307), consent (315) → traits from the
//! request's own signals → partners (docs/partner-protocol.md) → one atomic update of the
//! profile that checks the per-customer opt-out (171) and the profile ID's denylist (307)
//! before it records the declared IDs, the ECID, the traits and the segments → destinations →
//! the answer with the `demdex` cookie and the errors in the order they arose. An invalid,
//! opted-out or denylisted request gets no profile ID and no cookie, and stores nothing.
//!
//! Three phases where a partner is called (docs/architecture.md §5):
//! * prepare (synchronous, this module): everything up to "which partners", with the core's
//!   scratch borrowed;
//! * wait: a JSON request whose customer has real-time partners to call returns
//!   [`Reply::Later`], a future that owns its state ([`super::later`]) and holds no per-core
//!   borrow while it waits — at most `partners.budget_ms` from the request's arrival;
//! * finish (synchronous again): the partners' answers realize partner traits, then the one
//!   profile update, segments, destinations and the answer.
//!
//! A pixel request never waits: its update happens at once, its calls run on and their results
//! land in the profile later. Requests without partners to call never leave the synchronous,
//! allocation-free path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::engine::RealizeCtx;
use crate::eventlog::record::Kind;
use crate::http::conn::{Deferred, Request};
use crate::http::host_without_port;
use crate::http::Method;
use crate::identity::declared::DeclaredId;
use crate::identity::encode_tid;
use crate::partner::{CallMethod, CallValues, Outcome, PartnerSpec};
use crate::table::{day_of, IdRef, Profile};

use super::super::logging::{Logged, RequestPart};
use super::super::params::{Control, KeyClass, View};
use super::super::partners::{decide, set_customer_segments, Fanout, Owner, Planned};
use super::super::signals::HeaderSignals;
use super::super::{Dcs, Route, Work};
use super::identity::{
    check_host_and_org, consent_ok, cookie_id, declared_ids, ecid, now_s, opt_out_for_consent, opted_out,
    record, resolve_uuid, CookieId, ProfileId,
};
use super::later::{Later, Waiting};
use super::render::{preflight, DcsError, ReplyTo, INVALID_PARAMETERS};
use super::reply::{event_mode, render_destinations, respond, Answer, DestCtx, Opts};

/// How `/event` answers.
pub enum Reply {
    /// The answer is written; its status.
    Now(u16),
    /// A JSON request waits for partners; this future makes its answer.
    Later(Pin<Box<dyn Future<Output = Deferred>>>),
}

/// What evaluation decided.
enum Step {
    /// Answer now with this profile ID (`None`: refused — 171, 307, 315).
    Answer(Option<[u8; 38]>),
    /// Wait for partners first.
    Wait(Box<Waiting>),
}

/// The time the answer keeps for itself between the end of the partner wait and the budget,
/// so that the answer leaves within the budget (docs/architecture.md §5).
const FINISH_MARGIN: Duration = Duration::from_millis(1);

/// Answers `/event` (GET, HEAD, POST; OPTIONS is the CORS preflight).
pub fn event(dcs: &Dcs, req: &Request<'_>, out: &mut Vec<u8>) -> Reply {
    if req.head.method == Method::Options {
        return Reply::Now(preflight(dcs, req, Route::Event, out));
    }
    let tax = dcs.catalog();
    let buf = req.buf;
    let query = req.head.query.map_or(&b""[..], |q| q.get(buf));
    let form = if req.head.method == Method::Post && is_form(req) { req.body } else { &b""[..] };
    let mut pairs = dcs.pairs.borrow_mut();
    let mut work = dcs.work.borrow_mut();
    work.clear();
    let tid = dcs.tid();
    let mut errors: Vec<DcsError> = Vec::new();
    let (ctl, view) = match pairs.decode(query, form) {
        Ok(view) => (Control::from_view(&view), Some(view)),
        Err(_) => {
            errors.push(DcsError { code: 311, msg: INVALID_PARAMETERS.into() });
            (Control::scan_raw(query, form), None)
        }
    };
    let mut waiting = None;
    let mut customer_id = None;
    // An invalid request (311, 1, 100, 2) gets no profile ID and no cookie (docs/http-api.md §6.5).
    let answer = view.and_then(|view| {
        let customer = check_host_and_org(&tax, req, &ctl, &mut errors)?;
        customer_id = Some(customer.id);
        let uuid_allowed = tax.uuid_token_ok(customer, req.head.dcs_token.map(|t| t.get(buf)));
        let request = Valid { tax: &tax, req, view, ctl: &ctl, customer: customer.id, tid, uuid_allowed };
        let uuid = match request.evaluate(dcs, &mut work, &mut errors) {
            Step::Answer(uuid) => uuid,
            Step::Wait(w) => {
                waiting = Some(w);
                None
            }
        };
        Some(Answer { uuid, cts: customer.cts })
    });
    let reply = ReplyTo::of(req);
    let opts = Opts::of(&ctl);
    if let Some(w) = waiting {
        let cts = answer.is_some_and(|a| a.cts);
        let later = Later::new(dcs.handle(), tax, *w, cts, &reply, &opts, errors);
        return Reply::Later(Box::pin(later.finish()));
    }
    let status = respond(dcs, &tax, &reply, &opts, answer.as_ref(), &work, tid, &mut errors, out);
    if dcs.logging() {
        let part = match &view {
            Some(v) => RequestPart::Valid(req, v),
            None => RequestPart::Invalid(req),
        };
        let logged = Logged {
            kind: Kind::Event,
            tid,
            customer: customer_id,
            uuid: answer.as_ref().and_then(|a| a.uuid.as_ref()),
            traits: &work.realized,
            segments: &work.segments,
            partners: &work.partner_outcomes,
            called: &work.called,
            mode: event_mode(&opts),
        };
        dcs.log_request(part, &logged, &errors);
    }
    Reply::Now(status)
}

/// A valid request and what it is evaluated against.
struct Valid<'r, 'a> {
    tax: &'r Catalog,
    req: &'r Request<'a>,
    view: View<'r>,
    ctl: &'r Control<'r>,
    customer: u32,
    tid: u64,
    /// `d_uuid` may name the profile (the customer's `uuid_token`, docs/http-api.md §5.1).
    uuid_allowed: bool,
}

impl Valid<'_, '_> {
    /// Identity, opt-out, consent, traits, partners, the profile update, segments and (JSON
    /// mode) destinations. A JSON request with partners to call stops before the update and
    /// waits ([`Step::Wait`]); a pixel request starts its calls after the update and answers.
    fn evaluate(&self, dcs: &Dcs, w: &mut Work, errors: &mut Vec<DcsError>) -> Step {
        let (ctl, customer) = (self.ctl, self.customer);
        let (now, table) = (now_s(), &dcs.shared.table);
        let cookie = cookie_id(self.req, ctl.coppa);
        let declared = declared_ids(dcs, self.tax, ctl, customer, now, errors);
        let id = resolve_uuid(dcs, ctl, self.uuid_allowed, cookie, &declared, errors);
        let ecid = ecid(ctl, errors);
        if cookie == CookieId::OptedOut {
            errors.push(opted_out(b"NOTARGET"));
            return Step::Answer(None);
        }
        if let Some(e) = ecid.filter(|&e| table.note_id(IdRef::Ecid(e), now)) {
            let digits = crate::identity::Uuid(e).to_digits();
            let msg = format!("Blocked profile operation for {}", String::from_utf8_lossy(&digits));
            errors.push(DcsError { code: 307, msg });
            return Step::Answer(None);
        }
        if !consent_ok(dcs, ctl, errors) {
            opt_out_for_consent(dcs, &id, customer, &declared, now);
            return Step::Answer(None);
        }
        let ignored = self.realize(dcs, w);
        let partners = self.tax.partners_for(customer);
        if ctl.json && !partners.is_empty() {
            if let Some(waiting) = self.plan_json(dcs, w, &id, &declared, ecid, ignored, now) {
                return Step::Wait(waiting);
            }
        }
        let metrics = dcs.shared.metrics.core(dcs.index);
        let calls_nobody = || partners.iter().all(|spec| decide(spec, None, &declared, now).is_err());
        if id.fresh && w.realized.is_empty() && declared.is_empty() && ecid.is_none() && calls_nobody() {
            // A new ID with nothing to record and no partner to ask: no profile is created (it
            // would hold nothing); the browser's next request, with the cookie, starts one.
            metrics.realized(0, ignored);
            return Step::Answer(Some(id.digits)); // no segments, so no destinations either
        }
        let pixel_partners = if ctl.json { &[][..] } else { partners };
        let mut decisions = Vec::new();
        let (engine, today) = (&self.tax.engine, day_of(now));
        let Work { realized, segments, merged, .. } = w;
        let recorded = record(dcs, &id, customer, &declared, ecid, now, |p| {
            for &t in realized.iter() {
                p.realize(t, now);
            }
            engine.segments(p, today, customer, segments);
            set_customer_segments(engine, p, customer, segments, merged);
            // Pixel mode decides its partner calls on the profile as updated (a declared ID
            // just synced serves `${DPUUID}`).
            decisions.clear();
            decisions.extend(pixel_partners.iter().map(|spec| decide(spec, Some(p), &declared, now)));
        });
        if let Err(e) = recorded {
            errors.push(e);
            w.realized.clear();
            w.segments.clear();
            metrics.realized(0, ignored);
            return Step::Answer(None);
        }
        metrics.realized(w.realized.len(), ignored);
        if !decisions.is_empty() {
            // Pixel mode answers at once; its calls run on and land in the profile.
            let calls = self.lease(dcs, w, pixel_partners, decisions, &id);
            if !calls.is_empty() {
                w.called.extend(calls.iter().map(|c| c.dpid));
                let owner = Owner { uuid: id.uuid, customer, tid: self.tid, ip: self.req.peer.ip() };
                Fanout::start(dcs, owner, calls, false);
            }
        }
        if ctl.json {
            let ctx = DestCtx {
                customer,
                platform: ctl.platform,
                gdpr: ctl.gdpr,
                gdpr_consent: ctl.gdpr_consent,
                now_s: now,
            };
            render_destinations(dcs, self.tax, w, &ctx, &id.digits, &declared);
        }
        Step::Answer(Some(id.digits))
    }

    /// JSON mode with partners: decides every partner on the profile as it is, starts the
    /// calls and returns the request's waiting state — or `None` when no partner is called
    /// (all skipped, or a profile the update will refuse), so the request carries on
    /// synchronously.
    #[allow(clippy::too_many_arguments)]
    fn plan_json(
        &self,
        dcs: &Dcs,
        w: &mut Work,
        id: &ProfileId,
        declared: &[DeclaredId<'_>],
        ecid: Option<u128>,
        ignored: [u32; 3],
        now: u64,
    ) -> Option<Box<Waiting>> {
        let customer = self.customer;
        let profile: Option<Profile> = if id.fresh { None } else { dcs.shared.table.get(id.uuid, now) };
        if profile.as_ref().is_some_and(|p| p.is_opted_out(customer) || p.denylist.is_blocked(now)) {
            return None; // the update refuses it (171 / 307); no partner is called
        }
        let specs = self.tax.partners_for(customer);
        let decisions = specs.iter().map(|spec| decide(spec, profile.as_ref(), declared, now)).collect();
        let calls = self.lease(dcs, w, specs, decisions, id);
        if calls.is_empty() {
            return None;
        }
        let called = calls.iter().map(|c| c.dpid).collect();
        let budget = Duration::from_millis(u64::from(dcs.shared.config.partners.budget_ms));
        let deadline = self.req.now + budget.saturating_sub(FINISH_MARGIN);
        let owner = Owner { uuid: id.uuid, customer, tid: self.tid, ip: self.req.peer.ip() };
        let fanout = Fanout::start(dcs, owner, calls, true);
        Some(Box::new(Waiting {
            fanout,
            deadline,
            id: *id,
            customer,
            declared: declared.iter().map(|d| (d.dpid, d.dpuuid.to_owned(), d.auth)).collect(),
            ecid,
            realized: std::mem::take(&mut w.realized),
            ignored,
            outcomes: std::mem::take(&mut w.partner_outcomes),
            called,
            tid: self.tid,
            platform: self.ctl.platform.map(<[u8]>::to_vec),
            gdpr: self.ctl.gdpr,
            gdpr_consent: self.ctl.gdpr_consent.map(<[u8]>::to_vec),
            logged: dcs.logging().then(|| dcs.render_request_part(self.req, &self.view)),
        }))
    }

    /// Turns decisions into leased calls with their request bytes; partners skipped (by the
    /// decision or by their pool) are counted and listed in `w.partner_outcomes`.
    fn lease(
        &self,
        dcs: &Dcs,
        w: &mut Work,
        specs: &[Arc<PartnerSpec>],
        decisions: Vec<Result<Option<String>, Outcome>>,
        id: &ProfileId,
    ) -> Vec<Planned> {
        let pools = dcs.partner_pools(self.tax);
        let now = Instant::now();
        let tid = encode_tid(self.tid);
        let mut signals: Option<Vec<u8>> = None;
        let mut calls = Vec::new();
        for (spec, decision) in specs.iter().zip(decisions) {
            let Some(pool) = pools.pool(spec.dpid) else { continue };
            let leased = decision.and_then(|dpuuid| pool.try_lease(now).map(|lease| (lease, dpuuid)));
            let (lease, dpuuid) = match leased {
                Ok(l) => l,
                Err(skip) => {
                    pool.counters.outcome(skip as usize);
                    w.partner_outcomes.push((spec.dpid, skip));
                    continue;
                }
            };
            let values = CallValues {
                uuid: &id.digits,
                dpuuid: dpuuid.as_deref(),
                tid: &tid,
                gdpr: u8::from(self.ctl.gdpr),
                gdpr_consent: self.ctl.gdpr_consent.unwrap_or_default(),
            };
            let body: &[u8] = match spec.method {
                CallMethod::Get => b"",
                CallMethod::Post => signals.get_or_insert_with(|| partner_signals(&self.view)),
            };
            let mut request = Vec::with_capacity(256 + body.len());
            spec.render_into(&values, body, &mut request);
            calls.push(Planned { dpid: spec.dpid, lease, request });
        }
        if !calls.is_empty() {
            dcs.sweep_partner_pools();
        }
        calls
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
        let ctx = RealizeCtx { customer: self.customer, tdpid, d_sid: &w.sids, partner: false };
        let signals = self.view.signals().chain(headers.iter());
        let stats = self.tax.engine.realize(&mut w.engine, signals, &ctx, &mut w.realized);
        [stats.sid_unknown, stats.sid_folder, stats.sid_foreign]
    }
}

/// The `signals` object of a `POST` partner call (docs/partner-protocol.md §2): the request's
/// `c_` and unprefixed signals, each key once with all its values — never `p_`, `h_` or `d_`
/// keys, never control parameters.
fn partner_signals(view: &View<'_>) -> Vec<u8> {
    let mut keys: Vec<(&[u8], Vec<&[u8]>)> = Vec::new();
    for p in view.pairs().filter(|p| matches!(p.class, KeyClass::Customer | KeyClass::Unprefixed)) {
        let key = view.text(p.key);
        let i = match keys.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                keys.push((key, Vec::new()));
                keys.len() - 1
            }
        };
        keys[i].1.extend(view.values(p));
    }
    let mut out = Vec::with_capacity(64);
    out.push(b'{');
    for (i, (k, vs)) in keys.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_str(&mut out, k);
        out.extend_from_slice(b":[");
        for (j, v) in vs.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            push_json_str(&mut out, v);
        }
        out.push(b']');
    }
    out.push(b'}');
    out
}

/// A JSON string of decoded (valid UTF-8) request text.
fn push_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    crate::json::escape_into(s, out);
    out.push(b'"');
}

/// Decimal digits → `u64`.
fn parse_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn is_form(req: &Request<'_>) -> bool {
    req.head.content_type.is_some_and(|ct| {
        let ct = ct.get(req.buf);
        let media = ct.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
        media.eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
    })
}
