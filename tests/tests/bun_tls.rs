//! Privileged end-to-end: Bun from npm (two releases, and a `bun build --compile` executable),
//! whose BoringSSL is statically linked and stripped. guard finds SSL_write/SSL_read by their
//! structure and must decode exactly the usage the mock server sent, for plain and compressed
//! bodies, streamed and not.
#![allow(clippy::unwrap_used)]

use guard_tests::{
    bun,
    daemon::Daemon,
    exchanges,
    mock::{MockLlm, assert_usage_matches, run_client},
    privileged, temp_path,
};

#[test]
fn bun_fetch_usage_is_exact_on_two_releases_and_a_compiled_executable() {
    if !privileged() {
        return;
    }
    let bins: Vec<_> = bun::VERSIONS.iter().map(|v| bun::bun(v)).collect();
    let compiled = temp_path("bun-fetch-compiled");
    bun::compile(&bins[1], &compiled);
    let mock = MockLlm::start();
    let mut d = Daemon::start("bun");
    // Analysing a new 100 MB binary takes seconds in a debug build: let guard hook each program
    // (an idle process of it) before the clients run, so no call precedes the hooks.
    // BUN_BE_BUN makes the compiled executable act as the bun CLI instead of its script.
    let programs = [
        (bins[0].as_path(), bun::VERSIONS[0]),
        (bins[1].as_path(), bun::VERSIONS[1]),
        (compiled.as_path(), "bun-fetch-compiled"),
    ];
    for (bin, name) in programs {
        let mut idle = std::process::Command::new(bin)
            .env("BUN_BE_BUN", "1")
            .args(["-e", "setTimeout(() => {}, 120000)"])
            .spawn()
            .unwrap();
        d.wait_for(name, std::time::Duration::from_secs(120));
        let _ = idle.kill();
        let _ = idle.wait();
    }
    let mut runs = Vec::new();
    for (bin, script) in bins
        .iter()
        .map(|b| (b.as_path(), true))
        .chain([(compiled.as_path(), false)])
    {
        for enc in ["", "gzip"] {
            let run = run_client(&mut bun::fetch(bin, script, &mock, enc));
            assert_eq!(run.calls.len(), 10, "{}", bin.display());
            runs.push(run);
        }
    }
    let (events, log) = d.stop_with_log();
    assert!(
        log.iter().any(|l| l.contains("Structural")),
        "attached by structure"
    );
    let all = exchanges(&events);
    for run in &runs {
        assert_usage_matches(&all, run);
    }
}
