//! The files beside a snapshot: stale temp files, refused files moved aside, the shrink
//! guard's `.previous`.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::snapshot::files::{self, move_aside, remove_stale_temps};

/// 2026-11-29T20:34:55Z.
const AT_S: u64 = 1_795_984_495;

/// An empty directory of its own, removed at the end of the test.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("dcsd-files-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    fn put(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    /// File names in the directory, sorted.
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(&self.0).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(AT_S)
}

#[test]
fn stale_temp_files_of_the_path_and_only_those_are_removed() {
    let d = Dir::new("stale");
    let snap = d.put("snap", b"current");
    d.put("snap.tmp", &[7; 10]);
    d.put("snap.tmp.previous", &[7; 3]);
    d.put("snap.tmp.4711", &[]);
    for keep in ["snap.previous", "snap.refused-20261129T203455Z", "snapshot.tmp", "other.tmp", "tmp.snap"] {
        d.put(keep, b"keep");
    }
    let found = remove_stale_temps(&snap).unwrap();
    let found: Vec<(PathBuf, u64, bool)> =
        found.into_iter().map(|t| (t.path, t.bytes, t.removed.is_ok())).collect();
    assert_eq!(
        found,
        [
            (d.0.join("snap.tmp"), 10, true),
            (d.0.join("snap.tmp.4711"), 0, true),
            (d.0.join("snap.tmp.previous"), 3, true)
        ]
    );
    assert_eq!(
        d.names(),
        ["other.tmp", "snap", "snap.previous", "snap.refused-20261129T203455Z", "snapshot.tmp", "tmp.snap"]
    );
    assert!(remove_stale_temps(&snap).unwrap().is_empty(), "nothing left the second time");
}

#[test]
fn a_stale_temp_that_cannot_be_removed_is_reported() {
    let d = Dir::new("stale-dir");
    fs::create_dir(d.0.join("snap.tmp")).unwrap();
    let found = remove_stale_temps(&d.0.join("snap")).unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].removed.is_err(), "a directory is not removed as a file");
    assert!(d.0.join("snap.tmp").is_dir());
}

#[test]
fn a_missing_directory_holds_nothing_stale() {
    let d = Dir::new("no-dir");
    assert!(remove_stale_temps(&d.0.join("missing").join("snap")).unwrap().is_empty());
}

#[test]
fn the_aside_name_is_the_utc_time_in_basic_format() {
    assert_eq!(files::utc_stamp(at()), "20261129T203455Z");
    assert_eq!(files::utc_stamp(UNIX_EPOCH), "19700101T000000Z");
    assert_eq!(files::utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "20000229T000000Z");
}

#[test]
fn a_refused_file_is_moved_aside_and_never_over_another() {
    let d = Dir::new("aside");
    let snap = d.put("snap", b"refused one");
    let aside = move_aside(&snap, at()).unwrap();
    assert_eq!(aside, d.0.join("snap.refused-20261129T203455Z"));
    assert_eq!(fs::read(&aside).unwrap(), b"refused one");
    assert!(!snap.exists(), "the path is free for the next snapshot");

    // Refused again within the same second: a suffix, the first file untouched.
    d.put("snap", b"refused two");
    let second = move_aside(&snap, at()).unwrap();
    assert_eq!(second, d.0.join("snap.refused-20261129T203455Z.1"));
    d.put("snap", b"refused three");
    assert_eq!(move_aside(&snap, at()).unwrap(), d.0.join("snap.refused-20261129T203455Z.2"));
    assert_eq!(fs::read(&aside).unwrap(), b"refused one");
    assert_eq!(fs::read(&second).unwrap(), b"refused two");
}

#[test]
fn a_file_that_cannot_be_moved_aside_stays_where_it_is() {
    let d = Dir::new("aside-fails");
    assert!(move_aside(&d.0.join("missing"), at()).is_err());
    // The aside name is 25 bytes longer than the file's: past NAME_MAX (255) here.
    let long = d.put(&"s".repeat(240), b"refused");
    let err = move_aside(&long, at()).unwrap_err();
    assert!(err.to_string().contains(".refused-20261129T203455Z"), "names the target: {err}");
    assert_eq!(fs::read(&long).unwrap(), b"refused");
    assert_eq!(d.names().len(), 1);
}

#[test]
fn the_previous_file_is_linked_aside_replacing_an_older_one() {
    let d = Dir::new("previous");
    let snap = d.put("snap", b"big snapshot");
    d.put("snap.previous", b"older");
    let kept = files::keep_previous(&snap).unwrap();
    assert_eq!(kept, d.0.join("snap.previous"));
    assert_eq!(fs::read(&kept).unwrap(), b"big snapshot");
    assert_eq!(fs::read(&snap).unwrap(), b"big snapshot", "the path is never missing");
    assert_eq!(d.names(), ["snap", "snap.previous"], "no staged link left");
}

#[test]
fn nothing_to_keep_leaves_the_older_previous_alone() {
    let d = Dir::new("previous-missing");
    d.put("snap.previous", b"older");
    let err = files::keep_previous(&d.0.join("snap")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(fs::read(d.0.join("snap.previous")).unwrap(), b"older");
    assert_eq!(d.names(), ["snap.previous"]);
}

#[test]
fn the_guard_trips_below_the_ratio_only() {
    let cases = [
        (100, 49, 0.5, true),
        (100, 50, 0.5, false),
        (100, 0, 0.0, false),
        (100, 99, 1.0, true),
        (100, 100, 1.0, false),
        (100, 200, 0.5, false),
        (0, 0, 1.0, false),
        (1, 0, 0.01, true),
    ];
    for (previous, new, ratio, trips) in cases {
        assert_eq!(files::shrank(previous, new, ratio), trips, "{previous} → {new} at {ratio}");
    }
}
