//! Privileged end-to-end: real LLM clients (the `openai` and `anthropic` Python SDKs, node's
//! `fetch`) against the local mock LLM server, captured by the real daemon. The usage guard
//! decodes must equal what the server sent, call by call, for plain and compressed bodies.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use guard_tests::{
    daemon::Daemon,
    exchanges,
    mock::{ClientRun, MockLlm, assert_usage_matches, node_fetch, python_sdk, run_client},
    privileged,
};

/// The clients really received each coding (the server only compresses when asked and accepted).
fn assert_encoding(run: &ClientRun, encoding: &str) {
    let want = (!encoding.is_empty()).then(|| encoding.to_string());
    assert!(
        run.calls
            .iter()
            .filter(|c| c.inference)
            .all(|c| c.encoding == want),
        "{encoding:?}: {:#?}",
        run.calls
    );
}

#[test]
fn python_openai_and_anthropic_sdks_usage_is_exact() {
    if !privileged() {
        return;
    }
    let mock = MockLlm::start();
    let d = Daemon::start("sdk");
    let encodings = ["", "gzip", "br"];
    let runs: Vec<ClientRun> = encodings
        .iter()
        .map(|e| run_client(&mut python_sdk(&mock, e)))
        .collect();
    let all = exchanges(&d.stop());
    for (run, enc) in runs.iter().zip(encodings) {
        assert_eq!(
            run.calls.len(),
            6,
            "anthropic, chat and responses, streamed and not"
        );
        assert_encoding(run, enc);
        assert_usage_matches(&all, run);
    }
}

#[test]
fn node_fetch_usage_is_exact() {
    if !privileged() {
        return;
    }
    let mock = MockLlm::start();
    let d = Daemon::start("fetch");
    let encodings = ["", "gzip", "br"];
    let runs: Vec<ClientRun> = encodings
        .iter()
        .map(|e| run_client(&mut node_fetch(&mock, e)))
        .collect();
    let all = exchanges(&d.stop());
    for (run, enc) in runs.iter().zip(encodings) {
        assert_eq!(
            run.calls.len(),
            10,
            "anthropic, chat, responses, three Gemini forms, two non-inference"
        );
        assert_encoding(run, enc);
        assert_usage_matches(&all, run);
    }
}
