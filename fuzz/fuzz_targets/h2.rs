#![no_main]
//! HTTP/2 through the whole connection decoder: the client preface, then records of
//! `[op, len, bytes…]` (op bit 0 = direction, bit 1 = gap). Also drives the frame reader and a
//! per-direction HPACK decoder directly, and checks frame reading is split-invariant.
use guard_core::{
    events::Direction,
    protocols::{
        ConnectionDecoder, DecoderConfig,
        h2::{frames::{FrameEvent, FrameReader, PREFACE}, hpack::HeaderDecoder},
    },
};
use libfuzzer_sys::fuzz_target;

fn frames(data: &[u8], cut: usize) -> (Vec<String>, bool) {
    let mut r = FrameReader::new(1 << 14);
    let mut out: Vec<String> = Vec::new();
    let mut f = |e: FrameEvent<'_>| match e {
        // Data pieces depend on the cut; their concatenation does not.
        FrameEvent::Data { stream, data } => match out.last_mut() {
            Some(s) if s.starts_with(&format!("d{stream}:")) => s.push_str(&format!("{data:?}")),
            _ => out.push(format!("d{stream}:{data:?}")),
        },
        e => out.push(format!("{e:?}")),
    };
    let ok = r.push(&data[..cut], &mut f).is_ok() && r.push(&data[cut..], &mut f).is_ok();
    (out, ok)
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let cut = usize::from(data[0]) % data.len();
    let (a, ok_a) = frames(data, cut);
    let (b, ok_b) = frames(data, data.len());
    if ok_a && ok_b {
        assert_eq!(a, b);
    }
    let mut h = HeaderDecoder::new(data[0] & 1 == 0);
    let _ = h.decode(data, &mut |_, _| {});

    let cfg = DecoderConfig { max_event: 1 << 14, max_buffered_body: 1 << 16, max_request_body: 1 << 16, max_decoded_body: 1 << 18, ..DecoderConfig::default() };
    let mut d = ConnectionDecoder::new(cfg);
    let mut out = Vec::new();
    let mut ts = 1;
    if data[0] & 2 == 0 {
        d.on_data(Direction::Write, ts, PREFACE);
    }
    let mut rest = &data[1..];
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
