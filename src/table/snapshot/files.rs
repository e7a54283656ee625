//! The files that live beside a snapshot at `path`, and the renames between them:
//!
//! * `<path>.tmp` — the write in progress. [`remove_stale_temps`] deletes every `<path>.tmp*`
//!   at start: one is only ever there because a writer died before its rename, and nothing
//!   reads it (it may be complete, but nothing says so, and the file at `path` is at worst one
//!   interval older).
//! * `<path>.refused-<UTC>` — a snapshot that restore refused, renamed by [`move_aside`] so the
//!   next write cannot replace the only copy of what might still be recovered by hand. An
//!   existing name is never reused: `.1`, `.2`… are appended instead.
//! * `<path>.previous` — the file a much smaller snapshot replaced (the shrink guard):
//!   [`keep_previous`] hard-links it there before the new file is renamed over `path`, so
//!   `path` never goes missing, not even for a moment.
//!
//! Only the snapshot thread and start-up (before any worker exists) call these: all of it is
//! blocking file IO. Linux semantics assumed (rename replaces atomically, hard links exist).

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Names tried for a refused file before giving up (`<stamp>`, `<stamp>.1`, …): a second
/// refusal within the same second is plausible (a restart loop), a thousand is not.
const MAX_ASIDE_SUFFIX: u32 = 1000;

/// A temp file found (and deleted, unless `removed` says otherwise) at start-up.
#[derive(Debug)]
pub struct StaleTemp {
    /// Where it was.
    pub path: PathBuf,
    /// Its size (0 if it could not be read).
    pub bytes: u64,
    /// Whether it is gone.
    pub removed: io::Result<()>,
}

/// `<path>.tmp`, where [`super::write()`] streams a snapshot before renaming it over `path`.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    with_suffix(path, ".tmp")
}

/// `<path>.previous`, where the shrink guard keeps the file a much smaller snapshot replaced.
pub fn previous_path(path: &Path) -> PathBuf {
    with_suffix(path, ".previous")
}

/// Deletes every `<path>.tmp*` (files a crashed writer left), returning what it found.
///
/// # Errors
/// The directory of `path` cannot be read (a missing directory holds nothing stale: `Ok`).
pub fn remove_stale_temps(path: &Path) -> io::Result<Vec<StaleTemp>> {
    let (dir, Some(name)) = (dir_of(path), path.file_name()) else {
        return Ok(Vec::new());
    };
    let prefix = [name.as_bytes(), b".tmp"].concat();
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_name().as_bytes().starts_with(&prefix) {
            continue;
        }
        let stale = entry.path();
        // Not followed: a link named like a temp file is removed, not its target.
        let bytes = fs::symlink_metadata(&stale).map_or(0, |m| m.len());
        let removed = fs::remove_file(&stale);
        found.push(StaleTemp { path: stale, bytes, removed });
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// Renames the file at `path` to `<path>.refused-<now as UTC, 20261129T203455Z>`, or that name
/// with `.1`, `.2`… appended if it exists, and makes the rename durable. Returns the new name.
///
/// # Errors
/// The rename or the directory's fsync failed (the message names the target), or every
/// name up to `.1000` is taken; `path` is then where it was.
pub fn move_aside(path: &Path, now: SystemTime) -> io::Result<PathBuf> {
    let named = |to: &Path, e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", to.display()));
    let base = with_suffix(path, &format!(".refused-{}", utc_stamp(now)));
    let aside = free_name(&base).map_err(|e| named(&base, e))?;
    // Checked, then renamed: only this process writes beside its snapshot, and it does so
    // from one thread, so nothing can take the name in between.
    fs::rename(path, &aside).map_err(|e| named(&aside, e))?;
    sync_dir(path)?;
    Ok(aside)
}

/// Hard-links the snapshot at `path` as `<path>.previous`, replacing an older one. The new
/// snapshot is then renamed over `path`: the old file lives on under the second name, and
/// `path` is never missing (a plain rename to `.previous` would leave a moment, and after a
/// crash a restart, with no snapshot at `path`). The link is made under a temp name
/// (`<path>.tmp.previous`, which [`remove_stale_temps`] cleans up after a crash) and renamed
/// over `.previous`, so an older `.previous` is only replaced once the new one exists. The
/// caller fsyncs the directory.
///
/// # Errors
/// The link cannot be made (`NotFound` if nothing is at `path`; no hard links on this file
/// system; permissions) or renamed; the older `.previous` is then untouched.
pub(crate) fn keep_previous(path: &Path) -> io::Result<PathBuf> {
    let (staged, previous) = (with_suffix(path, ".tmp.previous"), previous_path(path));
    match fs::remove_file(&staged) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::hard_link(path, &staged)?;
    fs::rename(&staged, &previous).inspect_err(|_| {
        let _ = fs::remove_file(&staged);
    })?;
    Ok(previous)
}

/// Whether a snapshot of `new` profiles replacing a file of `previous` profiles trips the
/// shrink guard: fewer than `ratio` × `previous` (`store.snapshot_shrink_ratio`; 0 never).
pub(crate) fn shrank(previous: u64, new: u64, ratio: f64) -> bool {
    // Exact below 2^53 profiles, far beyond any table.
    (new as f64) < ratio * previous as f64
}

/// Makes a rename in `path`'s directory durable.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    fs::File::open(dir_of(path))?.sync_all()
}

/// The directory holding `path` (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// `base`, or `base.1`, `base.2`… — the first name nothing (not even a dangling link) holds.
fn free_name(base: &Path) -> io::Result<PathBuf> {
    for n in 0..=MAX_ASIDE_SUFFIX {
        let name = if n == 0 { base.to_path_buf() } else { with_suffix(base, &format!(".{n}")) };
        match fs::symlink_metadata(&name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(name),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{}.1…{MAX_ASIDE_SUFFIX} all exist", base.display()),
    ))
}

/// `path` with `suffix` appended to its last component.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// `20261129T203455Z`: ISO 8601 basic format, UTC, sortable and free of `:` (which some
/// tools and file systems dislike in names).
pub(crate) fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, mo, d) = crate::log::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}
