//! The identity steps the DCS routes share (docs/http-api.md §5, §9, §10): the host's customer, the
//! declared IDs (validated, then denylisted), the `demdex` cookie, the profile ID, the ECID and
//! consent.

use crate::catalog::{Catalog, Customer};
use crate::config::taxonomy::global_device;
use crate::http::conn::Request;
use crate::http::host_without_port;
use crate::identity::declared::DeclaredId;
use crate::identity::{cookie_value, Uuid};
use crate::privacy::tcf::TcString;
use crate::table::{IdRef, Profile};

use super::super::params::Control;
use super::super::Dcs;
use super::render::DcsError;

/// What the `demdex` cookie says about the browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieId {
    /// No cookie, an unreadable one, or `d_coppa=1`.
    Absent,
    /// A valid profile ID.
    Profile(Uuid, [u8; 38]),
    /// `NOTARGET`: the browser opted out globally (docs/http-api.md §9).
    OptedOut,
}

/// The cookie's profile ID or opt-out; `d_coppa=1` does not read it (docs/http-api.md §4).
pub fn cookie_id(req: &Request<'_>, coppa: bool) -> CookieId {
    let Some(value) =
        req.head.cookie.filter(|_| !coppa).and_then(|c| cookie_value(c.get(req.buf), b"demdex"))
    else {
        return CookieId::Absent;
    };
    if value == b"NOTARGET" {
        return CookieId::OptedOut;
    }
    match (Uuid::parse(value), <[u8; 38]>::try_from(value)) {
        (Some(u), Ok(digits)) => CookieId::Profile(u, digits),
        _ => CookieId::Absent,
    }
}

/// Now, UTC seconds.
pub fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The host's customer (docs/http-api.md §6.5): error 100 without a `Host` (HTTP/1.0), 1 for an unknown
/// host, 2 for a `d_orgid` the taxonomy does not know. Any of them makes the request invalid.
pub fn check_host_and_org(
    catalog: &Catalog,
    req: &Request<'_>,
    ctl: &Control<'_>,
    errors: &mut Vec<DcsError>,
) -> Option<Customer> {
    let Some(host) = req.head.host.map(|h| host_without_port(h.get(req.buf))) else {
        errors.push(DcsError { code: 100, msg: "Could not retrieve host name for the request".into() });
        return None;
    };
    let Some(customer) = catalog.customer_for_host(host) else {
        let msg = format!("Could not find config for hostname: {}", String::from_utf8_lossy(host));
        errors.push(DcsError { code: 1, msg });
        return None;
    };
    if let Some(org) = ctl.orgid.filter(|o| catalog.customer_for_org(o).is_none()) {
        let msg = format!(
            "Invalid d_orgid value (could not find a config for this org id): {}",
            String::from_utf8_lossy(org)
        );
        errors.push(DcsError { code: 2, msg });
        return None;
    }
    Some(customer)
}

/// The request's declared IDs, validated for the host's customer (docs/http-api.md §5.2), then counted
/// against the denylist (§5.3): a denylisted one is dropped with 303 (306 for a global device
/// data source).
pub fn declared_ids<'a>(
    dcs: &Dcs,
    catalog: &Catalog,
    ctl: &Control<'a>,
    customer: u32,
    now_s: u64,
    errors: &mut Vec<DcsError>,
) -> Vec<DeclaredId<'a>> {
    if ctl.declared.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut kept = crate::identity::declared::resolve(&ctl.declared, catalog, customer, &mut found);
    errors.extend(found.into_iter().map(|(code, msg)| DcsError { code, msg }));
    kept.retain(|d| {
        if !dcs.shared.table.note_id(IdRef::Declared(d.dpid, d.dpuuid), now_s) {
            return true;
        }
        errors.push(if global_device(d.dpid).is_some() {
            DcsError { code: 306, msg: format!("Blocked declared device id {}", d.dpuuid) }
        } else {
            DcsError { code: 303, msg: format!("Blocked customer id {}", d.dpuuid) }
        });
        false
    });
    kept
}

/// A request's profile ID.
#[derive(Clone, Copy, Debug)]
pub struct ProfileId {
    /// The ID.
    pub uuid: Uuid,
    /// Its 38 digits (copied from the request when it came from there).
    pub digits: [u8; 38],
    /// Generated for this request: nothing names it yet.
    pub fresh: bool,
}

/// The profile ID (docs/http-api.md §5.1): valid `d_uuid` (else error 102) when
/// `uuid_allowed` (else 102 as well), else the cookie's, else the UUID most recently mapped to
/// one of `declared`, else a new one.
pub fn resolve_uuid(
    dcs: &Dcs,
    ctl: &Control<'_>,
    uuid_allowed: bool,
    cookie: CookieId,
    declared: &[DeclaredId<'_>],
    errors: &mut Vec<DcsError>,
) -> ProfileId {
    let from_param = uuid_param(ctl, uuid_allowed, errors);
    let from_param = from_param.and_then(|v| Some((Uuid::parse(v)?, <[u8; 38]>::try_from(v).ok()?)));
    let from_cookie = || match cookie {
        CookieId::Profile(u, digits) => Some((u, digits)),
        CookieId::Absent | CookieId::OptedOut => None,
    };
    let from_declared = || {
        let u = dcs.shared.table.most_recent_declared(declared.iter().map(|d| (d.dpid, d.dpuuid)))?;
        Some((u, u.to_digits()))
    };
    match from_param.or_else(from_cookie).or_else(from_declared) {
        Some((uuid, digits)) => ProfileId { uuid, digits, fresh: false },
        None => fresh_id(dcs),
    }
}

/// `d_uuid` when the request may name a profile with it and it is a valid UUID (38 digits);
/// otherwise error 102 — with the server-token message when the host's customer requires
/// `X-DCS-Token` and the request lacks it (`uuid_allowed` false; docs/http-api.md §5.1, §12) —
/// and `None`, as if the request had no `d_uuid`.
pub fn uuid_param<'a>(ctl: &Control<'a>, uuid_allowed: bool, errors: &mut Vec<DcsError>) -> Option<&'a [u8]> {
    let v = ctl.uuid?;
    let msg = if !uuid_allowed {
        format!("{TOKEN_REQUIRED} {}", String::from_utf8_lossy(v))
    } else if Uuid::parse(v).is_none() {
        format!("Invalid AAM ID passed in request {}", String::from_utf8_lossy(v))
    } else {
        return Some(v);
    };
    errors.push(DcsError { code: 102, msg });
    None
}

/// The start of error 102's message when `d_uuid` lacks the server token its customer requires
/// (docs/http-api.md §12); the `d_uuid` value follows.
pub const TOKEN_REQUIRED: &str = "AAM ID passed in request without the required server token (X-DCS-Token):";

/// `d_mid`: 38 ASCII digits, else error 101 and ignored (docs/http-api.md §4).
pub fn ecid(ctl: &Control<'_>, errors: &mut Vec<DcsError>) -> Option<u128> {
    let mid = ctl.mid?;
    let ecid = Uuid::parse(mid).map(|u| u.0);
    if ecid.is_none() {
        let msg = format!("Invalid Experience Cloud id passed in {}", String::from_utf8_lossy(mid));
        errors.push(DcsError { code: 101, msg });
    }
    ecid
}

/// Consent (docs/http-api.md §10): without `gdpr=1` there is nothing to check; with it, `gdpr_consent`
/// must be a TC string that consents to purposes 1 and 10 and to `privacy.consent_vendor_id`.
/// Otherwise pushes error 315 and returns `false`.
pub fn consent_ok(dcs: &Dcs, ctl: &Control<'_>, errors: &mut Vec<DcsError>) -> bool {
    if !ctl.gdpr {
        return true;
    }
    let vendor = dcs.shared.config.privacy.consent_vendor_id;
    let ok = ctl
        .gdpr_consent
        .and_then(|tc| TcString::parse(tc).ok())
        .is_some_and(|tc| tc.allows(vendor).unwrap_or(false));
    if !ok {
        errors.push(DcsError { code: 315, msg: "Consent string indicates no consent".into() });
    }
    ok
}

/// Records a request in the profile of `id`, in one atomic update: refuses it with 171 when
/// the profile opted out of `customer` (or globally) and with 307 when the profile ID is
/// denylisted (§5.3; storing nothing else), else records `declared` (most recent wins), the
/// ECID and whatever `edit` adds, then maps the declared IDs and the ECID to the profile.
pub fn record(
    dcs: &Dcs,
    id: &ProfileId,
    customer: u32,
    declared: &[DeclaredId<'_>],
    ecid: Option<u128>,
    now: u64,
    mut edit: impl FnMut(&mut Profile),
) -> Result<(), DcsError> {
    let table = &dcs.shared.table;
    let rule = table.config().deny;
    let mut replaced: Vec<Option<String>> = Vec::new();
    let refused = table.update_if(id.uuid, now, |p| {
        if p.is_opted_out(customer) {
            return (Some(opted_out(&id.digits)), false);
        }
        let was_blocked = p.denylist.is_blocked(now);
        if p.denylist.note_request(now, &rule) {
            let msg = format!("Blocked profile operation for {}", String::from_utf8_lossy(&id.digits));
            return (Some(DcsError { code: 307, msg }), !was_blocked);
        }
        replaced.clear();
        replaced.extend(declared.iter().map(|d| p.set_synced_id(d.dpid, d.dpuuid, now)));
        if ecid.is_some() {
            p.set_ecid(ecid);
        }
        edit(p);
        (None, true)
    });
    if let Some(e) = refused {
        return Err(e);
    }
    remap(dcs, id.uuid, declared, &replaced);
    if let Some(e) = ecid {
        table.map_ecid(e, id.uuid);
    }
    dcs.note_facts(|f| {
        f.uuid = Some(id.digits);
        f.ecid = ecid;
        note_declared(f, declared);
    });
    Ok(())
}

/// The declared IDs a profile update recorded, for the request's log record.
fn note_declared(f: &mut crate::pipeline::logging::Facts, declared: &[DeclaredId<'_>]) {
    f.declared.clear();
    for d in declared {
        crate::eventlog::record::push_declared(&mut f.declared, d.dpid, d.dpuuid, d.auth as u8);
    }
}

/// Opts profile `uuid` out of `customer` and maps `declared` to it, so later requests that name
/// them find the opt-out (docs/http-api.md §9, partner level).
pub fn opt_out(dcs: &Dcs, uuid: Uuid, customer: u32, declared: &[DeclaredId<'_>], now: u64) {
    let replaced: Vec<Option<String>> = dcs.shared.table.update(uuid, now, |p| {
        p.opt_out_customer(customer);
        declared.iter().map(|d| p.set_synced_id(d.dpid, d.dpuuid, now)).collect()
    });
    remap(dcs, uuid, declared, &replaced);
    dcs.note_facts(|f| {
        f.uuid = Some(uuid.to_digits());
        f.opt_out = Some(crate::eventlog::record::OptOut::Customer);
        note_declared(f, declared);
    });
}

/// Maps each of `declared` to `uuid`, unmapping the IDs they replaced in its profile.
fn remap(dcs: &Dcs, uuid: Uuid, declared: &[DeclaredId<'_>], replaced: &[Option<String>]) {
    for (d, old) in declared.iter().zip(replaced) {
        dcs.shared.table.remap_declared(uuid, d.dpid, old.as_deref(), d.dpuuid);
    }
}

/// Consent failed (§10 → §9): the profile opts out of `customer`. A fresh ID that no declared
/// ID names would be a profile nobody can reach again, so it is not created.
pub fn opt_out_for_consent(dcs: &Dcs, id: &ProfileId, customer: u32, declared: &[DeclaredId<'_>], now: u64) {
    if !id.fresh || !declared.is_empty() {
        opt_out(dcs, id.uuid, customer, declared, now);
    }
}

/// A new profile ID from this core's CSPRNG.
pub fn fresh_id(dcs: &Dcs) -> ProfileId {
    let (uuid, digits) = Uuid::generate_with_digits(&mut *dcs.rng.borrow_mut());
    ProfileId { uuid, digits, fresh: true }
}

/// Error 171 for `id`.
pub fn opted_out(id: &[u8]) -> DcsError {
    DcsError { code: 171, msg: format!("Encountered opt out tag for id {}", String::from_utf8_lossy(id)) }
}
