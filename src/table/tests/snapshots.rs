//! Snapshot round trips and refusals.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::super::snapshot::{self, SnapshotError};
use super::super::*;
use super::{sample, NOW};

fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("dcsd-table-{}-{n}-{name}", std::process::id()))
}

fn config() -> TableConfig {
    TableConfig { max_profiles: 10_000, shards: 4, ..TableConfig::default() }
}

fn filled(profiles: u128) -> ProfileTable {
    let t = ProfileTable::new(config());
    for i in 0..profiles {
        t.update(Uuid(i), NOW, |p| sample(p, i as u32));
        t.sync_declared(Uuid(i), 20_914, &format!("crm{i:09}"), NOW);
    }
    t.update(Uuid(1), NOW, |p| {
        p.opt_out_globally();
        p.set_ecid(Some(42));
        p.denylist.note_request(NOW, &DenyRule::default());
    });
    t.map_ecid(42, Uuid(1));
    let blocked = IdRef::Declared(20_914, "crm000000007");
    while !t.note_id(blocked, NOW) {}
    t.note_id(IdRef::Ecid(42), NOW);
    t
}

#[test]
fn a_snapshot_restores_every_profile_and_mapping() {
    let (t, path) = (filled(300), temp_path("round-trip"));
    assert_eq!(t.snapshot_report(), snapshot::SnapshotReport::default(), "nothing written yet");
    let written = snapshot::write(&t, &path, 0.0).unwrap();
    assert_eq!((written.profiles, written.declared, written.ecids, written.denied), (300, 300, 1, 2));
    let report = t.snapshot_report();
    assert!(report.last_ok_s > 0 && report.last_duration > Duration::ZERO, "{report:?}");
    assert_eq!((report.last_bytes, report.failures), (written.bytes, 0));
    let unwritable = temp_path("no-such-dir").join("snap");
    assert!(snapshot::write(&t, &unwritable, 0.0).is_err());
    assert_eq!(
        t.snapshot_report(),
        snapshot::SnapshotReport { failures: 1, ..report },
        "a failure keeps the last success"
    );
    let (r, read) = snapshot::restore(&path, t.config().clone()).unwrap();
    assert_eq!(read, written);
    for i in 0..300u128 {
        assert_eq!(r.get(Uuid(i), NOW), t.get(Uuid(i), NOW));
        assert_eq!(r.lookup_declared(20_914, &format!("crm{i:09}")), Some(Uuid(i)));
    }
    let p = r.get(Uuid(1), NOW).unwrap();
    assert!(p.is_opted_out_globally() && p.denylist.count == 1);
    assert_eq!(r.lookup_ecid(42), Some(Uuid(1)));
    assert!(r.is_id_blocked(IdRef::Declared(20_914, "crm000000007"), NOW), "the ID denylist survives");
    assert!(!r.is_id_blocked(IdRef::Ecid(42), NOW));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn an_empty_table_round_trips() {
    let path = temp_path("empty");
    let t = ProfileTable::new(config());
    // Header, an empty note's length, the trailer.
    assert_eq!(snapshot::write(&t, &path, 0.0).unwrap().bytes, 16 + 4 + 1 + 8 + 4);
    assert!(snapshot::restore(&path, config()).unwrap().0.is_empty());
    std::fs::remove_file(path).unwrap();
}

#[test]
fn every_truncation_is_refused() {
    let (t, path) = (filled(5), temp_path("truncated"));
    snapshot::write(&t, &path, 0.0).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for cut in 0..bytes.len() {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = snapshot::restore(&path, config()).err();
        assert!(
            matches!(err, Some(SnapshotError::Truncated | SnapshotError::Corrupt(_))),
            "cut {cut}: {err:?}"
        );
    }
    std::fs::write(&path, [&bytes[..], b"x"].concat()).unwrap();
    assert!(matches!(snapshot::restore(&path, config()), Err(SnapshotError::Corrupt(_))));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn every_flipped_byte_is_refused() {
    let (t, path) = (filled(3), temp_path("corrupt"));
    snapshot::write(&t, &path, 0.0).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let err = snapshot::restore(&path, config()).err();
        assert!(err.is_some(), "flip at {i} was loaded");
        assert!(!err.unwrap().to_string().is_empty());
    }
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_missing_file_is_an_io_error() {
    let err = snapshot::restore(&temp_path("missing"), config()).err();
    assert!(matches!(err, Some(SnapshotError::Io(_))), "{err:?}");
}

#[test]
fn the_snapshotter_writes_periodically_and_at_stop() {
    let (t, path) = (std::sync::Arc::new(filled(10)), temp_path("thread"));
    // The note is made for each write, just before its walk: the final one says "2".
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let w = writes.clone();
    let note: snapshot::NoteFn = std::sync::Arc::new(move || {
        format!("write {}", w.fetch_add(1, std::sync::atomic::Ordering::SeqCst)).into_bytes()
    });
    let s = snapshot::spawn_snapshotter(
        std::sync::Arc::clone(&t),
        path.clone(),
        Duration::from_millis(5),
        0.5,
        note,
    )
    .unwrap();
    t.update(Uuid(500), NOW, |p| p.realize(1, NOW));
    let stats = s.stop_and_write_final().unwrap();
    assert_eq!(stats.profiles, 11);
    let (r, _, note) = snapshot::restore_noted(&path, config()).unwrap();
    assert!(r.contains(Uuid(500)));
    let last = writes.load(std::sync::atomic::Ordering::SeqCst) - 1;
    assert_eq!(String::from_utf8(note).unwrap(), format!("write {last}"));
    assert!(!PathBuf::from(format!("{}.tmp", path.display())).exists());
    std::fs::remove_file(path).unwrap();
}

/// `filled(n)` written to a fresh path, then restored: a table that knows its file holds `n`.
fn restored(n: u128, name: &str) -> (ProfileTable, PathBuf, Vec<u8>) {
    let path = temp_path(name);
    snapshot::write(&filled(n), &path, 0.5).unwrap();
    let (t, read) = snapshot::restore(&path, config()).unwrap();
    assert_eq!(read.profiles, n as u64);
    (t, path.clone(), std::fs::read(&path).unwrap())
}

fn cleanup(path: &Path) {
    for p in [path.to_path_buf(), snapshot::previous_path(path)] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn a_much_smaller_snapshot_keeps_the_file_it_replaces() {
    let (t, path, big) = restored(300, "shrink");
    let previous = snapshot::previous_path(&path);
    std::fs::write(&previous, b"older").unwrap();
    for i in 0..160u128 {
        assert!(t.remove(Uuid(i)));
    }
    // 140 < 0.5 × 300: the 300-profile file is kept, replacing the older `.previous`.
    assert_eq!(snapshot::write(&t, &path, 0.5).unwrap().profiles, 140);
    assert_eq!(std::fs::read(&previous).unwrap(), big, "kept byte for byte");
    assert_eq!(snapshot::restore(&path, config()).unwrap().1.profiles, 140);
    assert_eq!(t.snapshot_report().shrink_guards, 1);
    // The count to beat is now the file just written (140), not the restored one.
    for i in 160..200u128 {
        t.remove(Uuid(i));
    }
    snapshot::write(&t, &path, 0.5).unwrap();
    assert_eq!(t.snapshot_report().shrink_guards, 1, "100 is not below 0.5 × 140");
    assert_eq!(std::fs::read(&previous).unwrap(), big);
    // Ratio 0: never.
    for i in 200..300u128 {
        t.remove(Uuid(i));
    }
    assert_eq!(snapshot::write(&t, &path, 0.0).unwrap().profiles, 0);
    assert_eq!((t.snapshot_report().shrink_guards, t.snapshot_report().failures), (1, 0));
    assert_eq!(std::fs::read(&previous).unwrap(), big);
    cleanup(&path);
}

#[test]
fn the_guard_counts_the_restored_file_not_what_the_table_kept() {
    let (_, path, big) = restored(300, "shrink-evicted");
    // A table of 8 profiles restores at most 8 of the file's 300.
    let small = TableConfig { max_profiles: 8, shards: 4, ..TableConfig::default() };
    let (t, read) = snapshot::restore(&path, small).unwrap();
    assert!(read.profiles == 300 && t.len() <= 8, "{} kept", t.len());
    snapshot::write(&t, &path, 0.5).unwrap();
    assert_eq!(std::fs::read(snapshot::previous_path(&path)).unwrap(), big);
    assert_eq!(t.snapshot_report().shrink_guards, 1);
    cleanup(&path);
}

#[test]
fn a_previous_file_that_cannot_be_kept_fails_the_write_and_keeps_the_old_one() {
    let (t, path, big) = restored(50, "shrink-blocked");
    // A non-empty directory where `.previous` goes: the rename over it fails.
    let previous = snapshot::previous_path(&path);
    std::fs::create_dir_all(previous.join("x")).unwrap();
    for i in 0..50u128 {
        t.remove(Uuid(i));
    }
    assert!(matches!(snapshot::write(&t, &path, 0.5), Err(SnapshotError::Io(_))));
    assert_eq!(std::fs::read(&path).unwrap(), big, "not replaced");
    let report = t.snapshot_report();
    assert_eq!((report.failures, report.shrink_guards), (1, 0));
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("{name}.tmp")))
        .collect();
    assert!(left.is_empty(), "temp files left behind: {left:?}");
    std::fs::remove_dir_all(previous).unwrap();
    cleanup(&path);
}

#[test]
fn a_snapshot_removed_by_hand_is_simply_written_again() {
    let (t, path, _) = restored(50, "shrink-gone");
    std::fs::remove_file(&path).unwrap();
    t.remove(Uuid(3));
    for i in 0..50u128 {
        t.remove(Uuid(i));
    }
    assert_eq!(snapshot::write(&t, &path, 0.5).unwrap().profiles, 0);
    assert!(!snapshot::previous_path(&path).exists());
    assert_eq!(t.snapshot_report().shrink_guards, 0);
    cleanup(&path);
}
