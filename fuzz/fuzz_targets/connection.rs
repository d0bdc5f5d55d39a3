#![no_main]
//! The whole connection decoder: interleaved data, gaps and close, driven by the input.
//! Every protocol and provider is reachable through it.
use guard_core::{events::Direction, protocols::{ConnectionDecoder, DecoderConfig}};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = DecoderConfig { max_event: 1 << 14, max_buffered_body: 1 << 16, max_request_body: 1 << 16, max_decoded_body: 1 << 18, ..DecoderConfig::default() };
    let mut d = ConnectionDecoder::new(cfg);
    let mut out = Vec::new();
    let mut rest = data;
    let mut ts = 0;
    // Records: [op, len, bytes…]; op bit 0 = direction, bit 1 = gap.
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let dir = if op & 1 == 0 { Direction::Write } else { Direction::Read };
        ts += 1;
        if op & 2 != 0 {
            d.on_gap(dir, ts, u64::from(*len));
        } else {
            d.on_data(dir, ts, &tail[..n]);
        }
        rest = &tail[n..];
        d.drain(&mut out);
    }
    d.on_close(ts + 1);
    d.drain(&mut out);
    for x in &out {
        assert_eq!(x.complete, x.incomplete_reason.is_none());
        assert!(x.inference || x.usage.total() == 0);
    }
});
