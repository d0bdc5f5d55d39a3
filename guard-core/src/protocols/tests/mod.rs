//! Connection-level fixtures, built from each provider's public API documentation, and the
//! split-invariance property: any chunking of the same bytes yields the same exchanges.

mod fixtures;
mod gaps;
mod h2ws;
pub(crate) mod live;
mod split;
mod terminal;
mod tools;

use crate::{
    events::Direction,
    providers::{Endpoint, Provider, Usage},
};

use super::{ConnectionDecoder, DecoderConfig, Exchange, IncompleteReason, Role};

/// Bytes one side wrote in one go, at one time.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub dir: Direction,
    pub ts: u64,
    pub bytes: Vec<u8>,
}

/// What an exchange must come out as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Want {
    pub provider: Provider,
    pub endpoint: Endpoint,
    pub inference: bool,
    pub model: Option<&'static str>,
    pub status: Option<u16>,
    pub streamed: bool,
    pub complete: bool,
    pub reason: Option<IncompleteReason>,
    pub error_type: Option<&'static str>,
    pub usage: Usage,
    pub role: Role,
}

impl Want {
    pub(super) fn of(x: &Exchange) -> Self {
        let leak = |s: &Option<String>| s.clone().map(|s| &*Box::leak(s.into_boxed_str()));
        Self {
            provider: x.provider,
            endpoint: x.endpoint,
            inference: x.inference,
            model: leak(&x.model),
            status: x.status,
            streamed: x.streamed,
            complete: x.complete,
            reason: x.incomplete_reason,
            error_type: leak(&x.error_type),
            usage: x.usage,
            role: x.role,
        }
    }
}

pub(crate) struct Fixture {
    pub name: String,
    pub segments: Vec<Segment>,
    pub want: Vec<Want>,
}

pub(crate) fn usage(input: u64, cache_read: u64, cache_write: u64, output: u64, reasoning: u64) -> Usage {
    Usage { input, cache_read, cache_write, output, reasoning, cache_write_1h: 0 }
}

/// Feeds segments (each cut into the given pieces) and closes the connection at the end.
pub(crate) fn run_pieces(segments: &[Segment], cuts: &[Vec<usize>]) -> Vec<Exchange> {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    let mut last_ts = 0;
    for (i, s) in segments.iter().enumerate() {
        if s.bytes.is_empty() {
            // An empty segment stands for bytes lost on that direction.
            d.on_gap(s.dir, s.ts, 1);
            continue;
        }
        let mut at = 0;
        let mut points: Vec<usize> = cuts.get(i).cloned().unwrap_or_default();
        points.sort_unstable();
        for p in points.into_iter().chain([s.bytes.len()]) {
            let p = p.min(s.bytes.len());
            if p > at {
                d.on_data(s.dir, s.ts, &s.bytes[at..p]);
                at = p;
            }
        }
        last_ts = s.ts;
    }
    d.on_close(last_ts + 1);
    let mut out = Vec::new();
    d.drain(&mut out);
    out
}

pub(crate) fn run(segments: &[Segment]) -> Vec<Exchange> {
    run_pieces(segments, &[])
}
