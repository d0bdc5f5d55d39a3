#![no_main]
//! AWS eventstream framing over arbitrary bytes, plus valid messages built from the input.
use guard_core::protocols::eventstream::{EventStreamDecoder, encode_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = EventStreamDecoder::new(1 << 16);
    for c in data.chunks(7) {
        if d.push(c, &mut |_| {}).is_err() {
            break;
        }
    }
    // A message built from the input must round-trip at any split.
    let payload = &data[..data.len().min(512)];
    let msg = encode_message(&[(":event-type", "chunk"), (":message-type", "event")], payload);
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(msg.len());
    let mut d = EventStreamDecoder::new(1 << 16);
    let mut got = Vec::new();
    d.push(&msg[..cut], &mut |m| got.push(m.payload.to_vec())).unwrap();
    d.push(&msg[cut..], &mut |m| got.push(m.payload.to_vec())).unwrap();
    assert_eq!(got, vec![payload.to_vec()]);
});
