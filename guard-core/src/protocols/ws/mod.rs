//! WebSocket (RFC 6455) after an HTTP/1.1 upgrade, with permessage-deflate (RFC 7692).

pub(crate) mod conn;
pub mod deflate;
pub mod frame;
