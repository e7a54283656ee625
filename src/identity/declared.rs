//! Declared IDs (docs/http-api.md §5.2): `d_cid=DPID%01DPUUID[%01AUTH]`, `d_cid_ic=IC%01DPUUID[…]` and
//! the legacy `d_dpid`+`d_dpuuid` pair, validated against the taxonomy and the limits, in
//! request order. Pure: the caller maps the kept IDs into the profile table.
//!
//! Order of checks for each ID: shape (error 300), data source or integration code known
//! (300), DPUUID not empty (300), global device ID format (312, dropped), ownership or sharing
//! by the host's customer (302); then at most 3 per data source (310 for each later one);
//! then at most 10 in all (one 301, and 309 for each later one). If no ID survives the
//! validity checks, 104. Messages name the DPUUID as the "customer id", as AAM's do.

use crate::config::taxonomy::{global_device, DeviceFormat};

/// Most declared IDs kept per data source.
pub const MAX_PER_SOURCE: usize = 3;
/// Most declared IDs kept per request.
pub const MAX_PER_REQUEST: usize = 10;

/// Authentication state (third field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthState {
    /// `0` (default).
    Unknown,
    /// `1`
    Authenticated,
    /// `2`
    LoggedOut,
}

/// One declared ID as sent.
#[derive(Clone, Copy, Debug)]
pub enum Raw<'a> {
    /// `d_cid`: `DPID\x01DPUUID[\x01AUTH]` (already percent-decoded).
    Cid(&'a [u8]),
    /// `d_cid_ic`: `IC\x01DPUUID[\x01AUTH]`.
    CidIc(&'a [u8]),
    /// `d_dpid` + `d_dpuuid`.
    Pair(&'a [u8], &'a [u8]),
}

/// A kept declared ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeclaredId<'a> {
    /// Data source.
    pub dpid: u32,
    /// The partner's user ID (valid UTF-8, not empty).
    pub dpuuid: &'a str,
    /// Authentication state.
    pub auth: AuthState,
}

/// Who may use a data source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Owned by or shared with the customer (global device sources are open to all).
    Allowed,
    /// Declared, but owned by another customer and not shared (error 302).
    Unauthorized,
    /// Not declared and not a global device source (error 300).
    Unknown,
}

/// What declared-ID validation needs to know of the taxonomy (the catalog answers it).
pub trait DataSources {
    /// Whether `customer` may use data source `dpid`.
    fn access(&self, dpid: u32, customer: u32) -> Access;
    /// The DPID of an integration code.
    fn dpid_for_ic(&self, ic: &[u8]) -> Option<u32>;
}

/// Validates `raws` for the host's `customer`; returns the kept IDs and appends
/// `(code, message)` errors in the order they arise.
pub fn resolve<'a>(
    raws: &[Raw<'a>],
    tax: &impl DataSources,
    customer: u32,
    errors: &mut Vec<(u16, String)>,
) -> Vec<DeclaredId<'a>> {
    let mut valid = Vec::with_capacity(raws.len());
    for raw in raws {
        if let Some(id) = check(raw, tax, customer, errors) {
            if valid.iter().filter(|v: &&DeclaredId<'_>| v.dpid == id.dpid).count() >= MAX_PER_SOURCE {
                errors.push((310, format!("Customer id was discarded because it exceeded the limit for a given namespace. Namespace id is {}, customer id is {}.", id.dpid, id.dpuuid)));
            } else {
                valid.push(id);
            }
        }
    }
    if !raws.is_empty() && valid.is_empty() {
        errors.push((104, "All customer IDs are invalid".into()));
    }
    if valid.len() > MAX_PER_REQUEST {
        errors.push((
            301,
            format!(
                "Maximum number of customer ids exceeded. Maximum allowed is {MAX_PER_REQUEST}. Found is {}.",
                valid.len()
            ),
        ));
        for id in &valid[MAX_PER_REQUEST..] {
            errors.push((309, format!("Customer id {} was discarded because it exceeded the limit of declared customer ids per request", id.dpuuid)));
        }
        valid.truncate(MAX_PER_REQUEST);
    }
    valid
}

/// Shape, data source, DPUUID, device format and ownership of one ID.
fn check<'a>(
    raw: &Raw<'a>,
    tax: &impl DataSources,
    customer: u32,
    errors: &mut Vec<(u16, String)>,
) -> Option<DeclaredId<'a>> {
    let (ns, dpuuid, auth) = match split(raw) {
        Some(parts) => parts,
        None => {
            errors.push((300, format!("Invalid customer id {}", shown(raw))));
            return None;
        }
    };
    let dpid = match raw {
        Raw::CidIc(_) => tax.dpid_for_ic(ns),
        _ => std::str::from_utf8(ns).ok().and_then(|n| n.parse::<u32>().ok()),
    };
    let (Some(dpid), Ok(dpuuid), Some(auth)) = (dpid, std::str::from_utf8(dpuuid), auth) else {
        errors.push((300, format!("Invalid customer id {}", shown(raw))));
        return None;
    };
    if dpuuid.is_empty() || tax.access(dpid, customer) == Access::Unknown {
        errors.push((300, format!("Invalid customer id {}", shown(raw))));
        return None;
    }
    if global_device(dpid).is_some_and(|f| !device_id_ok(f, dpuuid)) {
        errors.push((312, "Request contains an invalid Global Device ID".into()));
        return None;
    }
    if tax.access(dpid, customer) == Access::Unauthorized {
        errors.push((302, format!("Unauthorized customer id {dpuuid}")));
        return None;
    }
    Some(DeclaredId { dpid, dpuuid, auth })
}

/// Namespace, DPUUID and auth state (`None` for an auth field other than 0, 1, 2).
fn split<'a>(raw: &Raw<'a>) -> Option<(&'a [u8], &'a [u8], Option<AuthState>)> {
    let v = match raw {
        Raw::Pair(ns, id) => return Some((ns, id, Some(AuthState::Unknown))),
        Raw::Cid(v) | Raw::CidIc(v) => *v,
    };
    let mut fields = v.split(|&b| b == 0x01);
    let (ns, id) = (fields.next()?, fields.next()?);
    let auth = match fields.next() {
        None | Some(b"0") => Some(AuthState::Unknown),
        Some(b"1") => Some(AuthState::Authenticated),
        Some(b"2") => Some(AuthState::LoggedOut),
        Some(_) => None,
    };
    fields.next().is_none().then_some((ns, id, auth))
}

/// The DPUUID if readable, else the whole value, for messages.
fn shown(raw: &Raw<'_>) -> String {
    let bytes = match split(raw) {
        Some((_, id, _)) if !id.is_empty() => id,
        _ => match raw {
            Raw::Cid(v) | Raw::CidIc(v) => v,
            Raw::Pair(ns, _) => ns,
        },
    };
    String::from_utf8_lossy(bytes).replace('\u{1}', ":")
}

fn device_id_ok(f: DeviceFormat, id: &str) -> bool {
    let b = id.as_bytes();
    let uuid_shape = |hex: fn(&u8) -> bool| {
        b.len() == 36
            && b.iter()
                .enumerate()
                .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { *c == b'-' } else { hex(c) })
    };
    match f {
        DeviceFormat::UuidUpper => uuid_shape(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c)),
        DeviceFormat::UuidLower => uuid_shape(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)),
        DeviceFormat::Alphanumeric => !b.is_empty() && b.iter().all(u8::is_ascii_alphanumeric),
    }
}

#[cfg(test)]
mod tests;
