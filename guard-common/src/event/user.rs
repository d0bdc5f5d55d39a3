//! `aya::Pod` for the records, so userspace can read them from maps and ring samples.
use super::*;

// SAFETY: all are #[repr(C)] plain integers and byte arrays with explicit padding.
unsafe impl aya::Pod for Header {}
unsafe impl aya::Pod for ExecResultEvent {}
unsafe impl aya::Pod for TlsCloseEvent {}
