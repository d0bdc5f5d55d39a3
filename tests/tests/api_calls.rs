//! Privileged end-to-end of agents' destructive API calls (issue 21): a zero-config agent's
//! descendants send requests over TLS with real clients (Python's http.client through the system
//! OpenSSL, as boto3 and the Kubernetes client do; curl) to a local TLS mock that stands for the
//! Kubernetes API and an AWS query API. In monitor mode every request arrives and the destructive
//! ones are audited `would_block`; in enforce mode the kernel pauses each request at its
//! `SSL_write`, guard judges it, and the destructive ones are killed before a byte leaves: the
//! mock receives nothing of them. The agent's own model calls, before and after, are untouched.
//! A stripped Go client (crypto/tls, HTTP/2, as client-go and most cloud CLIs) is held the same
//! way at its `(*tls.Conn).Write`, against an HTTP/2 mock.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{
    collections::BTreeMap,
    os::unix::process::ExitStatusExt as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use guard_tests::{
    daemon::Daemon,
    gate::{self, AgentRun, Fixture, audit_records, daemon_args, finish_agent, metric_sum, run_agent, spawn_agent},
    mock::MockLlm,
    privileged,
    scrape::{metrics_addr, samples, scrape},
    server::{self, TlsServer, h2_frames},
};
use guard_core::protocols::h2::hpack::HeaderDecoder;
use serde_json::{Value, json};

const AGENT: &str = "gate_agent";
const TOKEN: &str = "mock-token-never-logged";
const TERMINATE: &str = "Action=TerminateInstances&InstanceId.1=i-0abc&Version=2016-11-15";
const DESCRIBE: &str = "Action=DescribeInstances&Version=2016-11-15";
const EC2: &str = "ec2.us-east-1.amazonaws.com";

/// One request a client sends, and what guard must make of it.
struct Call {
    cmd: String,
    /// The request's first line, as the mock must receive it when it goes through.
    line: String,
    /// The rule that refuses it; `None`: routine.
    rule: Option<&'static str>,
}

fn python(port: u16, method: &str, path: &str, host: &str, body: Option<&str>) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mock_llm/api_client.py");
    let body = body.map(|b| format!(" '{b}'")).unwrap_or_default();
    format!("python3 {} {port} {method} {path} {host}{body}", script.display())
}

fn curl(port: u16, method: &str, path: &str, host: &str, body: Option<&str>) -> String {
    let body = body.map(|b| format!(" -d '{b}'")).unwrap_or_default();
    format!("curl -sS -k -o /dev/null -X {method} -H 'Host: {host}' -H 'Authorization: Bearer {TOKEN}'{body} https://127.0.0.1:{port}{path}")
}

fn calls(port: u16) -> Vec<Call> {
    let k8s = format!("127.0.0.1:{port}");
    let call = |cmd: String, method: &str, path: &str, rule| Call { cmd, line: format!("{method} {path} HTTP/1.1"), rule };
    let ns = "/api/v1/namespaces/prod";
    let pods = "/api/v1/namespaces/dev/pods";
    vec![
        call(python(port, "DELETE", ns, &k8s, None), "DELETE", ns, Some("k8s.api-delete-namespace")),
        call(python(port, "POST", "/", EC2, Some(TERMINATE)), "POST", "/", Some("aws.ec2-terminate")),
        call(curl(port, "DELETE", ns, &k8s, None), "DELETE", ns, Some("k8s.api-delete-namespace")),
        call(curl(port, "POST", "/", EC2, Some(TERMINATE)), "POST", "/", Some("aws.ec2-terminate")),
        // Routine: reads, a create, a describe. Reads are never paused; the rest are, and go on.
        call(python(port, "GET", pods, &k8s, None), "GET", pods, None),
        call(python(port, "POST", pods, &k8s, Some("kind=Pod")), "POST", pods, None),
        call(python(port, "POST", "/", EC2, Some(DESCRIBE)), "POST", "/", None),
        call(curl(port, "GET", ns, &k8s, None), "GET", ns, None),
        call(curl(port, "POST", pods, &k8s, Some("kind=Pod")), "POST", pods, None),
    ]
}

fn start(tag: &str, mode: &str, f: &Fixture) -> (Daemon, PathBuf, String) {
    start_env(tag, mode, f, &[])
}

fn start_env(tag: &str, mode: &str, f: &Fixture, env: &[(&str, &str)]) -> (Daemon, PathBuf, String) {
    let (args, audit) = daemon_args(tag, mode, &[&f.root], 250, "open");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start_env(tag, &args, env);
    let addr = metrics_addr(&d);
    (d, audit, addr)
}

fn metrics(addr: &str) -> BTreeMap<String, f64> {
    samples(&scrape(addr).1)
}

/// Metrics once `done` holds, or after 10 s (the scrape is not synchronous with the ring).
fn wait_metrics(addr: &str, done: impl Fn(&BTreeMap<String, f64>) -> bool) -> BTreeMap<String, f64> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = metrics(addr);
        if done(&m) || std::time::Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The agent: a model call, the clients, another model call.
fn run(f: &Fixture, mock: &MockLlm, calls: &[Call], tag: &str) -> AgentRun {
    let mut steps: Vec<Value> = calls.iter().map(|c| json!({ "once": c.cmd })).collect();
    steps.push(json!({ "llm": true }));
    run_agent(f, Some(mock), &Value::Array(steps), tag)
}

fn api_records(audit: &std::path::Path) -> Vec<Value> {
    audit_records(audit).into_iter().filter(|r| r.get("request").is_some_and(|q| !q.is_null())).collect()
}

/// The first line of each whole request the mock received, and the bytes of each connection that
/// sent no whole request.
fn received(server: &TlsServer) -> (Vec<String>, Vec<String>) {
    let (mut whole, mut cut) = (Vec::new(), Vec::new());
    for t in server.transcripts() {
        let text = String::from_utf8_lossy(&t.received).into_owned();
        if t.sent.is_empty() {
            cut.push(text);
        } else {
            whole.push(text.lines().next().unwrap_or("").to_owned());
        }
    }
    (whole, cut)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn llm_calls(m: &BTreeMap<String, f64>) -> f64 {
    metric_sum(m, "guard_llm_requests_total", &[&format!("agent=\"{AGENT}\""), "outcome=\"ok\""])
}

#[test]
fn enforce_kills_destructive_requests_before_a_byte_leaves() {
    if !privileged() {
        return;
    }
    let f = Fixture::create();
    let mock = MockLlm::start();
    let server = TlsServer::start_recording();
    let calls = calls(server.port);
    let (d, audit, addr) = start("api-enforce", "enforce", &f);
    assert_eq!(metric_sum(&metrics(&addr), "guard_enforcement_mechanism", &["mechanism=\"request_stop\""]), 1.0);

    let run = run(&f, &mock, &calls, "api-enforce");
    for (i, c) in calls.iter().enumerate() {
        let r = &run.steps[i]["run"];
        let want = if c.rule.is_some() { json!([null, 9]) } else { json!([0, null]) };
        assert_eq!(json!([r["rc"], r["signal"]]), want, "{}: {r}", c.cmd);
    }
    assert_eq!(run.steps[calls.len()]["error"], Value::Null, "the model call after: {}", run.steps[calls.len()]);

    // None of the refused ones arrived: their connections were made, and got no byte, except
    // Python's form POST, whose head goes alone and whose body (judged with it) never followed.
    let (lines, cut) = received(&server);
    let routine: Vec<String> = calls.iter().filter(|c| c.rule.is_none()).map(|c| c.line.clone()).collect();
    assert_eq!(sorted(lines), sorted(routine));
    let cut = sorted(cut);
    assert_eq!(cut[..3], ["", "", ""], "{cut:?}");
    let head = &cut[3];
    assert!(head.starts_with("POST / HTTP/1.1\r\n") && head.ends_with("\r\n\r\n") && head.contains(&format!("Content-Length: {}\r\n", TERMINATE.len())), "{head:?}");
    assert!(!head.contains("Action="), "the body left: {head:?}");

    let m = refusals_recorded(&audit, &addr, &calls);
    assert_eq!(metric_sum(&m, "guard_request_pauses_total", &["decision=\"deny\""]), 4.0);
    // Let go: the routine POSTs (Python's two twice, head then body; curl's once) and the head of
    // Python's refused form POST. Never paused: GETs, the agent's own model calls.
    assert_eq!(metric_sum(&m, "guard_request_pauses_total", &["decision=\"allow\""]), 6.0);
    assert_eq!(metric_sum(&m, "guard_destructive_api_calls_total", &["action=\"blocked\""]), 4.0);
    assert_eq!(llm_calls(&m), 2.0, "the agent's model calls before and after");
    assert_no_secrets(&audit, &d);
    d.stop();
}

/// Exactly one `blocked` record per refused request, by the pause, in order; none for the
/// routine ones. The records come from the gate through the engine (metric first, then the audit
/// line): waited for, then a moment more, for a second record of a refusal (the decoder's
/// `would_block`) would come about as soon. The metrics then.
fn refusals_recorded(audit: &std::path::Path, addr: &str, calls: &[Call]) -> BTreeMap<String, f64> {
    let want: Vec<_> = calls.iter().filter_map(|c| c.rule).map(|rule| (rule, "blocked", Some("stop"), Some(AGENT))).collect();
    wait_metrics(addr, |m| llm_calls(m) >= 2.0 && api_records(audit).len() >= want.len());
    std::thread::sleep(Duration::from_millis(500));
    let records = api_records(audit);
    let got: Vec<_> = records.iter().map(|r| (r["rule_id"].as_str().unwrap_or_default(), r["action"].as_str().unwrap_or_default(), r["mechanism"].as_str(), r["agent"].as_str())).collect();
    assert_eq!(got, want, "{records:#?}");
    for r in &records {
        assert!(r["pid"].as_u64().is_some_and(|p| p > 0) && r["request"]["host"].is_string(), "{r:#}");
    }
    metrics(addr)
}

/// The bearer token and the instance id reach neither the audit log nor guard's log.
fn assert_no_secrets(audit: &std::path::Path, d: &Daemon) {
    let text = std::fs::read_to_string(audit).unwrap();
    let log = d.log_lines().join("\n");
    for secret in [TOKEN, "i-0abc"] {
        assert!(!text.contains(secret) && !log.contains(secret), "{secret} leaked");
    }
}

#[test]
fn monitor_lets_every_request_through_and_records_would_block() {
    if !privileged() {
        return;
    }
    let f = Fixture::create();
    let mock = MockLlm::start();
    let server = TlsServer::start_recording();
    let calls = calls(server.port);
    let (d, audit, addr) = start("api-monitor", "monitor", &f);
    assert_eq!(metric_sum(&metrics(&addr), "guard_enforcement_mechanism", &["mechanism=\"request_stop\""]), 0.0);

    let run = run(&f, &mock, &calls, "api-monitor");
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(run.steps[i]["run"]["rc"], 0, "{}: {}", c.cmd, run.steps[i]);
    }
    let (lines, cut) = received(&server);
    assert_eq!(sorted(lines), sorted(calls.iter().map(|c| c.line.clone()).collect()));
    assert_eq!(cut, Vec::<String>::new());

    let want: Vec<_> = calls.iter().filter_map(|c| c.rule).map(|rule| (rule.to_owned(), "would_block".to_owned())).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let records = loop {
        let records = api_records(&audit);
        if records.len() >= want.len() || std::time::Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let got: Vec<_> = records.iter().map(|r| (r["rule_id"].as_str().unwrap_or_default().to_owned(), r["action"].as_str().unwrap_or_default().to_owned())).collect();
    assert_eq!(sorted_pairs(got), sorted_pairs(want), "{records:#?}");
    assert!(records.iter().all(|r| r["mechanism"].is_null() && r["agent"] == AGENT), "{records:#?}");
    let m = metrics(&addr);
    assert_eq!(metric_sum(&m, "guard_request_pauses_total", &[]), 0.0);
    d.stop();
}

fn sorted_pairs(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

/// guard killed with SIGKILL while a request is paused (a debug build's judge waits 5 s): the
/// gate's watchdog lets the process go at once (fail open), its request completes, and no task
/// of the test stays stopped.
#[test]
fn sigkill_of_guard_mid_pause_leaves_nothing_stopped() {
    if !privileged() {
        return;
    }
    let f = Fixture::create();
    let mock = MockLlm::start();
    let server = TlsServer::start_recording();
    let ns = "/api/v1/namespaces/prod";
    let cmd = python(server.port, "DELETE", ns, &format!("127.0.0.1:{}", server.port), None);
    let (mut d, _audit, _addr) = start_env("api-sigkill", "enforce", &f, &[("GUARD_GATE_TEST_PAUSE_DELAY_MS", "5000")]);
    let (agent, result) = spawn_agent(&f, Some(&mock), &json!([{ "once": cmd }]), "api-sigkill");
    let paused = wait_paused(Duration::from_secs(30));
    // SAFETY: killing our own child.
    assert_eq!(unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) }, 0);
    let killed = Instant::now();
    while gate::state(paused) == Some('T') {
        assert!(killed.elapsed() < Duration::from_secs(2), "the paused client {paused} is still stopped {:?} after guard's SIGKILL", killed.elapsed());
        std::thread::sleep(Duration::from_millis(1));
    }
    eprintln!("the paused client ran again {:?} after guard's SIGKILL", killed.elapsed());
    assert_eq!(d.wait_exit(Duration::from_secs(10)).expect("guard died").signal(), Some(libc::SIGKILL));
    let run = finish_agent(agent, &result, Duration::from_secs(60));
    assert_eq!(run.steps[0]["run"]["rc"], 0, "{}", run.steps[0]);
    let (lines, cut) = received(&server);
    assert_eq!((lines, cut), (vec![format!("DELETE {ns} HTTP/1.1")], Vec::<String>::new()), "fail open: the request went on");
    let me = std::process::id();
    let stuck: Vec<_> = gate::tasks().into_iter().filter(|(pid, _, state, _, _)| *state == 'T' && gate::descends_from(*pid, me)).collect();
    assert!(stuck.is_empty(), "{stuck:#?}");
}

/// The test's own `api_client.py` process once the kernel stopped it at its request: stopped
/// outside a system call (a uprobe's trap), so not at a library load's `mmap`.
fn wait_paused(timeout: Duration) -> u32 {
    let me = std::process::id();
    let deadline = Instant::now() + timeout;
    loop {
        let found = gate::tasks().into_iter().find(|(pid, tid, state, _, _)| {
            pid == tid
                && *state == 'T'
                && gate::descends_from(*pid, me)
                && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains("api_client.py"))
                && std::fs::read_to_string(format!("/proc/{pid}/syscall")).is_ok_and(|s| s.starts_with("-1 "))
        });
        if let Some((pid, ..)) = found {
            return pid;
        }
        assert!(Instant::now() < deadline, "no paused client within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn go_api(bin: &std::path::Path, port: u16, method: &str, path: &str, host: &str, body: Option<&str>) -> String {
    let body = body.map(|b| format!(" '{b}'")).unwrap_or_default();
    format!("{} api https://127.0.0.1:{port} {method} {path} {host}{body}", bin.display())
}

/// The Go client's requests; `line` is `METHOD PATH` (HTTP/2 has no request line). The stripped
/// client is copied into the fixture, on the filesystem the test's exec gate marks: its first
/// exec is held until its probes are attached, as a new tool's is on a host marked whole.
fn go_calls(f: &Fixture, port: u16) -> Vec<Call> {
    let bin = f.root.join("goclient");
    std::fs::copy(&guard_tests::go::clients().1, &bin).unwrap();
    let k8s = format!("127.0.0.1:{port}");
    let call = |method: &str, path: &str, host: &str, body, rule| Call { cmd: go_api(&bin, port, method, path, host, body), line: format!("{method} {path}"), rule };
    let (ns, pods) = ("/api/v1/namespaces/prod", "/api/v1/namespaces/dev/pods");
    vec![
        // Routine first: the binary's first run, hooked before it runs (the first-run hold).
        call("GET", pods, &k8s, None, None),
        call("DELETE", ns, &k8s, None, Some("k8s.api-delete-namespace")),
        call("POST", "/", EC2, Some(TERMINATE), Some("aws.ec2-terminate")),
        call("POST", pods, &k8s, Some("kind=Pod"), None),
        call("POST", "/", EC2, Some(DESCRIBE), None),
    ]
}

/// What an HTTP/2 connection delivered: `METHOD PATH` of each stream the client ended (a whole
/// request), and of each it opened without ending.
fn h2_requests(received: &[u8]) -> (Vec<String>, Vec<String>) {
    let mut hpack = HeaderDecoder::new(true);
    let (mut whole, mut open) = (Vec::new(), std::collections::BTreeMap::new());
    for f in h2_frames(received) {
        match f.kind {
            server::h2::HEADERS => {
                let mut line = (String::new(), String::new());
                hpack
                    .decode(&f.payload, &mut |n, v| match n {
                        b":method" => line.0 = String::from_utf8_lossy(v).into_owned(),
                        b":path" => line.1 = String::from_utf8_lossy(v).into_owned(),
                        _ => {}
                    })
                    .unwrap();
                open.insert(f.stream, format!("{} {}", line.0, line.1));
            }
            server::h2::DATA => {}
            _ => continue,
        }
        if f.flags & server::h2::END_STREAM != 0
            && let Some(l) = open.remove(&f.stream)
        {
            whole.push(l);
        }
    }
    (whole, open.into_values().collect())
}

/// The H2 mock's connections once `n` have ended (a killed client's too).
fn h2_transcripts(server: &TlsServer, n: usize) -> Vec<server::Transcript> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = server.transcripts();
        if t.len() >= n || Instant::now() > deadline {
            return t;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Enforce mode, Go's crypto/tls over HTTP/2: every write of the connection pauses, the gate
/// follows its frames and HPACK table, and the DELETE and the `TerminateInstances` are killed
/// in the write that completes them. The mock never sees either whole; the routine requests
/// arrive; each refusal is recorded once (`blocked`), though Go's write is captured before the
/// pause (the engine leaves it to the gate's record).
#[test]
fn enforce_holds_a_go_http2_client_and_records_each_refusal_once() {
    if !privileged() {
        return;
    }
    let f = Fixture::create();
    let mock = MockLlm::start();
    let server = TlsServer::start_h2_recording();
    let calls = go_calls(&f, server.port);
    let (d, audit, addr) = start("api-go-enforce", "enforce", &f);

    let run = run(&f, &mock, &calls, "api-go-enforce");
    for (i, c) in calls.iter().enumerate() {
        let r = &run.steps[i]["run"];
        let want = if c.rule.is_some() { json!([null, 9]) } else { json!([0, null]) };
        assert_eq!(json!([r["rc"], r["signal"]]), want, "{}: {r}", c.cmd);
    }
    assert_eq!(run.steps[calls.len()]["error"], Value::Null, "the model call after: {}", run.steps[calls.len()]);

    // One connection per client, each HTTP/2 from its preface; only the routine requests whole.
    let transcripts = h2_transcripts(&server, calls.len());
    assert_eq!(transcripts.len(), calls.len());
    let (mut whole, mut open) = (Vec::new(), Vec::new());
    for t in &transcripts {
        assert!(t.received.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "{:?}", String::from_utf8_lossy(&t.received));
        let (w, o) = h2_requests(&t.received);
        whole.extend(w);
        open.extend(o);
    }
    let routine: Vec<String> = calls.iter().filter(|c| c.rule.is_none()).map(|c| c.line.clone()).collect();
    assert_eq!(sorted(whole), sorted(routine));
    // At most the form POST's HEADERS, when Go wrote them before the body: never its body.
    assert!(open.iter().all(|l| l == "POST /"), "{open:?}");
    assert!(!transcripts.iter().any(|t| t.received.windows(9).any(|w| w == b"Terminate")), "the Action left");

    let m = refusals_recorded(&audit, &addr, &calls);
    assert_eq!(metric_sum(&m, "guard_request_pauses_total", &["decision=\"deny\""]), 2.0);
    assert_eq!(metric_sum(&m, "guard_destructive_api_calls_total", &["action=\"would_block\""]), 0.0);
    assert_eq!(llm_calls(&m), 2.0, "the agent's model calls before and after");
    assert_no_secrets(&audit, &d);
    d.stop();
}

/// Monitor mode, the same Go client: nothing pauses, every request arrives, and the decoder
/// records the two `would_block`.
#[test]
fn monitor_lets_a_go_http2_client_through_and_records_would_block() {
    if !privileged() {
        return;
    }
    let f = Fixture::create();
    let mock = MockLlm::start();
    let server = TlsServer::start_h2_recording();
    let calls = go_calls(&f, server.port);
    let (d, audit, addr) = start("api-go-monitor", "monitor", &f);
    let run = run(&f, &mock, &calls, "api-go-monitor");
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(run.steps[i]["run"]["rc"], 0, "{}: {}", c.cmd, run.steps[i]);
    }
    let transcripts = h2_transcripts(&server, calls.len());
    let whole: Vec<String> = transcripts.iter().flat_map(|t| h2_requests(&t.received).0).collect();
    assert_eq!(sorted(whole), sorted(calls.iter().map(|c| c.line.clone()).collect()));
    let want: Vec<_> = calls.iter().filter_map(|c| c.rule).map(|rule| (rule.to_owned(), "would_block".to_owned())).collect();
    let m = wait_metrics(&addr, |_| api_records(&audit).len() >= want.len());
    let records = api_records(&audit);
    let got: Vec<_> = records.iter().map(|r| (r["rule_id"].as_str().unwrap_or_default().to_owned(), r["action"].as_str().unwrap_or_default().to_owned())).collect();
    assert_eq!(sorted_pairs(got), sorted_pairs(want), "{records:#?}");
    assert_eq!(metric_sum(&m, "guard_request_pauses_total", &[]), 0.0);
    d.stop();
}
