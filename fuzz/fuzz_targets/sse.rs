#![no_main]
//! SSE framing: any split of the same bytes gives the same events.
use guard_core::protocols::sse::SseParser;
use libfuzzer_sys::fuzz_target;

fn events(pieces: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
    let mut p = SseParser::new(4096);
    let mut got = Vec::new();
    for piece in pieces {
        p.push(piece, &mut |e| got.push((e.event.to_string(), e.data.to_vec())));
    }
    p.finish(&mut |e| got.push((e.event.to_string(), e.data.to_vec())));
    got
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else { return };
    let cut = usize::from(cut).min(data.len());
    assert_eq!(events(&[data]), events(&[&data[..cut], &data[cut..]]));
});
