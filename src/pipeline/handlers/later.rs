//! The answer of a JSON `/event` that waits for partners (docs/partner-protocol.md §4): it owns
//! everything the request had decided, waits for the calls or the budget, whichever comes
//! first, then finishes synchronously — partner traits, the one profile update, segments,
//! destinations, the answer.
//!
//! While it waits it holds no borrow of the core's state; it borrows the core's scratch again
//! only inside the synchronous finish, as any other request does.

use std::rc::Rc;
use std::time::Instant;

use crate::http::conn::{Completed, Deferred};
use crate::http::response::ConnHeader;
use crate::identity::declared::{AuthState, DeclaredId};
use crate::partner::{Answer as PartnerAnswer, Outcome};
use crate::table::day_of;

use super::super::logging::{Logged, RequestPart};
use super::super::partners::{expires_s, partner_traits, set_customer_segments, ttl_of, Fanout};
use super::super::{CatalogRef, Dcs, Route};
use super::identity::{now_s, record, ProfileId};
use super::render::{DcsError, ReplyTo};
use super::reply::{event_mode, render_destinations, respond, Answer, DestCtx, Opts};
use crate::eventlog::record::Kind;

/// A JSON request's state while its partners are called: what its finish needs, owned.
pub struct Waiting {
    /// The calls.
    pub fanout: Rc<Fanout>,
    /// When waiting ends at the latest.
    pub deadline: Instant,
    /// The profile.
    pub id: ProfileId,
    /// The host's customer.
    pub customer: u32,
    /// The request's kept declared IDs.
    pub declared: Vec<(u32, String, AuthState)>,
    /// The request's ECID.
    pub ecid: Option<u128>,
    /// Traits the request's own signals realized.
    pub realized: Vec<u32>,
    /// `d_sid` values ignored, by reason.
    pub ignored: [u32; 3],
    /// Partners not called, with why; the finish adds the called ones' outcomes.
    pub outcomes: Vec<(u32, Outcome)>,
    /// Partners called.
    pub called: Vec<u32>,
    /// The transaction ID (the partners saw it as `${TID}`).
    pub tid: u64,
    /// `d_ptfm`
    pub platform: Option<Vec<u8>>,
    /// `gdpr=1`
    pub gdpr: bool,
    /// `gdpr_consent`
    pub gdpr_consent: Option<Vec<u8>>,
    /// The request part of its event-log record, rendered while the request was there.
    pub logged: Option<Vec<u8>>,
}

/// A waiting answer.
pub struct Later {
    dcs: Dcs,
    /// The catalog the request started with (a reload meanwhile does not change its answer).
    tax: CatalogRef,
    w: Waiting,
    cts: bool,
    // What the answer's head and body need of the request.
    now: Instant,
    conn: ConnHeader,
    head_only: bool,
    origin: Option<Vec<u8>>,
    host: Vec<u8>,
    callback: Option<Vec<u8>>,
    dests: bool,
    cts_level: u8,
    coppa: bool,
    errors: Vec<DcsError>,
}

// === impl Later ===

impl Later {
    /// Takes what the answer needs from the request before its bytes go.
    pub fn new(
        dcs: Dcs,
        tax: CatalogRef,
        w: Waiting,
        cts: bool,
        reply: &ReplyTo<'_>,
        opts: &Opts<'_>,
        errors: Vec<DcsError>,
    ) -> Later {
        Later {
            dcs,
            tax,
            w,
            cts,
            now: reply.now,
            conn: reply.conn,
            head_only: reply.head_only,
            origin: reply.origin.map(<[u8]>::to_vec),
            host: reply.host.to_vec(),
            callback: opts.callback.map(<[u8]>::to_vec),
            dests: opts.dests,
            cts_level: opts.cts,
            coppa: opts.coppa,
            errors,
        }
    }

    /// Waits, then answers.
    pub async fn finish(mut self) -> Deferred {
        let results = self.w.fanout.wait(self.w.deadline).await;
        // Synchronous from here on: the core's scratch may be borrowed.
        let dcs = self.dcs.handle();
        dcs.note_facts(|f| f.clear()); // another request's may be there
        let tax = self.tax.clone();
        let mut work = dcs.work.borrow_mut();
        work.clear();
        let w = &mut self.w;
        work.realized.append(&mut w.realized);
        let mut answers: Vec<(u32, PartnerAnswer)> = Vec::new();
        let mut partner_realized = std::mem::take(&mut work.partner_realized);
        for (dpid, r) in results {
            w.outcomes.push((dpid, r.outcome));
            if let Some(a) = r.answer {
                partner_traits(&tax.engine, &mut work.engine, w.customer, dpid, &a, &mut partner_realized);
                answers.push((dpid, a));
            }
        }
        for &dpid in &w.called {
            if !w.outcomes.iter().any(|(d, _)| *d == dpid) {
                w.outcomes.push((dpid, Outcome::Timeout)); // missed the budget; may still land
            }
        }
        work.realized.extend_from_slice(&partner_realized);
        partner_realized.clear();
        work.partner_realized = partner_realized;
        work.realized.sort_unstable();
        work.realized.dedup();
        let now = now_s();
        let declared: Vec<DeclaredId<'_>> = w
            .declared
            .iter()
            .map(|(dpid, id, auth)| DeclaredId { dpid: *dpid, dpuuid: id, auth: *auth })
            .collect();
        let (engine, today, customer) = (&tax.engine, day_of(now), w.customer);
        let expiries: Vec<u32> =
            answers.iter().map(|(dpid, a)| expires_s(ttl_of(&tax, customer, *dpid), a, now)).collect();
        let crate::pipeline::Work { realized, segments, merged, .. } = &mut *work;
        let recorded = record(&dcs, &w.id, customer, &declared, w.ecid, now, |p| {
            for &t in realized.iter() {
                p.realize(t, now);
            }
            for ((dpid, _), &expires) in answers.iter().zip(&expiries) {
                p.set_partner_result(*dpid, expires, Vec::new());
            }
            engine.segments(p, today, customer, segments);
            set_customer_segments(engine, p, customer, segments, merged);
        });
        let metrics = dcs.shared.metrics.core(dcs.index);
        let uuid = match recorded {
            Ok(()) => {
                metrics.realized(work.realized.len(), w.ignored);
                let ctx = DestCtx {
                    customer,
                    platform: w.platform.as_deref(),
                    gdpr: w.gdpr,
                    gdpr_consent: w.gdpr_consent.as_deref(),
                    now_s: now,
                };
                render_destinations(&dcs, &tax, &mut work, &ctx, &w.id.digits, &declared);
                Some(w.id.digits)
            }
            Err(e) => {
                self.errors.push(e);
                work.realized.clear();
                work.segments.clear();
                metrics.realized(0, w.ignored);
                None
            }
        };
        work.partner_outcomes = std::mem::take(&mut w.outcomes);
        let reply = ReplyTo {
            now: self.now,
            conn: self.conn,
            head_only: self.head_only,
            origin: self.origin.as_deref(),
            host: &self.host,
        };
        let opts = Opts {
            json: true,
            callback: self.callback.as_deref(),
            dests: self.dests,
            cts: self.cts_level,
            coppa: self.coppa,
        };
        let answer = Answer { uuid, cts: self.cts };
        let mut bytes = Vec::with_capacity(1024);
        let status =
            respond(&dcs, &tax, &reply, &opts, Some(&answer), &work, w.tid, &mut self.errors, &mut bytes);
        if let Some(part) = &w.logged {
            let logged = Logged {
                kind: Kind::Event,
                tid: w.tid,
                customer: Some(customer),
                uuid: uuid.as_ref(),
                traits: &work.realized,
                segments: &work.segments,
                partners: &work.partner_outcomes,
                called: &[],
                mode: event_mode(&opts),
            };
            dcs.log_request(RequestPart::Rendered(part), &logged, &self.errors);
        }
        let close = self.conn == ConnHeader::Close;
        Deferred { bytes, done: Completed { route: Route::Event as u8, status, close } }
    }
}
