//! Reading a snapshot back: [`restore`] and its checks. Every record is validated before it
//! is inserted, and the table is returned only once the trailer's count and CRC match and
//! nothing follows the trailer; until then it is a local that is dropped on any error.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use super::super::{codec, Kind, ProfileTable, TableConfig};
use super::{
    count_of, Crc, SnapshotError, SnapshotStats, IO_BUFFER_BYTES, KINDS, MAGIC, MAX_KEY_BYTES,
    MAX_NOTE_BYTES, MAX_VALUE_BYTES, TRAILER, VERSION,
};

/// Reads a snapshot into a new table built with `config`.
///
/// # Errors
/// [`SnapshotError::Truncated`] or [`SnapshotError::Corrupt`] for a bad file (nothing is
/// loaded), [`SnapshotError::Io`] if it cannot be read.
pub fn restore(path: &Path, config: TableConfig) -> Result<(ProfileTable, SnapshotStats), SnapshotError> {
    restore_noted(path, config).map(|(t, s, _)| (t, s))
}

/// [`restore`], with the snapshot's note (empty for a version 2 file).
///
/// # Errors
/// As [`restore`].
pub fn restore_noted(
    path: &Path,
    config: TableConfig,
) -> Result<(ProfileTable, SnapshotStats, Vec<u8>), SnapshotError> {
    let file = File::open(path)?;
    let mut input = Crc::new(BufReader::with_capacity(IO_BUFFER_BYTES, file));
    let mut head = [0u8; 16];
    input.read_exact(&mut head)?;
    if &head[..8] != MAGIC {
        return Err(SnapshotError::Corrupt("not a dcsd snapshot (bad magic)"));
    }
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version != VERSION && version != 2 {
        return Err(SnapshotError::Corrupt("unknown version"));
    }
    let mut note = Vec::new();
    if version >= 3 {
        read_field_u32(&mut input, &mut note, MAX_NOTE_BYTES)?;
    }
    let table = ProfileTable::new(config);
    let mut stats = SnapshotStats::default();
    let (mut key, mut val) = (Vec::new(), Vec::new());
    loop {
        let kind = match read_u8(&mut input)? {
            TRAILER => break,
            tag => kind_of(tag).ok_or(SnapshotError::Corrupt("unknown record kind"))?,
        };
        read_field(&mut input, &mut key, MAX_KEY_BYTES)?;
        read_field(&mut input, &mut val, MAX_VALUE_BYTES)?;
        validate(kind, &key, &val)?;
        table.insert_raw(kind, &key, &val);
        *count_of(&mut stats, kind) += 1;
    }
    check_trailer(&mut input, &stats)?;
    stats.bytes = input.bytes;
    // The file's count, not the table's: a smaller `max_profiles` may have evicted some, and
    // the shrink guard is about what the next write would replace.
    table.snapshots.file_profiles.store(stats.profiles, Relaxed);
    Ok((table, stats, note))
}

/// A u32-length-prefixed field.
fn read_field_u32<R: Read>(input: &mut R, out: &mut Vec<u8>, max: usize) -> Result<(), SnapshotError> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(SnapshotError::Corrupt("note too long"));
    }
    out.resize(len, 0);
    input.read_exact(out)?;
    Ok(())
}

/// Checks the record count, the CRC, and that nothing follows.
fn check_trailer<R: Read>(input: &mut Crc<R>, stats: &SnapshotStats) -> Result<(), SnapshotError> {
    let mut count = [0u8; 8];
    input.read_exact(&mut count)?;
    let sum = input.hasher.clone().finalize();
    let mut stored = [0u8; 4];
    input.read_exact(&mut stored)?;
    if u64::from_le_bytes(count) != stats.records() {
        return Err(SnapshotError::Corrupt("record count does not match the trailer"));
    }
    if u32::from_le_bytes(stored) != sum {
        return Err(SnapshotError::Corrupt("checksum mismatch"));
    }
    if input.read(&mut [0u8; 1])? != 0 {
        return Err(SnapshotError::Corrupt("bytes after the trailer"));
    }
    Ok(())
}

/// Refuses a record the table could not have written.
fn validate(kind: Kind, key: &[u8], val: &[u8]) -> Result<(), SnapshotError> {
    let ok = match kind {
        Kind::Profile => key.len() == 16 && codec::decode(val).is_some(),
        Kind::Declared => key.len() >= 4 && val.len() == 24 && std::str::from_utf8(&key[4..]).is_ok(),
        Kind::Ecid => key.len() == 16 && val.len() == 16,
        Kind::Denied => super::super::is_deny_key(key) && super::super::decode_denylist(val).is_some(),
    };
    ok.then_some(()).ok_or(SnapshotError::Corrupt("invalid record"))
}

fn kind_of(tag: u8) -> Option<Kind> {
    KINDS.into_iter().find(|k| *k as u8 == tag)
}

fn read_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

/// Reads `varint len · bytes` into `buf`, refusing lengths over `max`.
fn read_field(r: &mut impl Read, buf: &mut Vec<u8>, max: usize) -> Result<(), SnapshotError> {
    let mut len = 0usize;
    for shift in (0..35).step_by(7) {
        let b = read_u8(r)?;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            if len > max {
                return Err(SnapshotError::Corrupt("record longer than allowed"));
            }
            buf.resize(len, 0);
            return Ok(r.read_exact(buf)?);
        }
    }
    Err(SnapshotError::Corrupt("bad record length"))
}
