//! The taxonomy JSON (docs/taxonomy.md §1): hosts, data sources, traits, segments, destinations.
//!
//! Parsed with simd-json through serde, with `serde_path_to_error` so that a shape error names
//! its JSON path. This module is data plus validation: it checks the shape, unique IDs and that
//! every reference resolves. Rules are parsed and compiled by the catalog (`crate::catalog`),
//! which turns a validated document into what requests read; the document itself is dropped
//! after that. The global device data sources (docs/http-api.md §5.2) are data too and live
//! here ([`global_device`]).

use std::collections::BTreeMap;

use rustc_hash::FxHashSet;
use serde::Deserialize;

/// The whole document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taxonomy {
    /// Opaque version label from the control plane.
    #[serde(default)]
    pub version: String,
    /// Days a trait realization lives (default 120).
    #[serde(default = "default_trait_ttl_days")]
    pub trait_ttl_days: u32,
    /// Customers and the host names their tags call.
    pub customers: Vec<Customer>,
    /// Data sources (DPIDs), some with a real-time partner.
    #[serde(default)]
    pub data_sources: Vec<DataSource>,
    /// Traits.
    #[serde(default)]
    pub traits: Vec<Trait>,
    /// Segments.
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// Destinations.
    #[serde(default)]
    pub destinations: Vec<Destination>,
}

/// A customer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// Unique ID.
    pub id: u32,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Host names (matched case-insensitively, without port).
    pub hosts: Vec<String>,
    /// Experience Cloud org IDs accepted in `d_orgid`.
    #[serde(default)]
    pub orgs: Vec<String>,
    /// Whether `d_cts` may list traits and segments.
    #[serde(default)]
    pub cts: bool,
    /// Origins whose pages may read answers (CORS); `None` = any origin (AAM's behaviour).
    #[serde(default)]
    pub cors_origins: Option<Vec<String>>,
    /// The server token `d_uuid` needs (`X-DCS-Token`); `None` = `d_uuid` from anyone (AAM's
    /// behaviour).
    #[serde(default)]
    pub uuid_token: Option<Secret>,
}

/// A secret from the taxonomy: kept out of `Debug` output and error messages.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

/// A data source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    /// Unique data provider ID.
    pub dpid: u32,
    /// Integration code (unique when present).
    #[serde(default)]
    pub ic: Option<String>,
    /// Owning customer.
    pub owner: u32,
    /// Customers it is shared with.
    #[serde(default)]
    pub shared_with: Vec<u32>,
    /// Hosts allowed as `/ibs:` redirect targets.
    #[serde(default)]
    pub sync_redirect_domains: Vec<String>,
    /// Real-time partner call settings.
    #[serde(default)]
    pub realtime: Option<Realtime>,
}

/// A real-time partner (docs/partner-protocol.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Realtime {
    /// `http://` or `https://` URL template.
    pub url: String,
    /// `GET` or `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Per-call time-out, ms.
    #[serde(default = "default_partner_timeout_ms")]
    pub timeout_ms: u32,
    /// Freshness of a cached result, seconds.
    #[serde(default = "default_partner_ttl_s")]
    pub ttl_s: u32,
    /// Connection pool cap per core.
    #[serde(default = "default_max_conns")]
    pub max_conns_per_core: u32,
    /// Idle pooled connections are closed after this, ms.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u32,
    /// Static request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Circuit breaker.
    #[serde(default)]
    pub breaker: Option<Breaker>,
    /// For an `https://` URL: a PEM file of the CA certificates to trust instead of the
    /// system's (docs/partner-protocol.md §2.1).
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// Circuit breaker settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breaker {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long it stays open, ms.
    pub open_ms: u32,
}

/// A trait.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trait {
    /// Unique trait ID.
    pub sid: u64,
    /// Its data source.
    pub dpid: u32,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Rule text; `null` = realized only by `d_sid`.
    pub rule: Option<String>,
    /// A folder trait (a grouping): never realized through `d_sid` (default false).
    #[serde(default)]
    pub folder: bool,
}

/// A segment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// Unique segment ID.
    pub sid: u64,
    /// Legacy ID listed for `d_cts=1`.
    #[serde(default)]
    pub legacy_id: Option<u64>,
    /// Owning customer.
    pub customer: u32,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Rule text.
    pub rule: String,
}

/// A destination: `"type": "url"` or `"type": "cookie"`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Destination {
    /// URL destination (`dests`).
    Url(UrlDestination),
    /// Cookie destination (`stuff`).
    Cookie(CookieDestination),
}

/// A URL destination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlDestination {
    /// Unique destination ID.
    pub id: u32,
    /// Owning customer.
    pub customer: u32,
    /// `all`, `ios`, `android` or `browser`.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// URL template.
    #[serde(default)]
    pub url: String,
    /// HTTPS URL template.
    #[serde(default)]
    pub secure_url: String,
    /// `img` or `iframe`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Join aliases into one entry.
    #[serde(default)]
    pub serialize: bool,
    /// Alias delimiter when serialized.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Segment mappings.
    pub mappings: Vec<Mapping>,
}

/// A cookie destination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieDestination {
    /// Unique destination ID.
    pub id: u32,
    /// Owning customer.
    pub customer: u32,
    /// `all`, `ios`, `android` or `browser`.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Cookie name.
    pub name: String,
    /// Cookie domain.
    #[serde(default)]
    pub domain: String,
    /// Lifetime, days.
    #[serde(default)]
    pub ttl_days: u32,
    /// `single_key` or `key_value`.
    pub format: String,
    /// Key for `single_key`.
    #[serde(default)]
    pub key: String,
    /// Between key and values.
    #[serde(default = "default_key_separator")]
    pub key_separator: String,
    /// Between values.
    #[serde(default = "default_delimiter")]
    pub value_separator: String,
    /// Largest value, bytes.
    #[serde(default = "default_max_size")]
    pub max_size: u32,
    /// Segment mappings.
    pub mappings: Vec<Mapping>,
}

/// Segment → destination output.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Segment ID.
    pub segment: u64,
    /// URL destinations: the `%alias%` value.
    #[serde(default)]
    pub alias: Option<String>,
    /// Cookie destinations: key (for `key_value`).
    #[serde(default)]
    pub key: Option<String>,
    /// Cookie destinations: value.
    #[serde(default)]
    pub value: Option<String>,
}

/// Counts printed by `--check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Host names over all customers.
    pub hosts: usize,
    /// Data sources.
    pub data_sources: usize,
    /// Traits.
    pub traits: usize,
    /// Segments.
    pub segments: usize,
    /// Destinations.
    pub destinations: usize,
}

/// Shortest `uuid_token`, bytes.
pub const MIN_UUID_TOKEN_BYTES: usize = 16;

/// The built-in demo taxonomy (docs/taxonomy.md §1's example), used when none is configured.
pub const DEMO_JSON: &str = include_str!("demo_taxonomy.json");

fn default_trait_ttl_days() -> u32 {
    120
}
fn default_method() -> String {
    "GET".into()
}
fn default_partner_timeout_ms() -> u32 {
    50
}
fn default_partner_ttl_s() -> u32 {
    3600
}
fn default_max_conns() -> u32 {
    32
}
fn default_idle_timeout_ms() -> u32 {
    30_000
}
fn default_platform() -> String {
    "all".into()
}
fn default_kind() -> String {
    "img".into()
}
fn default_delimiter() -> String {
    ",".into()
}
fn default_key_separator() -> String {
    "=".into()
}
fn default_max_size() -> u32 {
    4096
}

/// Format rule of a global device data source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceFormat {
    /// 8-4-4-4-12 upper-case hex (IDFA).
    UuidUpper,
    /// 8-4-4-4-12 lower-case hex.
    UuidLower,
    /// ASCII letters and digits.
    Alphanumeric,
}

/// The global device data sources, which exist for every customer without being declared in a
/// taxonomy, with the format their IDs must have (docs/http-api.md §5.2).
pub fn global_device(dpid: u32) -> Option<DeviceFormat> {
    match dpid {
        20915 => Some(DeviceFormat::UuidUpper),
        20914 | 121_963 | 488_258 | 1_171_485 => Some(DeviceFormat::UuidLower),
        389_146 | 963_906 | 1_171_489 => Some(DeviceFormat::Alphanumeric),
        _ => None,
    }
}

/// The offset of the first `[` or `{` that opens a level deeper than `max` in a JSON text
/// (outside strings), or `None`. A scan with one counter, so a hostile document costs nothing
/// before it is refused (a parser would allocate per level).
pub fn nesting_over(json: &[u8], max: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in json.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

// === impl Secret ===

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

// === impl DataSource ===

impl DataSource {
    /// Whether `customer` may use this data source: it owns it or it is shared with it.
    pub fn allows(&self, customer: u32) -> bool {
        self.owner == customer || self.shared_with.contains(&customer)
    }
}

// === impl Customer ===

impl Customer {
    /// `cors_origins` (each an origin as browsers send it, no duplicates ignoring case) and
    /// `uuid_token` (printable ASCII without spaces, at least [`MIN_UUID_TOKEN_BYTES`]; the
    /// message never shows it).
    fn validate_privacy(&self, errs: &mut Vec<String>, i: usize) {
        let mut seen = FxHashSet::default();
        for (j, o) in self.cors_origins.iter().flatten().enumerate() {
            let place = format!("$.customers[{i}].cors_origins[{j}]");
            if !crate::http::url::is_origin(o.as_bytes()) {
                errs.push(format!("{place}: {o:?} is not an origin (scheme://host[:port], without a path)"));
            } else if crate::http::url::default_port_written(o.as_bytes()) {
                errs.push(format!(
                    "{place}: {o:?}: browsers never send the scheme's default port; leave it out"
                ));
            } else if !seen.insert(o.to_ascii_lowercase()) {
                errs.push(format!("{place}: duplicate origin {o:?}"));
            }
        }
        if let Some(Secret(t)) = &self.uuid_token {
            if t.len() < MIN_UUID_TOKEN_BYTES || !t.bytes().all(|b| b.is_ascii_graphic()) {
                errs.push(format!(
                    "$.customers[{i}].uuid_token: must be at least {MIN_UUID_TOKEN_BYTES} bytes of printable ASCII without spaces"
                ));
            }
        }
    }
}

// === impl Taxonomy ===

impl Taxonomy {
    /// Parses and validates a taxonomy document.
    ///
    /// # Errors
    /// Every problem found, each as `JSON path: reason`.
    pub fn parse(bytes: &[u8]) -> Result<Taxonomy, Vec<String>> {
        let (tax, errors) = Taxonomy::parse_unchecked(bytes)?;
        if errors.is_empty() {
            Ok(tax)
        } else {
            Err(errors)
        }
    }

    /// Parses a document and validates it, returning it with the validation errors found
    /// (unique IDs, references, enumerations), so that a caller can report those together with
    /// its own (the catalog adds the rule errors).
    ///
    /// # Errors
    /// The document is not JSON or not of the taxonomy's shape (`JSON path: reason`).
    pub fn parse_unchecked(bytes: &[u8]) -> Result<(Taxonomy, Vec<String>), Vec<String>> {
        let mut buf = bytes.to_vec();
        let mut de = simd_json::Deserializer::from_slice(&mut buf)
            .map_err(|e| vec![format!("$: not valid JSON: {e}")])?;
        let tax: Taxonomy = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| vec![format!("$.{}: {}", e.path(), e.inner())])?;
        let errors = tax.validate();
        Ok((tax, errors))
    }

    /// The counts `--check` prints.
    pub fn counts(&self) -> Counts {
        Counts {
            hosts: self.customers.iter().map(|c| c.hosts.len()).sum(),
            data_sources: self.data_sources.len(),
            traits: self.traits.len(),
            segments: self.segments.len(),
            destinations: self.destinations.len(),
        }
    }

    /// Unique IDs, resolvable references, well-formed enumerations.
    fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        let customers = unique(&mut errs, "customers", self.customers.iter().map(|c| c.id));
        let mut hosts = FxHashSet::default();
        let mut orgs = FxHashSet::default();
        for (i, c) in self.customers.iter().enumerate() {
            for (j, o) in c.orgs.iter().enumerate() {
                if o.is_empty() || !orgs.insert(o.as_str()) {
                    errs.push(format!("$.customers[{i}].orgs[{j}]: empty or duplicate org {o:?}"));
                }
            }
            for (j, h) in c.hosts.iter().enumerate() {
                if h.is_empty() || !hosts.insert(h.to_ascii_lowercase()) {
                    errs.push(format!("$.customers[{i}].hosts[{j}]: empty or duplicate host {h:?}"));
                }
            }
            c.validate_privacy(&mut errs, i);
        }
        let dpids = unique(&mut errs, "data_sources", self.data_sources.iter().map(|d| d.dpid));
        self.validate_data_sources(&mut errs, &customers);
        unique(&mut errs, "traits", self.traits.iter().map(|t| t.sid));
        for (i, t) in self.traits.iter().enumerate() {
            resolve(&mut errs, &dpids, t.dpid, || format!("$.traits[{i}].dpid"));
            if t.rule.as_deref().is_some_and(|r| r.trim().is_empty()) {
                errs.push(format!("$.traits[{i}].rule: empty rule (use null for d_sid-only traits)"));
            }
        }
        let segments = unique(&mut errs, "segments", self.segments.iter().map(|s| s.sid));
        for (i, s) in self.segments.iter().enumerate() {
            resolve(&mut errs, &customers, s.customer, || format!("$.segments[{i}].customer"));
            if s.rule.trim().is_empty() {
                errs.push(format!("$.segments[{i}].rule: empty rule"));
            }
        }
        self.validate_destinations(&mut errs, &customers, &segments);
        errs
    }

    fn validate_data_sources(&self, errs: &mut Vec<String>, customers: &FxHashSet<u64>) {
        let mut ics = FxHashSet::default();
        for (i, d) in self.data_sources.iter().enumerate() {
            resolve(errs, customers, d.owner, || format!("$.data_sources[{i}].owner"));
            for (j, c) in d.shared_with.iter().enumerate() {
                resolve(errs, customers, *c, || format!("$.data_sources[{i}].shared_with[{j}]"));
            }
            if let Some(ic) = &d.ic {
                if ic.is_empty() || !ics.insert(ic.as_str()) {
                    errs.push(format!("$.data_sources[{i}].ic: empty or duplicate {ic:?}"));
                }
            }
            if let Some(rt) = &d.realtime {
                // The URL's grammar is checked where it is compiled (crate::partner::spec).
                if rt.method != "GET" && rt.method != "POST" {
                    errs.push(format!("$.data_sources[{i}].realtime.method: GET or POST"));
                }
                if rt.timeout_ms == 0 || rt.max_conns_per_core == 0 {
                    errs.push(format!(
                        "$.data_sources[{i}].realtime: timeout_ms and max_conns_per_core must be > 0"
                    ));
                }
            }
        }
    }

    fn validate_destinations(
        &self,
        errs: &mut Vec<String>,
        customers: &FxHashSet<u64>,
        segments: &FxHashSet<u64>,
    ) {
        let ids = self.destinations.iter().map(|d| match d {
            Destination::Url(u) => u.id,
            Destination::Cookie(c) => c.id,
        });
        unique(errs, "destinations", ids);
        for (i, d) in self.destinations.iter().enumerate() {
            let (customer, platform, mappings) = match d {
                Destination::Url(u) => {
                    if u.kind != "img" && u.kind != "iframe" {
                        errs.push(format!("$.destinations[{i}].kind: img or iframe"));
                    }
                    (u.customer, &u.platform, &u.mappings)
                }
                Destination::Cookie(c) => {
                    if c.format != "single_key" && c.format != "key_value" {
                        errs.push(format!("$.destinations[{i}].format: single_key or key_value"));
                    }
                    (c.customer, &c.platform, &c.mappings)
                }
            };
            resolve(errs, customers, customer, || format!("$.destinations[{i}].customer"));
            if !matches!(platform.as_str(), "all" | "ios" | "android" | "browser") {
                errs.push(format!("$.destinations[{i}].platform: all, ios, android or browser"));
            }
            for (j, m) in mappings.iter().enumerate() {
                resolve(errs, segments, m.segment, || format!("$.destinations[{i}].mappings[{j}].segment"));
            }
        }
    }
}

/// Records duplicates of `kind` and returns the set of IDs.
fn unique<T: Into<u64>>(errs: &mut Vec<String>, kind: &str, ids: impl Iterator<Item = T>) -> FxHashSet<u64> {
    let mut seen = FxHashSet::default();
    for (i, id) in ids.enumerate() {
        let id = id.into();
        if !seen.insert(id) {
            errs.push(format!("$.{kind}[{i}]: duplicate ID {id}"));
        }
    }
    seen
}

fn resolve<T: Into<u64> + Copy>(
    errs: &mut Vec<String>,
    known: &FxHashSet<u64>,
    id: T,
    place: impl FnOnce() -> String,
) {
    if !known.contains(&id.into()) {
        errs.push(format!("{}: unknown ID {}", place(), id.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_taxonomy_is_valid() {
        let t = Taxonomy::parse(DEMO_JSON.as_bytes()).expect("demo taxonomy");
        let c = t.counts();
        assert_eq!((c.data_sources, c.traits, c.segments, c.destinations), (3, 5, 3, 2));
    }

    #[test]
    fn shape_errors_name_the_path() {
        let doc = br#"{"customers":[{"id":1,"hosts":["a"]}],"traits":[{"sid":"x","dpid":1,"rule":null}]}"#;
        let e = Taxonomy::parse(doc).unwrap_err();
        assert!(e[0].starts_with("$.traits[0].sid:"), "{e:?}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let doc = br#"{"customers":[{"id":1,"hosts":["a"],"colour":"red"}]}"#;
        let e = Taxonomy::parse(doc).unwrap_err();
        assert!(e[0].contains("colour"), "{e:?}");
    }

    #[test]
    fn references_and_duplicates_are_all_reported() {
        let doc = br#"{"customers":[{"id":1,"hosts":["a"]}],
            "data_sources":[{"dpid":5,"owner":2}],
            "traits":[{"sid":1,"dpid":6,"rule":null},{"sid":1,"dpid":5,"rule":"  "}]}"#;
        let e = Taxonomy::parse(doc).unwrap_err();
        let all = e.join("\n");
        assert!(all.contains("$.data_sources[0].owner: unknown ID 2"), "{all}");
        assert!(all.contains("$.traits[0].dpid: unknown ID 6"), "{all}");
        assert!(all.contains("$.traits[1]: duplicate ID 1"), "{all}");
        assert!(all.contains("$.traits[1].rule: empty rule"), "{all}");
    }

    #[test]
    fn privacy_switches_are_validated_with_their_paths() {
        let doc = br#"{"customers":[
            {"id":1,"hosts":["a"],"cors_origins":["https://www.a.example","http://localhost:8080"],
             "uuid_token":"0123456789abcdef"},
            {"id":2,"hosts":["b"],"cors_origins":[]},
            {"id":3,"hosts":["c"],"cors_origins":["https://c.example/","c.example","https://c.example:443",
                "https://x.example","HTTPS://X.example"],"uuid_token":"short"},
            {"id":4,"hosts":["d"],"uuid_token":"0123456789 abcdef"},
            {"id":5,"hosts":["e"],"uuid_token":""}]}"#;
        let all = Taxonomy::parse(doc).unwrap_err().join("\n");
        assert!(!all.contains("customers[0]") && !all.contains("customers[1]"), "{all}");
        assert!(
            all.contains("$.customers[2].cors_origins[0]: \"https://c.example/\" is not an origin"),
            "{all}"
        );
        assert!(all.contains("$.customers[2].cors_origins[1]: \"c.example\" is not an origin"), "{all}");
        assert!(
            all.contains("$.customers[2].cors_origins[2]: \"https://c.example:443\": browsers never"),
            "{all}"
        );
        assert!(all.contains("$.customers[2].cors_origins[4]: duplicate origin"), "{all}");
        for i in 2..=4 {
            assert!(
                all.contains(&format!("$.customers[{i}].uuid_token: must be at least 16 bytes")),
                "{all}"
            );
        }
        assert!(!all.contains("short") && !all.contains("abcdef"), "the token is never shown: {all}");
        let ok =
            Taxonomy::parse(br#"{"customers":[{"id":1,"hosts":["a"],"uuid_token":"~!0123456789abcdef"}]}"#);
        assert!(format!("{:?}", ok.unwrap().customers[0]).contains("Secret(..)"));
        let e = Taxonomy::parse(br#"{"customers":[{"id":1,"hosts":["a"],"cors_origins":"https://a"}]}"#);
        assert!(e.unwrap_err()[0].starts_with("$.customers[0].cors_origins:"));
    }

    #[test]
    fn invalid_json_is_reported() {
        let e = Taxonomy::parse(b"{\"customers\": [").unwrap_err();
        assert!(e[0].starts_with("$"), "{e:?}");
    }
}
