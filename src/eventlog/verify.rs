//! `dcsd verify-log DIR`: checks an event-log directory the way a reader relies on it
//! (docs/eventlog.md §6) and prints what it found.
//!
//! Checked:
//! * every complete line of every log file is a record that
//!   [`parse_record`](super::read::parse_record) accepts; an empty line, a line over
//!   [`MAX_LINE`] or an invalid one is a violation, reported as `FILE:LINE: why`;
//! * a file may end inside a line (no `\n` after its last bytes: what a crash leaves, or a
//!   write in progress): that is counted as *torn*, not a violation, in open and finished
//!   files alike;
//! * names, per core: no sequence number twice (as `.ndjson` and `.ndjson.done`, or spelled
//!   twice with different padding); at most one open (`.ndjson`) file, and only as the core's
//!   highest sequence. Gaps are fine (a shipper deletes finished files).
//!
//! A file that disappears between the listing and its reading (a shipper deleted it, or its
//! writer renamed it `.done`) is noted and skipped; any other error reading a file is a
//! violation. Only the directory itself failing is an `io::Error`.
//!
//! Blocking file IO, for the command line only.

use std::fmt;
use std::io;
use std::ops::ControlFlow;
use std::path::Path;
use std::process::ExitCode;

use super::read::{list, parse_record_with, read_lines, FileName, Kind, MAX_LINE};

/// Violations listed in a [`Report`]; the rest are only counted.
pub const MAX_LISTED: usize = 100;

/// What [`verify`] found; `Display` is what `dcsd verify-log` prints.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every log file read, in [`list`] order.
    pub files: Vec<FileReport>,
    /// Records in all files, per kind (indexed by [`Kind::index`]).
    pub kinds: [u64; 4],
    /// Bytes read in all files (torn lines included).
    pub bytes: u64,
    /// Files that ended with a torn line.
    pub torn: u64,
    /// The first [`MAX_LISTED`] violations, in the order found.
    pub violations: Vec<Violation>,
    /// Every violation found (may exceed `violations.len()`).
    pub violation_count: u64,
    /// Files listed but gone when opened (deleted or renamed meanwhile), skipped.
    pub vanished: Vec<String>,
}

/// One file's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileReport {
    /// The file's name in the directory.
    pub name: String,
    /// Valid records.
    pub records: u64,
    /// Bytes read (the file's size when nobody was writing it).
    pub bytes: u64,
    /// Valid records per kind (indexed by [`Kind::index`]).
    pub kinds: [u64; 4],
    /// The file ended inside a line.
    pub torn: bool,
}

/// One problem: a file, a line number when it is about a line, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The file's name in the directory.
    pub file: String,
    /// 1-based line number, when the problem is a line.
    pub line: Option<u64>,
    /// What is wrong.
    pub why: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.why),
            None => write!(f, "{}: {}", self.file, self.why),
        }
    }
}

impl Report {
    /// No violation found.
    pub fn ok(&self) -> bool {
        self.violation_count == 0
    }

    /// Records in all files.
    pub fn records(&self) -> u64 {
        self.kinds.iter().sum()
    }

    fn violation(&mut self, file: &str, line: Option<u64>, why: String) {
        self.violation_count += 1;
        if self.violations.len() < MAX_LISTED {
            self.violations.push(Violation { file: file.to_owned(), line, why });
        }
    }
}

/// `event 3, ibs 0, optout 1, partner 2`.
struct Kinds<'a>(&'a [u64; 4]);

impl fmt::Display for Kinds<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in Kind::ALL.iter().enumerate() {
            let sep = if i > 0 { ", " } else { "" };
            write!(f, "{sep}{k} {}", self.0[k.index()])?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.files {
            let torn = if r.torn { "yes" } else { "no" };
            writeln!(
                f,
                "{}: {} records, {} bytes, {}, torn {torn}",
                r.name,
                r.records,
                r.bytes,
                Kinds(&r.kinds)
            )?;
        }
        for v in &self.vanished {
            writeln!(f, "{v}: gone while verifying (deleted or renamed), skipped")?;
        }
        writeln!(
            f,
            "total: {} files, {} records, {} bytes, {}, {} torn",
            self.files.len(),
            self.records(),
            self.bytes,
            Kinds(&self.kinds),
            self.torn
        )?;
        writeln!(f, "violations: {}", self.violation_count)?;
        for v in &self.violations {
            writeln!(f, "{v}")?;
        }
        let more = self.violation_count.saturating_sub(self.violations.len() as u64);
        if more > 0 {
            writeln!(f, "... and {more} more")?;
        }
        Ok(())
    }
}

/// Checks every log file in `dir` (see the module doc). Errors: `dir` missing or unreadable;
/// everything about the files themselves is in the [`Report`].
pub fn verify(dir: &Path) -> io::Result<Report> {
    let files = list(dir)?;
    let mut report = Report::default();
    check_names(&files, &mut report);
    let mut buffers = simd_json::Buffers::default();
    for (_, path) in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut file = FileReport { name, ..FileReport::default() };
        let mut bad: Vec<(u64, String)> = Vec::new();
        let tail = read_lines(path, 0, |line| {
            let why = if line.len == 0 {
                Some("empty line".to_owned())
            } else if line.is_cut() {
                Some(format!("line of {} bytes, longer than {MAX_LINE}", line.len))
            } else {
                match parse_record_with(line.bytes, &mut buffers) {
                    Ok(r) => {
                        file.records += 1;
                        file.kinds[r.kind.index()] += 1;
                        None
                    }
                    Err(e) => Some(e.to_string()),
                }
            };
            if let Some(why) = why {
                bad.push((line.line_no, why));
            }
            ControlFlow::Continue(())
        });
        let tail = match tail {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                report.vanished.push(file.name);
                continue;
            }
            Err(e) => {
                report.violation(&file.name, None, format!("cannot read: {e}"));
                continue;
            }
        };
        for (line, why) in bad {
            report.violation(&file.name, Some(line), why);
        }
        file.bytes = tail.end + tail.torn.map_or(0, |t| t.len);
        file.torn = tail.torn.is_some();
        report.bytes += file.bytes;
        report.torn += u64::from(file.torn);
        for (t, n) in report.kinds.iter_mut().zip(file.kinds) {
            *t += n;
        }
        report.files.push(file);
    }
    Ok(report)
}

/// Per core: no sequence number twice; an open file only as the core's highest sequence.
/// `files` is sorted by core, then sequence ([`list`]).
fn check_names(files: &[(FileName, std::path::PathBuf)], report: &mut Report) {
    let shown =
        |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    for (i, (n, p)) in files.iter().enumerate() {
        if let Some((prev, pp)) = i.checked_sub(1).and_then(|j| files.get(j)) {
            if (prev.core, prev.seq) == (n.core, n.seq) {
                let why = format!("sequence {} of core {} is also {}", n.seq, n.core, shown(pp));
                report.violation(&shown(p), None, why);
            }
        }
        if n.done {
            continue;
        }
        let later = files[i + 1..].iter().take_while(|(m, _)| m.core == n.core).find(|(m, _)| m.seq > n.seq);
        if let Some((_, lp)) = later {
            let why = format!(
                "open file below a higher sequence ({}): a core has at most one open file, its last",
                shown(lp)
            );
            report.violation(&shown(p), None, why);
        }
    }
}

/// `dcsd verify-log DIR`: prints the report to stdout; exit status 0 when there is no
/// violation, 1 when there is one or `dir` cannot be read (the error on stderr).
pub fn run(dir: &Path) -> ExitCode {
    match verify(dir) {
        Ok(report) => {
            print!("{report}");
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("verify-log: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests;
