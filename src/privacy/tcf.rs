//! IAB TCF v2.2 TC-string decoding: the core segment's header, purpose consents, and the
//! vendor consent section in both its bit-field and range encodings.
//!
//! The decoder reads bits straight out of the base64url text (6 bits per character) without
//! decoding it into a buffer, and stops once it has the answer, so a check costs no
//! allocation and time proportional to the vendor section at most. Only the core segment (the
//! part before the first `.`) is read: disclosed-vendor and publisher segments do not affect
//! consent. Layout: IAB Tech Lab, "Consent string and vendor list formats v2", core string.

/// Why a TC string could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcfError {
    /// Empty string.
    Empty,
    /// A character outside base64url (`A–Z a–z 0–9 - _`; `+ /` and `=` padding are tolerated).
    BadCharacter,
    /// The version field is not 2.
    Version(u8),
    /// The string ends before a field it declares.
    Truncated,
}

/// The core segment's fields dcsd uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Core {
    /// Consent management platform ID.
    pub cmp_id: u16,
    /// CMP version.
    pub cmp_version: u16,
    /// Screen number in the CMP.
    pub consent_screen: u8,
    /// Two-letter language code, upper case.
    pub language: [u8; 2],
    /// Global vendor list version.
    pub vendor_list_version: u16,
    /// TCF policy version (4 for TCF v2.2).
    pub policy_version: u8,
    /// Purpose consents: bit `n - 1` is purpose `n` (1..=24).
    pub purposes_consent: u32,
    /// Publisher country code.
    pub publisher_cc: [u8; 2],
}

/// A decoded TC string: its header and its vendor consent section, read lazily.
#[derive(Clone, Copy, Debug)]
pub struct TcString<'a> {
    /// Header fields.
    pub core: Core,
    bits: Bits<'a>,
    /// Highest vendor ID in the vendor consent section.
    max_vendor_id: u16,
    /// Range encoding (else a bit field).
    range: bool,
}

/// Bit reader over base64url text.
#[derive(Clone, Copy, Debug)]
struct Bits<'a> {
    text: &'a [u8],
}

/// Bit offsets of the core segment's fields.
mod at {
    pub const CMP_ID: usize = 78;
    pub const CMP_VERSION: usize = 90;
    pub const CONSENT_SCREEN: usize = 102;
    pub const LANGUAGE: usize = 108;
    pub const VENDOR_LIST_VERSION: usize = 120;
    pub const POLICY_VERSION: usize = 132;
    pub const PURPOSES_CONSENT: usize = 152;
    pub const PUBLISHER_CC: usize = 201;
    pub const MAX_VENDOR_ID: usize = 213;
    pub const IS_RANGE: usize = 229;
    pub const VENDORS: usize = 230;
}

// === impl TcString ===

impl<'a> TcString<'a> {
    /// Decodes the core segment's header.
    ///
    /// # Errors
    /// See [`TcfError`].
    pub fn parse(tc: &'a [u8]) -> Result<TcString<'a>, TcfError> {
        let core_seg = tc.split(|&b| b == b'.').next().unwrap_or_default();
        let core_seg =
            core_seg.strip_suffix(b"==").or_else(|| core_seg.strip_suffix(b"=")).unwrap_or(core_seg);
        if core_seg.is_empty() {
            return Err(TcfError::Empty);
        }
        if !core_seg.iter().all(|&c| sextet(c).is_some()) {
            return Err(TcfError::BadCharacter);
        }
        let bits = Bits { text: core_seg };
        let version = bits.read(0, 6)? as u8;
        if version != 2 {
            return Err(TcfError::Version(version));
        }
        let core = Core {
            cmp_id: bits.read(at::CMP_ID, 12)? as u16,
            cmp_version: bits.read(at::CMP_VERSION, 12)? as u16,
            consent_screen: bits.read(at::CONSENT_SCREEN, 6)? as u8,
            language: bits.letters(at::LANGUAGE)?,
            vendor_list_version: bits.read(at::VENDOR_LIST_VERSION, 12)? as u16,
            policy_version: bits.read(at::POLICY_VERSION, 6)? as u8,
            purposes_consent: reverse_bits(bits.read(at::PURPOSES_CONSENT, 24)? as u32, 24),
            publisher_cc: bits.letters(at::PUBLISHER_CC)?,
        };
        let max_vendor_id = bits.read(at::MAX_VENDOR_ID, 16)? as u16;
        let range = bits.read(at::IS_RANGE, 1)? == 1;
        Ok(TcString { core, bits, max_vendor_id, range })
    }

    /// Whether purpose `n` (1..=24) is consented.
    pub fn purpose(&self, n: u8) -> bool {
        (1..=24).contains(&n) && self.core.purposes_consent & (1 << (n - 1)) != 0
    }

    /// Whether vendor `id` is consented.
    ///
    /// # Errors
    /// [`TcfError::Truncated`] when the vendor section is cut short.
    pub fn vendor(&self, id: u16) -> Result<bool, TcfError> {
        if id == 0 || id > self.max_vendor_id {
            return Ok(false);
        }
        if !self.range {
            return Ok(self.bits.read(at::VENDORS + usize::from(id) - 1, 1)? == 1);
        }
        let entries = self.bits.read(at::VENDORS, 12)?;
        let mut pos = at::VENDORS + 12;
        for _ in 0..entries {
            let is_range = self.bits.read(pos, 1)? == 1;
            let start = self.bits.read(pos + 1, 16)? as u16;
            let end = if is_range { self.bits.read(pos + 17, 16)? as u16 } else { start };
            pos += if is_range { 33 } else { 17 };
            if (start..=end).contains(&id) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The DCS rule (docs/http-api.md §10): purposes 1 and 10 and `vendor` consented.
    ///
    /// # Errors
    /// [`TcfError::Truncated`] when the vendor section is cut short.
    pub fn allows(&self, vendor: u16) -> Result<bool, TcfError> {
        Ok(self.purpose(1) && self.purpose(10) && self.vendor(vendor)?)
    }
}

// === impl Bits ===

impl Bits<'_> {
    /// `n` (≤ 36) bits from bit offset `pos`, most significant first.
    fn read(&self, pos: usize, n: usize) -> Result<u64, TcfError> {
        if (pos + n).div_ceil(6) > self.text.len() {
            return Err(TcfError::Truncated);
        }
        let mut v = 0u64;
        for p in pos..pos + n {
            let s = sextet(self.text[p / 6]).ok_or(TcfError::BadCharacter)?;
            v = v << 1 | u64::from(s >> (5 - p % 6) & 1);
        }
        Ok(v)
    }

    /// Two 6-bit letters (`A` = 0).
    fn letters(&self, pos: usize) -> Result<[u8; 2], TcfError> {
        Ok([b'A' + self.read(pos, 6)? as u8 % 26, b'A' + self.read(pos + 6, 6)? as u8 % 26])
    }
}

/// The 6-bit value of a base64url (or standard base64) character.
fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' | b'+' => Some(62),
        b'_' | b'/' => Some(63),
        _ => None,
    }
}

/// The first field bit is purpose 1: turn the big-endian field into "bit n-1 = purpose n".
fn reverse_bits(v: u32, width: u32) -> u32 {
    v.reverse_bits() >> (32 - width)
}

#[cfg(test)]
mod tests;
