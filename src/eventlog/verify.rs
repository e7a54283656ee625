//! TEMPORARY stub, replaced by the verifier.
use std::io;
use std::path::Path;

/// Report.
#[derive(Debug)]
pub struct Report;
impl Report {
    /// Ok.
    pub fn ok(&self) -> bool {
        false
    }
}
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not built")
    }
}
/// Verify.
pub fn verify(_dir: &Path) -> io::Result<Report> {
    Ok(Report)
}
