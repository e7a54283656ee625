//! The snapshot file's failure modes through the real binary (docs/configuration.md §3.8,
//! §6.3): a refused snapshot is moved aside and never overwritten, stale temp files of a
//! crashed writer are removed, and a much smaller snapshot keeps the file it replaces as
//! `<path>.previous`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // test clients may block

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{temp_dir, Daemon, TempDir};
use dcsd::table::snapshot;
use dcsd::table::TableConfig;

/// Profile IDs (`demdex` cookies) whose profiles must survive or be recoverable.
const UUIDS: [&str; 3] = [
    "00000000000000000000000000000000000701",
    "00000000000000000000000000000000000702",
    "00000000000000000000000000000000000703",
];

/// A snapshot directory and `dcsd.toml` shared by the daemons of one test.
struct Store {
    dir: TempDir,
    snap: PathBuf,
    cfg: PathBuf,
}

impl Store {
    fn new() -> Store {
        Store::named("profiles.snap")
    }

    fn named(file: &str) -> Store {
        let dir = temp_dir();
        let (snap, cfg) = (dir.0.join(file), dir.0.join("dcsd.toml"));
        Store { dir, snap, cfg }
    }

    /// Starts a daemon with this `[store]`.
    fn start(&self, interval_s: u32, max_profiles: usize, shrink_ratio: f64) -> Daemon {
        let toml = format!(
            "[store]\nsnapshot_path = \"{}\"\nsnapshot_interval_s = {interval_s}\nmax_profiles = {max_profiles}\n\
             snapshot_shrink_ratio = {shrink_ratio:?}\n",
            self.snap.display()
        );
        std::fs::write(&self.cfg, toml).unwrap();
        Daemon::spawn(&["--config", self.cfg.to_str().unwrap(), "--listen", "127.0.0.1:0", "--threads", "1"])
    }

    fn with_suffix(&self, suffix: &str) -> PathBuf {
        PathBuf::from(format!("{}{suffix}", self.snap.display()))
    }

    fn previous(&self) -> PathBuf {
        self.with_suffix(".previous")
    }

    /// Files named `<snap>.refused-*`, sorted.
    fn asides(&self) -> Vec<PathBuf> {
        let prefix = format!("{}.refused-", self.snap.file_name().unwrap().to_str().unwrap());
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&prefix))
            .collect();
        v.sort();
        v
    }

    /// Why restore refuses the file now, as the daemon's log line words it.
    fn refusal(&self) -> String {
        let small = TableConfig { max_profiles: 10_000, ..TableConfig::default() };
        snapshot::restore(&self.snap, small).map(|_| ()).expect_err("the file is refused").to_string()
    }
}

/// `/event` for profile `uuid` realizing traits 1234 and 5678 (demo taxonomy: segment 984263).
fn realize(d: &Daemon, uuid: &str) {
    let raw = format!(
        "GET /event?d_rtbd=json&d_cts=2&d_sid=1234,5678 HTTP/1.1\r\nHost: localhost\r\nCookie: demdex={uuid}\r\n\r\n"
    );
    let r = d.request(raw.as_bytes());
    assert!(r.body_str().contains("\"segments\":[984263]"), "{}", r.body_str());
}

/// Whether the profile of `uuid` is in the table: its stored traits still qualify it for
/// the segment in a request that realizes nothing.
fn has_profile(d: &Daemon, uuid: &str) -> bool {
    let raw = format!(
        "GET /event?d_rtbd=json&d_cts=2 HTTP/1.1\r\nHost: localhost\r\nCookie: demdex={uuid}\r\n\r\n"
    );
    let r = d.request(raw.as_bytes());
    assert!(r.body_str().contains(&format!("\"uuid\":\"{uuid}\"")), "{}", r.body_str());
    r.body_str().contains("\"traits\":[],\"segments\":[984263]")
}

/// A daemon writes the profiles of `UUIDS` and stops: the final snapshot's bytes.
fn snapshot_of_three(s: &Store) -> Vec<u8> {
    let mut d = s.start(3600, 10_000, 0.5);
    for uuid in UUIDS {
        realize(&d, uuid);
    }
    stop(&mut d);
    d.wait_log("snapshot written: 3 profiles", 1);
    std::fs::read(&s.snap).unwrap()
}

/// A daemon realizes a trait for `n` new profiles and stops: the final snapshot's bytes.
fn snapshot_of(s: &Store, n: usize) -> Vec<u8> {
    let mut d = s.start(3600, 10_000, 0.5);
    for _ in 0..n {
        // No cookie: a new profile each time.
        assert_eq!(d.request(b"GET /event?d_sid=4242 HTTP/1.1\r\nHost: localhost\r\n\r\n").status, 200);
    }
    assert_eq!(d.metric("dcsd_profiles"), n as u64);
    stop(&mut d);
    d.wait_log(&format!("snapshot written: {n} profiles"), 1);
    std::fs::read(&s.snap).unwrap()
}

fn stop(d: &mut Daemon) {
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success(), "{:?}", d.log());
}

/// The log lines containing `needle`.
fn lines(d: &Daemon, needle: &str) -> Vec<String> {
    d.log().into_iter().filter(|l| l.contains(needle)).collect()
}

/// `20261129T203455Z` for `t`, as the daemon names a refused file.
fn stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (y, mo, d) = dcsd::log::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Checks the one refusal line: error level, the reason, the aside name and the size.
fn assert_refused_line(d: &Daemon, s: &Store, reason: &str, aside: &Path, bytes: usize) {
    let refused = lines(d, "refused (");
    assert_eq!(refused.len(), 1, "{:?}", d.log());
    let want = format!(
        "ERROR snapshot {} refused ({reason}); moved aside to {} ({bytes} bytes); starting with an empty profile table",
        s.snap.display(),
        aside.display()
    );
    assert!(refused[0].ends_with(&want), "{}\nwanted {want}", refused[0]);
}

#[test]
fn a_flipped_byte_is_refused_moved_aside_and_never_overwritten() {
    let s = Store::new();
    let mut bytes = snapshot_of_three(&s);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&s.snap, &bytes).unwrap();
    let reason = s.refusal();

    let mut d = s.start(1, 10_000, 0.5);
    let asides = s.asides();
    assert_eq!(asides.len(), 1, "{asides:?}");
    let name = asides[0].file_name().unwrap().to_str().unwrap();
    let when = name.strip_prefix("profiles.snap.refused-").unwrap();
    assert!(
        when.len() == 16 && when.as_bytes()[8] == b'T' && when.ends_with('Z'),
        "a UTC time in basic format: {name}"
    );
    assert_eq!(std::fs::read(&asides[0]).unwrap(), bytes, "moved aside unchanged");
    assert_refused_line(&d, &s, &reason, &asides[0], bytes.len());
    assert_eq!(d.metric("dcsd_profiles"), 0, "the table starts empty");

    // The next periodic snapshot takes the freed path; the refused file stays as it was.
    d.wait_log("periodic snapshot written to", 1);
    let (empty, _) = snapshot::restore(&s.snap, TableConfig { max_profiles: 100, ..TableConfig::default() })
        .expect("a complete snapshot at the path");
    assert!(empty.is_empty());
    assert_eq!(s.asides(), asides);
    assert_eq!(std::fs::read(&asides[0]).unwrap(), bytes);
    assert_eq!(d.metric("dcsd_snapshot_shrink_guard_total"), 0, "nothing was replaced");
    assert!(!has_profile(&d, UUIDS[0]), "the profiles are only in the refused file");
    stop(&mut d);
    assert_eq!(s.asides(), asides);
    assert_eq!(std::fs::read(&asides[0]).unwrap(), bytes, "nor by the final snapshot");
}

#[test]
fn a_truncated_snapshot_is_moved_aside_under_a_free_name() {
    let s = Store::new();
    let bytes = snapshot_of_three(&s);
    let half = &bytes[..bytes.len() / 2];
    std::fs::write(&s.snap, half).unwrap();
    let reason = s.refusal();
    assert!(reason.contains("truncated"), "{reason}");
    // Names the daemon would pick within the next half minute are taken: it must add a
    // suffix rather than replace one.
    let now = SystemTime::now();
    let taken: Vec<PathBuf> = (0..30)
        .map(|k| s.with_suffix(&format!(".refused-{}", stamp(now + Duration::from_secs(k)))))
        .collect();
    for p in &taken {
        std::fs::write(p, b"an older refused snapshot").unwrap();
    }

    let d = s.start(3600, 10_000, 0.5);
    let new: Vec<PathBuf> = s.asides().into_iter().filter(|p| !taken.contains(p)).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let suffixed = taken.iter().any(|t| new[0].as_os_str() == format!("{}.1", t.display()).as_str());
    assert!(suffixed, "{} is one of the taken names plus .1", new[0].display());
    assert_eq!(std::fs::read(&new[0]).unwrap(), half, "moved aside unchanged");
    assert_refused_line(&d, &s, &reason, &new[0], half.len());
    assert!(!s.snap.exists(), "the path is free");
    for p in &taken {
        assert_eq!(std::fs::read(p).unwrap(), b"an older refused snapshot", "{}", p.display());
    }
}

#[test]
fn a_crash_during_a_write_leaves_temp_files_that_the_next_start_removes() {
    let s = Store::new();
    let mut d = s.start(1, 10_000, 0.5);
    for uuid in UUIDS {
        realize(&d, uuid);
    }
    d.wait_log(": 3 profiles,", 1); // a periodic snapshot holds all three
                                    // A crash: no final snapshot. What a writer killed mid-write leaves: the start of the
                                    // stream in `<path>.tmp`, and perhaps the shrink guard's staged link.
    d.signal("KILL");
    d.wait_exit(Duration::from_secs(10));
    let good = std::fs::read(&s.snap).unwrap();
    let torn = &good[..good.len() / 2];
    std::fs::write(s.with_suffix(".tmp"), torn).unwrap();
    std::fs::write(s.with_suffix(".tmp.previous"), &good).unwrap();

    let d = s.start(3600, 10_000, 0.5);
    for (suffix, bytes) in [(".tmp", torn.len()), (".tmp.previous", good.len())] {
        let want = format!(
            "WARN  removed {} ({bytes} bytes), left by an interrupted snapshot write",
            s.with_suffix(suffix).display()
        );
        assert_eq!(lines(&d, &want).len(), 1, "{want} not in {:?}", d.log());
        assert!(!s.with_suffix(suffix).exists());
    }
    assert_eq!(lines(&d, "restored 3 profiles from").len(), 1, "{:?}", d.log());
    for uuid in UUIDS {
        assert!(has_profile(&d, uuid), "{uuid} restored intact");
    }
    assert_eq!(std::fs::read(&s.snap).unwrap(), good, "the last complete snapshot is untouched");
}

/// The guard's warning for a snapshot of `new` profiles replacing one of `previous`.
fn guard_line(s: &Store, previous: u64) -> String {
    format!(
        "fewer than store.snapshot_shrink_ratio 0.5 × the {previous} of the file it replaces; that file is kept as {}",
        s.previous().display()
    )
}

#[test]
fn a_much_smaller_periodic_snapshot_keeps_the_previous_file() {
    let s = Store::new();
    let big = snapshot_of(&s, 200);

    // 64 shards of one profile: the restored table keeps at most 64 of the file's 200.
    let mut d = s.start(1, 64, 0.5);
    d.wait_log("restored 200 profiles from", 1);
    let kept = d.metric("dcsd_profiles");
    assert!(kept > 0 && kept <= 64, "{kept}");
    d.wait_log("periodic snapshot written to", 1);
    let warned = lines(&d, "WARN  snapshot ");
    assert_eq!(warned.len(), 1, "{:?}", d.log());
    let want = format!("the new snapshot holds {kept} profiles, {}", guard_line(&s, 200));
    assert!(warned[0].ends_with(&want), "{}\nwanted {want}", warned[0]);
    assert_eq!(std::fs::read(s.previous()).unwrap(), big, "kept byte for byte");
    assert_eq!(d.metric("dcsd_snapshot_shrink_guard_total"), 1);

    // Once: the file to compare with is now the small one.
    d.wait_log("periodic snapshot written to", 2);
    stop(&mut d);
    assert_eq!(lines(&d, "that file is kept as").len(), 1, "{:?}", d.log());
    assert_eq!(std::fs::read(s.previous()).unwrap(), big);
}

#[test]
fn the_final_snapshot_goes_through_the_guard_and_ratio_0_turns_it_off() {
    let s = Store::new();
    let big = snapshot_of(&s, 200);
    std::fs::write(s.previous(), b"an older previous file").unwrap();

    // No periodic write before the stop: the final snapshot is the one guarded.
    let mut d = s.start(3600, 64, 0.5);
    d.wait_log("restored 200 profiles from", 1);
    let kept = d.metric("dcsd_profiles");
    stop(&mut d);
    let want = format!("the new snapshot holds {kept} profiles, {}", guard_line(&s, 200));
    assert_eq!(lines(&d, &want).len(), 1, "{want} not in {:?}", d.log());
    assert_eq!(lines(&d, &format!("snapshot written: {kept} profiles")).len(), 1);
    assert_eq!(std::fs::read(s.previous()).unwrap(), big, "replaces the older .previous");

    // Ratio 0: the same shrink is written without keeping anything.
    std::fs::write(&s.snap, &big).unwrap();
    std::fs::remove_file(s.previous()).unwrap();
    let mut d = s.start(3600, 64, 0.0);
    d.wait_log("restored 200 profiles from", 1);
    stop(&mut d);
    assert!(lines(&d, "that file is kept as").is_empty(), "{:?}", d.log());
    assert_eq!(lines(&d, "snapshot written: ").len(), 1);
    assert!(!s.previous().exists());
}

#[test]
fn a_refused_snapshot_that_cannot_be_moved_aside_turns_snapshots_off() {
    // The aside name (25 bytes longer) is past NAME_MAX; `<path>.tmp` would not be.
    let s = Store::named(&"p".repeat(240));
    let junk = b"this is not a dcsd snapshot at all";
    std::fs::write(&s.snap, junk).unwrap();
    let mut d = s.start(1, 10_000, 0.5);
    let refused = lines(&d, "refused (");
    assert_eq!(refused.len(), 1, "{:?}", d.log());
    assert!(
        refused[0].contains(&format!(
            "ERROR snapshot {} refused ({}) and not moved aside",
            s.snap.display(),
            s.refusal()
        )) && refused[0].contains(&format!("({} bytes; ", junk.len()))
            && refused[0]
                .ends_with("File name too long (os error 36)); starting with an empty profile table"),
        "{}",
        refused[0]
    );
    let off = format!(
        "ERROR snapshots are disabled for this run (periodic and at shutdown) so that {} is not overwritten",
        s.snap.display()
    );
    assert_eq!(lines(&d, &off).len(), 1, "{:?}", d.log());
    // With snapshots on, the stop would write one.
    stop(&mut d);
    assert!(lines(&d, "snapshot written").is_empty(), "{:?}", d.log());
    assert_eq!(std::fs::read(&s.snap).unwrap(), junk, "not overwritten");
}
