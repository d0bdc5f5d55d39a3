#![no_main]
//! The whole engine on arbitrary ring records: each record is a 2-byte length and that many
//! bytes. Whatever the kernel hands over, the engine never panics, and every record it cannot
//! decode is counted.
use guard_core::{
    Engine,
    engine::{EngineConfig, Outputs},
    govern::NoLookup,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut engine = Engine::new(EngineConfig::default());
    let mut out = Outputs::default();
    let (mut rest, mut bad) = (data, 0u64);
    while let [a, b, tail @ ..] = rest {
        let n = usize::from(u16::from_le_bytes([*a, *b])).min(tail.len());
        let (record, next) = tail.split_at(n);
        out.clear();
        if engine.push_record(record, std::time::UNIX_EPOCH, &mut NoLookup, &mut out).is_err() {
            bad += 1;
        }
        rest = next;
    }
    assert_eq!(engine.stats().decode_errors, bad);
});
