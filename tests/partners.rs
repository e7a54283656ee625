//! Real-time partner calls (docs/partner-protocol.md) through the real binaries: `dcsd` and
//! `dcsd-partner-sim` over sockets, each test with its own daemon and simulator on port 0.
//!
//! Each test's taxonomy has one customer (`localhost`, `cts`), a plain data source 1 and one
//! real-time data source per partner; partner `P` has the traits `P*10+1`
//! (`segment == "auto-intender"`) and `P*10+2` (`segment == "sports"`) and the segment
//! `100000+P` (`P*10+1 T`). The simulator's answer is chosen in the URL template
//! (`sim_mode`, `sim_delay_ms`, `sim_segments`, …; docs/partner-sim.md).
//!
//! Tests of the IO path (failures, pool, connections, pixel, concurrency) run on both drivers
//! ([`for_each_driver`]); the others on [`SEMANTICS_DRIVER`]. Time bounds are generous: the
//! figures belong to the benchmarks; these tests check what happens, and that nothing waits
//! past the budget by much.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // test clients may block

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::{
    connect, for_each_driver, temp_dir, wait_until, Daemon, Reader, Response, Sim, SimRequest, TempDir,
    SEMANTICS_DRIVER,
};
use dcsd::sim::{segments_for, DEFAULT_SEGMENTS};

/// What an answer may take beyond the partner budget (a debug build on a busy machine).
const SLACK: Duration = Duration::from_millis(300);
/// Bound of every poll.
const WAIT: Duration = Duration::from_secs(5);
/// A budget no partner answer misses on a busy machine, for tests that expect the partner's
/// answer in the same response.
const LONG_BUDGET_MS: u32 = 2000;

// === taxonomy ===

/// Partner `dpid`'s trait for `segment == "auto-intender"`.
fn trait_ai(dpid: u32) -> u64 {
    u64::from(dpid) * 10 + 1
}

/// Partner `dpid`'s trait for `segment == "sports"`.
fn trait_sports(dpid: u32) -> u64 {
    u64::from(dpid) * 10 + 2
}

/// The segment of partner `dpid`'s auto-intender trait.
fn segment_of(dpid: u32) -> u64 {
    100_000 + u64::from(dpid)
}

/// A trait of the plain data source 1: `c_likes == "pop"`.
const OWN_LIKES: u64 = 10;
/// A trait of the plain data source 1 with the partner traits' rule: `segment == "auto-intender"`.
const OWN_SEGMENT: u64 = 11;

/// A taxonomy with the real-time data sources `partners` (DPID, `realtime` block as JSON).
fn taxonomy(partners: &[(u32, String)]) -> String {
    let mut sources = vec![r#"{"dpid":1,"owner":1}"#.to_string()];
    let mut traits = vec![
        format!(r#"{{"sid":{OWN_LIKES},"dpid":1,"rule":"c_likes == \"pop\""}}"#),
        format!(r#"{{"sid":{OWN_SEGMENT},"dpid":1,"rule":"segment == \"auto-intender\""}}"#),
    ];
    let mut segments = Vec::new();
    for (dpid, rt) in partners {
        sources.push(format!(r#"{{"dpid":{dpid},"owner":1,"realtime":{rt}}}"#));
        let (ai, sports) = (trait_ai(*dpid), trait_sports(*dpid));
        traits.push(format!(r#"{{"sid":{ai},"dpid":{dpid},"rule":"segment == \"auto-intender\""}}"#));
        traits.push(format!(r#"{{"sid":{sports},"dpid":{dpid},"rule":"segment == \"sports\""}}"#));
        segments.push(format!(r#"{{"sid":{},"customer":1,"rule":"{ai}T"}}"#, segment_of(*dpid)));
    }
    format!(
        r#"{{"version":"partners test","customers":[{{"id":1,"name":"acme","hosts":["localhost"],"cts":true}}],
"data_sources":[{}],"traits":[{}],"segments":[{}]}}"#,
        sources.join(","),
        traits.join(","),
        segments.join(",")
    )
}

/// A `realtime` block: `url` plus `extra` fields (`"timeout_ms":150,…`).
fn rt(url: &str, extra: &str) -> String {
    if extra.is_empty() {
        format!(r#"{{"url":"{url}"}}"#)
    } else {
        format!(r#"{{"url":"{url}",{extra}}}"#)
    }
}

/// A profile ID: 38 digits.
fn uuid(n: u64) -> String {
    format!("{n:038}")
}

/// Percent-encodes everything but unreserved characters (as dcsd encodes macros).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Records whose target starts with `path` (`/p701?`).
fn on_path<'a>(recs: &'a [SimRequest], path: &str) -> Vec<&'a SimRequest> {
    recs.iter().filter(|r| r.target.starts_with(path)).collect()
}

// === the daemon ===

/// A daemon on a partner taxonomy written to a file of its own (so a test can rewrite it).
struct Dcs {
    d: Daemon,
    tax: PathBuf,
    budget: Duration,
    _dir: TempDir,
}

/// A JSON `/event` answer (docs/http-api.md §6.3), the fields these tests read.
#[derive(Debug, serde::Deserialize)]
struct Answer {
    uuid: Option<String>,
    tid: String,
    #[serde(default)]
    traits: Vec<u64>,
    #[serde(default)]
    segments: Vec<u64>,
}

/// One `/event` exchange: the answer, and how long it took from connect to its last byte.
struct Ev {
    a: Answer,
    r: Response,
    elapsed: Duration,
}

impl Dcs {
    /// `dcsd --threads 1 --driver DRIVER` with `[partners] budget_ms` and `partners`.
    fn start(driver: &str, budget_ms: u32, partners: &[(u32, String)]) -> Dcs {
        let dir = temp_dir();
        let tax = dir.0.join("taxonomy.json");
        std::fs::write(&tax, taxonomy(partners)).unwrap();
        let toml =
            format!("[server]\ntaxonomy = \"{}\"\n[partners]\nbudget_ms = {budget_ms}\n", tax.display());
        let d = Daemon::start(driver, &toml);
        Dcs { d, tax, budget: Duration::from_millis(u64::from(budget_ms)), _dir: dir }
    }

    /// Rewrites the taxonomy with `partners`, sends SIGHUP and waits for the `nth` reload.
    fn reload(&self, partners: &[(u32, String)], nth: usize) {
        std::fs::write(&self.tax, taxonomy(partners)).unwrap();
        self.d.signal("HUP");
        self.d.wait_log("reloaded taxonomy", nth);
    }

    /// `GET /event?d_rtbd=json&d_cts=2&QUERY` with `headers` (each line ending in CRLF).
    fn event_with(&self, query: &str, headers: &str) -> Ev {
        let raw = format!(
            "GET /event?d_rtbd=json&d_cts=2&{query} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n"
        );
        let t = Instant::now();
        let r = self.d.request(raw.as_bytes());
        let elapsed = t.elapsed();
        assert_eq!(r.status, 200, "{}", r.body_str());
        let a = simd_json::serde::from_slice(&mut r.body.clone())
            .unwrap_or_else(|e| panic!("{e}: {}", r.body_str()));
        Ev { a, r, elapsed }
    }

    fn event(&self, query: &str) -> Ev {
        self.event_with(query, "")
    }

    /// `dcsd_partner_outcomes_total{dpid,outcome}`.
    fn outcome(&self, dpid: u32, outcome: &str) -> u64 {
        self.d.metric(&format!("dcsd_partner_outcomes_total{{dpid=\"{dpid}\",outcome=\"{outcome}\"}}"))
    }

    /// Every outcome of `dpid` with a non-zero count.
    fn outcomes(&self, dpid: u32) -> BTreeMap<&'static str, u64> {
        const ALL: [&str; 9] = [
            "ok",
            "empty",
            "timeout",
            "error",
            "late",
            "skipped_cached",
            "skipped_no_id",
            "pool_exhausted",
            "circuit_open",
        ];
        ALL.into_iter().map(|o| (o, self.outcome(dpid, o))).filter(|(_, n)| *n > 0).collect()
    }

    /// `dcsd_partner_calls_total{dpid}`.
    fn calls(&self, dpid: u32) -> u64 {
        self.d.metric(&format!("dcsd_partner_calls_total{{dpid=\"{dpid}\"}}"))
    }

    /// `dcsd_partner_connections{dpid,state}`.
    fn conns(&self, dpid: u32, state: &str) -> u64 {
        self.d.metric(&format!("dcsd_partner_connections{{dpid=\"{dpid}\",state=\"{state}\"}}"))
    }

    /// `dcsd_partner_circuit_open{dpid}`.
    fn circuit_open(&self, dpid: u32) -> u64 {
        self.d.metric(&format!("dcsd_partner_circuit_open{{dpid=\"{dpid}\"}}"))
    }

    /// Asserts that a JSON answer left within the budget (plus [`SLACK`]).
    fn within_budget(&self, ev: &Ev, what: &str) {
        assert!(ev.elapsed < self.budget + SLACK, "{what}: answered after {:?}", ev.elapsed);
    }
}

// === 1. failures ===

/// Every way a partner can fail is counted (`error` or `timeout`), never holds the JSON answer
/// past the budget, realizes nothing and caches nothing: the next request calls again.
#[test]
fn failures_are_counted_answered_within_the_budget_and_not_cached() {
    for_each_driver(|driver| {
        let sim = Sim::start(&[]);
        let closed = free_port();
        // A hang and a slow body outlast `timeout_ms` (600), itself well over the budget (80)
        // and its slack: the answer leaves at the budget, the time-out is counted later.
        let cases: Vec<(u32, String, &str)> = vec![
            (701, sim.url("/p701?uid=${UUID}&sim_mode=status:503"), "error"),
            (702, sim.url("/p702?uid=${UUID}&sim_mode=garbage"), "error"),
            (703, sim.url("/p703?uid=${UUID}&sim_mode=wrong-shape"), "error"),
            (704, sim.url("/p704?uid=${UUID}&sim_mode=oversize"), "error"),
            (705, sim.url("/p705?uid=${UUID}&sim_mode=reset"), "error"),
            (706, sim.url("/p706?uid=${UUID}&sim_mode=hang"), "timeout"),
            (707, sim.url("/p707?uid=${UUID}&sim_mode=slow-body:100"), "timeout"),
            (708, format!("http://127.0.0.1:{closed}/p708?uid=${{UUID}}"), "error"),
            (709, "http://partner.invalid:9/p709?uid=${UUID}".to_string(), "error"),
        ];
        let partners: Vec<(u32, String)> =
            cases.iter().map(|(dpid, url, _)| (*dpid, rt(url, r#""timeout_ms":600"#))).collect();
        let dcs = Dcs::start(driver, 80, &partners);
        let u = uuid(1);
        for round in 1..=2u64 {
            let ev = dcs.event(&format!("d_uuid={u}"));
            dcs.within_budget(&ev, &format!("{driver} round {round}"));
            assert_eq!(ev.a.uuid.as_deref(), Some(u.as_str()));
            assert!(ev.a.traits.is_empty() && ev.a.segments.is_empty(), "{driver}: {}", ev.r.body_str());
            for (dpid, _, outcome) in &cases {
                let what = format!("{driver}: data source {dpid} counts {round} {outcome}");
                wait_until(&what, WAIT, || dcs.outcome(*dpid, outcome) == round);
                // Called again in round 2: nothing was cached, nothing else was counted.
                assert_eq!(dcs.outcomes(*dpid), BTreeMap::from([(*outcome, round)]), "{what}");
                assert_eq!(dcs.calls(*dpid), round, "{what}");
            }
            let recs = sim.requests();
            for dpid in 701..=707 {
                assert_eq!(on_path(&recs, &format!("/p{dpid}?")).len() as u64, round, "{driver}: {dpid}");
            }
        }
        assert_eq!(sim.stats().requests, 14, "{driver}");
    });
}

// === 2. ok and empty ===

/// `200` with segments is `ok`; `204`, `404` and `{"segments":[]}` are `empty`. The partner
/// traits and their segment are in the same answer, and every result is cached for the profile.
#[test]
fn ok_and_empty_answers_land_in_the_same_answer_and_are_cached() {
    for_each_driver(|driver| {
        let sim = Sim::start(&[]);
        let cases: Vec<(u32, String, &str)> = vec![
            (801, sim.url("/p801?uid=${UUID}&sim_segments=auto-intender,travel"), "ok"),
            (802, sim.url("/p802?uid=${UUID}&sim_mode=empty"), "empty"),
            (803, sim.url("/p803?uid=${UUID}&sim_mode=notfound"), "empty"),
            (804, sim.url("/p804?uid=${UUID}&sim_segments="), "empty"),
            (805, sim.url("/p805?uid=${UUID}&sim_segments=travel"), "ok"),
        ];
        let extra = format!(r#""timeout_ms":{LONG_BUDGET_MS}"#);
        let partners: Vec<(u32, String)> = cases.iter().map(|(d, url, _)| (*d, rt(url, &extra))).collect();
        let dcs = Dcs::start(driver, LONG_BUDGET_MS, &partners);
        let (u1, u2) = (uuid(1), uuid(2));

        let ev = dcs.event(&format!("d_uuid={u1}"));
        assert_eq!(ev.a.traits, [trait_ai(801)], "{driver}: {}", ev.r.body_str());
        assert_eq!(ev.a.segments, [segment_of(801)], "{driver}");
        for (dpid, _, outcome) in &cases {
            assert_eq!(dcs.outcomes(*dpid), BTreeMap::from([(*outcome, 1)]), "{driver}: {dpid}");
        }
        assert_eq!(sim.stats().requests, 5);

        // Cached: not called again; the profile keeps the segment.
        let ev = dcs.event(&format!("d_uuid={u1}"));
        assert!(ev.a.traits.is_empty(), "{driver}: {}", ev.r.body_str());
        assert_eq!(ev.a.segments, [segment_of(801)], "{driver}");
        for (dpid, _, outcome) in &cases {
            let want = BTreeMap::from([(*outcome, 1), ("skipped_cached", 1)]);
            assert_eq!(dcs.outcomes(*dpid), want, "{driver}: {dpid}");
            assert_eq!(dcs.calls(*dpid), 1);
        }
        assert_eq!(sim.stats().requests, 5, "{driver}: a cached result is not asked again");

        // Another profile has no cached result.
        let ev = dcs.event(&format!("d_uuid={u2}"));
        assert_eq!(ev.a.traits, [trait_ai(801)], "{driver}");
        assert_eq!(sim.stats().requests, 10, "{driver}");
    });
}

// === 3. late results ===

/// A partner slower than the budget but within its `timeout_ms`: the answer leaves at the
/// budget without its trait, the result is counted `late` and lands in the profile, and the
/// next request of the profile shows the segment without calling again.
#[test]
fn a_late_result_lands_in_the_profile_for_the_next_request() {
    for_each_driver(|driver| {
        let sim = Sim::start(&[]);
        let url = sim.url("/late?uid=${UUID}&sim_delay_ms=400&sim_segments=auto-intender");
        let dcs = Dcs::start(driver, 80, &[(777, rt(&url, r#""timeout_ms":3000"#))]);
        let u = uuid(7);
        let ev = dcs.event(&format!("d_uuid={u}"));
        dcs.within_budget(&ev, driver);
        assert!(ev.elapsed >= Duration::from_millis(70), "{driver}: JSON waits for the budget");
        assert!(ev.a.traits.is_empty() && ev.a.segments.is_empty(), "{driver}: {}", ev.r.body_str());
        wait_until(&format!("{driver}: late counted"), WAIT, || dcs.outcome(777, "late") == 1);
        assert_eq!(dcs.outcomes(777), BTreeMap::from([("late", 1)]), "{driver}: not ok, not timeout");

        let ev = dcs.event(&format!("d_uuid={u}"));
        assert_eq!(ev.a.segments, [segment_of(777)], "{driver}: {}", ev.r.body_str());
        assert_eq!(dcs.outcomes(777), BTreeMap::from([("late", 1), ("skipped_cached", 1)]), "{driver}");
        assert_eq!((sim.stats().requests, dcs.calls(777)), (1, 1), "{driver}");
    });
}

// === 4. ttl ===

/// The answer's `ttl` lowers the data source's `ttl_s`, and never raises it.
#[test]
fn the_answer_ttl_caps_freshness_and_never_raises_it() {
    let sim = Sim::start(&[]);
    let timeout = format!(r#""timeout_ms":{LONG_BUDGET_MS}"#);
    let partners = [
        // ttl_s 3600, the answer says 2.
        (771, rt(&sim.url("/a?uid=${UUID}&sim_ttl=2&sim_segments=auto-intender"), &timeout)),
        // ttl_s 2, the answer says 3600.
        (
            772,
            rt(
                &sim.url("/b?uid=${UUID}&sim_ttl=3600&sim_segments=auto-intender"),
                &format!("{timeout},\"ttl_s\":2"),
            ),
        ),
    ];
    let dcs = Dcs::start(SEMANTICS_DRIVER, LONG_BUDGET_MS, &partners);
    let u = uuid(4);
    let t0 = Instant::now();
    let ev = dcs.event(&format!("d_uuid={u}"));
    assert_eq!(ev.a.traits, [trait_ai(771), trait_ai(772)], "{}", ev.r.body_str());
    // Fresh for at least a second (expiry is in whole seconds: now + 2).
    dcs.event(&format!("d_uuid={u}"));
    assert_eq!((dcs.outcome(771, "skipped_cached"), dcs.outcome(772, "skipped_cached")), (1, 1));
    let called = |path: &str| on_path(&sim.requests(), path).len();
    wait_until("both partners are called again", WAIT, || {
        dcs.event(&format!("d_uuid={u}"));
        called("/a?") == 2 && called("/b?") == 2
    });
    assert!(t0.elapsed() >= Duration::from_secs(1), "re-called after {:?}", t0.elapsed());
    assert_eq!((dcs.calls(771), dcs.calls(772)), (2, 2));
}

// === 5. ${DPUUID} ===

/// A `${DPUUID}` template is skipped (`skipped_no_id`) without an ID; a declared ID (`d_cid`)
/// gives one, sent percent-encoded; the profile's synced ID serves later requests.
#[test]
fn dpuuid_templates_wait_for_an_id_and_encode_it() {
    let sim = Sim::start(&[]);
    // ttl_s 0: nothing stays fresh, every request calls.
    let url = sim.url("/s?uid=${DPUUID}&sim_segments=auto-intender");
    let dcs =
        Dcs::start(SEMANTICS_DRIVER, LONG_BUDGET_MS, &[(777, rt(&url, r#""ttl_s":0,"timeout_ms":2000"#))]);
    let u = uuid(5);
    let ev = dcs.event(&format!("d_uuid={u}"));
    assert!(ev.a.traits.is_empty(), "{}", ev.r.body_str());
    assert_eq!(dcs.outcomes(777), BTreeMap::from([("skipped_no_id", 1)]));
    assert_eq!(sim.stats().requests, 0);

    let id = "a b&c=d/é+~";
    let ev = dcs.event(&format!("d_uuid={u}&d_cid={}", enc(&format!("777\u{1}{id}"))));
    assert_eq!(ev.a.traits, [trait_ai(777)], "{}", ev.r.body_str());
    let recs = sim.requests();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].query_raw("uid"), Some("a%20b%26c%3Dd%2F%C3%A9%2B~"), "{}", recs[0].target);
    assert_eq!(recs[0].query("uid").as_deref(), Some(id));

    // The declared ID is now the profile's synced ID for 777.
    dcs.event(&format!("d_uuid={u}"));
    let recs = sim.requests();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].query("uid").as_deref(), Some(id));
    assert_eq!(dcs.outcomes(777), BTreeMap::from([("ok", 2), ("skipped_no_id", 1)]));
}

// === 6. circuit breaker ===

/// After `breaker.failures` consecutive failures the circuit opens (`circuit_open`, no calls);
/// after `open_ms` one probe goes through: a failed probe opens it again, a good one closes it.
#[test]
fn the_breaker_opens_probes_and_closes() {
    // A failing partner on a port of our choosing; later a good one on the same port.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let failing = Sim::start_at(&listen, &["--mode", "status:503"]);
    let url = format!("http://{listen}/cb?uid=${{UUID}}&sim_segments=auto-intender");
    let block = rt(&url, r#""timeout_ms":2000,"breaker":{"failures":3,"open_ms":500}"#);
    let dcs = Dcs::start(SEMANTICS_DRIVER, LONG_BUDGET_MS, &[(777, block)]);
    let mut n = 0;
    let mut ask = || {
        n += 1;
        dcs.event(&format!("d_uuid={}", uuid(n)))
    };
    for _ in 0..3 {
        ask();
    }
    let opened = Instant::now();
    assert_eq!(dcs.outcomes(777), BTreeMap::from([("error", 3)]));
    assert_eq!(dcs.circuit_open(777), 1);
    ask();
    assert_eq!(dcs.outcomes(777), BTreeMap::from([("error", 3), ("circuit_open", 1)]));
    assert_eq!((failing.stats().requests, dcs.calls(777)), (3, 3), "an open circuit calls nobody");

    // After open_ms, one probe: it fails, the circuit opens again.
    wait_until("a probe reaches the partner", WAIT, || {
        ask();
        failing.stats().requests == 4
    });
    assert!(opened.elapsed() >= Duration::from_millis(400), "probed after {:?}", opened.elapsed());
    ask();
    assert_eq!((failing.stats().requests, dcs.outcome(777, "error")), (4, 4), "one probe only");
    assert_eq!(dcs.circuit_open(777), 1);

    // The partner recovers: the next probe closes the circuit.
    drop(failing);
    let good = Sim::start_at(&listen, &[]);
    wait_until("a probe succeeds", WAIT, || {
        ask();
        dcs.outcome(777, "ok") == 1
    });
    assert_eq!(dcs.circuit_open(777), 0);
    assert_eq!(good.stats().requests, 1);
    let ev = ask();
    assert_eq!(ev.a.traits, [trait_ai(777)], "closed: called again");
    assert_eq!(good.stats().requests, 2);
}

// === 7. pool exhaustion ===

/// `max_conns_per_core: 2` and a hanging partner: of 5 concurrent requests 2 call and 3 are
/// counted `pool_exhausted`; none waits for a connection, every answer leaves within the budget.
#[test]
fn a_full_pool_skips_calls_without_queueing() {
    for_each_driver(|driver| {
        let sim = Sim::start(&[]);
        let url = sim.url("/h?uid=${UUID}&sim_mode=hang");
        let dcs = Dcs::start(driver, 80, &[(777, rt(&url, r#""timeout_ms":1500,"max_conns_per_core":2"#))]);
        let start = Barrier::new(5);
        let evs: Vec<Ev> = std::thread::scope(|s| {
            let runs: Vec<_> = (1..=5)
                .map(|i| {
                    let (dcs, start) = (&dcs, &start);
                    s.spawn(move || {
                        start.wait();
                        dcs.event(&format!("d_uuid={}", uuid(i)))
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for ev in &evs {
            dcs.within_budget(ev, driver);
        }
        assert_eq!(dcs.outcome(777, "pool_exhausted"), 3, "{driver}");
        assert_eq!(dcs.conns(777, "open"), 2, "{driver}: the two hanging calls");
        wait_until(&format!("{driver}: the simulator holds two calls"), WAIT, || sim.stats().requests == 2);
        wait_until(&format!("{driver}: both calls time out"), WAIT, || dcs.outcome(777, "timeout") == 2);
        assert_eq!(dcs.outcomes(777), BTreeMap::from([("timeout", 2), ("pool_exhausted", 3)]), "{driver}");
        assert_eq!((dcs.calls(777), dcs.conns(777, "open")), (2, 0), "{driver}");
    });
}

// === 8. what partners are sent ===

/// Partner requests carry the macros, `User-Agent: dcsd/…`, `Accept` and the static headers;
/// a `POST` body's `signals` holds exactly the `c_` and unprefixed signals. Nothing private
/// (`p_`), header-derived (`h_`, the client's address) or platform (`d_`) leaves.
#[test]
fn partner_requests_carry_the_contract_and_nothing_private() {
    // The simulator on 127.0.0.2, so that the client's address (127.0.0.1) appears nowhere.
    let sim = Sim::start_at("127.0.0.2:0", &[]);
    let q = "u=${UUID}&d=${DPID}&t=${TID}&g=${GDPR}&gc=${GDPR_CONSENT}&sim_segments=auto-intender";
    let headers = r#""headers":{"Authorization":"Bearer tok-1","X-Static":"s1"},"timeout_ms":2000"#;
    let partners = [
        (777, rt(&sim.url(&format!("/post?{q}")), &format!(r#""method":"POST",{headers}"#))),
        (778, rt(&sim.url(&format!("/get?{q}")), headers)),
    ];
    let dcs = Dcs::start(SEMANTICS_DRIVER, LONG_BUDGET_MS, &partners);
    let u = uuid(8);
    let query = format!(
        "d_uuid={u}&p_secret=xyz&c_likes=pop&c_multi=a&c_multi=b&plain=v%201&segment=travel\
         &d_ptfm=web&d_foo=xyz-d&h_referer=xyz-h"
    );
    let client_headers = "User-Agent: SecretBrowser/9.9\r\nReferer: http://ref.example/xyz-path\r\n\
                          X-Forwarded-For: 10.9.8.7\r\nCookie: other=xyz-cookie\r\n";
    let ev = dcs.event_with(&query, client_headers);
    assert_eq!(ev.a.traits, [OWN_LIKES, trait_ai(777), trait_ai(778)], "{}", ev.r.body_str());
    let recs = sim.requests();
    assert_eq!(recs.len(), 2);
    let tid = ev.a.tid.clone();
    assert_eq!(tid.len(), 12);
    for rec in &recs {
        // Everything sent, less the transaction ID (random base64 that could spell anything).
        let all = format!("{rec:?}").replace(&enc(&tid), "").replace(&tid, "");
        for secret in ["xyz", "127.0.0.1", "10.9.8.7", "SecretBrowser", "ref.example"] {
            assert!(!all.contains(secret), "{secret:?} sent to the partner: {all}");
        }
        let keys: Vec<&str> = rec
            .target
            .split_once('?')
            .unwrap()
            .1
            .split('&')
            .map(|kv| kv.split('=').next().unwrap())
            .collect();
        assert_eq!(keys, ["u", "d", "t", "g", "gc", "sim_segments"], "only the template's parameters");
        let dpid = if rec.method == "POST" { "777" } else { "778" };
        assert_eq!(rec.query("u").as_deref(), Some(u.as_str()));
        assert_eq!(rec.query("d").as_deref(), Some(dpid));
        assert_eq!(rec.query("t").as_deref(), Some(tid.as_str()), "${{TID}} is the answer's tid");
        assert_eq!((rec.query("g").as_deref(), rec.query("gc").as_deref()), (Some("0"), Some("")));
        assert!(rec.header("user-agent").is_some_and(|v| v.starts_with("dcsd/")), "{all}");
        assert_eq!(rec.header("accept"), Some("application/json"));
        assert_eq!(rec.header("authorization"), Some("Bearer tok-1"));
        assert_eq!(rec.header("x-static"), Some("s1"));
        assert_eq!(rec.header("host"), Some(sim.addr.to_string().as_str()));
        let mut names: Vec<String> = rec.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
        names.sort();
        let mut want = vec!["accept", "authorization", "host", "user-agent", "x-static"];
        if rec.method == "POST" {
            want.extend(["content-length", "content-type"]);
        }
        want.sort_unstable();
        assert_eq!(names, want, "no other header: {all}");
    }
    let post = recs.iter().find(|r| r.method == "POST").expect("the POST call");
    assert_eq!(recs.iter().find(|r| r.method == "GET").unwrap().body, "");
    #[derive(Debug, serde::Deserialize)]
    struct Body {
        uuid: String,
        dpuuid: Option<String>,
        dpid: u32,
        tid: String,
        signals: BTreeMap<String, Vec<String>>,
    }
    let body: Body = simd_json::serde::from_slice(&mut post.body.clone().into_bytes()).unwrap();
    assert_eq!(
        (body.uuid.as_str(), body.dpuuid, body.dpid, body.tid.as_str()),
        (u.as_str(), None, 777, tid.as_str())
    );
    let want: BTreeMap<String, Vec<String>> = [
        ("c_likes", vec!["pop"]),
        ("c_multi", vec!["a", "b"]),
        ("plain", vec!["v 1"]),
        ("segment", vec!["travel"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(body.signals, want);
}

// === 9. reload ===

/// A reload that changes a partner's URL gives it a fresh pool: the next calls go to the new
/// address, none to the old one, whose idle connection is closed.
#[test]
fn a_reload_moves_calls_to_the_new_url() {
    let (a, b) = (Sim::start(&[]), Sim::start(&[]));
    let block = |sim: &Sim| rt(&sim.url("/r?uid=${UUID}&sim_segments=auto-intender"), r#""timeout_ms":2000"#);
    let dcs = Dcs::start(SEMANTICS_DRIVER, LONG_BUDGET_MS, &[(777, block(&a))]);
    let ev = dcs.event(&format!("d_uuid={}", uuid(1)));
    assert_eq!(ev.a.traits, [trait_ai(777)]);
    assert_eq!((a.stats().requests, a.stats().open_connections), (1, 1));

    dcs.reload(&[(777, block(&b))], 1);
    for n in 2..=3 {
        let ev = dcs.event(&format!("d_uuid={}", uuid(n)));
        assert_eq!(ev.a.traits, [trait_ai(777)], "{}", ev.r.body_str());
    }
    assert_eq!(a.stats().requests, 1, "the old address gets no call");
    assert_eq!((b.stats().requests, b.stats().connections), (2, 1), "the new one gets them, kept alive");
    wait_until("the old pool's connection is closed", WAIT, || a.stats().open_connections == 0);
    assert_eq!(dcs.calls(777), 3, "counters carry across the reload");
}

// === 10. concurrency ===

/// 300 concurrent JSON requests on one worker, each its own user (`d_cid`), with a 20 ms
/// partner: every answer holds its own user's partner traits and segment and its own profile
/// ID, and the daemon is healthy afterwards.
#[test]
fn hundreds_of_concurrent_requests_each_get_their_own_answer() {
    const N: usize = 300;
    for_each_driver(|driver| {
        let sim = Sim::start(&[]);
        let url = sim.url("/c?uid=${DPUUID}&u=${UUID}&sim_delay_ms=20");
        let block = rt(&url, r#""timeout_ms":5000,"max_conns_per_core":512"#);
        let dcs = Dcs::start(driver, 5000, &[(777, block)]);
        // Every request in flight at once: connect all, send all, then read all.
        let mut conns: Vec<Reader> = (0..N).map(|_| Reader::new(connect(dcs.d.addr))).collect();
        for (i, c) in conns.iter_mut().enumerate() {
            let raw = format!(
                "GET /event?d_rtbd=json&d_cts=2&d_cid={} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                enc(&format!("777\u{1}user{i}"))
            );
            c.send(raw.as_bytes());
        }
        let answers: Vec<Answer> = conns
            .iter_mut()
            .map(|c| {
                let r = c.response(false).expect("an answer");
                assert_eq!(r.status, 200, "{driver}");
                simd_json::serde::from_slice(&mut r.body.clone()).unwrap()
            })
            .collect();
        let pool: Vec<String> = DEFAULT_SEGMENTS.iter().map(|s| s.to_string()).collect();
        let recs = sim.requests();
        let uuid_sent: BTreeMap<String, String> =
            recs.iter().map(|r| (r.query("uid").unwrap(), r.query("u").unwrap())).collect();
        assert_eq!(uuid_sent.len(), N, "{driver}: one call per user");
        let mut with_trait = 0;
        for (i, a) in answers.iter().enumerate() {
            let user = format!("user{i}");
            let segs = segments_for(user.as_bytes(), &pool, 2);
            let ai = segs.iter().any(|s| s == "auto-intender");
            let mut traits = Vec::new();
            if ai {
                traits.push(trait_ai(777));
            }
            if segs.iter().any(|s| s == "sports") {
                traits.push(trait_sports(777));
            }
            assert_eq!(a.traits, traits, "{driver}: {user} ({segs:?})");
            assert_eq!(a.segments, if ai { vec![segment_of(777)] } else { vec![] }, "{driver}: {user}");
            assert_eq!(a.uuid.as_ref(), uuid_sent.get(&user), "{driver}: {user}'s own profile ID");
            with_trait += usize::from(ai);
        }
        assert!((1..N).contains(&with_trait), "{driver}: {with_trait} of {N} have the trait");
        let distinct: BTreeSet<_> = answers.iter().map(|a| a.uuid.clone()).collect();
        assert_eq!(distinct.len(), N, "{driver}");
        assert_eq!(dcs.outcomes(777), BTreeMap::from([("ok", N as u64)]), "{driver}");
        assert!(sim.stats().connections > 1, "{driver}: calls ran concurrently");
        let health = dcs.d.request(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(health.status, 200, "{driver}");
    });
}

// === 11. pixel ===

/// A pixel request answers at once; its calls run on and their results land in the profile
/// (counted `ok`, not `late`): the next JSON request shows the segment without calling.
#[test]
fn pixel_requests_answer_at_once_and_results_land() {
    for_each_driver(|driver| {
        let sim = Sim::start(&[]);
        let url = sim.url("/px?uid=${UUID}&sim_delay_ms=500&sim_segments=auto-intender");
        let dcs = Dcs::start(driver, 80, &[(777, rt(&url, r#""timeout_ms":3000"#))]);
        let u = uuid(11);
        let t = Instant::now();
        let r = dcs.d.request(
            format!("GET /event?d_uuid={u} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let elapsed = t.elapsed();
        assert_eq!((r.status, r.header("content-type")), (200, Some("image/gif")), "{driver}");
        assert!(elapsed < Duration::from_millis(300), "{driver}: the pixel waited {elapsed:?}");
        wait_until(&format!("{driver}: the call lands"), WAIT, || dcs.outcome(777, "ok") == 1);
        let ev = dcs.event(&format!("d_uuid={u}"));
        assert_eq!(ev.a.segments, [segment_of(777)], "{driver}: {}", ev.r.body_str());
        assert_eq!(dcs.outcomes(777), BTreeMap::from([("ok", 1), ("skipped_cached", 1)]), "{driver}");
        assert_eq!(sim.stats().requests, 1, "{driver}");
    });
}

// === 12. partner traits cannot be forged ===

/// A request's own `segment=auto-intender`, `d_sid=<partner trait>` or `d_tdpid=<partner>`
/// realizes no partner trait; only the partner's answer does.
#[test]
fn partner_traits_cannot_be_forged_by_the_request() {
    let sim = Sim::start(&[]);
    let url = sim.url("/f?uid=${UUID}&sim_segments=sports");
    let dcs = Dcs::start(SEMANTICS_DRIVER, LONG_BUDGET_MS, &[(777, rt(&url, r#""timeout_ms":2000"#))]);
    let forged = [
        "segment=auto-intender".to_string(),
        format!("d_sid={}", trait_ai(777)),
        "d_tdpid=777&segment=auto-intender".to_string(),
        format!("segment=auto-intender&d_sid={}&d_sid={}", trait_ai(777), trait_sports(777)),
    ];
    for (n, f) in forged.iter().enumerate() {
        let ev = dcs.event(&format!("d_uuid={}&{f}", uuid(n as u64 + 1)));
        // The plain data source's trait with the same rule is realized (the signal is read),
        // except under `d_tdpid=777`, which limits the request's traits to that data source.
        let own = if f.contains("segment=") && !f.contains("d_tdpid") { vec![OWN_SEGMENT] } else { vec![] };
        let want: Vec<u64> = own.into_iter().chain([trait_sports(777)]).collect();
        assert_eq!(ev.a.traits, want, "{f}: {}", ev.r.body_str());
        assert!(ev.a.segments.is_empty(), "{f}: {}", ev.r.body_str());
    }
}

// === 13. connections ===

/// Clean keep-alive connections are reused; one whose call timed out or failed (even with a
/// well-framed answer: a bad body, a 503) is closed, and the next call opens a new one.
#[test]
fn connections_are_reused_unless_their_call_failed() {
    for_each_driver(|driver| {
        let sim = Sim::start(&[]);
        // The simulator's mode comes from the declared ID: one pool, any answer.
        let url = sim.url("/k?uid=${UUID}&sim_mode=${DPUUID}&sim_segments=auto-intender");
        let dcs = Dcs::start(driver, LONG_BUDGET_MS, &[(777, rt(&url, r#""timeout_ms":300"#))]);
        // (mode, outcome, connection the simulator sees it on)
        let steps = [
            ("ok", "ok", 1),
            ("ok", "ok", 1),
            ("ok", "ok", 1),
            ("hang", "timeout", 1),
            ("ok", "ok", 2),
            ("garbage", "error", 2),
            ("ok", "ok", 3),
            ("status:503", "error", 3),
            ("ok", "ok", 4),
            ("wrong-shape", "error", 4),
            ("ok", "ok", 5),
        ];
        for (n, (mode, outcome, _)) in steps.iter().enumerate() {
            let before = dcs.outcome(777, outcome);
            let ev = dcs.event(&format!(
                "d_uuid={}&d_cid={}",
                uuid(n as u64 + 1),
                enc(&format!("777\u{1}{mode}"))
            ));
            assert_eq!(dcs.outcome(777, outcome), before + 1, "{driver}: step {n} ({mode})");
            assert_eq!(ev.a.traits.len(), usize::from(*outcome == "ok"), "{driver}: step {n}");
        }
        let seen: Vec<u64> = sim.requests().iter().map(|r| r.conn).collect();
        let want: Vec<u64> = steps.iter().map(|s| s.2).collect();
        assert_eq!(seen, want, "{driver}: the connection of each call");
        assert_eq!(sim.stats().connections, 5, "{driver}");
        assert_eq!((dcs.conns(777, "open"), dcs.conns(777, "idle")), (1, 1), "{driver}");
    });
}

/// An answer with `Connection: close` is a good answer whose connection is not reused; idle
/// connections are closed after `idle_timeout_ms`.
#[test]
fn closed_and_idle_connections_are_not_reused() {
    for_each_driver(|driver| {
        let (closing, idle) = (Sim::start(&[]), Sim::start(&[]));
        let extra = r#""timeout_ms":2000,"idle_timeout_ms":100"#;
        let partners = [
            (
                777,
                rt(&closing.url("/c?uid=${UUID}&sim_mode=close-after:1&sim_segments=auto-intender"), extra),
            ),
            (778, rt(&idle.url("/i?uid=${UUID}&sim_segments=auto-intender"), extra)),
        ];
        let dcs = Dcs::start(driver, LONG_BUDGET_MS, &partners);
        let ev = dcs.event(&format!("d_uuid={}", uuid(1)));
        assert_eq!(ev.a.traits, [trait_ai(777), trait_ai(778)], "{driver}");
        assert_eq!(idle.stats().open_connections, 1, "{driver}");
        wait_until(&format!("{driver}: the idle connection is closed"), WAIT, || {
            idle.stats().open_connections == 0
        });
        assert_eq!((dcs.conns(778, "open"), dcs.conns(778, "idle")), (0, 0), "{driver}");
        let ev = dcs.event(&format!("d_uuid={}", uuid(2)));
        assert_eq!(ev.a.traits, [trait_ai(777), trait_ai(778)], "{driver}");
        assert_eq!((closing.stats().requests, closing.stats().connections), (2, 2), "{driver}");
        assert_eq!((idle.stats().requests, idle.stats().connections), (2, 2), "{driver}");
        assert_eq!(dcs.outcomes(777), BTreeMap::from([("ok", 2)]), "{driver}: close is no failure");
    });
}

// === 14. who is called ===

/// Invalid (311, 1), opted-out (171) and non-consenting (315) requests call no partner; a
/// customer that neither owns nor shares the data source calls none either.
#[test]
fn refused_requests_call_no_partner() {
    let sim = Sim::start(&[]);
    let url = sim.url("/w?uid=${UUID}&sim_segments=auto-intender");
    let dcs = Dcs::start(SEMANTICS_DRIVER, LONG_BUDGET_MS, &[(777, rt(&url, r#""timeout_ms":2000"#))]);
    let raw = |n: u64, host: &str, query: &str, headers: &str| {
        format!(
            "GET /event?d_rtbd=json&d_cts=2&d_uuid={}&{query} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n",
            uuid(n)
        )
    };
    for (what, req, code) in [
        ("bad escape", raw(1, "localhost", "c_x=%zz", ""), 311),
        ("unknown host", raw(2, "unknown.example", "", ""), 1),
        ("opted out", raw(3, "localhost", "", "Cookie: demdex=NOTARGET\r\n"), 171),
        ("no consent", raw(4, "localhost", "gdpr=1&gdpr_consent=nope", ""), 315),
    ] {
        let r = dcs.d.request(req.as_bytes());
        assert!(r.body_str().contains(&format!("\"code\":{code}")), "{what}: {}", r.body_str());
    }
    assert_eq!(sim.stats().requests, 0);
    assert_eq!(dcs.calls(777), 0);
    let ev = dcs.event(&format!("d_uuid={}", uuid(5)));
    assert_eq!(ev.a.traits, [trait_ai(777)], "a valid request calls");
}
