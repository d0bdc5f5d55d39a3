//! HTTP/2 (RFC 9113) with HPACK (RFC 7541): framing, per-connection header decoding, and one
//! exchange per stream.

pub(crate) mod conn;
pub mod frames;
pub mod hpack;
pub mod paused;
