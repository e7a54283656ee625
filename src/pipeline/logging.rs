//! What the DCS writes to the event log (docs/eventlog.md §3): one record per `/event`,
//! `/ibs:` and opt-out answered, one per partner answer that lands after its request's
//! answer. The handlers call [`Dcs::log_request`] once their answer is written; what the
//! profile update did (the profile, its ECID and declared IDs, an opt-out) is noted by
//! `handlers::identity` as it happens ([`Facts`]), reset at each request. Nothing here runs
//! when the log is off.

use std::net::IpAddr;

use crate::eventlog::record::{self, Kind, OptOut, Outcome, Profile};
use crate::http::conn::Request;
use crate::http::host_without_port;
use crate::identity::encode_tid;
use crate::log::unix_ms;

use super::handlers::render::DcsError;
use super::params::View;
use super::partners::{Landed, Owner};
use super::signals::{obfuscate, HeaderSignals};
use super::Dcs;

/// What the request's profile update did, for its record.
#[derive(Debug, Default)]
pub struct Facts {
    /// The profile updated (or opted out).
    pub uuid: Option<[u8; 38]>,
    /// The ECID recorded.
    pub ecid: Option<u128>,
    /// The declared IDs recorded, as the inside of a JSON array.
    pub declared: Vec<u8>,
    /// An opt-out made.
    pub opt_out: Option<OptOut>,
}

/// The request part of a record.
pub enum RequestPart<'r, 'a> {
    /// A valid request's host, address and signals.
    Valid(&'r Request<'a>, &'r View<'r>),
    /// An invalid request: host and address only.
    Invalid(&'r Request<'a>),
    /// Rendered earlier (an answer that waited for partners).
    Rendered(&'r [u8]),
}

/// A record's outcome part, as the handlers know it.
pub struct Logged<'a> {
    /// `event`, `ibs` or `optout`.
    pub kind: Kind,
    /// The transaction ID (the answer's, for `/event`).
    pub tid: u64,
    /// The host's customer.
    pub customer: Option<u32>,
    /// The answer's profile ID.
    pub uuid: Option<&'a [u8; 38]>,
    /// Traits realized.
    pub traits: &'a [u32],
    /// The customer's segments.
    pub segments: &'a [u32],
    /// Each partner's outcome.
    pub partners: &'a [(u32, crate::partner::Outcome)],
    /// Partners a pixel request called (their outcome comes in a `partner` record).
    pub called: &'a [u32],
    /// `pixel`, `json`, `jsonp`, `redirect`.
    pub mode: &'a str,
}

// === impl Facts ===

impl Facts {
    /// Forgets the previous request, keeping capacity.
    pub fn clear(&mut self) {
        self.uuid = None;
        self.ecid = None;
        self.declared.clear();
        self.opt_out = None;
    }
}

impl Dcs {
    /// The event log is on for this core.
    pub fn logging(&self) -> bool {
        self.log.is_some()
    }

    /// Notes what a profile update did, for the request's record.
    pub fn note_facts(&self, f: impl FnOnce(&mut Facts)) {
        if self.log.is_some() {
            f(&mut self.facts.borrow_mut());
        }
    }

    /// The client address as the log shows it (obfuscated when configured).
    fn logged_ip(&self, ip: IpAddr) -> IpAddr {
        if self.shared.config.privacy.ip_obfuscation {
            obfuscate(ip)
        } else {
            ip
        }
    }

    /// Renders the request part of a record now, for a record written later.
    pub fn render_request_part(&self, req: &Request<'_>, view: &View<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.push_request_part(&mut out, &RequestPart::Valid(req, view));
        out
    }

    fn push_request_part(&self, out: &mut Vec<u8>, part: &RequestPart<'_, '_>) {
        let region = self.shared.config.server.region;
        match *part {
            RequestPart::Valid(req, view) => {
                let host = host_of(req);
                let obfuscated = self.shared.config.privacy.ip_obfuscation;
                let headers = HeaderSignals::of(req, Some(host), obfuscated, |_| true);
                let ip = self.logged_ip(req.peer.ip());
                record::request(out, host, ip, region, || view.signals().chain(headers.iter()));
            }
            RequestPart::Invalid(req) => {
                record::no_request(out, host_of(req), self.logged_ip(req.peer.ip()), region);
            }
            RequestPart::Rendered(bytes) => out.extend_from_slice(bytes),
        }
    }

    /// Appends the record of a request answered.
    pub fn log_request(&self, part: RequestPart<'_, '_>, l: &Logged<'_>, errors: &[DcsError]) {
        let Some(lane) = &self.log else { return };
        let facts = self.facts.borrow();
        let uuid = l.uuid.or(facts.uuid.as_ref());
        lane.append(|out| {
            record::open(out, unix_ms(), &encode_tid(l.tid), l.kind);
            self.push_request_part(out, &part);
            let profile = Profile {
                customer: l.customer,
                uuid,
                ecid: facts.ecid,
                declared: &facts.declared,
                opt_out: facts.opt_out,
            };
            let outcome = Outcome { traits: l.traits, segments: l.segments, expires_s: None, mode: l.mode };
            let partners = l.partners.iter().map(|(d, o)| (*d, o.label()));
            let called = l.called.iter().map(|&d| (d, "called"));
            let errors = errors.iter().map(|e| (e.code, e.msg.as_str()));
            record::close(out, &profile, &outcome, partners.chain(called), errors);
        });
    }

    /// Appends the record of an `/ibs:` or opt-out request (no traits, segments or partners;
    /// the profile and an opt-out come from what the update noted). Takes a transaction ID
    /// only when the log is on.
    pub fn log_identity(
        &self,
        part: RequestPart<'_, '_>,
        kind: Kind,
        customer: Option<u32>,
        uuid: Option<&[u8; 38]>,
        mode: &str,
        errors: &[DcsError],
    ) {
        if self.log.is_none() {
            return;
        }
        let logged = Logged {
            kind,
            tid: self.tid(),
            customer,
            uuid,
            traits: &[],
            segments: &[],
            partners: &[],
            called: &[],
            mode,
        };
        self.log_request(part, &logged, errors);
    }

    /// Appends the record of a partner's result that came after its request's answer (`json`:
    /// a JSON request's late answer; else a pixel request's call), with what it stored in the
    /// profile (`None`: nothing, a failure or a profile that opted out meanwhile).
    pub fn log_partner(
        &self,
        owner: &Owner,
        json: bool,
        dpid: u32,
        outcome: crate::partner::Outcome,
        landed: Option<Landed<'_>>,
    ) {
        let Some(lane) = &self.log else { return };
        let uuid = owner.uuid.to_digits();
        lane.append(|out| {
            record::open(out, unix_ms(), &encode_tid(owner.tid), Kind::Partner);
            record::no_request(out, b"", self.logged_ip(owner.ip), self.shared.config.server.region);
            let profile = Profile { customer: Some(owner.customer), uuid: Some(&uuid), ..Profile::default() };
            let mode = if json { "json" } else { "pixel" };
            let o = match landed {
                Some(l) => {
                    Outcome { traits: l.traits, segments: l.segments, expires_s: Some(l.expires_s), mode }
                }
                None => Outcome { mode, ..Outcome::default() },
            };
            record::close(out, &profile, &o, std::iter::once((dpid, outcome.label())), std::iter::empty());
        });
    }
}

fn host_of<'a>(req: &Request<'a>) -> &'a [u8] {
    req.head.host.map_or(&b""[..], |h| host_without_port(h.get(req.buf)))
}
