//! A partner's answer (docs/partner-protocol.md §3): `200` with `{"segments": ["…"], "ttl": N}`,
//! `204`/`404` for "nothing known", anything else a failure. Parsed with simd-json; any shape
//! other than the contract's is a failure, never a guess.

use serde::Deserialize;

/// Largest answer body read, bytes (docs/partner-protocol.md §3).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What a partner said about a user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// Segment strings, each a value of the signal `segment` (empty for 204/404).
    pub segments: Vec<String>,
    /// The answer's own freshness cap, seconds.
    pub ttl_s: Option<u32>,
}

/// Why an answer is a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// A status other than 200, 204 and 404.
    Status(u16),
    /// Not JSON, or not `{"segments": [strings], "ttl": non-negative integer}`.
    Shape,
}

/// The wire shape; unknown fields are ignored (a partner may add its own).
#[derive(Deserialize)]
struct Wire {
    segments: Vec<String>,
    #[serde(default)]
    ttl: Option<u64>,
}

/// Reads an answer.
///
/// # Errors
/// [`AnswerError`] for anything but a well-formed 200, a 204 or a 404.
pub fn parse(status: u16, mut body: Vec<u8>) -> Result<Answer, AnswerError> {
    match status {
        204 | 404 => return Ok(Answer::default()),
        200 => {}
        s => return Err(AnswerError::Status(s)),
    }
    let wire: Wire = simd_json::serde::from_slice(&mut body).map_err(|_| AnswerError::Shape)?;
    let ttl_s = wire.ttl.map(|t| u32::try_from(t).unwrap_or(u32::MAX));
    Ok(Answer { segments: wire.segments, ttl_s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let a =
            parse(200, br#"{"segments":["auto-intender","x\u00e9"],"ttl":60,"extra":1}"#.to_vec()).unwrap();
        assert_eq!(a, Answer { segments: vec!["auto-intender".into(), "xé".into()], ttl_s: Some(60) });
        assert_eq!(parse(200, br#"{"segments":[]}"#.to_vec()).unwrap(), Answer::default());
        assert_eq!(parse(204, Vec::new()).unwrap(), Answer::default());
        assert_eq!(parse(404, b"not json".to_vec()).unwrap(), Answer::default());
    }

    #[test]
    fn failures() {
        assert_eq!(parse(500, br#"{"segments":[]}"#.to_vec()), Err(AnswerError::Status(500)));
        assert_eq!(parse(302, Vec::new()), Err(AnswerError::Status(302)));
        for bad in [
            &b"garbage"[..],
            b"",
            br#"{"segments":5}"#,
            br#"{"segments":[1]}"#,
            br#"{"ttl":5}"#,
            br#"{"segments":[],"ttl":-1}"#,
            br#"["a"]"#,
        ] {
            assert_eq!(parse(200, bad.to_vec()), Err(AnswerError::Shape), "{}", String::from_utf8_lossy(bad));
        }
    }
}
