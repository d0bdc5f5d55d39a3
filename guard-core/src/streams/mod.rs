//! Per-connection reassembly: TLS chunks in, ordered byte streams per direction out, with every
//! hole made explicit as a [`StreamEvent::Gap`].
//!
//! The kernel numbers each direction's bytes by stream offset. The ring buffer hands records out
//! in reservation order, and one connection's calls are made in program order, so a chunk whose
//! offset is ahead of what we expect means lost bytes (ring full or truncation), not reordering.
//! A chunk behind what we expect (a duplicate) is trimmed.

use std::collections::HashMap;

use bytes::Bytes;

use crate::events::{ConnId, Direction, TlsData};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// The next bytes of `dir`, contiguous with what came before.
    Data { conn: ConnId, dir: Direction, ts_ns: u64, data: Bytes },
    /// `missing` bytes of `dir` were lost before the next `Data`. A gap before any data means
    /// capture started in the middle of the connection.
    Gap { conn: ConnId, dir: Direction, ts_ns: u64, missing: u64 },
    /// The connection is over: nothing more will come in either direction.
    Closed { conn: ConnId, ts_ns: u64 },
}

impl StreamEvent {
    pub fn conn(&self) -> ConnId {
        match self {
            Self::Data { conn, .. } | Self::Gap { conn, .. } | Self::Closed { conn, .. } => *conn,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    /// Bytes declared missing in gaps.
    pub gap_bytes: u64,
    pub gaps: u64,
    /// Bytes dropped as duplicates of bytes already delivered.
    pub duplicate_bytes: u64,
    /// Connections dropped because the table was full or they went idle.
    pub evicted: u64,
}

#[derive(Default)]
struct ConnState {
    /// The next expected offset per direction; `None` until the first chunk.
    next: [Option<u64>; 2],
    last_ts_ns: u64,
}

pub struct Assembler {
    conns: HashMap<ConnId, ConnState>,
    max_conns: usize,
    pub stats: AssemblerStats,
}

impl Assembler {
    /// `max_conns` bounds memory; past it the longest-idle connection is closed.
    pub fn new(max_conns: usize) -> Self {
        Self { conns: HashMap::new(), max_conns: max_conns.max(1), stats: AssemblerStats::default() }
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn push(&mut self, chunk: TlsData, out: &mut Vec<StreamEvent>) {
        if !self.conns.contains_key(&chunk.conn) && self.conns.len() >= self.max_conns {
            self.evict_idlest(out);
        }
        let st = self.conns.entry(chunk.conn).or_default();
        st.last_ts_ns = st.last_ts_ns.max(chunk.ts_ns);
        let slot = &mut st.next[chunk.dir.index()];
        let expected = slot.unwrap_or(0);
        let end = chunk.offset + chunk.data.len() as u64;
        let mut data = chunk.data;
        if chunk.offset > expected {
            let missing = chunk.offset - expected;
            self.stats.gaps += 1;
            self.stats.gap_bytes += missing;
            out.push(StreamEvent::Gap { conn: chunk.conn, dir: chunk.dir, ts_ns: chunk.ts_ns, missing });
        } else if chunk.offset < expected {
            let dup = (expected - chunk.offset).min(data.len() as u64);
            self.stats.duplicate_bytes += dup;
            data = data.slice(dup as usize..);
        }
        *slot = Some(end.max(expected));
        if !data.is_empty() {
            out.push(StreamEvent::Data { conn: chunk.conn, dir: chunk.dir, ts_ns: chunk.ts_ns, data });
        }
    }

    pub fn close(&mut self, conn: ConnId, ts_ns: u64, out: &mut Vec<StreamEvent>) {
        if self.conns.remove(&conn).is_some() {
            out.push(StreamEvent::Closed { conn, ts_ns });
        }
    }

    /// Closes every connection of a process that exited.
    pub fn close_process(&mut self, pid: u32, ts_ns: u64, out: &mut Vec<StreamEvent>) {
        let mut gone: Vec<ConnId> = self.conns.keys().filter(|c| c.pid == pid).copied().collect();
        gone.sort();
        for conn in gone {
            self.close(conn, ts_ns, out);
        }
    }

    /// Closes connections idle since before `cutoff_ns`.
    pub fn expire(&mut self, cutoff_ns: u64, out: &mut Vec<StreamEvent>) {
        let mut idle: Vec<(u64, ConnId)> =
            self.conns.iter().filter(|(_, s)| s.last_ts_ns < cutoff_ns).map(|(c, s)| (s.last_ts_ns, *c)).collect();
        idle.sort();
        for (ts, conn) in idle {
            self.stats.evicted += 1;
            self.close(conn, ts, out);
        }
    }

    fn evict_idlest(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((conn, ts)) = self.conns.iter().min_by_key(|(c, s)| (s.last_ts_ns, **c)).map(|(c, s)| (*c, s.last_ts_ns)) {
            self.stats.evicted += 1;
            self.close(conn, ts, out);
        }
    }
}

#[cfg(test)]
mod tests;
