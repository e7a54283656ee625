//! The byte layout of one bucket, and the varint reader and writer the codecs share.
//!
//! A bucket is an immutable byte string of records `varint klen | key | varint vlen | value`,
//! oldest write first: an update moves its record to the end, so the first record is the one
//! least recently written and is the one eviction drops. Buckets are built only by the table
//! (never parsed from outside, except by restore, which validates every record first), so a
//! malformed bucket cannot occur; the reader still checks bounds and stops instead of panicking.
//!
//! Varints are LEB128 (7 bits a byte, least significant first): a trait ID below 2^21 takes 3
//! bytes, a day count below 128 one.

use std::ops::Range;

/// One record of a bucket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record<'a> {
    /// The key bytes.
    pub(crate) key: &'a [u8],
    /// The value bytes.
    pub(crate) val: &'a [u8],
    /// Where the whole record (with its length prefixes) sits in the bucket.
    pub(crate) span: (usize, usize),
}

/// Iterates the records of a bucket.
#[derive(Clone, Debug)]
pub(crate) struct Records<'a> {
    reader: Reader<'a>,
}

/// A bounds-checked cursor over bytes.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

// === impl Record ===

impl Record<'_> {
    /// The byte range of the whole record.
    pub(crate) fn range(&self) -> Range<usize> {
        self.span.0..self.span.1
    }
}

// === impl Records ===

impl<'a> Records<'a> {
    /// The records of `bucket`.
    pub(crate) fn new(bucket: &'a [u8]) -> Records<'a> {
        Records { reader: Reader::new(bucket) }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        let r = &mut self.reader;
        let start = r.pos;
        let klen = r.len()?;
        let key = r.bytes(klen)?;
        let vlen = r.len()?;
        let val = r.bytes(vlen)?;
        Some(Record { key, val, span: (start, r.pos) })
    }
}

// === impl Reader ===

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Whether every byte has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// The next `n` bytes.
    #[inline]
    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// One byte.
    #[inline]
    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    /// A little-endian `u16`.
    #[inline]
    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.bytes(2)?.try_into().ok()?))
    }

    /// A little-endian `u32`.
    #[inline]
    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }

    /// A little-endian `u128`.
    pub(crate) fn u128(&mut self) -> Option<u128> {
        Some(u128::from_le_bytes(self.bytes(16)?.try_into().ok()?))
    }

    /// A LEB128 varint of at most 64 bits.
    #[inline]
    pub(crate) fn varint(&mut self) -> Option<u64> {
        // Most varints here (deltas, counts, lengths) are one byte.
        if let Some(&b) = self.buf.get(self.pos).filter(|&&b| b < 0x80) {
            self.pos += 1;
            return Some(u64::from(b));
        }
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A varint that must fit a `u32`.
    #[inline]
    pub(crate) fn varint32(&mut self) -> Option<u32> {
        u32::try_from(self.varint()?).ok()
    }

    /// A varint used as a length: it must not exceed the bytes left.
    #[inline]
    pub(crate) fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.varint()?).ok()?;
        (n <= self.buf.len() - self.pos).then_some(n)
    }
}

/// Appends `v` as a LEB128 varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a record.
pub(crate) fn put_record(out: &mut Vec<u8>, key: &[u8], val: &[u8]) {
    put_varint(out, key.len() as u64);
    out.extend_from_slice(key);
    put_varint(out, val.len() as u64);
    out.extend_from_slice(val);
}

/// The record with `key` in `bucket`, if any.
pub(crate) fn find<'a>(bucket: &'a [u8], key: &[u8]) -> Option<Record<'a>> {
    Records::new(bucket).find(|r| r.key == key)
}

/// Appends `bucket` to `out` without the bytes in `skip`.
pub(crate) fn copy_without(out: &mut Vec<u8>, bucket: &[u8], skip: Range<usize>) {
    out.extend_from_slice(&bucket[..skip.start]);
    out.extend_from_slice(&bucket[skip.end..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader::new(&out);
            assert_eq!(r.varint(), Some(v));
            assert!(r.is_done());
        }
    }

    #[test]
    fn truncated_and_overlong_varints_are_refused() {
        assert_eq!(Reader::new(&[0x80]).varint(), None);
        assert_eq!(Reader::new(&[0xff; 11]).varint(), None);
        assert_eq!(Reader::new(&[5, 1]).len(), None, "length past the end");
    }

    #[test]
    fn records_are_found_and_removed() {
        let mut b = Vec::new();
        put_record(&mut b, b"k1", b"v1");
        put_record(&mut b, b"key2", b"");
        let r = find(&b, b"key2").unwrap();
        assert_eq!(r.val, b"");
        let mut out = Vec::new();
        copy_without(&mut out, &b, find(&b, b"k1").unwrap().range());
        assert_eq!(Records::new(&out).count(), 1);
        assert!(find(&out, b"k1").is_none());
        assert!(Records::new(&b[..3]).next().is_none(), "truncated record");
    }
}
