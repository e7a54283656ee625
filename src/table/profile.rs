//! The decoded profile: what a request reads and an update edits. Stored encoded (see
//! `codec.rs`); this form exists only for the length of one read or one update.
//!
//! Days are UTC days since 1970-01-01 as `u16` (good until 2149); times are UTC seconds as
//! `u32` (good until 2106).

/// Seconds in a UTC day.
pub const DAY_S: u64 = 86_400;

/// One user's profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// When the profile was last updated (UTC seconds); set by every update.
    pub(crate) last_seen_s: u32,
    /// Global opt-out (`/demoptout` without partner IDs).
    pub(crate) opted_out: bool,
    /// Customer (partner) IDs this user opted out of, sorted, unique.
    pub(crate) opted_out_customers: Vec<u32>,
    /// Trait realizations, sorted by trait ID, then day newest first; one entry per trait/day.
    pub(crate) realizations: Vec<Realization>,
    /// Current segment IDs, sorted, unique.
    pub(crate) segments: Vec<u32>,
    /// Declared IDs synced per data source, one per DPID, sorted by DPID.
    pub(crate) synced: Vec<SyncedId>,
    /// Partner results with their expiry, one per DPID, sorted by DPID.
    pub(crate) partner_results: Vec<PartnerResult>,
    /// The Experience Cloud ID linked to this profile.
    pub(crate) ecid: Option<u128>,
    /// Request-rate counters for ID denylisting.
    pub denylist: Denylist,
}

/// Realizations of one trait on one UTC day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Realization {
    /// The trait ID.
    pub trait_id: u32,
    /// UTC day.
    pub day: u16,
    /// Realizations that day (saturating).
    pub count: u16,
}

/// A declared ID synced for one data source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncedId {
    /// Data provider ID.
    pub dpid: u32,
    /// The partner's ID for this user (DPUUID).
    pub id: String,
    /// UTC day of the last sync.
    pub day: u16,
}

/// What a partner answered for this user, kept until it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerResult {
    /// Data provider ID of the partner.
    pub dpid: u32,
    /// UTC seconds after which the result is dropped.
    pub expires_s: u32,
    /// The partner's segment strings or trait IDs, as it sent them.
    pub values: Vec<String>,
}

/// Request-rate counters for one ID (docs/http-api.md §5.3): kept in the profile for its UUID, and in
/// the table's ID denylist for declared IDs and ECIDs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Denylist {
    /// Start of the current counting window (UTC seconds); 0 = never counted.
    pub window_start_s: u32,
    /// Requests seen in the current window.
    pub count: u32,
    /// Denylisted until this time (UTC seconds); 0 = not denylisted.
    pub blocked_until_s: u32,
}

/// When an ID is denylisted (`[denylist]` in `dcsd.toml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenyRule {
    /// More requests than this within `window_s` denylist the ID (default 1000).
    pub max_requests: u32,
    /// The counting window, seconds (default 10).
    pub window_s: u32,
    /// How long the ID stays denylisted, seconds (default 86 400).
    pub ttl_s: u32,
}

// === impl Profile ===

impl Profile {
    /// When the profile was last updated (UTC seconds).
    pub fn last_seen_s(&self) -> u32 {
        self.last_seen_s
    }

    /// Records one realization of `trait_id` at `now_s`.
    pub fn realize(&mut self, trait_id: u32, now_s: u64) {
        self.realize_n(trait_id, day_of(now_s), 1);
    }

    /// Adds `n` realizations of `trait_id` on `day` (restores, onboarding, tests).
    pub fn realize_n(&mut self, trait_id: u32, day: u16, n: u16) {
        let key = (trait_id, std::cmp::Reverse(day));
        match self.realizations.binary_search_by_key(&key, |r| (r.trait_id, std::cmp::Reverse(r.day))) {
            Ok(i) => self.realizations[i].count = self.realizations[i].count.saturating_add(n),
            Err(i) => self.realizations.insert(i, Realization { trait_id, day, count: n }),
        }
    }

    /// The realizations of `trait_id`, newest day first.
    pub fn realizations(&self, trait_id: u32) -> &[Realization] {
        let lo = self.realizations.partition_point(|r| r.trait_id < trait_id);
        let hi = self.realizations.partition_point(|r| r.trait_id <= trait_id);
        &self.realizations[lo..hi]
    }

    /// Every realization, by trait ID then newest day first.
    pub fn all_realizations(&self) -> &[Realization] {
        &self.realizations
    }

    /// Realizations of `trait_id` on days in `first_day..=last_day` (recency/frequency).
    pub fn frequency(&self, trait_id: u32, first_day: u16, last_day: u16) -> u32 {
        let days = first_day..=last_day;
        let rs = self.realizations(trait_id).iter().filter(|r| days.contains(&r.day));
        rs.map(|r| u32::from(r.count)).sum()
    }

    /// The distinct realized trait IDs, ascending.
    pub fn trait_ids(&self) -> impl Iterator<Item = u32> + '_ {
        let mut last = None;
        self.realizations
            .iter()
            .filter_map(move |r| (last.replace(r.trait_id) != Some(r.trait_id)).then_some(r.trait_id))
    }

    /// The current segment IDs, ascending.
    pub fn segments(&self) -> &[u32] {
        &self.segments
    }

    /// Replaces the current segments.
    pub fn set_segments(&mut self, ids: impl IntoIterator<Item = u32>) {
        self.segments.clear();
        self.segments.extend(ids);
        self.segments.sort_unstable();
        self.segments.dedup();
    }

    /// The declared ID synced for `dpid`.
    pub fn synced_id(&self, dpid: u32) -> Option<&str> {
        let i = self.synced.binary_search_by_key(&dpid, |s| s.dpid).ok()?;
        Some(&self.synced[i].id)
    }

    /// Every synced ID, by DPID.
    pub fn synced_ids(&self) -> &[SyncedId] {
        &self.synced
    }

    /// Records `id` as this user's ID at data source `dpid`; returns the different ID it replaced.
    pub fn set_synced_id(&mut self, dpid: u32, id: &str, now_s: u64) -> Option<String> {
        let s = SyncedId { dpid, id: id.to_owned(), day: day_of(now_s) };
        match self.synced.binary_search_by_key(&dpid, |s| s.dpid) {
            Ok(i) => Some(std::mem::replace(&mut self.synced[i], s).id).filter(|old| old != id),
            Err(i) => {
                self.synced.insert(i, s);
                None
            }
        }
    }

    /// Stores a partner's answer until `expires_s`.
    pub fn set_partner_result(&mut self, dpid: u32, expires_s: u32, values: Vec<String>) {
        let r = PartnerResult { dpid, expires_s, values };
        match self.partner_results.binary_search_by_key(&dpid, |r| r.dpid) {
            Ok(i) => self.partner_results[i] = r,
            Err(i) => self.partner_results.insert(i, r),
        }
    }

    /// The partner's unexpired answer.
    pub fn partner_result(&self, dpid: u32, now_s: u64) -> Option<&[String]> {
        let i = self.partner_results.binary_search_by_key(&dpid, |r| r.dpid).ok()?;
        let r = &self.partner_results[i];
        (u64::from(r.expires_s) > now_s).then_some(&r.values[..])
    }

    /// The linked ECID.
    pub fn ecid(&self) -> Option<u128> {
        self.ecid
    }

    /// Links (or unlinks) an ECID. The ECID → UUID map is the table's: see
    /// [`super::ProfileTable::map_ecid`].
    pub fn set_ecid(&mut self, ecid: Option<u128>) {
        self.ecid = ecid;
    }

    /// Opts the user out globally.
    pub fn opt_out_globally(&mut self) {
        self.opted_out = true;
    }

    /// Opts the user out of customer `cid`.
    pub fn opt_out_customer(&mut self, cid: u32) {
        if let Err(i) = self.opted_out_customers.binary_search(&cid) {
            self.opted_out_customers.insert(i, cid);
        }
    }

    /// Whether the user opted out globally.
    pub fn is_opted_out_globally(&self) -> bool {
        self.opted_out
    }

    /// Whether the user opted out of customer `cid` (or globally).
    pub fn is_opted_out(&self, cid: u32) -> bool {
        self.opted_out || self.opted_out_customers.binary_search(&cid).is_ok()
    }

    /// Drops realizations older than `history_days` before today and expired partner results.
    pub(crate) fn expire(&mut self, now_s: u64, history_days: u16) {
        let oldest = day_of(now_s).saturating_sub(history_days);
        self.realizations.retain(|r| r.day >= oldest);
        self.partner_results.retain(|r| u64::from(r.expires_s) > now_s);
    }

    /// Empties the profile, keeping its buffers.
    pub(crate) fn clear(&mut self) {
        self.realizations.clear();
        self.segments.clear();
        self.synced.clear();
        self.partner_results.clear();
        self.opted_out_customers.clear();
        (self.last_seen_s, self.opted_out, self.ecid) = (0, false, None);
        self.denylist = Denylist::default();
    }

    /// Keeps at most `max` traits, dropping those last realized longest ago.
    pub(crate) fn cap_traits(&mut self, max: usize) {
        if self.realizations.len() <= max || self.trait_ids().count() <= max {
            return;
        }
        let mut last: Vec<(u16, u32)> = Vec::new();
        for r in &self.realizations {
            match last.last_mut() {
                Some(l) if l.1 == r.trait_id => l.0 = l.0.max(r.day),
                _ => last.push((r.day, r.trait_id)),
            }
        }
        if last.len() <= max {
            return;
        }
        last.sort_unstable();
        let mut victims: Vec<u32> = last[..last.len() - max].iter().map(|l| l.1).collect();
        victims.sort_unstable();
        self.realizations.retain(|r| victims.binary_search(&r.trait_id).is_err());
    }
}

// === impl Denylist ===

impl Denylist {
    /// Counts one request at `now_s`; once a window of `rule.window_s` holds more than
    /// `rule.max_requests`, the ID is denylisted for `rule.ttl_s`. Requests of a denylisted ID
    /// are not counted; when the denylisting ends, counting starts afresh. Returns whether the
    /// ID is denylisted now.
    pub fn note_request(&mut self, now_s: u64, rule: &DenyRule) -> bool {
        let now = clamp_s(now_s);
        if self.is_blocked(now_s) {
            return true;
        }
        if self.blocked_until_s != 0
            || self.window_start_s == 0
            || now.saturating_sub(self.window_start_s) >= rule.window_s
        {
            *self = Denylist { window_start_s: now, count: 0, blocked_until_s: 0 };
        }
        self.count = self.count.saturating_add(1);
        if self.count > rule.max_requests {
            self.blocked_until_s = now.saturating_add(rule.ttl_s.max(1));
        }
        self.blocked_until_s != 0
    }

    /// Whether the ID is denylisted at `now_s`.
    pub fn is_blocked(&self, now_s: u64) -> bool {
        clamp_s(now_s) < self.blocked_until_s
    }
}

// === impl DenyRule ===

impl Default for DenyRule {
    fn default() -> DenyRule {
        DenyRule { max_requests: 1000, window_s: 10, ttl_s: 86_400 }
    }
}

/// The UTC day of `now_s`.
pub fn day_of(now_s: u64) -> u16 {
    u16::try_from(now_s / DAY_S).unwrap_or(u16::MAX)
}

/// `now_s` as stored (`u32`, saturating).
pub(crate) fn clamp_s(now_s: u64) -> u32 {
    u32::try_from(now_s).unwrap_or(u32::MAX)
}
