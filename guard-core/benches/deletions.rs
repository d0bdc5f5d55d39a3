//! The engine's cost per deletion record (one core): an agent's child deleting 10,000 files in
//! its home, each record decoded from bytes, placed, counted and summed (one audit record at the
//! threshold, one summary at its exit).

use std::{hint::black_box, time::UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use guard_core::{
    Engine,
    engine::{EngineConfig, Outputs},
    events::{Delete, DeleteOp, Event, Fork, encode::encode},
    govern::{Governed, NoLookup},
    places::{Place, PlaceRoot},
    process::SeedProcess,
};

const FILES: usize = 10_000;

fn root(prefix: &str, place: Place, owner: u32) -> PlaceRoot {
    PlaceRoot { prefix: prefix.into(), place, protect: false, owner, sensitive: false }
}

fn records() -> Vec<Vec<u8>> {
    (0..FILES)
        .map(|i| {
            encode(&Event::Delete(Delete {
                ts_ns: 10 + i as u64,
                pid: 10,
                tid: 10,
                start_time_ns: 2_000_000_000,
                root: 9,
                op: DeleteOp::Unlinkat,
                ret: 0,
                flags: 0,
                place: 4,
                place2: 0,
                owner: 0,
                path: format!("/home/dev/data/{}/file-{i}.txt", i % 50),
                path2: String::new(),
            }))
        })
        .collect()
}

fn run(recs: &[Vec<u8>]) -> usize {
    let mut e = Engine::new(EngineConfig::default());
    let mut out = Outputs::default();
    let claude = SeedProcess { pid: 9, ppid: 1, start_ticks: 100, exe: Some("/usr/bin/claude".into()), argv: vec!["claude".into()], ..SeedProcess::default() };
    e.start(vec![claude], &mut out);
    let roots = vec![
        root("/", Place::Outside, 0),
        root("/etc/", Place::System, 0),
        root("/tmp/", Place::Temp, 0),
        root("/home/dev/", Place::Home, 0),
        root("/home/dev/.cache/", Place::Cache, 0),
        root("/home/dev/src/app/", Place::Worktree, 9),
    ];
    e.set_places(roots, &mut out);
    let fork = Fork { ts_ns: 1, parent_pid: 9, parent_tid: 9, parent_start_time_ns: 1_000_000_000, child_pid: 10, child_start_time_ns: 2_000_000_000, uid: 1000, comm: "python3".into() };
    e.push(Event::Fork(fork), UNIX_EPOCH, &mut NoLookup, &mut out);
    let mut deleted = 0;
    for r in recs {
        out.clear();
        let _ = e.push_record(&r[..], UNIX_EPOCH, &mut NoLookup, &mut out);
        deleted += out.governed.iter().filter(|g| matches!(g, Governed::Deleted { .. })).count();
    }
    assert_eq!(deleted, FILES);
    deleted
}

fn bench(c: &mut Criterion) {
    let recs = records();
    let mut g = c.benchmark_group("deletions");
    g.throughput(Throughput::Elements(FILES as u64));
    g.bench_function("home_10k_unlinks", |b| b.iter(|| black_box(run(&recs))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
