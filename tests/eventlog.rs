//! The durable event log (`[eventlog]`, docs/eventlog.md) through the real binary: what each
//! request writes (whole records), file naming, rotation and `.done`, shutdown, crashes
//! (`kill -9`) under load with `fsync = "always"` and `"interval"`, an unwritable directory, a
//! full disk, replay after a snapshot, and `dcsd verify-log`.
//!
//! Every test has its own directory with the taxonomy, `dcsd.toml`, the log directory and
//! (where used) the snapshot, so a test can stop, kill and restart daemons on the same files.
//! The taxonomy ([`taxonomy`]) is the demo's customer 1 with a trait 1234
//! (`c_likes == "famous popstar"`), segment 984263 = `1234T` and segment 985264 =
//! `FREQUENCY([1234T]) >= 2`, which shows a realization counted twice (a record replayed
//! twice); the partner tests add a real-time partner 777 on a [`Sim`].
//!
//! Records are parsed with simd-json and compared whole (everything but `ts`, which must lie
//! within the request's time window). Tests of the request path run on both drivers
//! ([`for_each_driver`]): with `fsync = "always"` each answer waits for its record through the
//! worker's group commit, which is the driver's business.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // test clients may block

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{connect, for_each_driver, temp_dir, wait_until, Daemon, Reader, Response, Sim, TempDir};
use simd_json::prelude::*;
use simd_json::{json, OwnedValue as Value};

/// The trait `c_likes=famous popstar` realizes.
const LIKES: u64 = 1234;
/// `1234T`.
const SEG_LIKES: u64 = 984_263;
/// `FREQUENCY([1234T]) >= 2`: a profile whose 1234 was realized twice.
const SEG_TWICE: u64 = 985_264;
/// The partner's trait (`segment == "auto-intender"`) and its segment `9001T`.
const PARTNER_TRAIT: u64 = 9001;
const SEG_PARTNER: u64 = 985_265;
/// `server.region` by default.
const REGION: u64 = 7;
/// Bound of every poll.
const WAIT: Duration = Duration::from_secs(10);
/// The query of a JSON `/event` that realizes 1234.
const LIKES_QUERY: &str = "d_rtbd=json&c_likes=famous%20popstar";

// === set-up ===

/// The test taxonomy; with `partner`, data source 777 is a real-time partner at that URL.
fn taxonomy(partner: Option<&str>) -> String {
    let mut sources = vec![r#"{"dpid":1,"ic":"acme-crm","owner":1}"#.to_string()];
    let mut traits = vec![format!(r#"{{"sid":{LIKES},"dpid":1,"rule":"c_likes == \"famous popstar\""}}"#)];
    let mut segments = vec![
        format!(r#"{{"sid":{SEG_LIKES},"customer":1,"rule":"{LIKES}T"}}"#),
        format!(r#"{{"sid":{SEG_TWICE},"customer":1,"rule":"FREQUENCY([{LIKES}T]) >= 2"}}"#),
    ];
    if let Some(url) = partner {
        sources.push(format!(
            r#"{{"dpid":777,"ic":"partner-x","owner":1,"realtime":{{"url":"{url}","timeout_ms":2000,"ttl_s":3600}}}}"#
        ));
        traits.push(format!(r#"{{"sid":{PARTNER_TRAIT},"dpid":777,"rule":"segment == \"auto-intender\""}}"#));
        segments.push(format!(r#"{{"sid":{SEG_PARTNER},"customer":1,"rule":"{PARTNER_TRAIT}T"}}"#));
    }
    format!(
        r#"{{"version":"eventlog test","customers":[{{"id":1,"name":"acme","hosts":["acme.dcs.example","localhost"],"cts":true}}],
"data_sources":[{}],"traits":[{}],"segments":[{}]}}"#,
        sources.join(","),
        traits.join(","),
        segments.join(",")
    )
}

/// One test's files: `dcsd.toml`, the taxonomy, the log directory `log/` and the snapshot path
/// `profiles.snap` (used when the config names it).
struct Setup {
    tmp: TempDir,
    log: PathBuf,
    cfg: PathBuf,
    tax: PathBuf,
    snap: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let tmp = temp_dir();
        let p = |n: &str| tmp.0.join(n);
        let s = Setup {
            log: p("log"),
            cfg: p("dcsd.toml"),
            tax: p("taxonomy.json"),
            snap: p("profiles.snap"),
            tmp,
        };
        std::fs::write(&s.tax, taxonomy(None)).unwrap();
        s
    }

    /// Writes `dcsd.toml`: the taxonomy, `[eventlog] dir = <log>` plus `eventlog` lines (e.g.
    /// `fsync = "always"`), `[store]` with the small test table plus `store` lines, and `extra`
    /// tables.
    fn config(&self, eventlog: &str, store: &str, extra: &str) {
        self.config_in(&self.log, eventlog, store, extra);
    }

    /// [`Setup::config`] with the log in `dir`.
    fn config_in(&self, dir: &Path, eventlog: &str, store: &str, extra: &str) {
        let toml = format!(
            "[server]\ntaxonomy = \"{}\"\n[store]\nmax_profiles = {}\n{store}\n[eventlog]\ndir = \"{}\"\n{eventlog}\n{extra}\n",
            self.tax.display(),
            common::TEST_MAX_PROFILES,
            dir.display()
        );
        std::fs::write(&self.cfg, toml).unwrap();
    }

    /// `[store]` lines for a snapshot at [`Setup::snap`] every `interval_s`.
    fn snapshot_every(&self, interval_s: u32) -> String {
        format!("snapshot_path = \"{}\"\nsnapshot_interval_s = {interval_s}", self.snap.display())
    }

    /// `dcsd --config <cfg> --threads N --driver D` on 127.0.0.1 port 0.
    fn start(&self, driver: &str, threads: u32) -> Daemon {
        let threads = threads.to_string();
        let cfg = self.cfg.to_str().unwrap();
        Daemon::spawn(&[
            "--config",
            cfg,
            "--listen",
            "127.0.0.1:0",
            "--threads",
            &threads,
            "--driver",
            driver,
        ])
    }
}

// === requests ===

/// `GET <target>` with `Host: <host>` and `headers` (each line ending in CRLF), on a fresh
/// connection.
fn get(d: &Daemon, host: &str, target: &str, headers: &str) -> Response {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n");
    let r = d.request(raw.as_bytes());
    assert_eq!(r.status, 200, "{target}: {}", String::from_utf8_lossy(&r.body));
    r
}

/// A JSON answer's body.
fn json_of(r: &Response) -> Value {
    simd_json::to_owned_value(&mut r.body.clone()).unwrap_or_else(|e| panic!("{e}: {}", r.body_str()))
}

/// A string field of a JSON object.
fn str_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(|s| s.as_str()).unwrap_or_else(|| panic!("no string {key:?} in {v}")).to_string()
}

/// `/event?d_rtbd=json&c_likes=famous%20popstar&d_cid=1%01<id>`: the answer's (tid, uuid).
fn realize(d: &Daemon, id: &str) -> (String, String) {
    let a = json_of(&get(d, "localhost", &format!("/event?{LIKES_QUERY}&d_cid=1%01{id}"), ""));
    (str_of(&a, "tid"), str_of(&a, "uuid"))
}

/// Asserts that the profile the declared ID `1%01<id>` names is `uuid` and holds trait 1234
/// exactly once: a request that realizes nothing shows segment 984263 (`1234T`) and not
/// 985264 (`FREQUENCY([1234T]) >= 2`).
fn assert_profile(d: &Daemon, id: &str, uuid: &str, what: &str) {
    let r = get(d, "localhost", &format!("/event?d_rtbd=json&d_cts=2&d_cid=1%01{id}"), "");
    let a = json_of(&r);
    assert_eq!(str_of(&a, "uuid"), uuid, "{what}: declared ID {id} maps to its profile: {}", r.body_str());
    assert_eq!(a.get("traits"), Some(&json!([])), "{what}: {}", r.body_str());
    assert_eq!(
        a.get("segments"),
        Some(&json!([SEG_LIKES])),
        "{what}: {id} holds 1234 once: {}",
        r.body_str()
    );
}

/// Now, Unix milliseconds.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

// === the log's files ===

/// A log file, its name parsed strictly as the writer spells it: `events-<core>-<seq>.ndjson`
/// (`seq` zero-padded to 8 digits), `.done` appended when finished.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct LogFile {
    core: u32,
    seq: u64,
    done: bool,
    path: PathBuf,
}

impl LogFile {
    fn parse(dir: &Path, name: &str) -> Option<LogFile> {
        let (rest, done) = match name.strip_suffix(".done") {
            Some(r) => (r, true),
            None => (name, false),
        };
        let (core, seq) = rest.strip_prefix("events-")?.strip_suffix(".ndjson")?.split_once('-')?;
        let (core, seq): (u32, u64) = (core.parse().ok()?, seq.parse().ok()?);
        let f = LogFile { core, seq, done, path: dir.join(name) };
        (f.name() == name).then_some(f)
    }

    fn name(&self) -> String {
        format!("events-{}-{:08}.ndjson{}", self.core, self.seq, if self.done { ".done" } else { "" })
    }

    fn len(&self) -> u64 {
        std::fs::metadata(&self.path).unwrap().len()
    }
}

/// Every file of the log directory (none if it does not exist), sorted by core, sequence,
/// open before done; panics on a name that is not a log file's.
fn log_files(dir: &Path) -> Vec<LogFile> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<LogFile> = entries
        .map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            LogFile::parse(dir, &name).unwrap_or_else(|| panic!("not a log file name: {name}"))
        })
        .collect();
    files.sort();
    files
}

/// One file's records: every complete line parsed (panics naming FILE:LINE if one is not a
/// JSON object), and the torn last line (bytes after the last `\n`), if any.
fn read_file(path: &Path) -> (Vec<Value>, Option<String>) {
    let bytes = std::fs::read(path).unwrap();
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let tail = lines.pop().unwrap(); // after the last `\n`: empty unless torn
    let records = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let v = simd_json::to_owned_value(&mut l.to_vec()).unwrap_or_else(|e| {
                panic!("{}:{}: {e}: {}", path.display(), i + 1, String::from_utf8_lossy(l))
            });
            assert!(v.is_object(), "{}:{}: {v}", path.display(), i + 1);
            v
        })
        .collect();
    (records, (!tail.is_empty()).then(|| String::from_utf8_lossy(tail).into_owned()))
}

/// Every record in `dir`, in file order. A torn last line is allowed only with `torn_ok` (a
/// crash) and is left out.
fn all_records(dir: &Path, torn_ok: bool) -> Vec<Value> {
    let mut all = Vec::new();
    for f in log_files(dir) {
        let (records, torn) = read_file(&f.path);
        assert!(torn_ok || torn.is_none(), "{}: torn last line {torn:?}", f.path.display());
        all.extend(records);
    }
    all
}

/// The records in `dir` by `tid` (`partner` records left out: they share their request's).
fn by_tid(records: &[Value]) -> HashMap<String, Value> {
    let mut m = HashMap::new();
    for r in records.iter().filter(|r| r.get("kind") != Some(&json!("partner"))) {
        let prev = m.insert(str_of(r, "tid"), r.clone());
        assert!(prev.is_none(), "two records with the tid of {r}");
    }
    m
}

/// Asserts that `rec` is `want` plus a `ts` (Unix ms) within `[t0, t1]`. `want` without `tid`
/// takes the record's, which must be 12 base64 characters (a pixel answer shows none).
fn assert_record(rec: &Value, mut want: Value, (t0, t1): (u64, u64), what: &str) {
    let mut got = rec.clone();
    let obj = got.as_object_mut().unwrap_or_else(|| panic!("{what}: not an object: {rec}"));
    let ts = obj.remove("ts").and_then(|t| t.as_u64()).unwrap_or_else(|| panic!("{what}: no ts in {rec}"));
    assert!(t0 <= ts && ts <= t1, "{what}: ts {ts} outside the request's [{t0}, {t1}]: {rec}");
    if want.get("tid").is_none() {
        let tid = str_of(rec, "tid");
        let base64 = |c: char| c.is_ascii_alphanumeric() || "+/=".contains(c);
        assert!(tid.len() == 12 && tid.chars().all(base64), "{what}: tid {tid:?}");
        want.as_object_mut().unwrap().insert("tid".into(), Value::from(tid));
    }
    assert_eq!(got, want, "{what}:\n got {got}\nwant {want}");
}

/// Polls until `dir` holds at least `n` records; returns them.
fn wait_records(dir: &Path, n: usize, what: &str) -> Vec<Value> {
    let mut recs = Vec::new();
    wait_until(&format!("{n} records in the log ({what})"), WAIT, || {
        recs = all_records(dir, false);
        recs.len() >= n
    });
    recs
}

/// `dcsd verify-log DIR`: exit code and stdout (stderr appended).
fn verify_log(dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dcsd")).arg("verify-log").arg(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// The start-up line `event log: replayed N records (M applied) from F files in X ms…`:
/// (N, M, F) and the line.
fn replayed(d: &Daemon) -> (u64, u64, u64, String) {
    let lines: Vec<String> = d.log().into_iter().filter(|l| l.contains("event log: replayed ")).collect();
    assert_eq!(lines.len(), 1, "one replay line in {:?}", d.log());
    let line = lines[0].clone();
    let rest = line.split("event log: replayed ").nth(1).unwrap();
    let words: Vec<&str> = rest.split_whitespace().collect();
    // N records (M applied) from F files
    assert_eq!((words[1], words[3], words[4], words[6]), ("records", "applied)", "from", "files"), "{line}");
    let n = |s: &str| s.trim_start_matches('(').parse::<u64>().unwrap_or_else(|_| panic!("{line}"));
    (n(words[0]), n(words[2]), n(words[5]), line)
}

/// The log lines containing `needle`.
fn lines(d: &Daemon, needle: &str) -> usize {
    d.log().iter().filter(|l| l.contains(needle)).count()
}

/// SIGTERM, and a clean exit.
fn stop(d: &mut Daemon) {
    d.signal("TERM");
    let st = d.wait_exit(WAIT);
    assert!(st.success(), "{st:?}: {:?}", d.log());
}

/// SIGKILL: no drain, no final snapshot, no `.done`.
fn kill(d: &mut Daemon) {
    d.signal("KILL");
    d.wait_exit(WAIT);
}

// === load ===

/// A request whose answer the client received: its declared ID, the answer's tid and uuid,
/// and when the answer was complete.
#[derive(Clone, Debug)]
struct Ack {
    id: String,
    tid: String,
    uuid: String,
    at: Instant,
}

/// Sets its flag when dropped (also by a panic).
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `clients` threads, each on one keep-alive connection to `addr`, sending `/event` realizing
/// 1234 with the declared ID `1%01c<client>-<n>` one after the other, until the daemon goes
/// away, each request `pace` after the previous one's answer (`ZERO`: as fast as it can);
/// `until` runs on this thread meanwhile (it kills the daemon; the clients stop when it
/// returns or panics). Returns every answer received.
fn load(addr: SocketAddr, clients: usize, pace: Duration, until: impl FnOnce(&Mutex<Vec<Ack>>)) -> Vec<Ack> {
    let acks = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for c in 0..clients {
            let (acks, stop) = (&acks, &stop);
            s.spawn(move || {
                let mut conn = Reader::new(connect(addr));
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let id = format!("c{c}-{n}");
                    let raw = format!(
                        "GET /event?{LIKES_QUERY}&d_cid=1%01{id} HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    );
                    if conn.stream.write_all(raw.as_bytes()).is_err() {
                        return;
                    }
                    let Some(r) = conn.response(false) else { return };
                    let at = Instant::now();
                    assert_eq!(r.status, 200, "{}", r.body_str());
                    let a = json_of(&r);
                    let ack = Ack { id, tid: str_of(&a, "tid"), uuid: str_of(&a, "uuid"), at };
                    acks.lock().unwrap().push(ack);
                    std::thread::sleep(pace); // a request rate, not a wait for readiness
                }
            });
        }
        let _stop = SetOnDrop(&stop);
        until(&acks);
    });
    acks.into_inner().unwrap()
}

/// Waits until `n` answers came in (or panics).
fn wait_acks(acks: &Mutex<Vec<Ack>>, n: usize) {
    wait_until(&format!("{n} answers under load"), Duration::from_secs(30), || {
        acks.lock().unwrap().len() >= n
    });
}

// === 1. records ===

/// Each kind of request writes exactly one record with every field as specified (signals
/// grouped by key without `p_` and `d_` keys, header signals, the ECID, the declared IDs, the
/// opt-out, the partners' outcomes, errors, mode), and with `fsync = "always"` the record is in
/// the file when the answer arrives. A pixel request's partner call is logged `called`, and its
/// result comes as a `partner` record with the request's tid.
#[test]
fn each_request_kind_writes_its_whole_record_before_its_answer() {
    for_each_driver(|driver| {
        let sim = Sim::start(&[]);
        let s = Setup::new();
        std::fs::write(&s.tax, taxonomy(Some(&sim.url("/p777?uid=${UUID}&sim_segments=auto-intender"))))
            .unwrap();
        s.config("fsync = \"always\"", "", "[partners]\nbudget_ms = 2000");
        let d = s.start(driver, 1);
        let ip = "127.0.0.1";
        let mut n = 0;
        // The records in the file right after an answer: one more than before.
        let mut next = |what: &str| -> Value {
            n += 1;
            let recs = all_records(&s.log, false);
            assert_eq!(recs.len(), n, "{driver} {what}: the record is written before the answer: {recs:?}");
            recs[n - 1].clone()
        };

        // /event, JSON: a partner answering in time, a declared ID, private and control keys.
        let t0 = now_ms();
        let target =
            "/event?d_rtbd=json&d_cts=2&c_likes=famous%20popstar&p_secret=hidden&d_cid=1%01crm-42%011\
                      &color=blue,green&d_nsid=0&d_mid=12345678901234567890123456789012345678";
        let r = get(&d, "acme.dcs.example:8080", target, "User-Agent: eventlog-test/1.0\r\n");
        let t1 = now_ms();
        let a = json_of(&r);
        let json_uuid = str_of(&a, "uuid");
        assert_eq!(a.get("traits"), Some(&json!([LIKES, PARTNER_TRAIT])), "{driver}: {}", r.body_str());
        let want = json!({
            "tid": str_of(&a, "tid"), "kind": "event", "host": "acme.dcs.example", "ip": ip, "region": REGION,
            "signals": {
                "c_likes": ["famous popstar"], "color": ["blue", "green"], "h_host": ["acme.dcs.example"],
                "h_user-agent": ["eventlog-test/1.0"], "h_ip": [ip]
            },
            "customer": 1, "uuid": json_uuid.as_str(), "ecid": "12345678901234567890123456789012345678",
            "declared": [{"dpid": 1, "dpuuid": "crm-42", "auth": 1}], "traits": [LIKES, PARTNER_TRAIT],
            "segments": [SEG_LIKES, SEG_PARTNER], "partners": {"777": "ok"}, "errors": [], "mode": "json"
        });
        assert_record(&next("json /event"), want, (t0, t1), &format!("{driver}: json /event"));

        // An invalid /event (311): no signals, no profile.
        let t0 = now_ms();
        let r = get(&d, "localhost", "/event?d_rtbd=json&c_likes=x&c_x=%zz", "");
        let t1 = now_ms();
        let a = json_of(&r);
        let want = json!({
            "tid": str_of(&a, "tid"), "kind": "event", "host": "localhost", "ip": ip, "region": REGION,
            "signals": {}, "customer": null, "uuid": null, "declared": [], "traits": [], "segments": [],
            "partners": {}, "errors": [{"code": 311, "msg": "Request contains invalid parameters"}], "mode": "json"
        });
        assert_record(&next("invalid /event"), want, (t0, t1), &format!("{driver}: invalid /event"));

        // /ibs: a sync to the cookie's profile; `dpid`, `dpuuid` are control keys, not signals.
        let ibs_uuid = format!("{:038}", 4711);
        let t0 = now_ms();
        get(&d, "localhost", "/ibs:dpid=1&dpuuid=sync-7", &format!("Cookie: demdex={ibs_uuid}\r\n"));
        let t1 = now_ms();
        let want = json!({
            "kind": "ibs", "host": "localhost", "ip": ip, "region": REGION,
            "signals": {"h_host": ["localhost"], "h_ip": [ip]},
            "customer": 1, "uuid": ibs_uuid.as_str(), "declared": [{"dpid": 1, "dpuuid": "sync-7", "auth": 0}],
            "traits": [], "segments": [], "partners": {}, "errors": [], "mode": "pixel"
        });
        assert_record(&next("/ibs:"), want, (t0, t1), &format!("{driver}: /ibs:"));

        // A global opt-out of the cookie's profile.
        let opt_uuid = format!("{:038}", 4712);
        let t0 = now_ms();
        let r = get(&d, "localhost", "/demoptout", &format!("Cookie: demdex={opt_uuid}\r\n"));
        let t1 = now_ms();
        assert!(r.header_all("set-cookie").iter().any(|c| c.starts_with("demdex=NOTARGET;")), "{driver}");
        let want = json!({
            "kind": "optout", "host": "localhost", "ip": ip, "region": REGION,
            "signals": {"h_host": ["localhost"], "h_ip": [ip]},
            "customer": null, "uuid": opt_uuid.as_str(), "declared": [], "opt_out": "global",
            "traits": [], "segments": [], "partners": {}, "errors": [], "mode": "pixel"
        });
        assert_record(&next("global opt-out"), want, (t0, t1), &format!("{driver}: global opt-out"));

        // A partner-level opt-out of the profile the JSON request mapped crm-42 to.
        let t0 = now_ms();
        get(&d, "localhost", "/demoptout?d_cid=1%01crm-42", "");
        let t1 = now_ms();
        let want = json!({
            "kind": "optout", "host": "localhost", "ip": ip, "region": REGION,
            "signals": {"h_host": ["localhost"], "h_ip": [ip]},
            "customer": 1, "uuid": json_uuid.as_str(), "declared": [{"dpid": 1, "dpuuid": "crm-42", "auth": 0}],
            "opt_out": "customer", "traits": [], "segments": [], "partners": {}, "errors": [], "mode": "pixel"
        });
        assert_record(
            &next("partner-level opt-out"),
            want,
            (t0, t1),
            &format!("{driver}: partner-level opt-out"),
        );

        // /event, pixel: the partner is called and answers after the pixel left.
        let px_uuid = format!("{:038}", 4713);
        let headers = format!(
            "Cookie: demdex={px_uuid}\r\nReferer: https://www.acme.example/page\r\nAccept-Language: de-CH\r\n"
        );
        let t0 = now_ms();
        let r = get(&d, "localhost", "/event?c_likes=famous%20popstar", &headers);
        let t1 = now_ms();
        assert_eq!(r.header("content-type"), Some("image/gif"), "{driver}");
        let want = json!({
            "kind": "event", "host": "localhost", "ip": ip, "region": REGION,
            "signals": {
                "c_likes": ["famous popstar"], "h_host": ["localhost"], "h_accept-language": ["de-CH"],
                "h_referer": ["https://www.acme.example/page"], "h_ip": [ip]
            },
            "customer": 1, "uuid": px_uuid.as_str(), "declared": [], "traits": [LIKES], "segments": [SEG_LIKES],
            "partners": {"777": "called"}, "errors": [], "mode": "pixel"
        });
        let pixel = next("pixel /event");
        assert_record(&pixel, want, (t0, t1), &format!("{driver}: pixel /event"));
        let recs = wait_records(&s.log, n + 1, "the partner record");
        let t2 = now_ms();
        assert_eq!(recs.len(), n + 1, "{driver}: {recs:?}");
        let expires = recs[n].get("expires_s").and_then(|e| e.as_u64()).unwrap_or(0);
        assert!(
            (t0 / 1000 + 3600..=t2 / 1000 + 3600).contains(&expires),
            "{driver}: cached for ttl_s 3600 from the answer: {}",
            recs[n]
        );
        let want = json!({
            "tid": str_of(&pixel, "tid"), "kind": "partner", "host": "", "ip": ip, "region": REGION,
            "signals": {}, "customer": 1, "uuid": px_uuid.as_str(), "declared": [],
            "traits": [PARTNER_TRAIT], "segments": [SEG_LIKES, SEG_PARTNER], "partners": {"777": "ok"},
            "expires_s": expires, "errors": [], "mode": "pixel"
        });
        assert_record(&recs[n], want, (t0, t2), &format!("{driver}: partner record"));

        let files = log_files(&s.log);
        assert_eq!(
            files.iter().map(LogFile::name).collect::<Vec<_>>(),
            ["events-0-00000001.ndjson"],
            "{driver}"
        );
        assert_eq!(d.metric("dcsd_eventlog_records_total"), n as u64 + 1, "{driver}");
        assert_eq!(d.metric("dcsd_eventlog_bytes_total"), files[0].len(), "{driver}");
        assert!(d.metric("dcsd_eventlog_fsync_seconds_count") >= 1, "{driver}");
        assert_eq!(d.metric("eventlog_dropped_total"), 0, "{driver}");
    });
}

/// A JSON request whose partner answers after the budget (but within its `timeout_ms`): the
/// request's record says `timeout` for it (docs/eventlog.md §3), and when the answer lands a
/// `partner` record with the request's tid carries `late`, the partner trait and segments.
#[test]
fn a_late_partner_answer_of_a_json_request_gets_its_own_record() {
    let sim = Sim::start(&[]);
    let s = Setup::new();
    let url = sim.url("/p777?uid=${UUID}&sim_delay_ms=400&sim_segments=auto-intender");
    std::fs::write(&s.tax, taxonomy(Some(&url))).unwrap();
    s.config("fsync = \"always\"", "", "[partners]\nbudget_ms = 50");
    let d = s.start(common::SEMANTICS_DRIVER, 1);
    let uuid = format!("{:038}", 4714);
    let t0 = now_ms();
    let r = get(&d, "localhost", "/event?d_rtbd=json&d_cts=2", &format!("Cookie: demdex={uuid}\r\n"));
    let t1 = now_ms();
    let a = json_of(&r);
    assert_eq!(a.get("traits"), Some(&json!([])), "answered at the budget: {}", r.body_str());
    let tid = str_of(&a, "tid");
    let ip = "127.0.0.1";
    let recs = all_records(&s.log, false);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let want = json!({
        "tid": tid.as_str(), "kind": "event", "host": "localhost", "ip": ip, "region": REGION,
        "signals": {"h_host": ["localhost"], "h_ip": [ip]}, "customer": 1, "uuid": uuid.as_str(),
        "declared": [], "traits": [], "segments": [], "partners": {"777": "timeout"}, "errors": [], "mode": "json"
    });
    assert_record(&recs[0], want, (t0, t1), "the request's record");
    let recs = wait_records(&s.log, 2, "the late answer's record");
    let t2 = now_ms();
    let expires = recs[1].get("expires_s").and_then(|e| e.as_u64()).unwrap_or(0);
    assert!((t0 / 1000 + 3600..=t2 / 1000 + 3600).contains(&expires), "{}", recs[1]);
    let want = json!({
        "tid": tid.as_str(), "kind": "partner", "host": "", "ip": ip, "region": REGION, "signals": {},
        "customer": 1, "uuid": uuid.as_str(), "declared": [], "traits": [PARTNER_TRAIT], "segments": [SEG_PARTNER],
        "partners": {"777": "late"}, "expires_s": expires, "errors": [], "mode": "json"
    });
    assert_record(&recs[1], want, (t0, t2), "the late answer's record");
}

// === 2. rotation ===

/// With a small `segment_bytes`, a file is finished and renamed `.done` before a record that
/// would take it past the limit: every `.done` file is at most `segment_bytes` and full (its
/// successor's first record would not have fitted), sequence numbers count up from 1 without a
/// gap, the open file continues the sequence, and no record is split across files (every line
/// parses, the records are the requests' in order).
#[test]
fn files_rotate_on_a_record_boundary_and_are_renamed_done() {
    const SEGMENT: u64 = 4096; // the least allowed
    const REQUESTS: usize = 48;
    for_each_driver(|driver| {
        let s = Setup::new();
        s.config(&format!("fsync = \"always\"\nsegment_bytes = {SEGMENT}"), "", "");
        let d = s.start(driver, 1);
        let tids: Vec<String> = (0..REQUESTS).map(|i| realize(&d, &format!("rot-{i}")).0).collect();

        let files = log_files(&s.log);
        let (done, open): (Vec<&LogFile>, Vec<&LogFile>) = files.iter().partition(|f| f.done);
        assert!(done.len() >= 3, "{driver}: several finished files: {files:?}");
        assert!(open.len() <= 1, "{driver}: {files:?}");
        for (i, f) in files.iter().enumerate() {
            assert_eq!((f.core, f.seq), (0, i as u64 + 1), "{driver}: names count up from 1: {files:?}");
        }
        if let Some(o) = open.first() {
            assert_eq!(o.seq, done.len() as u64 + 1, "{driver}: the open file is the newest");
        }
        let mut records = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let (recs, torn) = read_file(&f.path);
            assert!(torn.is_none() && !recs.is_empty(), "{driver}: {}", f.name());
            if f.done {
                assert!(f.len() <= SEGMENT, "{driver}: {} has {} bytes", f.name(), f.len());
                let first_next = std::fs::read(&files[i + 1].path).unwrap();
                let line = first_next.split(|b| *b == b'\n').next().unwrap().len() as u64 + 1;
                assert!(
                    f.len() + line > SEGMENT,
                    "{driver}: {} was finished early ({} bytes)",
                    f.name(),
                    f.len()
                );
            }
            records.extend(recs);
        }
        let logged: Vec<String> = records.iter().map(|r| str_of(r, "tid")).collect();
        assert_eq!(logged, tids, "{driver}: every request once, in order");
        assert_eq!(d.metric("dcsd_eventlog_files_rotated_total"), done.len() as u64, "{driver}");
        assert_eq!(
            d.metric("dcsd_eventlog_bytes_total"),
            files.iter().map(LogFile::len).sum::<u64>(),
            "{driver}"
        );
    });
}

// === 3. shutdown and restart ===

/// SIGTERM hands every buffered record to the writers (here none had been written yet:
/// `flush_ms` is long), syncs and renames every file `.done` and exits 0. The next run
/// continues the sequence (file 2), SIGHUP neither rotates nor touches the open file, and the
/// second SIGTERM finishes file 2 with every record of that run.
#[test]
fn sigterm_finishes_every_file_and_a_restart_continues_the_sequence() {
    for_each_driver(|driver| {
        let s = Setup::new();
        s.config("fsync = \"interval\"\nflush_ms = 60000\nfsync_interval_ms = 60000", "", "");
        let mut d = s.start(driver, 1);
        let first: Vec<String> = (0..5).map(|i| realize(&d, &format!("term-{i}")).0).collect();
        assert!(all_records(&s.log, false).is_empty(), "{driver}: flush_ms keeps the records in memory");
        stop(&mut d);
        assert_eq!(lines(&d, "event log: every file synced and renamed .done"), 1, "{driver}: {:?}", d.log());
        let files = log_files(&s.log);
        assert_eq!(
            files.iter().map(LogFile::name).collect::<Vec<_>>(),
            ["events-0-00000001.ndjson.done"],
            "{driver}"
        );
        let logged: Vec<String> = all_records(&s.log, false).iter().map(|r| str_of(r, "tid")).collect();
        assert_eq!(logged, first, "{driver}: every record of the run");

        s.config("fsync = \"always\"", "", "");
        let mut d = s.start(driver, 1);
        let (n, applied, f, line) = replayed(&d);
        assert_eq!((n, applied, f), (5, 5, 1), "{driver}: no snapshot: every file is replayed: {line}");
        let mut second: Vec<String> = (0..3).map(|i| realize(&d, &format!("hup-{i}")).0).collect();
        let listing = |dir: &Path| -> Vec<(String, u64)> {
            log_files(dir).iter().map(|f| (f.name(), f.len())).collect()
        };
        let before = listing(&s.log);
        assert_eq!(before[1].0, "events-0-00000002.ndjson", "{driver}: {before:?}");
        d.signal("HUP");
        d.wait_log("reloaded taxonomy", 1);
        assert_eq!(listing(&s.log), before, "{driver}: SIGHUP leaves the log alone");
        assert_eq!(d.metric("dcsd_eventlog_files_rotated_total"), 0, "{driver}");
        second.extend((3..5).map(|i| realize(&d, &format!("hup-{i}")).0));
        let files = log_files(&s.log);
        assert_eq!(files[1].name(), "events-0-00000002.ndjson", "{driver}: the same file after SIGHUP");
        stop(&mut d);
        let names: Vec<String> = log_files(&s.log).iter().map(LogFile::name).collect();
        assert_eq!(names, ["events-0-00000001.ndjson.done", "events-0-00000002.ndjson.done"], "{driver}");
        let (recs, _) = read_file(&s.log.join("events-0-00000002.ndjson.done"));
        assert_eq!(recs.iter().map(|r| str_of(r, "tid")).collect::<Vec<_>>(), second, "{driver}");
    });
}

// === 4. crash with fsync = "always" ===

/// `kill -9` under load from 4 keep-alive clients on 2 cores: every answer a client received
/// has its record (matched by tid, with its profile and declared ID), only the last line of a
/// file may be torn, and the restart replays the log (no snapshot file yet: every file) before
/// it listens — renaming the files left open `.done` — so that every acknowledged profile is
/// back, found by its declared ID, with trait 1234 realized once. The new run's files continue
/// each core's sequence, and `dcsd verify-log` accepts the directory.
#[test]
fn a_crash_loses_no_acknowledged_record_and_the_restart_replays_them() {
    for_each_driver(|driver| {
        let s = Setup::new();
        s.config("fsync = \"always\"", &s.snapshot_every(3600), "");
        let mut d = s.start(driver, 2);
        let acks = load(d.addr, 4, Duration::ZERO, |acks| {
            wait_acks(acks, 150);
            kill(&mut d);
        });
        let records = all_records(&s.log, true);
        let logged = by_tid(&records);
        for a in &acks {
            let rec =
                logged.get(&a.tid).unwrap_or_else(|| panic!("{driver}: acknowledged {a:?} has no record"));
            assert_eq!(str_of(rec, "uuid"), a.uuid, "{driver}: {rec}");
            assert_eq!(
                rec.get("declared"),
                Some(&json!([{"dpid": 1, "dpuuid": a.id.as_str(), "auth": 0}])),
                "{rec}"
            );
            assert_eq!(rec.get("traits"), Some(&json!([LIKES])), "{driver}: {rec}");
        }
        let crashed = log_files(&s.log);
        assert!(crashed.iter().all(|f| !f.done), "{driver}: a crash finishes nothing: {crashed:?}");
        let last_seq: BTreeMap<u32, u64> = crashed.iter().map(|f| (f.core, f.seq)).collect();
        assert_eq!(last_seq.len(), crashed.len(), "{driver}: one open file per core: {crashed:?}");

        let mut d = s.start(driver, 2);
        let (n, applied, files, line) = replayed(&d);
        assert_eq!(n, records.len() as u64, "{driver}: every whole record is replayed: {line}");
        assert!(applied >= acks.len() as u64 && files == crashed.len() as u64, "{driver}: {line}");
        let sealed =
            format!("event log: renamed {} file(s) a previous run left open to .done", crashed.len());
        assert_eq!(lines(&d, &sealed), 1, "{driver}: {:?}", d.log());
        assert!(log_files(&s.log).iter().all(|f| f.done), "{driver}: {:?}", log_files(&s.log));
        // The last answer of each client, and a sample of the others.
        let mut last: HashMap<&str, &Ack> = HashMap::new();
        for a in &acks {
            last.insert(a.id.split('-').next().unwrap(), a);
        }
        let sample = acks.iter().step_by(15).chain(last.into_values());
        for a in sample {
            assert_profile(&d, &a.id, &a.uuid, &format!("{driver}: after the crash"));
        }
        stop(&mut d);
        let new: Vec<LogFile> = log_files(&s.log)
            .into_iter()
            .filter(|f| !crashed.iter().any(|c| c.seq == f.seq && c.core == f.core))
            .collect();
        assert!(!new.is_empty(), "{driver}: the checks wrote records");
        for core in [0, 1] {
            if let Some(first) = new.iter().find(|f| f.core == core) {
                let want = last_seq.get(&core).map_or(1, |s| s + 1);
                assert_eq!(first.seq, want, "{driver}: core {core} continues its sequence: {new:?}");
            }
        }

        let (code, report) = verify_log(&s.log);
        assert_eq!(code, 0, "{driver}: verify-log accepts a crashed log (torn last lines): {report}");
    });
}

// === 5. crash with fsync = "interval" ===

/// With `fsync = "interval"` (`flush_ms` 100, `fsync_interval_ms` 200) answers do not wait for
/// the disk, so a `kill -9` may lose the records of the last moments — but only those: every
/// request answered more than 1 s before the kill is in the log (written by the flush timer:
/// the load is light, so no buffer fills up).
#[test]
fn with_interval_a_crash_loses_at_most_the_last_moments() {
    for_each_driver(|driver| {
        let s = Setup::new();
        s.config("fsync = \"interval\"\nflush_ms = 100\nfsync_interval_ms = 200", "", "");
        let mut d = s.start(driver, 2);
        let mut killed = Instant::now();
        // 4 × 100 requests a second: far from filling a core's buffer (256 KiB) within the
        // test, so only the flush timer brings the records to the file.
        let acks = load(d.addr, 4, Duration::from_millis(10), |acks| {
            wait_acks(acks, 20);
            let t = Instant::now();
            // Load for 2 s, so that many answers are older than 1 s at the kill.
            wait_until("2 s of load", Duration::from_secs(5), || t.elapsed() >= Duration::from_secs(2));
            killed = Instant::now();
            kill(&mut d);
        });
        let logged = by_tid(&all_records(&s.log, true));
        let old: Vec<&Ack> =
            acks.iter().filter(|a| killed.duration_since(a.at) > Duration::from_secs(1)).collect();
        assert!(!old.is_empty(), "{driver}: answers older than 1 s: {} in all", acks.len());
        for a in &old {
            let rec = logged.get(&a.tid).unwrap_or_else(|| {
                panic!(
                    "{driver}: {a:?}, answered {:?} before the kill, has no record",
                    killed.duration_since(a.at)
                )
            });
            assert_eq!(str_of(rec, "uuid"), a.uuid, "{driver}");
        }
        let missing = acks.iter().filter(|a| !logged.contains_key(&a.tid)).count();
        eprintln!(
            "{driver}: {} answers, {} older than 1 s, {missing} without a record",
            acks.len(),
            old.len()
        );
    });
}

// === 6. unwritable directory ===

/// A log directory that cannot be created (its parent is a regular file): the daemon starts
/// and answers (also with `fsync = "always"`: no answer waits for a record that cannot be
/// written), counts every record as dropped (`io`) and the failures as IO errors, and logs the
/// condition once — one ERROR line naming the directory, at start-up or at the first write,
/// not one per step that trips over it, nor one per record.
#[test]
fn an_unwritable_directory_drops_and_counts_records_and_logs_once() {
    for_each_driver(|driver| {
        let s = Setup::new();
        let file = s.tmp.0.join("file");
        std::fs::write(&file, b"a regular file").unwrap();
        let dir = file.join("log");
        s.config_in(&dir, "fsync = \"always\"", "", "");
        let d = s.start(driver, 1);
        for i in 0..10 {
            realize(&d, &format!("lost-{i}"));
        }
        assert_eq!(d.metric("dcsd_eventlog_dropped_total{reason=\"io\"}"), 10, "{driver}");
        assert_eq!(d.metric("eventlog_dropped_total"), 10, "{driver}");
        assert_eq!(d.metric("dcsd_eventlog_records_total"), 10, "{driver}");
        assert!(d.metric("dcsd_eventlog_io_errors_total") > 0, "{driver}");
        assert_eq!(errors_about(&d, &dir).len(), 1, "{driver}: logged once: {:#?}", errors_about(&d, &dir));
        assert!(std::fs::metadata(&file).unwrap().is_file());
    });
}

/// The ERROR lines that name `dir`.
fn errors_about(d: &Daemon, dir: &Path) -> Vec<String> {
    let dir = dir.to_str().unwrap();
    d.log().into_iter().filter(|l| l.contains(" ERROR ") && l.contains(dir)).collect()
}

// === 7. full disk ===

/// A tmpfs mounted for one test, unmounted (lazily, so a daemon still holding a file does not
/// keep it) on drop, also when the test fails.
struct Mount(PathBuf);

impl Mount {
    /// `mount -t tmpfs -o size=<size> tmpfs <at>`, or why it cannot be mounted.
    fn tmpfs(at: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Mount(at.to_path_buf()))
        } else {
            Err(format!("mount failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `path` (a new file there) until a write fails with ENOSPC.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC: {e}");
                break;
            }
        }
    }
    // A last partial page, byte by byte.
    while f.write(&[0]).is_ok_and(|n| n == 1) {}
}

/// A full disk: the daemon keeps answering (also with `fsync = "always"`), counts the records
/// it cannot write as dropped (`io`), never leaves part of a record in a file, and writes
/// again once there is room.
#[test]
fn a_full_disk_drops_and_counts_records_and_recovers_when_there_is_room() {
    for_each_driver(|driver| {
        let s = Setup::new();
        let mnt = s.tmp.0.join("mnt");
        let _mount = match Mount::tmpfs(&mnt, "256k") {
            Ok(m) => m,
            Err(why) => {
                eprintln!("SKIPPED a_full_disk_…: cannot mount a tmpfs at {}: {why}", mnt.display());
                return;
            }
        };
        let dir = mnt.join("log");
        std::fs::create_dir(&dir).unwrap();
        let filler = mnt.join("filler");
        fill(&filler);
        s.config_in(&dir, "fsync = \"always\"", "", "");
        let mut d = s.start(driver, 1);
        for i in 0..5 {
            realize(&d, &format!("full-{i}"));
        }
        assert_eq!(d.metric("dcsd_eventlog_dropped_total{reason=\"io\"}"), 5, "{driver}");
        assert!(d.metric("dcsd_eventlog_io_errors_total") > 0, "{driver}");
        assert!(all_records(&dir, false).is_empty(), "{driver}: no record, and no part of one");
        assert_eq!(errors_about(&d, &dir).len(), 1, "{driver}: logged once: {:#?}", errors_about(&d, &dir));

        std::fs::remove_file(&filler).unwrap();
        let (tid, _) = realize(&d, "room-again");
        let recs = all_records(&dir, false);
        assert_eq!(
            recs.iter().map(|r| str_of(r, "tid")).collect::<Vec<_>>(),
            [tid],
            "{driver}: writes again"
        );
        assert_eq!(d.metric("dcsd_eventlog_dropped_total{reason=\"io\"}"), 5, "{driver}");
        stop(&mut d);
        assert!(log_files(&dir).iter().all(|f| f.done), "{driver}: {:?}", log_files(&dir));
    });
}

// === 8. snapshot and replay ===

/// A periodic snapshot notes the log positions it covers; after a `kill -9` the restart
/// restores it and replays only the records written after it: those of the requests sent
/// after the snapshot (exactly, when no later snapshot can have started), never the earlier
/// ones again — every profile, from before and after the snapshot, holds trait 1234 once.
#[test]
fn replay_after_a_periodic_snapshot_applies_only_the_later_records() {
    let s = Setup::new();
    s.config("fsync = \"always\"", &s.snapshot_every(1), "");
    let mut d = s.start(common::SEMANTICS_DRIVER, 1);
    let before: Vec<(String, String)> =
        (0..5).map(|i| (format!("pre-{i}"), realize(&d, &format!("pre-{i}")).1)).collect();
    // Two more snapshots: the second began after the requests were answered.
    let n0 = lines(&d, "periodic snapshot written");
    d.wait_log("periodic snapshot written", n0 + 2);
    let snapped = Instant::now();
    let after: Vec<(String, String)> =
        (0..5).map(|i| (format!("post-{i}"), realize(&d, &format!("post-{i}")).1)).collect();
    let elapsed = snapped.elapsed();
    kill(&mut d);

    s.config("fsync = \"always\"", &s.snapshot_every(3600), "");
    let d = s.start(common::SEMANTICS_DRIVER, 1);
    d.wait_log("restored 5 profiles from", 1);
    let (n, applied, _, line) = replayed(&d);
    assert!(line.contains("after the snapshot's positions"), "{line}");
    assert!(n <= 5 && applied <= n, "only the records after the snapshot: {line}");
    if elapsed < Duration::from_millis(900) {
        // The next snapshot starts 1 s after the last one was written: none covers `after`.
        assert_eq!((n, applied), (5, 5), "{line}");
    } else {
        eprintln!("the requests after the snapshot took {elapsed:?}: a later snapshot may cover some");
    }
    for (id, uuid) in before.iter().chain(&after) {
        assert_profile(&d, id, uuid, "after the snapshot and replay");
    }
}

/// A clean stop's final snapshot covers the whole log: the next start replays nothing. After
/// that run is killed, the third start replays exactly that run's records, and every profile
/// of both runs holds trait 1234 once.
#[test]
fn replay_after_the_final_snapshot_applies_exactly_the_records_after_it() {
    let s = Setup::new();
    s.config("fsync = \"always\"", &s.snapshot_every(3600), "");
    let mut d = s.start(common::SEMANTICS_DRIVER, 1);
    let first: Vec<(String, String)> =
        (0..3).map(|i| (format!("one-{i}"), realize(&d, &format!("one-{i}")).1)).collect();
    stop(&mut d);
    d.wait_log("snapshot written: 3 profiles", 1);

    let mut d = s.start(common::SEMANTICS_DRIVER, 1);
    let (n, applied, _, line) = replayed(&d);
    assert_eq!((n, applied), (0, 0), "{line}");
    assert!(line.contains("after the snapshot's positions"), "{line}");
    let second: Vec<(String, String)> =
        (0..4).map(|i| (format!("two-{i}"), realize(&d, &format!("two-{i}")).1)).collect();
    kill(&mut d);

    let d = s.start(common::SEMANTICS_DRIVER, 1);
    let (n, applied, files, line) = replayed(&d);
    assert_eq!((n, applied, files), (4, 4, 1), "the killed run's file: {line}");
    for (id, uuid) in first.iter().chain(&second) {
        assert_profile(&d, id, uuid, "after the final snapshot and replay");
    }
}

// === 9. verify-log ===

/// A valid record line (`n` makes its tid and uuid unique).
fn valid_line(n: u64) -> String {
    format!(
        r#"{{"ts":1765000000{n:03},"tid":"AAAAAAAAAA{:02}","kind":"event","host":"localhost","ip":"127.0.0.1","region":7,"signals":{{"c_likes":["famous popstar"],"h_host":["localhost"]}},"customer":1,"uuid":"{n:038}","declared":[],"traits":[1234],"segments":[984263],"partners":{{}},"errors":[],"mode":"json"}}"#,
        n % 100
    ) + "\n"
}

/// `dcsd verify-log` (docs/eventlog.md §6): a corrupt line in the middle of a file is a
/// violation (exit 1) named FILE:LINE; a torn last line (a crash) is not (exit 0), in an open
/// file and in one a restart renamed `.done`, and the report counts records per file and per
/// kind; the same sequence number both open and `.done` is a violation; an empty directory
/// is valid; a directory that cannot be read exits 1.
#[test]
fn verify_log_refuses_corruption_and_accepts_a_torn_last_line() {
    let tmp = temp_dir();
    let dir = |name: &str| -> PathBuf {
        let d = tmp.0.join(name);
        std::fs::create_dir(&d).unwrap();
        d
    };

    let good = dir("good");
    let files = [
        ("events-0-00000001.ndjson.done", valid_line(1) + &valid_line(2)),
        ("events-0-00000002.ndjson.done", valid_line(3) + &valid_line(4)[..90]),
        ("events-0-00000003.ndjson", valid_line(5) + &valid_line(6)[..40]),
        ("events-1-00000001.ndjson", valid_line(7)),
    ];
    for (name, bytes) in &files {
        std::fs::write(good.join(name), bytes).unwrap();
    }
    std::fs::write(good.join("README"), "other files are ignored\n").unwrap();
    let (code, report) = verify_log(&good);
    assert_eq!(code, 0, "torn last lines are a crash's, not corruption: {report}");
    let per_file: Vec<String> = files
        .iter()
        .map(|(name, bytes)| {
            let n = bytes.matches('\n').count();
            let torn = if bytes.ends_with('\n') { "no" } else { "yes" };
            format!(
                "{name}: {n} records, {} bytes, event {n}, ibs 0, optout 0, partner 0, torn {torn}",
                bytes.len()
            )
        })
        .collect();
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    let mut want = per_file;
    want.push(format!(
        "total: 4 files, 5 records, {total} bytes, event 5, ibs 0, optout 0, partner 0, 2 torn"
    ));
    want.push("violations: 0".to_string());
    assert_eq!(report.lines().collect::<Vec<_>>(), want, "{report}");

    let corrupt = dir("corrupt");
    let bytes = valid_line(1) + "{\"ts\":17650000, this is not json\n" + &valid_line(2);
    std::fs::write(corrupt.join("events-0-00000001.ndjson.done"), bytes).unwrap();
    let (code, report) = verify_log(&corrupt);
    assert_eq!(code, 1, "{report}");
    assert!(report.lines().any(|l| l == "violations: 1"), "{report}");
    assert!(
        report.lines().any(|l| l.starts_with("events-0-00000001.ndjson.done:2: ")),
        "names FILE:LINE: {report}"
    );

    let twice = dir("twice");
    std::fs::write(twice.join("events-0-00000001.ndjson.done"), valid_line(1)).unwrap();
    std::fs::write(twice.join("events-0-00000001.ndjson"), valid_line(2)).unwrap();
    let (code, report) = verify_log(&twice);
    assert_eq!(code, 1, "sequence 1 both open and done: {report}");
    assert!(report.lines().any(|l| l == "violations: 1"), "{report}");

    let (code, report) = verify_log(&dir("empty"));
    assert_eq!(code, 0, "{report}");
    let (code, report) = verify_log(&tmp.0.join("missing"));
    assert_eq!(code, 1, "{report}");
}
