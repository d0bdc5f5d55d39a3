#![no_main]
//! Streamed JSON array splitting: split-invariant, and whole elements when the input is valid.
use guard_core::protocols::json_stream::JsonArrayStream;
use libfuzzer_sys::fuzz_target;

fn elements(pieces: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut s = JsonArrayStream::new(4096);
    let mut got = Vec::new();
    for p in pieces {
        s.push(p, &mut |e| got.push(e.to_vec()));
    }
    s.finish(&mut |e| got.push(e.to_vec()));
    got
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else { return };
    let cut = usize::from(cut).min(data.len());
    let whole = elements(&[data]);
    assert_eq!(whole, elements(&[&data[..cut], &data[cut..]]));
    if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice::<serde_json::Value>(data)
        && data.len() < 4000
    {
        assert_eq!(whole.len(), items.len());
    }
});
