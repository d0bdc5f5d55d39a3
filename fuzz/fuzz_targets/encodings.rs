#![no_main]
//! Content decoders over arbitrary (mostly corrupt) compressed input: errors, never panics,
//! never more output than the cap.
use guard_core::protocols::encoding::{ContentDecoder, Encoding};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else { return };
    let enc = [Encoding::Identity, Encoding::Gzip, Encoding::Deflate, Encoding::Br, Encoding::Zstd][usize::from(ctl % 5)];
    let cap = 1 << 16;
    let mut d = ContentDecoder::new(enc, cap);
    let mut total = 0usize;
    let piece = usize::from(ctl / 5).max(1);
    for c in data.chunks(piece) {
        if d.push(c, &mut |b| total += b.len()).is_err() {
            break;
        }
    }
    let _ = d.finish(&mut |b| total += b.len());
    assert!(total <= cap);
});
