//! The reader only reads: it drains the ring buffer when the kernel signals data, and every 20 ms
//! (bulk TLS data does not signal), and hands each record, copied, to a bounded channel. It never
//! blocks on the consumer: a full channel is a counted loss, so a slow pipeline cannot stall the kernel.

use std::{
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use aya::maps::{MapData, RingBuf};
use bytes::Bytes;
use tokio::{
    io::unix::AsyncFd,
    sync::{mpsc, watch},
};

#[derive(Debug, Default)]
pub(crate) struct ReaderStats {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    /// Records dropped because the channel to the pipeline was full.
    pub channel_full: AtomicU64,
}

/// Wraps the ring's fd for tokio: AsyncFd needs an owner that is AsRawFd.
struct Ring(RingBuf<MapData>);

impl AsRawFd for Ring {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// How long TLS data may wait in the ring when no wake-up came.
const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// Runs until `stop` turns true, then drains what is left and returns.
pub(crate) async fn run(
    ring: RingBuf<MapData>,
    tx: mpsc::Sender<Bytes>,
    stats: Arc<ReaderStats>,
    cwds: Arc<crate::sys::cwd::CwdCache>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // SAFETY: the ring owns its map fd, which stays open and unchanged until the AsyncFd drops.
    let mut fd = unsafe { AsyncFd::register_with_interest(Ring(ring), tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    // TLS data is written without waking us until enough is waiting (see guard-ebpf's ring.rs,
    // `Wake::Bulk`): drain on a short timer too, so a quiet connection's last bytes are not late.
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => drain(&mut fd.get_mut().0, &tx, &stats, &cwds),
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                drain(&mut guard.get_inner_mut().0, &tx, &stats, &cwds);
                guard.clear_ready();
            }
            _ = stop.changed() => {
                drain(&mut fd.get_mut().0, &tx, &stats, &cwds);
                return Ok(());
            }
        }
    }
}

fn drain(ring: &mut RingBuf<MapData>, tx: &mpsc::Sender<Bytes>, stats: &ReaderStats, cwds: &crate::sys::cwd::CwdCache) {
    while let Some(item) = ring.next() {
        cwds.note(&item);
        stats.records.fetch_add(1, Relaxed);
        stats.bytes.fetch_add(item.len() as u64, Relaxed);
        if tx.try_send(Bytes::copy_from_slice(&item)).is_err() {
            stats.channel_full.fetch_add(1, Relaxed);
        }
    }
}
