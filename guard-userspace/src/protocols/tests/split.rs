//! Split invariance: every single cut, and 1,000 random multi-cut splits, of every fixture.

use proptest::prelude::*;

use super::{Want, fixtures::all, run, run_pieces};

#[test]
fn every_fixture_decodes_as_stated() {
    for f in all() {
        let got: Vec<Want> = run(&f.segments).iter().map(Want::of).collect();
        assert_eq!(got, f.want, "fixture {}", f.name);
    }
}

#[test]
fn every_single_cut_gives_identical_exchanges() {
    for f in all() {
        let whole = run(&f.segments);
        for (i, s) in f.segments.iter().enumerate() {
            for cut in 1..s.bytes.len() {
                let mut cuts = vec![Vec::new(); f.segments.len()];
                cuts[i] = vec![cut];
                assert_eq!(run_pieces(&f.segments, &cuts), whole, "fixture {} segment {i} cut {cut}", f.name);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_multi_cut_splits_give_identical_exchanges(seeds in prop::collection::vec(any::<u64>(), 64)) {
        for f in all() {
            let whole = run(&f.segments);
            // Derive a few cut points per segment from the seeds (cheap, deterministic).
            let cuts: Vec<Vec<usize>> = f.segments.iter().enumerate().map(|(i, s)| {
                let seed = seeds[i % seeds.len()];
                let n = (seed % 9) as usize;
                (0..n).map(|k| {
                    let x = seed.rotate_left(7 * k as u32 + 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    (x % (s.bytes.len() as u64 + 1)) as usize
                }).collect()
            }).collect();
            prop_assert_eq!(run_pieces(&f.segments, &cuts), whole, "fixture {}", f.name);
        }
    }
}

/// Writes every fixture as a seed for the `connection` fuzz target (records of
/// `[op, len, bytes]`, op bit 0 = Read). Run with `--ignored`.
#[test]
#[ignore = "writes files; run by hand to refresh fuzz seeds"]
fn write_fuzz_seeds() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/connection");
    std::fs::create_dir_all(dir).unwrap();
    for (n, f) in all().into_iter().enumerate() {
        let mut seed = Vec::new();
        for s in &f.segments {
            for c in s.bytes.chunks(255) {
                seed.push(u8::from(s.dir == crate::events::Direction::Read));
                seed.push(c.len() as u8);
                seed.extend_from_slice(c);
            }
        }
        std::fs::write(format!("{dir}/fixture-{n:02}"), seed).unwrap();
    }
}
