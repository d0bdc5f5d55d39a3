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

/// `[op, len, bytes]` records of a capture (op bit 0 = Read, bit 1 = gap), as the fuzz
/// targets read them.
fn records(segments: &[super::Segment]) -> Vec<u8> {
    let mut seed = Vec::new();
    for s in segments {
        let read = u8::from(s.dir == crate::events::Direction::Read);
        if s.bytes.is_empty() {
            seed.extend_from_slice(&[read | 2, 1]);
        }
        for c in s.bytes.chunks(255) {
            seed.push(read);
            seed.push(c.len() as u8);
            seed.extend_from_slice(c);
        }
    }
    seed
}

/// Writes every fixture as a seed for the `connection` fuzz target, and the HTTP/2 and
/// WebSocket captures for the `h2` and `ws` targets. Run with `--ignored`.
#[test]
#[ignore = "writes files; run by hand to refresh fuzz seeds"]
fn write_fuzz_seeds() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");
    for t in ["connection", "h2", "ws"] {
        std::fs::create_dir_all(format!("{root}/{t}")).unwrap();
    }
    for (n, f) in all().into_iter().enumerate() {
        std::fs::write(format!("{root}/connection/fixture-{n:02}"), records(&f.segments)).unwrap();
    }
    for (n, f) in super::live::all().iter().enumerate() {
        std::fs::write(format!("{root}/connection/live-{n:02}"), records(&f.segments)).unwrap();
        if f.name.starts_with("h2") {
            // Leading byte 2: the capture carries its own preface.
            std::fs::write(format!("{root}/h2/live-{n:02}"), [&[2u8][..], &records(&f.segments)].concat()).unwrap();
        } else {
            // The target makes its own upgrade: the frames after the handshake, with the
            // extension variant (0: none, 1: deflate with takeover, 3: without) in front.
            let ext = if f.name.contains("tungstenite") { 0 } else if f.name.contains("no context") { 3 } else { 1 };
            let mut segs = f.segments.clone();
            segs.remove(0);
            if let Some(r) = segs.iter_mut().find(|s| s.dir == crate::events::Direction::Read) {
                let end = r.bytes.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |p| p + 4);
                r.bytes.drain(..end);
            }
            std::fs::write(format!("{root}/ws/live-{n:02}"), [&[ext][..], &records(&segs)].concat()).unwrap();
        }
    }
}
