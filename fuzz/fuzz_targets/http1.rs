#![no_main]
//! One direction's HTTP/1.1 reader over arbitrary bytes cut at arbitrary points.
use guard_core::protocols::http1::{Head, Kind, MessageReader, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else { return };
    let mut r = MessageReader::new(4096);
    if ctl & 1 == 1 {
        r.expect(if ctl & 2 == 0 { Kind::Request } else { Kind::Response });
    }
    let piece = usize::from(ctl >> 2).max(1);
    for (i, mut chunk) in data.chunks(piece).enumerate() {
        if ctl & 0x80 != 0 && i == 3 {
            r.gap();
        }
        loop {
            let (n, step) = r.step(chunk);
            assert!(n <= chunk.len());
            chunk = &chunk[n..];
            match step {
                Step::Head(Head::Request(h)) => r.set_framing(h.headers.framing(Kind::Request)),
                Step::Head(Head::Response(h)) => r.set_framing(h.headers.framing(Kind::Response)),
                Step::NeedMore if n == 0 && !r.end_pending() => break,
                _ => {}
            }
            if chunk.is_empty() && !r.end_pending() {
                break;
            }
        }
    }
    let _ = r.close();
});
