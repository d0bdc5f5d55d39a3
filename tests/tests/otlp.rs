//! Privileged end-to-end: `guard run` exports OTLP to a real receiver (the official protobuf
//! definitions, over HTTP/protobuf and over gRPC). Real SDK calls against the mock give exact
//! token sums per type in the received GenAI metrics, one span per call, the agent's destructive
//! command as a log record, and guard's own families under their Prometheus names. A collector
//! that goes away holds nothing: /metrics keeps serving, and every span lost is counted.
#![allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]

use std::{path::Path, process::Command, time::Duration};

use guard_tests::{
    daemon::Daemon,
    mock::{Call, MockLlm, python_sdk, run_client},
    otlp::{Receiver, attrs, last_metric, log_records, points, spans, sum_where, value},
    privileged,
    scrape::{metrics_addr, samples, scrape},
    temp_path,
};

const AGENT: &str = "client_sdk";
/// The call id the mock sends with the tool call.
const CALL: &str = "toolu_otlp_link";

/// The tool call ids a span carries (`guard.tool_call.ids`, an array attribute).
fn call_ids(span: &serde_json::Value) -> Vec<String> {
    span["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|kv| kv["key"] == "guard.tool_call.ids")
        .flat_map(|kv| kv["value"]["arrayValue"]["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v["stringValue"].as_str().map(str::to_owned))
        .collect()
}

fn config(name: &str, endpoint: &str, protocol: &str, extra: &str) -> String {
    let path = temp_path(&format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[otlp]\nendpoint = \"{endpoint}\"\nprotocol = \"{protocol}\"\nmetric_export_interval_ms = 300\nspans = true\nlogs = true\n{extra}\n\n[otlp.headers]\nx-guard-tenant = \"e2e\"\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn start(name: &str, cfg: &str) -> Daemon {
    Daemon::start_with(name, &["--config", cfg, "--metrics-addr", "127.0.0.1:0", "--audit-log", "off", "--log-format", "json"])
}

/// The per-kind sums the calls must add up to: input (cached included), output (reasoning
/// included), cache read, cache write, reasoning.
fn sums(calls: &[Call]) -> [f64; 5] {
    let mut s = [0.0; 5];
    for c in calls.iter().filter(|c| c.inference) {
        let [input, cache_read, cache_write, output, reasoning] = c.usage.map(|n| n as f64);
        s[0] += input + cache_read + cache_write;
        s[1] += output + reasoning;
        s[2] += cache_read;
        s[3] += cache_write;
        s[4] += reasoning;
    }
    s
}

const USAGE: [&str; 5] = [
    "gen_ai.client.inference.usage.input_tokens",
    "gen_ai.client.inference.usage.output_tokens",
    "gen_ai.client.inference.usage.cache_read.input_tokens",
    "gen_ai.client.inference.usage.cache_write.input_tokens",
    "gen_ai.client.inference.usage.reasoning.output_tokens",
];

fn exports_exactly(protocol: &str) {
    let tag = protocol.replace('/', "-");
    let rx = Receiver::start(&tag, 0);
    let mock = MockLlm::start();
    let cfg = config(&tag, &rx.endpoint(protocol), protocol, "");
    let d = start(&format!("otlp-{tag}"), &cfg);
    let sdk = run_client(&mut python_sdk(&mock, ""));
    let victim = Path::new("/srv").join(format!("guard-e2e-otlp-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&victim).unwrap();
    let agent = temp_path("otlp-bot.py");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("mock_llm/agent.py"), &agent).unwrap();
    let out = Command::new("python3")
        .arg(&agent)
        .args([&mock.base, &mock.ca_file.display().to_string(), &format!("rm -rf {}", victim.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A model's tool call: its span and the audit log record of the command it proposed name the
    // same call id.
    let proposed = Path::new("/srv").join(format!("guard-e2e-otlp-call-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&proposed).unwrap();
    let tool_agent = temp_path("otlp-tool-bot.py");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("mock_llm/tool_agent.py"), &tool_agent).unwrap();
    let out = Command::new("python3")
        .arg(&tool_agent)
        .args(["--base", &mock.base, "--ca", &mock.ca_file.display().to_string(), "--api", "anthropic", "--call-id", CALL])
        .args(["--command", &format!("rm -rf {}", proposed.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let want = sums(&sdk.calls);
    let calls = sdk.calls.iter().filter(|c| c.inference).count();
    let agent_is = [("guard.agent", AGENT)];
    // The cost /metrics serves once the calls are counted: OTLP must carry the same figure.
    let addr = metrics_addr(&d);
    let cost = wait_cost(&addr, calls);
    let reqs = rx.wait_until(Duration::from_secs(30), "exact token sums, spans and the audit log record", |r| {
        USAGE.iter().zip(want).all(|(name, n)| sum_where(r, name, &agent_is) == Some(n))
            && spans(r).iter().filter(|s| attrs(&s["attributes"]).get("guard.agent").map(String::as_str) == Some(AGENT)).count() == calls
            && !log_records(r).is_empty()
            && sum_where(r, "guard_destructive_commands", &[("agent", "otlp-bot")]) == Some(1.0)
            && sum_where(r, "guard_llm_cost_usd", &[("agent", AGENT)]).is_some_and(|c| (c - cost).abs() < 1e-9)
            && log_records(r).iter().any(|l| attrs(&l["attributes"]).get("guard.proposed_by.call_id").map(String::as_str) == Some(CALL))
            && spans(r).iter().any(|s| call_ids(s).iter().any(|c| c == CALL))
    });
    d.stop();

    // Every request came the configured way, with the configured header.
    assert!(reqs.iter().all(|r| r["transport"] == if protocol == "grpc" { "grpc" } else { "http" }));
    assert!(reqs.iter().all(|r| r["headers"]["x-guard-tenant"] == "e2e"), "{:#?}", reqs[0]["headers"]);
    let resource = attrs(&reqs[0]["request"]["resourceMetrics"][0]["resource"]["attributes"]);
    assert_eq!(resource.get("service.name").map(String::as_str), Some("guard"));
    assert!(resource.contains_key("host.name"), "{resource:?}");

    // gen_ai.client.token.usage: one input and one output observation per call, same totals.
    let usage = last_metric(&reqs, "gen_ai.client.token.usage").unwrap();
    for (kind, total) in [("input", want[0]), ("output", want[1])] {
        let mine: Vec<_> = points(&usage)
            .into_iter()
            .filter(|p| {
                let a = attrs(&p["attributes"]);
                a.get("guard.agent").map(String::as_str) == Some(AGENT) && a.get("gen_ai.token.type").map(String::as_str) == Some(kind)
            })
            .collect();
        let count: u64 = mine.iter().map(|p| p["count"].as_str().unwrap().parse::<u64>().unwrap()).sum();
        let sum: f64 = mine.iter().map(|p| p["sum"].as_f64().unwrap()).sum();
        assert_eq!((count, sum), (calls as u64, total), "{kind}: {mine:#?}");
    }
    let providers: std::collections::BTreeSet<_> =
        points(&usage).iter().filter_map(|p| attrs(&p["attributes"]).get("gen_ai.provider.name").cloned()).collect();
    assert!(providers.contains("anthropic") && providers.contains("openai"), "{providers:?}");
    let duration = last_metric(&reqs, "gen_ai.client.operation.duration").unwrap();
    let timed: u64 = points(&duration)
        .iter()
        .filter(|p| attrs(&p["attributes"]).get("guard.agent").map(String::as_str) == Some(AGENT))
        .map(|p| p["count"].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(timed, calls as u64);
    let streamed = sdk.calls.iter().filter(|c| c.inference && c.streamed).count() as u64;
    let first = last_metric(&reqs, "gen_ai.client.operation.time_to_first_chunk").unwrap();
    let first: u64 = points(&first)
        .iter()
        .filter(|p| attrs(&p["attributes"]).get("guard.agent").map(String::as_str) == Some(AGENT))
        .map(|p| p["count"].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(first, streamed);

    // One CLIENT span per call, each with its own usage.
    let mut got: Vec<(i64, i64)> = spans(&reqs)
        .iter()
        .filter(|s| attrs(&s["attributes"]).get("guard.agent").map(String::as_str) == Some(AGENT))
        .map(|s| {
            assert_eq!(s["kind"], "SPAN_KIND_CLIENT", "{s:#?}");
            let a = attrs(&s["attributes"]);
            let n = |k: &str| a[k].parse::<i64>().unwrap();
            assert!(a.get("guard.cost.usd").and_then(|c| c.parse::<f64>().ok()).is_some_and(|c| c > 0.0), "{s:#?}");
            (n("gen_ai.usage.input_tokens"), n("gen_ai.usage.output_tokens"))
        })
        .collect();
    let mut per_call: Vec<(i64, i64)> = sdk
        .calls
        .iter()
        .filter(|c| c.inference)
        .map(|c| ((c.usage[0] + c.usage[1] + c.usage[2]) as i64, (c.usage[3] + c.usage[4]) as i64))
        .collect();
    got.sort_unstable();
    per_call.sort_unstable();
    assert_eq!(got, per_call);

    // The agent's destructive command, as the audit log would have written it.
    let logs = log_records(&reqs);
    let rec = logs
        .iter()
        .find(|l| attrs(&l["attributes"]).get("guard.rule_id").map(String::as_str) == Some("fs.rm-rf-outside-worktree"))
        .unwrap_or_else(|| panic!("{logs:#?}"));
    assert_eq!(rec["eventName"], "guard.audit");
    let body: serde_json::Value = serde_json::from_str(rec["body"]["stringValue"].as_str().unwrap()).unwrap();
    assert_eq!(body["agent"], "otlp-bot");
    assert_eq!(body["action"], "would_block");

    // guard's own families, under their Prometheus names.
    let destructive = last_metric(&reqs, "guard_destructive_commands").unwrap();
    let hit = points(&destructive).into_iter().find(|p| attrs(&p["attributes"]).get("agent").map(String::as_str) == Some("otlp-bot"));
    assert_eq!(hit.as_ref().map(value), Some(1.0), "{destructive:#?}");
    for family in ["guard_events_lost", "guard_build", "guard_tls_targets_attached", "guard_otlp_dropped"] {
        assert!(last_metric(&reqs, family).is_some(), "{family} not exported");
    }

    // No secret, no prompt text.
    let all = std::fs::read_to_string(temp_path(&format!("{tag}-otlp.jsonl"))).unwrap();
    for secret in ["sk-mock", "sk-ant-api03", "Hello", "clean up the build"] {
        assert!(!all.contains(secret), "{secret} leaked into OTLP");
    }
}

/// The agent's cost on /metrics once every call of it is counted (and priced: the mock's models
/// are in the table).
fn wait_cost(addr: &str, calls: usize) -> f64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = samples(&scrape(addr).1);
        let of = |family: &str| -> f64 {
            got.iter().filter(|(k, _)| k.starts_with(family) && k.contains(&format!(r#"agent="{AGENT}""#))).map(|(_, v)| v).sum()
        };
        let cost = of("guard_llm_cost_usd_total{");
        if of("guard_llm_requests_total{") == calls as f64 && cost > 0.0 {
            return cost;
        }
        assert!(std::time::Instant::now() < deadline, "{AGENT}'s {calls} calls never counted and priced on /metrics");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn http_protobuf_export_is_exact() {
    if !privileged() {
        return;
    }
    exports_exactly("http/protobuf");
}

#[test]
fn grpc_export_is_exact() {
    if !privileged() {
        return;
    }
    exports_exactly("grpc");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok()).unwrap()
}

#[test]
fn a_collector_that_goes_away_holds_nothing_and_every_lost_span_is_counted() {
    if !privileged() {
        return;
    }
    let mut rx = Receiver::start("gone", 0);
    let mock = MockLlm::start();
    let cfg = config("gone", &rx.endpoint("http/protobuf"), "http/protobuf", "queue = 8\ntimeout_ms = 1000");
    let d = start("otlp-gone", &cfg);
    let addr = metrics_addr(&d);
    let first = run_client(&mut python_sdk(&mock, ""));
    let n = first.calls.iter().filter(|c| c.inference).count();
    rx.wait_until(Duration::from_secs(30), "the first calls' spans", |r| {
        spans(r).iter().filter(|s| attrs(&s["attributes"]).get("guard.agent").map(String::as_str) == Some(AGENT)).count() == n
    });
    rx.stop();
    let before = rss_kib(d.pid());
    let rounds = 4;
    for _ in 0..rounds {
        run_client(&mut python_sdk(&mock, ""));
    }
    // Each span made while the collector was gone is dropped: no room, or its export failed.
    let lost = (rounds * n) as f64;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let (_, text) = scrape(&addr);
        let got = samples(&text);
        if got.get(r#"guard_otlp_dropped_total{signal="spans"}"#) == Some(&lost) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "dropped spans never reached {lost}:\n{text}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let got = samples(&text);
    // /metrics went on counting every call.
    let requests: f64 =
        got.iter().filter(|(k, _)| k.starts_with("guard_llm_requests_total{") && k.contains(r#"agent="client_sdk""#)).map(|(_, v)| v).sum();
    assert_eq!(requests, ((rounds + 1) * n) as f64, "{text}");
    assert!(got.get(r#"guard_otlp_export_failures_total{signal="metrics"}"#).is_some_and(|v| *v >= 1.0), "{text}");
    let after = rss_kib(d.pid());
    assert!(after < before + 64 * 1024, "guard grew from {before} KiB to {after} KiB while the collector was gone");
    d.stop();
}
