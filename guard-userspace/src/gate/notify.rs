//! systemd's notify protocol (sd_notify(3)), the two messages guard sends: READY=1 once guard
//! runs (its gate armed), and WATCHDOG=1 from the gate's deadline thread while it runs. Without
//! `NOTIFY_SOCKET` (not under a `Type=notify` unit) nothing is sent.

use std::{
    os::unix::net::{SocketAddr, UnixDatagram},
    sync::Mutex,
    time::{Duration, Instant},
};

/// systemd wants pings at half its WatchdogSec at least; once a second is plenty for 5 s.
const PING_EVERY: Duration = Duration::from_secs(1);

static LAST_PING: Mutex<Option<Instant>> = Mutex::new(None);

fn send(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let bytes = path.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(name)
        }
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|a| UnixDatagram::unbound()?.send_to_addr(msg.as_bytes(), &a));
    if let Err(e) = sent {
        tracing::debug!(error = %e, msg, "sd_notify failed");
    }
}

pub(crate) fn ready() {
    send("READY=1");
}

pub(crate) fn watchdog() {
    let mut last = LAST_PING.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if last.is_none_or(|t| now.duration_since(t) >= PING_EVERY) {
        *last = Some(now);
        send("WATCHDOG=1");
    }
}
