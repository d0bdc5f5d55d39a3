//! What guard reads from the host: processes under /proc, local accounts, and the TLS
//! libraries running programs carry.

pub mod cwd;
pub mod host;
pub mod proc;
pub mod scan_worker;
pub mod sockets;
pub mod targets;
