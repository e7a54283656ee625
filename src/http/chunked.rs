//! A resumable decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1).
//!
//! The connection keeps the encoded bytes in its read buffer until the request is complete and
//! calls [`ChunkedDecoder::decode`] after each read with the bytes from the body's start; the
//! decoder remembers how far it got, so a body that trickles in costs linear time. Chunk
//! extensions are skipped; trailer fields are read and discarded. Limits: the decoded body may
//! not exceed `max_body` (413) and the framing (size lines, extensions, trailers) may not
//! exceed `max_framing` (400), so a body of endless tiny chunks cannot pin memory or CPU.

use crate::error::{BadRequest, HttpError};

/// Decoder state; `Default` is the start of a body.
#[derive(Clone, Debug, Default)]
pub struct ChunkedDecoder {
    /// Bytes of the encoded body consumed so far.
    pos: usize,
    /// Framing bytes seen so far.
    framing: usize,
    state: State,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside chunk data with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Reading trailer lines after the last chunk.
    Trailer,
    /// The body is complete.
    Done,
}

const BAD: HttpError = HttpError::BadRequest(BadRequest::Chunk);

// === impl ChunkedDecoder ===

impl ChunkedDecoder {
    /// Decodes what it can of `encoded` (all encoded bytes since the body started), appending
    /// data to `out`. Returns `Some(total encoded length)` once the body is complete, `None`
    /// when more bytes are needed.
    ///
    /// # Errors
    /// [`HttpError::BodyTooLarge`] past `max_body` decoded bytes; a 400 for broken framing or
    /// more than `max_framing` framing bytes.
    pub fn decode(
        &mut self,
        encoded: &[u8],
        out: &mut Vec<u8>,
        max_body: usize,
        max_framing: usize,
    ) -> Result<Option<usize>, HttpError> {
        loop {
            let rest = &encoded[self.pos.min(encoded.len())..];
            // Everything except chunk data is framing, counted by the state the step began in.
            let framing_step = !matches!(self.state, State::Data(_));
            let step = match self.state {
                State::Done => return Ok(Some(self.pos)),
                State::Size => self.size_line(rest, out.len(), max_body)?,
                State::Data(left) => {
                    let n = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&rest[..n]);
                    self.state = if n as u64 == left { State::DataEnd } else { State::Data(left - n as u64) };
                    (n > 0 || self.state == State::DataEnd).then_some(n)
                }
                State::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        self.state = State::Size;
                        Some(2)
                    }
                    [] | [b'\r'] => None,
                    _ => return Err(BAD),
                },
                State::Trailer => self.trailer_line(rest)?,
            };
            match step {
                Some(n) => {
                    self.pos += n;
                    if framing_step {
                        self.framing += n;
                        if self.framing > max_framing {
                            return Err(BAD);
                        }
                    }
                }
                None => {
                    if framing_step && self.framing + rest.len() > max_framing {
                        return Err(BAD);
                    }
                    return Ok(None);
                }
            }
        }
    }

    fn size_line(
        &mut self,
        rest: &[u8],
        decoded: usize,
        max_body: usize,
    ) -> Result<Option<usize>, HttpError> {
        match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete((n, size))) => {
                if size > (max_body - decoded.min(max_body)) as u64 {
                    return Err(HttpError::BodyTooLarge);
                }
                self.state = if size == 0 { State::Trailer } else { State::Data(size) };
                Ok(Some(n))
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(_) => Err(BAD),
        }
    }

    fn trailer_line(&mut self, rest: &[u8]) -> Result<Option<usize>, HttpError> {
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else { return Ok(None) };
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").ok_or(BAD)?;
        if line.is_empty() {
            self.state = State::Done;
        } else if !line.contains(&b':') || line[0] == b' ' || line[0] == b'\t' {
            return Err(BAD);
        }
        Ok(Some(nl + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(encoded: &[u8]) -> Result<(Vec<u8>, usize), HttpError> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        match d.decode(encoded, &mut out, 100, 200)? {
            Some(n) => Ok((out, n)),
            None => panic!("incomplete"),
        }
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let body = b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (out, n) = decode_all(body).unwrap();
        assert_eq!(out, b"abc0123456789");
        assert_eq!(&body[n..], b"NEXT");
    }

    #[test]
    fn resumes_byte_by_byte() {
        let body = b"5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n";
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        for i in 1..body.len() {
            assert_eq!(d.decode(&body[..i], &mut out, 100, 200).unwrap(), None, "at {i}");
        }
        assert_eq!(d.decode(body, &mut out, 100, 200).unwrap(), Some(body.len()));
        assert_eq!(out, b"hello!");
    }

    #[test]
    fn framing_errors() {
        assert_eq!(decode_all(b"zz\r\n").unwrap_err(), BAD);
        assert_eq!(decode_all(b"3\r\nabcX\r\n0\r\n\r\n").unwrap_err(), BAD);
        assert_eq!(decode_all(b"0\r\nbad trailer\r\n\r\n").unwrap_err(), BAD);
        assert_eq!(decode_all(b"0\r\n\n").unwrap_err(), BAD);
    }

    #[test]
    fn body_limit_is_413() {
        assert_eq!(decode_all(b"65\r\n").unwrap_err(), HttpError::BodyTooLarge);
        assert_eq!(decode_all(b"ffffffffffffffff\r\n").unwrap_err(), HttpError::BodyTooLarge);
        let two = b"32\r\n01234567890123456789012345678901234567890123456789\r\n33\r\n";
        assert_eq!(decode_all(two).unwrap_err(), HttpError::BodyTooLarge);
    }

    #[test]
    fn size_line_extensions_count_as_framing() {
        // Found by fuzzing: the size line of a non-empty chunk was not counted.
        let mut body = b"4;".to_vec();
        body.extend_from_slice(&[b'x'; 100]);
        body.extend_from_slice(b"\r\nabcd\r\n0\r\n\r\n");
        let mut d = ChunkedDecoder::default();
        assert_eq!(d.decode(&body, &mut Vec::new(), 100, 64).unwrap_err(), BAD);
        let mut d = ChunkedDecoder::default();
        assert!(d.decode(&body, &mut Vec::new(), 100, 200).unwrap().is_some());
    }

    #[test]
    fn framing_limit() {
        let mut d = ChunkedDecoder::default();
        let endless = b"1;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        assert_eq!(d.decode(endless, &mut Vec::new(), 100, 32).unwrap_err(), BAD);
    }
}
