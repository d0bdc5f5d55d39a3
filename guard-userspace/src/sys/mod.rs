//! What guard reads from the host: processes under /proc, local accounts, and the TLS
//! libraries running programs carry.

pub(crate) mod ahead;
pub(crate) mod cwd;
pub(crate) mod host;
pub(crate) mod limits;
pub(crate) mod places;
pub(crate) mod proc;
pub(crate) mod scan_worker;
pub(crate) mod sockets;
pub(crate) mod targets;
