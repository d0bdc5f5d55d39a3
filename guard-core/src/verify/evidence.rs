//! Does a chunk of plaintext look like the start of what guard decodes? A hook on the wrong
//! function yields bytes that are neither an HTTP/1 start line, an HTTP/2 preface or frame
//! sequence, nor a run of whole WebSocket frames; a right one yields these on the first call of
//! nearly every connection of an HTTP client.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// HTTP/1 start line, HTTP/2 preface or frames, or whole WebSocket frames.
    Looks,
    /// Enough bytes to tell, and they are none of those.
    Foreign,
    /// Too few bytes to tell.
    Unsure,
}

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes needed before a chunk that matches nothing counts as foreign.
const MIN_FOREIGN: usize = 16;
/// An HTTP/1 start line longer than this is not one we want to vouch for.
const MAX_LINE: usize = 16 * 1024;

/// Judges the first chunk a hook produced in one direction of a connection.
pub fn judge(data: &[u8]) -> Evidence {
    if data.is_empty() {
        return Evidence::Unsure;
    }
    let prefix_of = |full: &[u8]| data.len() < full.len() && full.starts_with(data);
    if data.starts_with(H2_PREFACE) || prefix_of(H2_PREFACE) && data.len() >= 4 {
        return Evidence::Looks;
    }
    if start_line(data) || h2_frames(data) || ws_frames(data) {
        return Evidence::Looks;
    }
    if data.len() < MIN_FOREIGN {
        Evidence::Unsure
    } else {
        Evidence::Foreign
    }
}

/// `METHOD SP target SP HTTP/1.x CRLF` or `HTTP/1.x SP ddd ...CRLF`, in either direction: a
/// server's hooks see requests in and responses out.
fn start_line(data: &[u8]) -> bool {
    let Some(end) = memchr::memmem::find(&data[..data.len().min(MAX_LINE)], b"\r\n") else {
        return false;
    };
    let line = &data[..end];
    if line.iter().any(|&b| !(0x20..0x7f).contains(&b)) {
        return false;
    }
    if let Some(rest) = line.strip_prefix(b"HTTP/1.") {
        return rest.len() >= 5
            && matches!(rest[0], b'0' | b'1')
            && rest[1] == b' '
            && rest[2..5].iter().all(u8::is_ascii_digit)
            && rest.get(5).is_none_or(|&b| b == b' ');
    }
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    (1..=20).contains(&method.len())
        && method.iter().all(|b| b.is_ascii_uppercase() || *b == b'-')
        && !target.is_empty()
        && matches!(version, b"HTTP/1.0" | b"HTTP/1.1")
}

/// A run of HTTP/2 frames with known types that ends exactly at the end of the chunk.
fn h2_frames(data: &[u8]) -> bool {
    let mut at = 0;
    let mut frames = 0;
    while at < data.len() {
        let Some(h) = data.get(at..at + 9) else {
            return false;
        };
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let (kind, reserved) = (h[3], h[5] & 0x80);
        // DATA..CONTINUATION (0-9); the reserved bit is always sent as 0.
        if kind > 9 || reserved != 0 {
            return false;
        }
        at += 9 + len;
        frames += 1;
    }
    frames > 0 && at == data.len()
}

/// A run of whole WebSocket frames, all masked (a client's) or all unmasked (a server's).
fn ws_frames(data: &[u8]) -> bool {
    let mut at = 0;
    let mut frames = 0;
    let mut masked_seen = None;
    while at < data.len() {
        let Some(&[b0, b1]) = data.get(at..at + 2) else {
            return false;
        };
        // RSV2/RSV3 unused by any extension we decode (RSV1 is permessage-deflate).
        let opcode = b0 & 0x0f;
        if b0 & 0x30 != 0 || !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) {
            return false;
        }
        let masked = b1 & 0x80 != 0;
        // Every frame of one direction is masked, or none is.
        if *masked_seen.get_or_insert(masked) != masked {
            return false;
        }
        let (len, ext) = match b1 & 0x7f {
            126 => match data.get(at + 2..at + 4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 2),
                None => return false,
            },
            127 => match data.get(at + 2..at + 10) {
                Some(b) => (u64::from_be_bytes(b.try_into().unwrap_or_default()), 8),
                None => return false,
            },
            n => (u64::from(n), 0),
        };
        // Control frames are short and never fragmented (RFC 6455 §5.5).
        if opcode >= 8 && (len > 125 || b0 & 0x80 == 0) {
            return false;
        }
        let header = 2 + ext + if masked { 4 } else { 0 };
        at = at
            .saturating_add(header)
            .saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        frames += 1;
    }
    frames > 0 && at == data.len()
}
