//! The customers' privacy switches (docs/taxonomy.md §1.2), compiled: `cors_origins` (which
//! origins get CORS answers, docs/http-api.md §7) and `uuid_token` (the server token `d_uuid`
//! needs, §5.1). Both are off unless a customer sets them, which keeps AAM's behaviour.
//!
//! One row per customer that sets either switch; the [`super::Customer`] that the host lookup
//! returns carries the index of its row as a [`PrivacyRef`] (`None` for a customer that sets
//! neither). A request of such a customer — every request with an AAM-style taxonomy — reads
//! that one `Option` and nothing else, and the CORS check starts with one `bool` that is false
//! while no customer restricts origins, so the pixel path neither allocates nor looks anything
//! up for them.
//!
//! Shared, read-only (part of the catalog).

use std::num::NonZeroU32;

use rustc_hash::FxHashSet;

use crate::config::taxonomy::Customer as CustomerDoc;
use crate::identity::constant_time_eq;

/// The row of a customer's privacy switches in its catalog (index + 1, so that
/// `Option<PrivacyRef>` costs no space in [`super::Customer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivacyRef(NonZeroU32);

/// Every customer's switches.
#[derive(Debug, Default)]
pub struct PrivacyTable {
    /// The rows of the customers that set a switch.
    rows: Vec<Privacy>,
    /// Whether some customer lists `cors_origins` (else CORS needs no lookup).
    cors_restricted: bool,
}

/// One customer's switches.
struct Privacy {
    /// `cors_origins`, lower-case; `None` = any origin.
    cors_origins: Option<FxHashSet<Box<[u8]>>>,
    /// `uuid_token`; `None` = `d_uuid` from anyone.
    uuid_token: Option<Box<[u8]>>,
}

/// Longest `Origin` compared with an allow-list (scheme, `://`, a host name and a port).
const MAX_ORIGIN_BYTES: usize = 320;

// === impl PrivacyTable ===

impl PrivacyTable {
    /// Adds a customer's switches; `None` when it sets none (nothing is stored).
    pub fn add(&mut self, cu: &CustomerDoc) -> Option<PrivacyRef> {
        if cu.cors_origins.is_none() && cu.uuid_token.is_none() {
            return None;
        }
        let cors_origins = cu.cors_origins.as_ref().map(|list| {
            list.iter().map(|o| o.to_ascii_lowercase().into_bytes().into_boxed_slice()).collect()
        });
        self.cors_restricted |= cors_origins.is_some();
        let uuid_token = cu.uuid_token.as_ref().map(|t| t.0.as_bytes().into());
        self.rows.push(Privacy { cors_origins, uuid_token });
        NonZeroU32::new(u32::try_from(self.rows.len()).ok()?).map(PrivacyRef)
    }

    /// Whether some customer restricts CORS origins.
    pub fn cors_restricted(&self) -> bool {
        self.cors_restricted
    }

    /// Whether `origin` may get CORS headers from a customer with switches `row`: yes unless
    /// it lists `cors_origins` without `origin` (compared case-insensitively).
    pub fn cors_allows(&self, row: Option<PrivacyRef>, origin: &[u8]) -> bool {
        let Some(allowed) = self.row(row).and_then(|p| p.cors_origins.as_ref()) else { return true };
        if origin.len() > MAX_ORIGIN_BYTES {
            return false;
        }
        let mut lower = [0u8; MAX_ORIGIN_BYTES];
        let lower = &mut lower[..origin.len()];
        lower.copy_from_slice(origin);
        lower.make_ascii_lowercase();
        allowed.contains(&*lower)
    }

    /// Whether a request of a customer with switches `row` may name a profile with `d_uuid`:
    /// yes unless it set `uuid_token`; then only when `presented` equals it, compared in
    /// constant time.
    pub fn uuid_token_ok(&self, row: Option<PrivacyRef>, presented: Option<&[u8]>) -> bool {
        match self.row(row).and_then(|p| p.uuid_token.as_deref()) {
            None => true,
            Some(token) => presented.is_some_and(|t| constant_time_eq(token, t)),
        }
    }

    /// Number of rows (customers with a switch).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no customer sets a switch.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn row(&self, row: Option<PrivacyRef>) -> Option<&Privacy> {
        self.rows.get(row?.0.get() as usize - 1)
    }
}

// === impl Privacy ===

impl std::fmt::Debug for Privacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in a log line.
        f.debug_struct("Privacy")
            .field("cors_origins", &self.cors_origins.as_ref().map(FxHashSet::len))
            .field("uuid_token", &self.uuid_token.as_ref().map(|_| ".."))
            .finish()
    }
}
