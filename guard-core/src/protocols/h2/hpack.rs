//! HPACK (RFC 7541) for one direction of one connection, over `loona-hpack`'s decoder. Each
//! connection and direction has its own dynamic table: sharing one, or skipping header blocks,
//! makes every later block decode wrong.
//!
//! When the table's history is unknown (capture began mid-connection, or bytes were lost) the
//! decoder starts from an empty table. That is still sound: indices count from the newest entry,
//! so every entry inserted since then is where the peer's encoder has it, and a reference to
//! anything older is out of range and fails the block. A failed block leaves the table state
//! unknown again (its insertions are lost), so the decoder is replaced by an empty one.

use thiserror::Error;

/// SETTINGS_HEADER_TABLE_SIZE before any SETTINGS (RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;
/// Table sizes above this are refused, bounding memory per connection (real peers use 4–64 KiB).
pub const MAX_TABLE_SIZE: usize = 1 << 20;
/// The table-size limit assumed when the peer's SETTINGS were not seen.
const UNKNOWN_LIMIT: usize = 64 * 1024;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HpackError {
    #[error("header block did not decode: {0}")]
    Decode(String),
    #[error("header block larger than {max} bytes")]
    TooLarge { max: usize },
}

pub struct HeaderDecoder {
    inner: loona_hpack::Decoder<'static>,
    /// The table's whole history was seen.
    known: bool,
    limit: usize,
}

impl HeaderDecoder {
    /// `known`: the connection was seen from its start.
    pub fn new(known: bool) -> Self {
        let limit = if known { DEFAULT_TABLE_SIZE } else { UNKNOWN_LIMIT };
        Self { inner: Self::fresh(limit), known, limit }
    }

    fn fresh(limit: usize) -> loona_hpack::Decoder<'static> {
        let mut d = loona_hpack::Decoder::new();
        d.set_max_allowed_table_size(limit);
        d
    }

    /// Whether every entry the peer may refer to was seen.
    pub fn known(&self) -> bool {
        self.known
    }

    /// The receiver's SETTINGS_HEADER_TABLE_SIZE: the largest table the encoder may ask for.
    pub fn set_limit(&mut self, size: u32) {
        let size = (size as usize).min(MAX_TABLE_SIZE);
        // Until the encoder has seen the new value it may still use the old one.
        self.limit = self.limit.max(size);
        self.inner.set_max_allowed_table_size(self.limit);
    }

    /// The dynamic table's history is lost (bytes of this direction went missing).
    pub fn forget(&mut self) {
        self.known = false;
        self.limit = self.limit.max(UNKNOWN_LIMIT);
        self.inner = Self::fresh(self.limit);
    }

    /// Decodes one whole header block, calling `f` for each field. Fields before a failure are
    /// sound and have been handed out; the failure itself leaves the table state unknown.
    pub fn decode(&mut self, block: &[u8], f: &mut impl FnMut(&[u8], &[u8])) -> Result<(), HpackError> {
        let res = self.inner.decode_with_cb(block, |n, v| f(&n, &v));
        res.map_err(|e| {
            self.forget();
            HpackError::Decode(e.to_string())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    fn fields(d: &mut HeaderDecoder, block: &[u8]) -> Result<Vec<(String, String)>, HpackError> {
        let mut out = Vec::new();
        d.decode(block, &mut |n, v| {
            out.push((String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned()))
        })?;
        Ok(out)
    }

    // RFC 7541 C.3: three requests on one connection, the later ones referring to the first's
    // dynamic-table entries.
    const C31: &[u8] = b"\x82\x86\x84\x41\x0f\x77\x77\x77\x2e\x65\x78\x61\x6d\x70\x6c\x65\x2e\x63\x6f\x6d";
    const C32: &[u8] = b"\x82\x86\x84\xbe\x58\x08\x6e\x6f\x2d\x63\x61\x63\x68\x65";

    #[test]
    fn per_connection_state_decodes_indexed_fields() {
        let mut d = HeaderDecoder::new(true);
        assert_eq!(fields(&mut d, C31).unwrap()[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(fields(&mut d, C32).unwrap()[3], (":authority".into(), "www.example.com".into()));
    }

    #[test]
    fn a_decoder_without_the_history_refuses_to_guess() {
        let mut d = HeaderDecoder::new(false);
        let mut seen = Vec::new();
        assert!(d.decode(C32, &mut |n, _| seen.push(n.to_vec())).is_err());
        // The static-table fields before the unknown reference were still sound.
        assert_eq!(seen, vec![b":method".to_vec(), b":scheme".to_vec(), b":path".to_vec()]);
        assert!(!d.known());
    }

    #[test]
    fn a_size_update_above_the_limit_fails() {
        let mut d = HeaderDecoder::new(true);
        // Dynamic table size update to 8192 (0x3f 0xe1 0x3f), above the default 4096.
        assert!(fields(&mut d, b"\x3f\xe1\x3f\x82").is_err());
        let mut d = HeaderDecoder::new(true);
        d.set_limit(8192);
        assert_eq!(fields(&mut d, b"\x3f\xe1\x3f\x82").unwrap().len(), 1);
    }
}
