//! Reading the event log: file names ([`FileName`]), the directory listing ([`list`]), a
//! streaming line reader ([`read_lines`]) and the strict record parser ([`parse_record`]).
//! Used by `dcsd verify-log` ([`super::verify`]) and by start-up replay.
//!
//! Files are `events-<core>-<seq>.ndjson` while a core writes them and
//! `events-<core>-<seq>.ndjson.done` once finished; each holds records, one JSON object per
//! line, every line ended by `\n`. A crash can leave the last line of a file without its
//! `\n` (a *torn* line): [`read_lines`] reports it in its [`Tail`] and never hands it out as a
//! line.
//!
//! Lines are streamed through one reused buffer (files are up to `eventlog.segment_bytes`,
//! 256 MiB by default); a line longer than [`MAX_LINE`] is handed out cut to its first
//! `MAX_LINE` bytes with its real length, so a corrupt file (say, megabytes of zeros a crash
//! left) cannot make the reader hold more than `MAX_LINE` plus one read.
//!
//! Blocking file IO: for the main thread at start-up and the `verify-log` command, never for
//! a worker.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use simd_json::{Node, StaticNode};

// === file names ===

/// File names start with this.
const PREFIX: &str = "events-";
/// What every log file name ends with before its optional [`DONE`].
const EXT: &str = ".ndjson";
/// The suffix a finished file gets.
const DONE: &str = ".done";

/// A log file's name, parsed: `events-<core>-<seq>.ndjson`, with `.done` when finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileName {
    /// The core (worker) that wrote it.
    pub core: u32,
    /// Its sequence number among that core's files; sequence numbers only grow, across
    /// restarts too.
    pub seq: u64,
    /// Finished (`.ndjson.done`): the writer will not append to it again.
    pub done: bool,
}

impl FileName {
    /// Parses a file name (no directory part): `events-<core>-<seq>.ndjson` or
    /// `events-<core>-<seq>.ndjson.done`, `core` and `seq` ASCII decimal digits (any number of
    /// them, leading zeros allowed, no sign) that fit a `u32` and a `u64`. `None` for any
    /// other name.
    pub fn parse(name: &str) -> Option<FileName> {
        let rest = name.strip_prefix(PREFIX)?;
        let (rest, done) = match rest.strip_suffix(DONE) {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let rest = rest.strip_suffix(EXT)?;
        let (core, seq) = rest.split_once('-')?;
        Some(FileName { core: decimal(core)?, seq: decimal(seq)?, done })
    }

    /// The name as the writer spells it: `core` without padding, `seq` zero-padded to 8
    /// digits (more when it needs them), e.g. `events-0-00000042.ndjson.done`.
    pub fn to_name(&self) -> String {
        self.to_string()
    }

    /// The same file's name once it is finished.
    pub fn finished(self) -> FileName {
        FileName { done: true, ..self }
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let done = if self.done { DONE } else { "" };
        write!(f, "{PREFIX}{}-{:08}{EXT}{done}", self.core, self.seq)
    }
}

/// A non-empty run of ASCII digits that fits `T` (`str::parse` alone would take a `+`).
fn decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Every log file in `dir` (names [`FileName::parse`] accepts; anything else, directories
/// included, is ignored), sorted by core, then sequence, then open before finished: when a
/// sequence number appears both as `.ndjson` and `.ndjson.done` both are listed (the verifier
/// reports it). Errors: `dir` missing or unreadable.
pub fn list(dir: &Path) -> io::Result<Vec<(FileName, PathBuf)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(FileName::parse) else {
            continue;
        };
        if entry.file_type()?.is_dir() {
            continue;
        }
        files.push((name, entry.path()));
    }
    files.sort();
    Ok(files)
}

// === lines ===

/// The longest line [`read_lines`] holds whole: 16 MiB, far above any record the writer
/// produces (a request is at most `limits.max_uri_bytes` plus its body).
pub const MAX_LINE: usize = 16 << 20;

/// Bytes read from the file at a time.
const CHUNK: usize = 256 << 10;

/// One complete line (it ended with `\n`), as [`read_lines`] hands it out.
#[derive(Debug)]
pub struct Line<'a> {
    /// Byte offset of the line's first byte in the file.
    pub offset: u64,
    /// 1-based line number counted from the `from` offset given to [`read_lines`] (so the
    /// file's own line number when reading from 0).
    pub line_no: u64,
    /// The line's length in bytes, `\n` not counted.
    pub len: u64,
    /// The line without its `\n`; mutable so that [`parse_record`] can parse it in place.
    /// Shorter than [`Line::len`] only for a line longer than [`MAX_LINE`]: then its first
    /// `MAX_LINE` bytes (see [`Line::is_cut`]).
    pub bytes: &'a mut [u8],
}

impl Line<'_> {
    /// True when the line was longer than [`MAX_LINE`] and `bytes` holds only its start.
    pub fn is_cut(&self) -> bool {
        (self.bytes.len() as u64) < self.len
    }
}

/// How a file ended, from [`read_lines`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tail {
    /// Offset just past the last complete line handed out (its `\n` included): where the next
    /// complete line would start. Equal to `from` when there was none.
    pub end: u64,
    /// Complete lines handed out.
    pub lines: u64,
    /// The callback asked to stop ([`ControlFlow::Break`]); the rest of the file was not read
    /// and `torn` is `None`.
    pub stopped: bool,
    /// The file ended inside a line: bytes after the last `\n` (a crash or a write in
    /// progress). Never handed out as a [`Line`].
    pub torn: Option<Torn>,
}

/// An incomplete last line: bytes at the end of a file with no `\n` after them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Torn {
    /// Offset of its first byte ([`Tail::end`]).
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// Reads `path` from byte offset `from` (which should be the start of a line: 0 or a
/// [`Tail::end`]) and calls `f` with every complete line, in order, until the end of the file
/// or until `f` returns [`ControlFlow::Break`]. Streams through one buffer reused for every
/// line (it grows to the longest line, at most [`MAX_LINE`] plus one read). An offset past the
/// end of the file yields no line and `end == from`. Errors: the file cannot be opened or
/// read.
pub fn read_lines(path: &Path, from: u64, f: impl FnMut(Line<'_>) -> ControlFlow<()>) -> io::Result<Tail> {
    let mut file = File::open(path)?;
    if from > 0 {
        file.seek(SeekFrom::Start(from))?;
    }
    lines_from(&mut file, from, MAX_LINE, CHUNK, f)
}

/// [`read_lines`] over any reader positioned at `from`, with the line cap and read size as
/// parameters (the tests use small ones).
fn lines_from(
    r: &mut impl Read,
    from: u64,
    max_line: usize,
    chunk: usize,
    mut f: impl FnMut(Line<'_>) -> ControlFlow<()>,
) -> io::Result<Tail> {
    let mut buf = vec![0u8; chunk];
    // buf[start..end] holds unread bytes of the file from offset `pos`; no `\n` in
    // buf[start..scan]. `cut` counts bytes of the current line dropped past `max_line`; when
    // non-zero, buf[start..start + max_line] holds the line's first bytes and what follows them
    // in the buffer comes after the dropped ones.
    let (mut start, mut scan, mut end) = (0usize, 0usize, 0usize);
    let mut pos = from;
    let mut line_no = 0u64;
    let mut cut = 0u64;
    loop {
        if let Some(i) = memchr::memchr(b'\n', &buf[scan..end]) {
            let nl = scan + i;
            let kept_end = nl.min(start + max_line);
            let len = (nl - start) as u64 + cut;
            line_no += 1;
            let flow = f(Line { offset: pos, line_no, len, bytes: &mut buf[start..kept_end] });
            pos += len + 1;
            start = nl + 1;
            scan = start;
            cut = 0;
            if flow.is_break() {
                return Ok(Tail { end: pos, lines: line_no, stopped: true, torn: None });
            }
            continue;
        }
        // No `\n` in what is buffered: keep at most `max_line` bytes of this line, move them to
        // the front, make room and read more.
        if end - start > max_line {
            cut += (end - start - max_line) as u64;
            end = start + max_line;
        }
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        scan = end;
        if buf.len() - end < chunk {
            buf.resize(end + chunk, 0);
        }
        let n = loop {
            match r.read(&mut buf[end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            let rest = (end - start) as u64 + cut;
            let torn = (rest > 0).then_some(Torn { offset: pos, len: rest });
            return Ok(Tail { end: pos, lines: line_no, stopped: false, torn });
        }
        end += n;
    }
}

// === records ===

/// What a record is about (`kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An `/event` request.
    Event,
    /// An `/ibs:` request.
    Ibs,
    /// An opt-out (`/demoptout`).
    Optout,
    /// A partner answer that landed in the profile after its request's answer had left.
    Partner,
}

/// A customer or global opt-out (`opt_out`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptOut {
    /// The profile opted out of one customer.
    Customer,
    /// The profile opted out of every customer.
    Global,
}

/// What became of one real-time partner call (a `partners` value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered with data.
    Ok,
    /// Answered with nothing.
    Empty,
    /// No answer within its time-out.
    Timeout,
    /// The call failed (connection, status or answer shape).
    Error,
    /// Answered after the request's budget; landed later.
    Late,
    /// Not called: a cached answer was still valid.
    SkippedCached,
    /// Not called: the request carried no ID the partner needs.
    SkippedNoId,
    /// Not called: no connection was free in the core's pool.
    PoolExhausted,
    /// Not called: the partner's circuit breaker was open.
    CircuitOpen,
    /// Called after the answer left (pixel requests); a later `partner` record has the outcome.
    Called,
}

/// How the request was answered (`mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A 1×1 GIF.
    Pixel,
    /// A JSON document.
    Json,
    /// JSON wrapped in a callback.
    Jsonp,
    /// A redirect.
    Redirect,
    /// No answer body (`none`: partner and opt-out records, refused requests).
    None,
}

/// `as_str` and `parse` for the string enums, one table each.
macro_rules! names {
    ($t:ident { $($v:ident = $s:literal),* $(,)? }) => {
        impl $t {
            /// Every value, in declaration order.
            pub const ALL: &'static [$t] = &[$($t::$v),*];

            /// The value as it is written in a record.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($t::$v => $s,)*
                }
            }

            /// The value a record's string names, if any.
            pub fn parse(s: &str) -> Option<$t> {
                match s {
                    $($s => Some($t::$v),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(Kind { Event = "event", Ibs = "ibs", Optout = "optout", Partner = "partner" });
names!(OptOut { Customer = "customer", Global = "global" });
names!(Outcome {
    Ok = "ok",
    Empty = "empty",
    Timeout = "timeout",
    Error = "error",
    Late = "late",
    SkippedCached = "skipped_cached",
    SkippedNoId = "skipped_no_id",
    PoolExhausted = "pool_exhausted",
    CircuitOpen = "circuit_open",
    Called = "called",
});
names!(Mode { Pixel = "pixel", Json = "json", Jsonp = "jsonp", Redirect = "redirect", None = "none" });

impl Kind {
    /// Position in [`Kind::ALL`] (for per-kind counters).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One record, every field owned (docs/eventlog.md §3 has the schema).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Unix milliseconds, > 0.
    pub ts: u64,
    /// Transaction ID, non-empty.
    pub tid: String,
    /// What the record is about.
    pub kind: Kind,
    /// The request's `Host`.
    pub host: String,
    /// The client address as logged (obfuscated under `privacy.ip_obfuscation`); a valid IP.
    pub ip: String,
    /// `server.region`.
    pub region: u32,
    /// Customer, unprefixed and header signals with all their values, in file order; no key
    /// starts with `p_` or `d_`.
    pub signals: Vec<(String, Vec<String>)>,
    /// The customer (from the host), if known.
    pub customer: Option<u32>,
    /// The profile ID, 38 ASCII digits.
    pub uuid: Option<String>,
    /// The Experience Cloud ID, 38 ASCII digits.
    pub ecid: Option<String>,
    /// Declared IDs: (data-provider ID, its user ID, authentication state).
    pub declared: Vec<(u32, String, u32)>,
    /// The opt-out the request recorded.
    pub opt_out: Option<OptOut>,
    /// Realized trait IDs.
    pub traits: Vec<u32>,
    /// Segment IDs.
    pub segments: Vec<u32>,
    /// Each partner (data-source ID) with its outcome, in file order.
    pub partners: Vec<(u32, Outcome)>,
    /// `partner` records: Unix seconds until which the answer is cached.
    pub expires_s: Option<u64>,
    /// Errors reported to the client: (code, message).
    pub errors: Vec<(u32, String)>,
    /// How the request was answered.
    pub mode: Mode,
}

/// Why a line is not a valid record; `Display` names the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaError {
    /// Not JSON (simd-json's message; trailing bytes after the object are reported here too).
    Json(String),
    /// Valid JSON but not an object, or an object with something around it (whitespace
    /// included: a record is exactly `{…}`).
    NotObject,
    /// A required field is absent.
    Missing(&'static str),
    /// A field the schema does not have.
    Unknown(String),
    /// A field, or a key inside `signals` or `partners`, appears twice.
    Duplicate(String),
    /// A field (with its path, e.g. `declared[1].dpid`) has the wrong type or value.
    Field {
        /// Path of the bad value.
        field: String,
        /// What it should be.
        why: &'static str,
    },
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaError::Json(e) => write!(f, "invalid JSON: {e}"),
            SchemaError::NotObject => f.write_str("not a JSON object (a record is exactly one `{…}`)"),
            SchemaError::Missing(k) => write!(f, "missing field `{k}`"),
            SchemaError::Unknown(k) => write!(f, "unknown field `{k}`"),
            SchemaError::Duplicate(k) => write!(f, "duplicate key `{k}`"),
            SchemaError::Field { field, why } => write!(f, "`{field}`: {why}"),
        }
    }
}

impl std::error::Error for SchemaError {}

/// A tape value: the node slice that starts with it.
type Val<'t, 'i> = &'t [Node<'i>];

/// Number of tape nodes the value at the head of `v` spans.
fn span(v: &[Node<'_>]) -> usize {
    match v.first() {
        Some(Node::Object { count, .. } | Node::Array { count, .. }) => count + 1,
        _ => 1,
    }
}

/// The members of an object value, in order (duplicates kept), or `None` if `v` is not one.
fn members<'t, 'i>(v: Val<'t, 'i>) -> Option<impl Iterator<Item = (&'i str, Val<'t, 'i>)>> {
    let Some(&Node::Object { len, .. }) = v.first() else {
        return None;
    };
    let mut rest = v.get(1..).unwrap_or_default();
    Some((0..len).map_while(move |_| {
        let Some(&Node::String(key)) = rest.first() else {
            return None;
        };
        let after = rest.get(1..).unwrap_or_default();
        let n = span(after);
        let val = after.get(..n).unwrap_or_default();
        rest = after.get(n..).unwrap_or_default();
        Some((key, val))
    }))
}

/// The elements of an array value, or `None` if `v` is not one.
fn elements<'t, 'i>(v: Val<'t, 'i>) -> Option<impl Iterator<Item = Val<'t, 'i>>> {
    let Some(&Node::Array { len, .. }) = v.first() else {
        return None;
    };
    let mut rest = v.get(1..).unwrap_or_default();
    Some((0..len).map(move |_| {
        let n = span(rest);
        let val = rest.get(..n).unwrap_or_default();
        rest = rest.get(n..).unwrap_or_default();
        val
    }))
}

fn bad(field: impl Into<String>, why: &'static str) -> SchemaError {
    SchemaError::Field { field: field.into(), why }
}

fn as_str<'i>(v: Val<'_, 'i>) -> Option<&'i str> {
    match v.first() {
        Some(&Node::String(s)) => Some(s),
        _ => None,
    }
}

fn as_u64(v: Val<'_, '_>) -> Option<u64> {
    match v.first() {
        Some(&Node::Static(StaticNode::U64(n))) => Some(n),
        Some(&Node::Static(StaticNode::I64(n))) => u64::try_from(n).ok(),
        _ => None,
    }
}

fn as_u32(v: Val<'_, '_>) -> Option<u32> {
    as_u64(v).and_then(|n| u32::try_from(n).ok())
}

fn is_null(v: Val<'_, '_>) -> bool {
    matches!(v.first(), Some(Node::Static(StaticNode::Null)))
}

fn string(v: Val<'_, '_>, field: &str) -> Result<String, SchemaError> {
    as_str(v).map(str::to_owned).ok_or_else(|| bad(field, "must be a string"))
}

fn u32_of(v: Val<'_, '_>, field: &str) -> Result<u32, SchemaError> {
    as_u32(v).ok_or_else(|| bad(field, "must be an integer in 0..=4294967295"))
}

fn u32_array(v: Val<'_, '_>, field: &'static str) -> Result<Vec<u32>, SchemaError> {
    let items = elements(v).ok_or_else(|| bad(field, "must be an array of integers"))?;
    items.enumerate().map(|(i, e)| u32_of(e, &format!("{field}[{i}]"))).collect()
}

/// A profile ID or ECID: exactly 38 ASCII digits.
fn id38(v: Val<'_, '_>, field: &'static str) -> Result<String, SchemaError> {
    match as_str(v) {
        Some(s) if s.len() == 38 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(s.to_owned()),
        _ => Err(bad(field, "must be a string of exactly 38 ASCII digits")),
    }
}

/// An object with exactly the keys `keys` (each once), its values in `keys` order.
fn exact<'t, 'i, const N: usize>(
    v: Val<'t, 'i>,
    field: &str,
    keys: [&'static str; N],
    shape: &'static str,
) -> Result<[Val<'t, 'i>; N], SchemaError> {
    let mut out: [Option<Val<'t, 'i>>; N] = [None; N];
    for (k, val) in members(v).ok_or_else(|| bad(field, shape))? {
        let i = keys.iter().position(|&x| x == k).ok_or_else(|| bad(field, shape))?;
        if out[i].replace(val).is_some() {
            return Err(bad(field, shape));
        }
    }
    let mut vals: [Val<'t, 'i>; N] = [&[]; N];
    for (slot, o) in vals.iter_mut().zip(out) {
        *slot = o.ok_or_else(|| bad(field, shape))?;
    }
    Ok(vals)
}

/// The record's fields, in the order [`Record::write_json`] writes them; the first
/// `REQUIRED` of them are required.
const FIELDS: [&str; 18] = [
    "ts",
    "tid",
    "kind",
    "host",
    "ip",
    "region",
    "signals",
    "customer",
    "uuid",
    "declared",
    "traits",
    "segments",
    "partners",
    "errors",
    "mode", // required
    "ecid",
    "opt_out",
    "expires_s", // optional
];
const REQUIRED: usize = 15;

/// Parses one line (without its `\n`) as a record, checking the schema strictly: every
/// required field present once, no unknown field, every value of its type and range
/// (docs/eventlog.md §3). simd-json parses in place, so `line` is left scrambled. A record is
/// exactly one object: whitespace or anything else around it is refused.
pub fn parse_record(line: &mut [u8]) -> Result<Record, SchemaError> {
    parse_record_with(line, &mut simd_json::Buffers::default())
}

/// [`parse_record`] with simd-json's scratch buffers kept by the caller: a reader of many
/// lines (replay, the verifier) reuses one `Buffers` and allocates only for the record.
pub fn parse_record_with(line: &mut [u8], buffers: &mut simd_json::Buffers) -> Result<Record, SchemaError> {
    let framed = line.first() == Some(&b'{') && line.last() == Some(&b'}');
    let tape =
        simd_json::to_tape_with_buffers(line, buffers).map_err(|e| SchemaError::Json(e.to_string()))?;
    let root: Val<'_, '_> = &tape.0;
    let fields = members(root).ok_or(SchemaError::NotObject)?;
    if !framed {
        return Err(SchemaError::NotObject);
    }
    let mut vals: [Option<Val<'_, '_>>; FIELDS.len()] = [None; FIELDS.len()];
    for (k, v) in fields {
        let i = FIELDS.iter().position(|&f| f == k).ok_or_else(|| SchemaError::Unknown(k.to_owned()))?;
        if vals[i].replace(v).is_some() {
            return Err(SchemaError::Duplicate(k.to_owned()));
        }
    }
    if let Some(i) = (0..REQUIRED).find(|&i| vals[i].is_none()) {
        return Err(SchemaError::Missing(FIELDS[i]));
    }
    let req = |i: usize| vals[i].ok_or(SchemaError::Missing(FIELDS[i]));

    let ts = as_u64(req(0)?).filter(|&t| t > 0).ok_or_else(|| bad("ts", "must be an integer > 0"))?;
    let tid = string(req(1)?, "tid")?;
    if tid.is_empty() {
        return Err(bad("tid", "must not be empty"));
    }
    let kind = as_str(req(2)?)
        .and_then(Kind::parse)
        .ok_or_else(|| bad("kind", "must be \"event\", \"ibs\", \"optout\" or \"partner\""))?;
    let host = string(req(3)?, "host")?;
    let ip = string(req(4)?, "ip")?;
    if ip.parse::<IpAddr>().is_err() {
        return Err(bad("ip", "must be an IPv4 or IPv6 address"));
    }
    let region = u32_of(req(5)?, "region")?;
    let signals = signals(req(6)?)?;
    let customer = match req(7)? {
        v if is_null(v) => None,
        v => Some(u32_of(v, "customer")?),
    };
    let uuid = match req(8)? {
        v if is_null(v) => None,
        v => Some(id38(v, "uuid")?),
    };
    let declared = declared(req(9)?)?;
    let traits = u32_array(req(10)?, "traits")?;
    let segments = u32_array(req(11)?, "segments")?;
    let partners = partners(req(12)?)?;
    let errors = errors(req(13)?)?;
    let mode = as_str(req(14)?)
        .and_then(Mode::parse)
        .ok_or_else(|| bad("mode", "must be \"pixel\", \"json\", \"jsonp\", \"redirect\" or \"none\""))?;
    let ecid = vals[15].map(|v| id38(v, "ecid")).transpose()?;
    let opt_out = vals[16]
        .map(|v| {
            as_str(v)
                .and_then(OptOut::parse)
                .ok_or_else(|| bad("opt_out", "must be \"customer\" or \"global\""))
        })
        .transpose()?;
    let expires_s = vals[17]
        .map(|v| as_u64(v).ok_or_else(|| bad("expires_s", "must be a non-negative integer")))
        .transpose()?;
    Ok(Record {
        ts,
        tid,
        kind,
        host,
        ip,
        region,
        signals,
        customer,
        uuid,
        ecid,
        declared,
        opt_out,
        traits,
        segments,
        partners,
        expires_s,
        errors,
        mode,
    })
}

fn signals(v: Val<'_, '_>) -> Result<Vec<(String, Vec<String>)>, SchemaError> {
    let shape = "must be an object of arrays of strings";
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (k, vals) in members(v).ok_or_else(|| bad("signals", shape))? {
        let path = || format!("signals.{k}");
        if k.starts_with("p_") || k.starts_with("d_") {
            return Err(bad(path(), "private (`p_`) and control (`d_`) keys are never logged"));
        }
        if out.iter().any(|(x, _)| x == k) {
            return Err(SchemaError::Duplicate(path()));
        }
        let items = elements(vals).ok_or_else(|| bad(path(), "must be an array of strings"))?;
        let vals = items
            .map(|e| as_str(e).map(str::to_owned).ok_or_else(|| bad(path(), "must be an array of strings")))
            .collect::<Result<_, _>>()?;
        out.push((k.to_owned(), vals));
    }
    Ok(out)
}

fn declared(v: Val<'_, '_>) -> Result<Vec<(u32, String, u32)>, SchemaError> {
    let shape = "must be {\"dpid\": int, \"dpuuid\": string, \"auth\": int}, exactly those keys";
    let items = elements(v).ok_or_else(|| bad("declared", "must be an array of objects"))?;
    items
        .enumerate()
        .map(|(i, e)| {
            let path = format!("declared[{i}]");
            let [dpid, dpuuid, auth] = exact(e, &path, ["dpid", "dpuuid", "auth"], shape)?;
            Ok((
                u32_of(dpid, &format!("{path}.dpid"))?,
                string(dpuuid, &format!("{path}.dpuuid"))?,
                u32_of(auth, &format!("{path}.auth"))?,
            ))
        })
        .collect()
}

fn partners(v: Val<'_, '_>) -> Result<Vec<(u32, Outcome)>, SchemaError> {
    let mut out: Vec<(u32, Outcome)> = Vec::new();
    for (k, o) in members(v).ok_or_else(|| bad("partners", "must be an object"))? {
        let path = || format!("partners.{k}");
        let id: u32 = decimal(k).ok_or_else(|| bad(path(), "key must be a data-source ID (decimal u32)"))?;
        if out.iter().any(|&(x, _)| x == id) {
            return Err(SchemaError::Duplicate(path()));
        }
        let outcome = as_str(o).and_then(Outcome::parse).ok_or_else(|| {
            bad(
                path(),
                "must be one of ok, empty, timeout, error, late, skipped_cached, skipped_no_id, \
                 pool_exhausted, circuit_open, called",
            )
        })?;
        out.push((id, outcome));
    }
    Ok(out)
}

fn errors(v: Val<'_, '_>) -> Result<Vec<(u32, String)>, SchemaError> {
    let shape = "must be {\"code\": int, \"msg\": string}, exactly those keys";
    let items = elements(v).ok_or_else(|| bad("errors", "must be an array of objects"))?;
    items
        .enumerate()
        .map(|(i, e)| {
            let path = format!("errors[{i}]");
            let [code, msg] = exact(e, &path, ["code", "msg"], shape)?;
            Ok((u32_of(code, &format!("{path}.code"))?, string(msg, &format!("{path}.msg"))?))
        })
        .collect()
}

impl Record {
    /// Appends the record as one JSON object, fields in schema order, optional ones only when
    /// set, no `\n`. [`parse_record`] reads it back to an equal record.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use crate::json::push_string as s;
        use std::io::Write as _;
        let num = |out: &mut Vec<u8>, n: u64| {
            let _ = write!(out, "{n}");
        };
        let key = |out: &mut Vec<u8>, k: &str| {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"\":");
        };
        let list = |out: &mut Vec<u8>, v: &[u32]| {
            out.push(b'[');
            for (i, &n) in v.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                num(out, u64::from(n));
            }
            out.push(b']');
        };
        let opt_str = |out: &mut Vec<u8>, v: &Option<String>| match v {
            Some(x) => s(out, x),
            None => out.extend_from_slice(b"null"),
        };
        out.extend_from_slice(b"{\"ts\":");
        num(out, self.ts);
        key(out, "tid");
        s(out, &self.tid);
        key(out, "kind");
        s(out, self.kind.as_str());
        key(out, "host");
        s(out, &self.host);
        key(out, "ip");
        s(out, &self.ip);
        key(out, "region");
        num(out, u64::from(self.region));
        key(out, "signals");
        out.push(b'{');
        for (i, (k, vals)) in self.signals.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            s(out, k);
            out.extend_from_slice(b":[");
            for (j, v) in vals.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                s(out, v);
            }
            out.push(b']');
        }
        out.push(b'}');
        key(out, "customer");
        match self.customer {
            Some(c) => num(out, u64::from(c)),
            None => out.extend_from_slice(b"null"),
        }
        key(out, "uuid");
        opt_str(out, &self.uuid);
        if let Some(e) = &self.ecid {
            key(out, "ecid");
            s(out, e);
        }
        key(out, "declared");
        out.push(b'[');
        for (i, (dpid, dpuuid, auth)) in self.declared.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"dpid\":");
            num(out, u64::from(*dpid));
            out.extend_from_slice(b",\"dpuuid\":");
            s(out, dpuuid);
            out.extend_from_slice(b",\"auth\":");
            num(out, u64::from(*auth));
            out.push(b'}');
        }
        out.push(b']');
        if let Some(o) = self.opt_out {
            key(out, "opt_out");
            s(out, o.as_str());
        }
        key(out, "traits");
        list(out, &self.traits);
        key(out, "segments");
        list(out, &self.segments);
        key(out, "partners");
        out.push(b'{');
        for (i, (id, o)) in self.partners.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            num(out, u64::from(*id));
            out.extend_from_slice(b"\":");
            s(out, o.as_str());
        }
        out.push(b'}');
        if let Some(e) = self.expires_s {
            key(out, "expires_s");
            num(out, e);
        }
        key(out, "errors");
        out.push(b'[');
        for (i, (code, msg)) in self.errors.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"code\":");
            num(out, u64::from(*code));
            out.extend_from_slice(b",\"msg\":");
            s(out, msg);
            out.push(b'}');
        }
        out.push(b']');
        key(out, "mode");
        s(out, self.mode.as_str());
        out.push(b'}');
    }
}

#[cfg(test)]
pub(super) mod tests;
