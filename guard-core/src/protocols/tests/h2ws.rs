//! HTTP/2 and WebSocket: recorded live fixtures decode to exactly the exchanges stated, and
//! give the same exchanges however their bytes are cut.

use proptest::prelude::*;

use crate::{events::Direction, protocols::Protocol};

use super::{
    Want,
    live::{all, sorted},
    run, run_pieces,
};

#[test]
fn live_fixtures_decode_as_stated() {
    for f in all() {
        let got: Vec<Want> = run(&f.segments).iter().map(Want::of).collect();
        assert_eq!(sorted(got), sorted(f.want.clone()), "fixture {}", f.name);
    }
}

#[test]
fn protocols_are_told_from_the_bytes() {
    for f in all() {
        let want = if f.name.starts_with("ws") { Protocol::Websocket } else { Protocol::Http2 };
        let xs = run(&f.segments);
        // The WebSocket upgrade itself is an HTTP/1.1 exchange.
        assert!(xs.iter().all(|x| x.protocol == want || x.status == Some(101)), "fixture {}", f.name);
        assert!(xs.iter().all(|x| x.path.as_deref() != Some("") && x.host.as_deref() != Some("")));
    }
}

#[test]
fn deflate_was_negotiated_as_the_fixtures_say() {
    let read = |name: &str| -> String {
        let f = all().iter().find(|f| f.name.contains(name)).unwrap();
        let first = f.segments.iter().find(|s| s.dir == Direction::Read).unwrap();
        String::from_utf8_lossy(&first.bytes).to_ascii_lowercase()
    };
    let takeover = read("context takeover, window bits");
    assert!(takeover.contains("permessage-deflate"), "{takeover}");
    assert!(takeover.contains("client_max_window_bits=10") && takeover.contains("server_max_window_bits=11"), "{takeover}");
    let none = read("no context takeover");
    assert!(none.contains("server_no_context_takeover") && none.contains("client_no_context_takeover"), "{none}");
}

#[test]
fn secrets_never_reach_the_exchange() {
    for f in all() {
        for x in run(&f.segments) {
            let json = serde_json::to_string(&x).unwrap();
            assert!(!json.contains("sk-test") && !json.contains("secret"), "{json}");
        }
    }
}

/// Cut points for one segment: every offset of a short segment; for a long one, every offset
/// in its first and last KiB and every 61st in between (each cut replays the whole fixture,
/// so all offsets of a 40 KB header block would take minutes).
fn single_cuts(len: usize) -> Vec<usize> {
    if len <= 4096 {
        return (1..len).collect();
    }
    (1..len).filter(|&c| c < 1024 || c > len - 1024 || c % 61 == 0).collect()
}

#[test]
fn every_single_cut_gives_identical_exchanges() {
    for f in all() {
        let whole = run(&f.segments);
        for (i, s) in f.segments.iter().enumerate() {
            for cut in single_cuts(s.bytes.len()) {
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
