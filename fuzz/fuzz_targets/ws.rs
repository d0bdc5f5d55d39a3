#![no_main]
//! WebSocket through the whole connection decoder: an upgrade to `/v1/responses` whose
//! permessage-deflate parameters the first byte picks, then records of `[op, len, bytes…]`
//! (op bit 0 = direction, bit 1 = gap). Also drives the frame reader and the inflater directly.
use guard_core::{
    events::Direction,
    protocols::{
        ConnectionDecoder, DecoderConfig,
        ws::{deflate::{Inflater, SenderParams}, frame::WsReader},
    },
};
use libfuzzer_sys::fuzz_target;

const EXTENSIONS: [&str; 4] = [
    "",
    "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=9; server_max_window_bits=10\r\n",
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n",
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else { return };
    let mut r = WsReader::default();
    let _ = r.push(body, &mut |_| {});
    let mut inf = Inflater::new(SenderParams { window_bits: 8 + (first & 7), no_context_takeover: first & 8 != 0 });
    let mut total = 0usize;
    let _ = inf.push(body, &mut |b| total += b.len());
    let _ = inf.finish(&mut |b| total += b.len());

    let cfg = DecoderConfig { max_event: 1 << 14, max_buffered_body: 1 << 16, max_request_body: 1 << 16, max_decoded_body: 1 << 18, ..DecoderConfig::default() };
    let mut d = ConnectionDecoder::new(cfg);
    let ext = EXTENSIONS[usize::from(first) % EXTENSIONS.len()];
    d.on_data(Direction::Write, 1, b"GET /v1/responses HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    let head = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{ext}\r\n");
    d.on_data(Direction::Read, 2, head.as_bytes());
    let mut out = Vec::new();
    let mut rest = body;
    let mut ts = 2;
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
