//! The catalog: a validated taxonomy document compiled into what requests read.
//!
//! [`Catalog::compile`] runs once per load (start-up, `--check`, every reload), off the request
//! path, and builds an immutable value: the rule [`Engine`] and O(1) lookups — host → customer
//! (with the customer's flags), Experience Cloud org → customer, integration code → DPID, and
//! per data source who may use it and where `/ibs:` may redirect — and the customers' privacy
//! switches (`catalog/privacy.rs`), whose row index ([`PrivacyRef`]) comes with the host
//! lookup. Every core reads the current catalog through the pipeline's shared handle; a
//! reload compiles a new one and swaps it in, and requests in flight finish on the one they
//! started with. The serde document ([`Taxonomy`]) is dropped once compiled.
//!
//! Shared, read-only, no IO except [`load`] reading the file.

mod privacy;

use std::net::SocketAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::config::taxonomy::{global_device, Counts, Taxonomy};
use crate::config::{ConfigError, TaxonomyLimits, TaxonomySource};
use crate::engine::Engine;
use crate::identity::declared::DataSources;
use crate::partner::PartnerSpec;

pub use crate::identity::declared::Access;
pub use privacy::PrivacyRef;
use privacy::PrivacyTable;

/// The compiled taxonomy.
#[derive(Debug)]
pub struct Catalog {
    /// Trait rules, segments and destinations.
    pub engine: Engine,
    /// Lower-case host name → its customer.
    hosts: FxHashMap<Box<[u8]>, Customer>,
    /// Experience Cloud org ID → customer ID.
    orgs: FxHashMap<Box<[u8]>, u32>,
    /// Integration code → DPID.
    ics: FxHashMap<Box<[u8]>, u32>,
    /// DPID → who may use the data source and where it may redirect.
    sources: FxHashMap<u32, Source>,
    /// The privacy switches of the customers that set any ([`Customer::privacy`] indexes it).
    privacy: PrivacyTable,
    /// Days a trait realization lives.
    trait_ttl_days: u32,
    /// Most partner connections one core may hold: the sum of every real-time data source's
    /// `max_conns_per_core`.
    partner_conns_per_core: usize,
    /// Every real-time data source, compiled (URL template, resolved address, limits).
    partners: Box<[Arc<PartnerSpec>]>,
    /// Customer → the real-time data sources it owns or that are shared with it.
    customer_partners: FxHashMap<u32, Box<[Arc<PartnerSpec>]>>,
    /// What the document held, for `--check` and reload log lines.
    counts: Counts,
}

/// A host's customer, as a request needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Customer {
    /// Customer ID.
    pub id: u32,
    /// Whether `d_cts` may list traits and segments.
    pub cts: bool,
    /// Its row of privacy switches; `None` when it sets none (AAM's behaviour).
    pub privacy: Option<PrivacyRef>,
}

/// One declared data source.
#[derive(Debug)]
struct Source {
    owner: u32,
    shared_with: Box<[u32]>,
    /// `sync_redirect_domains`, lower-case.
    redirect_domains: Box<[Box<[u8]>]>,
}

/// Longest host name looked up (DNS names are at most 253 bytes).
const MAX_HOST_BYTES: usize = 255;

// === impl Catalog ===

impl Catalog {
    /// Compiles a validated document.
    ///
    /// # Errors
    /// Every bad rule and out-of-range ID, as `$.traits[3].rule: at 14: expected operator`.
    pub fn compile(doc: &Taxonomy) -> Result<Catalog, Vec<String>> {
        let engine = Engine::compile(doc)?;
        let partners = compile_partners(doc)?;
        let mut customer_partners = FxHashMap::default();
        for cu in &doc.customers {
            let mine: Box<[Arc<PartnerSpec>]> = doc
                .data_sources
                .iter()
                .zip(partners.iter())
                .filter(|(d, p)| d.allows(cu.id) && p.is_some())
                .filter_map(|(_, p)| p.clone())
                .collect();
            if !mine.is_empty() {
                customer_partners.insert(cu.id, mine);
            }
        }
        let mut c = Catalog {
            engine,
            hosts: FxHashMap::default(),
            orgs: FxHashMap::default(),
            ics: FxHashMap::default(),
            sources: FxHashMap::default(),
            privacy: PrivacyTable::default(),
            trait_ttl_days: doc.trait_ttl_days,
            partner_conns_per_core: doc
                .data_sources
                .iter()
                .filter_map(|d| d.realtime.as_ref())
                .map(|r| r.max_conns_per_core as usize)
                .sum(),
            partners: partners.into_iter().flatten().collect(),
            customer_partners,
            counts: doc.counts(),
        };
        for cu in &doc.customers {
            let customer = Customer { id: cu.id, cts: cu.cts, privacy: c.privacy.add(cu) };
            for h in &cu.hosts {
                c.hosts.insert(h.to_ascii_lowercase().into_bytes().into(), customer);
            }
            for o in &cu.orgs {
                c.orgs.insert(o.as_bytes().into(), cu.id);
            }
        }
        for d in &doc.data_sources {
            let redirect_domains =
                d.sync_redirect_domains.iter().map(|h| h.to_ascii_lowercase().into_bytes().into()).collect();
            let source =
                Source { owner: d.owner, shared_with: d.shared_with.clone().into(), redirect_domains };
            c.sources.insert(d.dpid, source);
            if let Some(ic) = &d.ic {
                c.ics.insert(ic.as_bytes().into(), d.dpid);
            }
        }
        Ok(c)
    }

    /// Parses, validates and compiles a taxonomy JSON document: validation errors and rule
    /// errors are reported together.
    ///
    /// # Errors
    /// Every problem found, each as `JSON path: reason`.
    pub fn from_json(bytes: &[u8]) -> Result<Catalog, Vec<String>> {
        let (doc, mut errors) = Taxonomy::parse_unchecked(bytes)?;
        match Catalog::compile(&doc) {
            Ok(c) if errors.is_empty() => Ok(c),
            Ok(_) => Err(errors),
            Err(rule_errors) => {
                errors.extend(rule_errors);
                Err(errors)
            }
        }
    }

    /// The customer whose hosts include `host` (matched case-insensitively; pass it without
    /// the port).
    pub fn customer_for_host(&self, host: &[u8]) -> Option<Customer> {
        if !host.iter().any(u8::is_ascii_uppercase) {
            return self.hosts.get(host).copied(); // the common case: no copy
        }
        if host.len() > MAX_HOST_BYTES {
            return None;
        }
        let mut lower = [0u8; MAX_HOST_BYTES];
        let lower = &mut lower[..host.len()];
        lower.copy_from_slice(host);
        lower.make_ascii_lowercase();
        self.hosts.get(&*lower).copied()
    }

    /// Whether an answer to a request for `host` (without the port) may carry CORS headers
    /// for `origin` (docs/http-api.md §7): yes, unless the host's customer lists
    /// `cors_origins` without it. No lookup while no customer restricts origins.
    pub fn cors_allows(&self, host: &[u8], origin: &[u8]) -> bool {
        !self.privacy.cors_restricted()
            || self.privacy.cors_allows(self.customer_for_host(host).and_then(|c| c.privacy), origin)
    }

    /// Whether a request for `customer` may name a profile with `d_uuid` (docs/http-api.md
    /// §5.1): yes, unless the customer set `uuid_token`; then only when `presented` (the
    /// `X-DCS-Token` header) equals it.
    pub fn uuid_token_ok(&self, customer: Customer, presented: Option<&[u8]>) -> bool {
        customer.privacy.is_none() || self.privacy.uuid_token_ok(customer.privacy, presented)
    }

    /// The customer of an Experience Cloud org ID (`d_orgid`).
    pub fn customer_for_org(&self, org: &[u8]) -> Option<u32> {
        self.orgs.get(org).copied()
    }

    /// Whether `customer` may use data source `dpid` (global device sources: always).
    pub fn access(&self, dpid: u32, customer: u32) -> Access {
        match self.sources.get(&dpid) {
            Some(s) if s.owner == customer || s.shared_with.contains(&customer) => Access::Allowed,
            Some(_) => Access::Unauthorized,
            None if global_device(dpid).is_some() => Access::Allowed,
            None => Access::Unknown,
        }
    }

    /// The DPID of an integration code (`DSID_<DPID>` for global device sources).
    pub fn dpid_for_ic(&self, ic: &[u8]) -> Option<u32> {
        if let Some(&d) = self.ics.get(ic) {
            return Some(d);
        }
        let n = std::str::from_utf8(ic.strip_prefix(b"DSID_")?).ok()?.parse().ok()?;
        global_device(n).map(|_| n)
    }

    /// Whether `/ibs:` may redirect to `host` for data source `dpid`: the host is one of its
    /// `sync_redirect_domains` or a subdomain of one (case-insensitive).
    pub fn redirect_allowed(&self, dpid: u32, host: &[u8]) -> bool {
        let Some(s) = self.sources.get(&dpid) else { return false };
        s.redirect_domains.iter().any(|dom| {
            host.eq_ignore_ascii_case(dom)
                || (host.len() > dom.len()
                    && host[host.len() - dom.len() - 1] == b'.'
                    && host[host.len() - dom.len()..].eq_ignore_ascii_case(dom))
        })
    }

    /// Days a trait realization lives (`trait_ttl_days`).
    pub fn trait_ttl_days(&self) -> u32 {
        self.trait_ttl_days
    }

    /// Every real-time data source (each core keeps a pool per entry).
    pub fn partners(&self) -> &[Arc<PartnerSpec>] {
        &self.partners
    }

    /// The real-time data sources a request of `customer` calls (owned or shared).
    #[inline]
    pub fn partners_for(&self, customer: u32) -> &[Arc<PartnerSpec>] {
        self.customer_partners.get(&customer).map_or(&[], |p| &p[..])
    }

    /// Most partner connections one core may hold at once (file descriptors to reserve).
    pub fn partner_conns_per_core(&self) -> usize {
        self.partner_conns_per_core
    }

    /// What the document held.
    pub fn counts(&self) -> Counts {
        self.counts
    }
}

/// Compiles every data source's `realtime` block (one entry per data source, `None` without
/// one). Host names are resolved here — at start-up, `--check` and reload, on the main thread,
/// never on a worker; a name that does not resolve is logged, and calls to it fail (`error`)
/// until a reload resolves it.
///
/// # Errors
/// Every block that cannot be compiled, with its JSON path.
fn compile_partners(doc: &Taxonomy) -> Result<Vec<Option<Arc<PartnerSpec>>>, Vec<String>> {
    let mut errs = Vec::new();
    let mut out = Vec::with_capacity(doc.data_sources.len());
    for (i, d) in doc.data_sources.iter().enumerate() {
        let Some(rt) = &d.realtime else {
            out.push(None);
            continue;
        };
        match PartnerSpec::compile(d.dpid, rt, resolve) {
            Ok(spec) => {
                if spec.addr.is_none() {
                    crate::log!(
                        Error,
                        "data source {}: partner host {} does not resolve; its calls fail until a reload",
                        d.dpid,
                        spec.authority
                    );
                }
                out.push(Some(Arc::new(spec)));
            }
            Err(e) => {
                errs.push(format!("$.data_sources[{i}].realtime.{e}"));
                out.push(None);
            }
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// The first address of `host:port` (literal addresses need no lookup).
#[allow(clippy::disallowed_methods)] // main thread, at load: never on a worker
fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).ok()?.next()
}

// === impl DataSources for Catalog ===

impl DataSources for Catalog {
    fn access(&self, dpid: u32, customer: u32) -> Access {
        Catalog::access(self, dpid, customer)
    }

    fn dpid_for_ic(&self, ic: &[u8]) -> Option<u32> {
        Catalog::dpid_for_ic(self, ic)
    }
}

/// Reads (within `limits`), validates and compiles the taxonomy from `src` (start-up,
/// `--check`, reload).
///
/// # Errors
/// An unreadable file, one over a limit, or every problem found in it; each message starts
/// with the file name.
pub fn load(src: &TaxonomySource, limits: TaxonomyLimits) -> Result<Catalog, ConfigError> {
    let (name, bytes) = crate::config::read_taxonomy(src, limits)?;
    Catalog::from_json(&bytes)
        .map_err(|errs| ConfigError(errs.into_iter().map(|e| format!("{name}: {e}")).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::taxonomy::DEMO_JSON;

    #[test]
    fn hosts_and_orgs_resolve() {
        let c = Catalog::from_json(DEMO_JSON.as_bytes()).unwrap();
        assert_eq!(c.customer_for_host(b"LocalHost"), Some(Customer { id: 1, cts: true, privacy: None }));
        assert_eq!(c.customer_for_host(b"acme.dcs.example").map(|c| c.id), Some(1));
        assert_eq!(c.customer_for_host(b"other.example"), None);
        assert_eq!(c.customer_for_host(&[b'A'; 300]), None);
        assert_eq!(c.customer_for_org(b"ACME@AdobeOrg"), Some(1));
        assert_eq!(c.customer_for_org(b"acme@adobeorg"), None);
    }

    #[test]
    fn customer_flags_come_with_the_host() {
        let doc =
            br#"{"customers":[{"id":1,"hosts":["a.example"],"cts":true},{"id":2,"hosts":["b.example"]}]}"#;
        let c = Catalog::from_json(doc).unwrap();
        assert_eq!(c.customer_for_host(b"a.example"), Some(Customer { id: 1, cts: true, privacy: None }));
        assert_eq!(c.customer_for_host(b"B.EXAMPLE"), Some(Customer { id: 2, cts: false, privacy: None }));
    }

    #[test]
    fn privacy_switches_come_with_the_host() {
        let doc = br#"{"customers":[
            {"id":1,"hosts":["a.example"]},
            {"id":2,"hosts":["b.example"],"cors_origins":["https://WWW.B.example","http://localhost:8080"]},
            {"id":3,"hosts":["c.example"],"uuid_token":"0123456789abcdef"},
            {"id":4,"hosts":["d.example"],"cors_origins":[]}]}"#;
        let c = Catalog::from_json(doc).unwrap();
        let [a, b, cc, d] = [&b"a.example"[..], b"b.example", b"c.example", b"d.example"]
            .map(|h| c.customer_for_host(h).unwrap());
        assert_eq!((a.privacy, c.privacy.len()), (None, 3));
        // CORS: any origin for a customer without a list, only the listed ones (any case) otherwise.
        assert!(c.cors_allows(b"a.example", b"https://evil.example"));
        assert!(c.cors_allows(b"unknown.example", b"https://evil.example"));
        assert!(c.cors_allows(b"B.example", b"https://www.b.example"));
        assert!(c.cors_allows(b"b.example", b"HTTP://LOCALHOST:8080"));
        assert!(!c.cors_allows(b"b.example", b"https://www.b.example:8443"));
        assert!(!c.cors_allows(b"b.example", b"https://evil.example"));
        assert!(!c.cors_allows(b"b.example", &[b'h'; 400]));
        assert!(!c.cors_allows(b"d.example", b"https://www.b.example"));
        assert!(c.cors_allows(b"c.example", b"https://evil.example"));
        // d_uuid: from anyone unless a token is set, then only with it.
        for cu in [a, b, d] {
            assert!(c.uuid_token_ok(cu, None));
        }
        assert!(!c.uuid_token_ok(cc, None));
        assert!(!c.uuid_token_ok(cc, Some(b"0123456789abcdeF")));
        assert!(!c.uuid_token_ok(cc, Some(b"0123456789abcdef0")));
        assert!(!c.uuid_token_ok(cc, Some(b"")));
        assert!(c.uuid_token_ok(cc, Some(b"0123456789abcdef")));
        assert!(!format!("{c:?}").contains("0123456789abcdef"), "the token stays out of Debug");
        // Without any switch, nothing is stored and CORS needs no lookup.
        let plain = Catalog::from_json(DEMO_JSON.as_bytes()).unwrap();
        assert!(!plain.privacy.cors_restricted() && plain.privacy.is_empty());
        assert_eq!(std::mem::size_of::<Customer>(), 12);
    }

    #[test]
    fn access_and_integration_codes() {
        let doc = br#"{"customers":[{"id":1,"hosts":["a"]},{"id":2,"hosts":["b"]}],
            "data_sources":[{"dpid":10,"ic":"crm","owner":1},{"dpid":20,"owner":2,"shared_with":[1]},
                            {"dpid":30,"owner":2}]}"#;
        let c = Catalog::from_json(doc).unwrap();
        assert_eq!(c.access(10, 1), Access::Allowed);
        assert_eq!(c.access(20, 1), Access::Allowed);
        assert_eq!(c.access(30, 1), Access::Unauthorized);
        assert_eq!(c.access(31, 1), Access::Unknown);
        assert_eq!(c.access(20914, 2), Access::Allowed);
        assert_eq!(c.dpid_for_ic(b"crm"), Some(10));
        assert_eq!(c.dpid_for_ic(b"DSID_20914"), Some(20914));
        assert_eq!(c.dpid_for_ic(b"DSID_1"), None);
        assert_eq!(c.dpid_for_ic(b"nope"), None);
    }

    #[test]
    fn redirect_domains_match_themselves_and_subdomains() {
        let c = Catalog::from_json(DEMO_JSON.as_bytes()).unwrap();
        assert!(c.redirect_allowed(777, b"sync.partner-x.example"));
        assert!(c.redirect_allowed(777, b"A.Sync.Partner-X.example"));
        assert!(!c.redirect_allowed(777, b"evilsync.partner-x.example"));
        assert!(!c.redirect_allowed(777, b"partner-x.example"));
        assert!(!c.redirect_allowed(1, b"sync.partner-x.example"));
        assert!(!c.redirect_allowed(5, b"sync.partner-x.example"));
    }

    #[test]
    fn a_file_with_a_bad_rule_is_rejected_with_its_name() {
        let path = std::env::temp_dir().join(format!("dcsd-catalog-{}-bad.json", std::process::id()));
        let doc = br#"{"customers":[{"id":1,"hosts":["a"]}],"data_sources":[{"dpid":1,"owner":1}],
            "traits":[{"sid":1,"dpid":1,"rule":"a == 1"},{"sid":2,"dpid":1,"rule":"(a == 1"}]}"#;
        std::fs::write(&path, doc).unwrap();
        let limits = TaxonomyLimits { max_bytes: 1 << 20, max_depth: 32 };
        let e = load(&TaxonomySource::File(path.clone()), limits).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(e, format!("{}: $.traits[1].rule: at 7: expected ')'", path.display()));
    }

    #[test]
    fn partners_are_compiled_per_customer() {
        let doc = br#"{"customers":[{"id":1,"hosts":["a"]},{"id":2,"hosts":["b"]},{"id":3,"hosts":["c"]}],
            "data_sources":[{"dpid":10,"owner":1,"realtime":{"url":"http://127.0.0.1:9/x?u=${UUID}"}},
                            {"dpid":20,"owner":2,"shared_with":[1],"realtime":{"url":"http://127.0.0.1:9/y"}},
                            {"dpid":30,"owner":1}]}"#;
        let c = Catalog::from_json(doc).unwrap();
        let dpids = |cu: u32| c.partners_for(cu).iter().map(|p| p.dpid).collect::<Vec<_>>();
        assert_eq!(dpids(1), [10, 20]);
        assert_eq!(dpids(2), [20]);
        assert!(dpids(3).is_empty());
        assert_eq!(c.partners().len(), 2);
        assert_eq!(c.partner_conns_per_core(), 64);
        let bad = br#"{"customers":[{"id":1,"hosts":["a"]}],
            "data_sources":[{"dpid":10,"owner":1,"realtime":{"url":"http://p.example/${NOPE}"}}]}"#;
        let e = Catalog::from_json(bad).unwrap_err();
        assert_eq!(e, ["$.data_sources[0].realtime.url: unknown macro ${NOPE}"]);
    }

    #[test]
    fn validation_and_rule_errors_are_reported_together() {
        let doc = br#"{"customers":[{"id":1,"hosts":["a"]}],
            "data_sources":[{"dpid":5,"owner":2}],
            "traits":[{"sid":1,"dpid":5,"rule":"c_x =="}]}"#;
        let all = Catalog::from_json(doc).unwrap_err().join("\n");
        assert!(all.contains("$.data_sources[0].owner: unknown ID 2"), "{all}");
        assert!(all.contains("$.traits[0].rule: at"), "{all}");
    }
}
