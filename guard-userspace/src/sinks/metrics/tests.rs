//! The encoded text, exactly. Series inside a family come out in hash order, so [`sorted`]
//! orders them by label set (keeping each series' own lines in order) before comparing.

use super::*;
use guard_core::{
    cost::{Cost, PriceTable},
    protocols::{IncompleteReason, Role, exchange::Timings},
    providers::{Endpoint, Provider, ToolCall, Usage},
};

fn exchange(provider: Provider, model: Option<&str>) -> Exchange {
    Exchange {
        conn: None,
        role: Role::Client,
        protocol: guard_core::protocols::exchange::Protocol::Http1,
        provider,
        endpoint: Endpoint::Messages,
        inference: true,
        method: Some("POST".into()),
        path: Some("/v1/messages".into()),
        host: Some("api.anthropic.com".into()),
        model: model.map(Into::into),
        status: Some(200),
        streamed: false,
        complete: true,
        incomplete_reason: None,
        error_type: None,
        timings: Timings { start_ns: Some(1_000_000_000), first_byte_ns: Some(1_300_000_000), end_ns: 3_000_000_000 },
        usage: Usage { input: 10, cache_read: 200, cache_write: 30, output: 40, reasoning: 5, cache_write_1h: 0 },
        usage_seen: true,
        tool_calls: Vec::new(),
        mcp_calls: Vec::new(),
    }
}

fn with_tools(mut x: Exchange) -> Exchange {
    let call = |tool: &str, id: &str| ToolCall { tool: tool.into(), call_id: id.into(), args: Default::default() };
    x.tool_calls = vec![call("Bash", "t1"), call("Bash", "t2"), call("Read", "t3"), call("mcp__github__create_issue", "t4")];
    x
}

fn mcp_exchange() -> Exchange {
    use guard_core::providers::mcp::{McpCall, Outcome};
    let mut x = exchange(Provider::Unknown, None);
    x.inference = false;
    x.endpoint = Endpoint::Other;
    x.host = Some("MCP.Example.com:8443".into());
    let call = |tool: &str, outcome| McpCall { tool: tool.into(), outcome };
    x.mcp_calls = vec![call("add", Outcome::Ok), call("add", Outcome::Ok), call("delete_repo", Outcome::Error), call("slow", Outcome::NoReply)];
    x
}

/// Orders the sample lines of each family by their labels (`le` aside), stably.
fn sorted(text: &str) -> String {
    fn key(line: &str) -> String {
        let labels = line.split_once('{').and_then(|(_, r)| r.split_once('}')).map_or("", |(l, _)| l);
        labels.split(',').filter(|p| !p.starts_with("le=")).collect::<Vec<_>>().join(",")
    }
    let mut out = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            block.sort_by_key(|l| key(l));
            out.append(&mut block);
            out.push(line);
        } else {
            block.push(line);
        }
    }
    block.sort_by_key(|l| key(l));
    out.append(&mut block);
    out.join("\n") + "\n"
}

/// The families of one name prefix, with their header lines.
fn family(text: &str, name: &str) -> String {
    let mut out = String::new();
    let mut on = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            on = rest.split(' ').next() == Some(name);
        } else if line == "# EOF" {
            on = false;
        }
        if on {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

const BUCKETS_2S: &str = "\
guard_llm_request_duration_seconds_sum{agent=\"claude-code\",provider=\"anthropic\"} 2.0
guard_llm_request_duration_seconds_count{agent=\"claude-code\",provider=\"anthropic\"} 1
guard_llm_request_duration_seconds_bucket{le=\"0.1\",agent=\"claude-code\",provider=\"anthropic\"} 0
guard_llm_request_duration_seconds_bucket{le=\"0.25\",agent=\"claude-code\",provider=\"anthropic\"} 0
guard_llm_request_duration_seconds_bucket{le=\"0.5\",agent=\"claude-code\",provider=\"anthropic\"} 0
guard_llm_request_duration_seconds_bucket{le=\"1.0\",agent=\"claude-code\",provider=\"anthropic\"} 0
guard_llm_request_duration_seconds_bucket{le=\"2.5\",agent=\"claude-code\",provider=\"anthropic\"} 1
guard_llm_request_duration_seconds_bucket{le=\"5.0\",agent=\"claude-code\",provider=\"anthropic\"} 1
guard_llm_request_duration_seconds_bucket{le=\"10.0\",agent=\"claude-code\",provider=\"anthropic\"} 1
guard_llm_request_duration_seconds_bucket{le=\"20.0\",agent=\"claude-code\",provider=\"anthropic\"} 1
guard_llm_request_duration_seconds_bucket{le=\"30.0\",agent=\"claude-code\",provider=\"anthropic\"} 1
guard_llm_request_duration_seconds_bucket{le=\"60.0\",agent=\"claude-code\",provider=\"anthropic\"} 1
guard_llm_request_duration_seconds_bucket{le=\"120.0\",agent=\"claude-code\",provider=\"anthropic\"} 1
guard_llm_request_duration_seconds_bucket{le=\"300.0\",agent=\"claude-code\",provider=\"anthropic\"} 1
guard_llm_request_duration_seconds_bucket{le=\"+Inf\",agent=\"claude-code\",provider=\"anthropic\"} 1
";

#[test]
fn one_call_encodes_exactly() {
    let m = Metrics::default();
    assert!(m.on_exchange("claude-code", &exchange(Provider::Anthropic, Some("claude-sonnet-4-5")), Some(Cost::Usd(0.125))).is_some());
    let expected = String::new()
        + "# HELP guard_llm_requests LLM inference requests made by agents, by outcome (ok, error: HTTP status >= 400 or a provider error, incomplete: the reply did not end).\n"
        + "# TYPE guard_llm_requests counter\n"
        + "guard_llm_requests_total{agent=\"claude-code\",provider=\"anthropic\",model=\"claude-sonnet-4-5\",outcome=\"ok\"} 1\n"
        + "# HELP guard_llm_tokens Tokens reported by the provider, by type; the types partition the billed total (input excludes cached tokens, output excludes reasoning).\n"
        + "# TYPE guard_llm_tokens counter\n"
        + "guard_llm_tokens_total{agent=\"claude-code\",provider=\"anthropic\",model=\"claude-sonnet-4-5\",type=\"cache_read\"} 200\n"
        + "guard_llm_tokens_total{agent=\"claude-code\",provider=\"anthropic\",model=\"claude-sonnet-4-5\",type=\"cache_write\"} 30\n"
        + "guard_llm_tokens_total{agent=\"claude-code\",provider=\"anthropic\",model=\"claude-sonnet-4-5\",type=\"input\"} 10\n"
        + "guard_llm_tokens_total{agent=\"claude-code\",provider=\"anthropic\",model=\"claude-sonnet-4-5\",type=\"output\"} 40\n"
        + "guard_llm_tokens_total{agent=\"claude-code\",provider=\"anthropic\",model=\"claude-sonnet-4-5\",type=\"reasoning\"} 5\n"
        + "# HELP guard_llm_cost_usd What LLM inference requests cost in USD, from the reported tokens of each type and the price table (`guard prices`).\n"
        + "# TYPE guard_llm_cost_usd counter\n"
        + "guard_llm_cost_usd_total{agent=\"claude-code\",provider=\"anthropic\",model=\"claude-sonnet-4-5\"} 0.125\n"
        + "# HELP guard_llm_unpriced_tokens Tokens of LLM inference requests whose model the price table does not price (not in guard_llm_cost_usd).\n"
        + "# TYPE guard_llm_unpriced_tokens counter\n"
        + "# HELP guard_llm_request_duration_seconds LLM inference request duration, from the request's first byte to the reply's last.\n"
        + "# TYPE guard_llm_request_duration_seconds histogram\n"
        + "# UNIT guard_llm_request_duration_seconds seconds\n"
        + BUCKETS_2S
        + "# HELP guard_llm_time_to_first_token_seconds Streamed LLM replies: time from the request's first byte to the reply's first byte.\n"
        + "# TYPE guard_llm_time_to_first_token_seconds histogram\n"
        + "# UNIT guard_llm_time_to_first_token_seconds seconds\n"
        + "# HELP guard_llm_incomplete_requests LLM inference requests whose reply did not end, by reason.\n"
        + "# TYPE guard_llm_incomplete_requests counter\n"
        + "# HELP guard_destructive_commands Commands that matched a destructive-command rule, by rule, severity and what guard did.\n"
        + "# TYPE guard_destructive_commands counter\n"
        + "# HELP guard_destructive_api_calls HTTPS requests of agents' process trees that matched a request rule (docs/api-calls.md), by rule, severity and what guard did.\n"
        + "# TYPE guard_destructive_api_calls counter\n"
        + "# HELP guard_agent_commands Programs that agents (or their descendants) ran: successful execs attributed to an agent, by origin (model: a tool call in a response proposed it; other).\n"
        + "# TYPE guard_agent_commands counter\n"
        + "# HELP guard_agent_files_deleted Files agents' processes deleted (unlink, rmdir, or a rename out of its place), by where they were.\n"
        + "# TYPE guard_agent_files_deleted counter\n"
        + "# HELP guard_agent_io_uring_setups io_uring instances agents' processes set up: their deletions bypass the syscall tracepoints.\n"
        + "# TYPE guard_agent_io_uring_setups counter\n"
        + "# HELP guard_agent_processes Live processes attributed to each agent (the agent and its descendants).\n"
        + "# TYPE guard_agent_processes gauge\n"
        + "# HELP guard_events_lost Events or bytes guard could not process, by where they were lost.\n"
        + "# TYPE guard_events_lost counter\n"
        + "guard_events_lost_total{source=\"channel_full\"} 0\n"
        + "guard_events_lost_total{source=\"decode_error\"} 0\n"
        + "guard_events_lost_total{source=\"decoder_error\"} 0\n"
        + "guard_events_lost_total{source=\"delete_path_read\"} 0\n"
        + "guard_events_lost_total{source=\"delete_pending_full\"} 0\n"
        + "guard_events_lost_total{source=\"exec_dropped\"} 0\n"
        + "guard_events_lost_total{source=\"gate_agent_map_full\"} 0\n"
        + "guard_events_lost_total{source=\"gate_exec_map_full\"} 0\n"
        + "guard_events_lost_total{source=\"gate_records\"} 0\n"
        + "guard_events_lost_total{source=\"gate_stale\"} 0\n"
        + "guard_events_lost_total{source=\"gate_stop_ring_full\"} 0\n"
        + "guard_events_lost_total{source=\"kernel_aead_unbound\"} 0\n"
        + "guard_events_lost_total{source=\"kernel_argv_read\"} 0\n"
        + "guard_events_lost_total{source=\"kernel_ring_full\"} 0\n"
        + "guard_events_lost_total{source=\"kernel_tls13_padding\"} 0\n"
        + "guard_events_lost_total{source=\"kernel_tls_read\"} 0\n"
        + "guard_events_lost_total{source=\"kernel_tls_truncated\"} 0\n"
        + "guard_events_lost_total{source=\"stream_gap\"} 0\n"
        + "guard_events_lost_total{source=\"tool_calls\"} 0\n"
        + "guard_events_lost_total{source=\"unverified_hook\"} 0\n"
        + "# HELP guard_tls_targets_attached Files whose TLS functions guard has hooked, by TLS library and by the strategy that found the hooks.\n"
        + "# TYPE guard_tls_targets_attached gauge\n"
        + "# HELP guard_tls_attach_failures Attach calls to a TLS file that failed, by TLS library and by errno class (too_many_files, no_such_file, invalid, permission, other).\n"
        + "# TYPE guard_tls_attach_failures counter\n"
        + "# HELP guard_tls_blind_processes Agent processes holding TCP connections while guard has no verified hook into their TLS, by agent and reason.\n"
        + "# TYPE guard_tls_blind_processes gauge\n"
        + "# HELP guard_build guard's version.\n"
        + "# TYPE guard_build info\n"
        + &format!("guard_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"))
        + "# HELP guard_enforce_decisions Answers the exec gate gave, by decision (out_of_scope, allow, deny) and mechanism.\n"
        + "# TYPE guard_enforce_decisions counter\n"
        + "# HELP guard_enforce_decision_seconds How long an in-scope exec waited for the gate's answer, from its execve call.\n"
        + "# TYPE guard_enforce_decision_seconds histogram\n"
        + "guard_enforce_decision_seconds_sum 0.0\n"
        + "guard_enforce_decision_seconds_count 0\n"
        + &["0.00001", "0.000025", "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.1", "0.25", "2.5", "+Inf"].iter().map(|le| format!("guard_enforce_decision_seconds_bucket{{le=\"{le}\"}} 0\n")).collect::<String>()
        + "# HELP guard_enforce_timeouts In-scope execs answered by enforce.fail because no verdict came within the deadline.\n"
        + "# TYPE guard_enforce_timeouts counter\n"
        + "guard_enforce_timeouts_total 0\n"
        + "# HELP guard_enforcement_mechanism Enforcement mechanisms, 1 while active: fanotify (exec permission events), stop (SIGSTOP at exec exit), bpf_lsm, delete_kill (SIGKILL at an agent's deletion in a protected place), fanotify_protect (open permission events on protected directories), request_stop (SIGSTOP at an agent's TLS write of a request that may change something).\n"
        + "# TYPE guard_enforcement_mechanism gauge\n"
        + "guard_enforcement_mechanism{mechanism=\"bpf_lsm\"} 0\n"
        + "guard_enforcement_mechanism{mechanism=\"delete_kill\"} 0\n"
        + "guard_enforcement_mechanism{mechanism=\"fanotify\"} 0\n"
        + "guard_enforcement_mechanism{mechanism=\"fanotify_protect\"} 0\nguard_enforcement_mechanism{mechanism=\"request_stop\"} 0\n"
        + "guard_enforcement_mechanism{mechanism=\"stop\"} 0\n"
        + "# HELP guard_protected_file_writes Opens for writing or truncation of files in protected directories (~/.ssh, ~/.aws, /etc...) by agents' processes, by action (blocked: refused with EPERM in enforce mode, would_block: monitor mode).\n"
        + "# TYPE guard_protected_file_writes counter\n# HELP guard_request_pauses Requests of agents' descendants paused at their TLS write before a byte left, by decision (allow: let go, deny: the process was killed).\n# TYPE guard_request_pauses counter\n"
        + "# HELP guard_tls_first_exec First execs of a file guard had not analysed, held until its TLS hooks were in place, by outcome (hooked, no_hooks, late: hooked after a program of it ran, unheld).\n"
        + "# TYPE guard_tls_first_exec counter\n"
        + "# HELP guard_tls_first_load Libraries a running program mapped for execution that guard had not analysed, held until their TLS hooks were in place, by outcome (hooked, no_hooks, late: the hold ran out, unheld).\n"
        + "# TYPE guard_tls_first_load counter\n"
        + "# HELP guard_tls_first_exec_hold_seconds How long a file's first exec waited for its analysis and attach.\n"
        + "# TYPE guard_tls_first_exec_hold_seconds histogram\n"
        + "guard_tls_first_exec_hold_seconds_sum 0.0\n"
        + "guard_tls_first_exec_hold_seconds_count 0\n"
        + &["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.1", "0.25", "1.0", "2.5", "+Inf"].iter().map(|le| format!("guard_tls_first_exec_hold_seconds_bucket{{le=\"{le}\"}} 0\n")).collect::<String>()
        + "# HELP guard_otlp_dropped Spans and log records the OTLP export dropped: its queue was full (a slow or absent collector) or the export that carried them failed. Metrics are cumulative and never dropped: the next export carries them.\n"
        + "# TYPE guard_otlp_dropped counter\n"
        + "# HELP guard_otlp_export_failures OTLP export calls that failed or ran out of time, by signal.\n"
        + "# TYPE guard_otlp_export_failures counter\n"
        + "# HELP guard_llm_tool_calls Tool calls models asked agents to make, in inference responses, by tool (shell tools keep their own name).\n"
        + "# TYPE guard_llm_tool_calls counter\n"
        + "# HELP guard_mcp_tool_calls MCP tools/call requests agents made over Streamable HTTP, by server host, tool and outcome (ok, error, no_reply).\n"
        + "# TYPE guard_mcp_tool_calls counter\n"
        + "# EOF\n";
    assert_eq!(sorted(&m.encode()), expected);
}

#[test]
fn models_past_the_cap_become_other_per_provider() {
    let m = Metrics::new(&LabelCaps { max_models_per_provider: 2, ..LabelCaps::default() });
    for model in [Some("a"), Some("b"), Some("c"), Some("a"), None, Some("bad model\"}\n")] {
        m.on_exchange("codex", &exchange(Provider::OpenaiResponses, model), None);
    }
    m.on_exchange("codex", &exchange(Provider::Gemini, Some("c")), None);
    assert_eq!(
        sorted(&family(&m.encode(), "guard_llm_requests")),
        "# HELP guard_llm_requests LLM inference requests made by agents, by outcome (ok, error: HTTP status >= 400 or a provider error, incomplete: the reply did not end).\n\
         # TYPE guard_llm_requests counter\n\
         guard_llm_requests_total{agent=\"codex\",provider=\"gemini\",model=\"c\",outcome=\"ok\"} 1\n\
         guard_llm_requests_total{agent=\"codex\",provider=\"openai_responses\",model=\"a\",outcome=\"ok\"} 2\n\
         guard_llm_requests_total{agent=\"codex\",provider=\"openai_responses\",model=\"b\",outcome=\"ok\"} 1\n\
         guard_llm_requests_total{agent=\"codex\",provider=\"openai_responses\",model=\"other\",outcome=\"ok\"} 2\n\
         guard_llm_requests_total{agent=\"codex\",provider=\"openai_responses\",model=\"unknown\",outcome=\"ok\"} 1\n"
    );
}

/// Cost adds up per agent, provider and model; a model with no price counts its tokens per
/// provider and model instead, with the same label caps; an exchange that does not count has no
/// cost to add.
#[test]
fn cost_and_unpriced_tokens_add_up_exactly() {
    let m = Metrics::new(&LabelCaps { max_models_per_provider: 1, ..LabelCaps::default() });
    let table = PriceTable::builtin();
    let sonnet = exchange(Provider::Anthropic, Some("claude-sonnet-4-5"));
    // The engine's figure for the helper's usage: 10×3 + 200×0.30 + 30×3.75 + (40 + 5)×15 µ$.
    let priced = table.price(sonnet.provider, sonnet.model.as_deref(), &sonnet.usage);
    assert!(matches!(priced, Cost::Usd(v) if (v - 0.000_877_5).abs() < 1e-12), "{priced:?}");
    m.on_exchange("claude-code", &sonnet, Some(Cost::Usd(0.25)));
    m.on_exchange("claude-code", &sonnet, Some(Cost::Usd(0.5)));
    m.on_exchange("codex", &sonnet, Some(Cost::Usd(0.125)));
    // Two unpriced models at one provider: the second is past the model cap.
    let unknown = exchange(Provider::OpenaiChat, Some("deepseek-chat"));
    let priced_unknown = table.price(unknown.provider, unknown.model.as_deref(), &unknown.usage);
    assert_eq!(priced_unknown, Cost::Unpriced { tokens: 285 });
    m.on_exchange("aider", &unknown, Some(priced_unknown));
    m.on_exchange("aider", &exchange(Provider::OpenaiChat, Some("kimi")), Some(Cost::Unpriced { tokens: 15 }));
    m.on_exchange("aider", &unknown, None);
    let mut server = sonnet.clone();
    server.role = Role::Server;
    assert!(m.on_exchange("claude-code", &server, Some(Cost::Usd(100.0))).is_none());
    let text = m.encode();
    assert_eq!(
        sorted(&family(&text, "guard_llm_cost_usd")),
        "# HELP guard_llm_cost_usd What LLM inference requests cost in USD, from the reported tokens of each type and the price table (`guard prices`).\n\
         # TYPE guard_llm_cost_usd counter\n\
         guard_llm_cost_usd_total{agent=\"claude-code\",provider=\"anthropic\",model=\"claude-sonnet-4-5\"} 0.75\n\
         guard_llm_cost_usd_total{agent=\"codex\",provider=\"anthropic\",model=\"claude-sonnet-4-5\"} 0.125\n"
    );
    assert_eq!(
        sorted(&family(&text, "guard_llm_unpriced_tokens")),
        "# HELP guard_llm_unpriced_tokens Tokens of LLM inference requests whose model the price table does not price (not in guard_llm_cost_usd).\n\
         # TYPE guard_llm_unpriced_tokens counter\n\
         guard_llm_unpriced_tokens_total{provider=\"openai_chat\",model=\"deepseek-chat\"} 285\n\
         guard_llm_unpriced_tokens_total{provider=\"openai_chat\",model=\"other\"} 15\n"
    );
}

#[test]
fn outcomes_and_what_is_not_counted() {
    let m = Metrics::default();
    let mut rate_limited = exchange(Provider::Anthropic, Some("m"));
    rate_limited.status = Some(429);
    rate_limited.usage_seen = false;
    let mut overloaded_mid_stream = exchange(Provider::Anthropic, Some("m"));
    overloaded_mid_stream.error_type = Some("overloaded_error".into());
    overloaded_mid_stream.complete = false;
    let mut cut = exchange(Provider::Anthropic, Some("m"));
    cut.complete = false;
    cut.incomplete_reason = Some(IncompleteReason::Gap);
    cut.usage_seen = false;
    let mut server_side = exchange(Provider::Anthropic, Some("m"));
    server_side.role = Role::Server;
    let mut telemetry = exchange(Provider::Unknown, None);
    telemetry.inference = false;
    for (x, counted) in [(&rate_limited, true), (&overloaded_mid_stream, true), (&cut, true), (&server_side, false), (&telemetry, false)] {
        assert_eq!(m.on_exchange("none", x, None).is_some(), counted);
    }
    let text = m.encode();
    assert_eq!(
        sorted(&family(&text, "guard_llm_requests")),
        "# HELP guard_llm_requests LLM inference requests made by agents, by outcome (ok, error: HTTP status >= 400 or a provider error, incomplete: the reply did not end).\n\
         # TYPE guard_llm_requests counter\n\
         guard_llm_requests_total{agent=\"none\",provider=\"anthropic\",model=\"m\",outcome=\"error\"} 2\n\
         guard_llm_requests_total{agent=\"none\",provider=\"anthropic\",model=\"m\",outcome=\"incomplete\"} 1\n"
    );
    assert_eq!(
        family(&text, "guard_llm_incomplete_requests"),
        "# HELP guard_llm_incomplete_requests LLM inference requests whose reply did not end, by reason.\n\
         # TYPE guard_llm_incomplete_requests counter\n\
         guard_llm_incomplete_requests_total{agent=\"none\",provider=\"anthropic\",reason=\"gap\"} 1\n"
    );
    // Only the mid-stream error reported usage: the token partition counts it once.
    assert!(text.contains("guard_llm_tokens_total{agent=\"none\",provider=\"anthropic\",model=\"m\",type=\"input\"} 10\n"), "{text}");
}

#[test]
fn streamed_calls_record_time_to_first_byte() {
    let m = Metrics::default();
    let mut x = exchange(Provider::Anthropic, Some("m"));
    x.streamed = true;
    m.on_exchange("claude-code", &x, None);
    let mut no_start = x.clone();
    no_start.timings.start_ns = None;
    m.on_exchange("claude-code", &no_start, None);
    let text = m.encode();
    assert_eq!(
        family(&text, "guard_llm_time_to_first_token_seconds"),
        "# HELP guard_llm_time_to_first_token_seconds Streamed LLM replies: time from the request's first byte to the reply's first byte.\n\
         # TYPE guard_llm_time_to_first_token_seconds histogram\n\
         # UNIT guard_llm_time_to_first_token_seconds seconds\n\
         guard_llm_time_to_first_token_seconds_sum{agent=\"claude-code\",provider=\"anthropic\"} 0.3\n\
         guard_llm_time_to_first_token_seconds_count{agent=\"claude-code\",provider=\"anthropic\"} 1\n\
         guard_llm_time_to_first_token_seconds_bucket{le=\"0.05\",agent=\"claude-code\",provider=\"anthropic\"} 0\n\
         guard_llm_time_to_first_token_seconds_bucket{le=\"0.1\",agent=\"claude-code\",provider=\"anthropic\"} 0\n\
         guard_llm_time_to_first_token_seconds_bucket{le=\"0.25\",agent=\"claude-code\",provider=\"anthropic\"} 0\n\
         guard_llm_time_to_first_token_seconds_bucket{le=\"0.5\",agent=\"claude-code\",provider=\"anthropic\"} 1\n\
         guard_llm_time_to_first_token_seconds_bucket{le=\"1.0\",agent=\"claude-code\",provider=\"anthropic\"} 1\n\
         guard_llm_time_to_first_token_seconds_bucket{le=\"2.0\",agent=\"claude-code\",provider=\"anthropic\"} 1\n\
         guard_llm_time_to_first_token_seconds_bucket{le=\"3.0\",agent=\"claude-code\",provider=\"anthropic\"} 1\n\
         guard_llm_time_to_first_token_seconds_bucket{le=\"5.0\",agent=\"claude-code\",provider=\"anthropic\"} 1\n\
         guard_llm_time_to_first_token_seconds_bucket{le=\"10.0\",agent=\"claude-code\",provider=\"anthropic\"} 1\n\
         guard_llm_time_to_first_token_seconds_bucket{le=\"20.0\",agent=\"claude-code\",provider=\"anthropic\"} 1\n\
         guard_llm_time_to_first_token_seconds_bucket{le=\"60.0\",agent=\"claude-code\",provider=\"anthropic\"} 1\n\
         guard_llm_time_to_first_token_seconds_bucket{le=\"+Inf\",agent=\"claude-code\",provider=\"anthropic\"} 1\n"
    );
    // The request without a start has no duration either: one observation of 2 s.
    assert!(text.contains(BUCKETS_2S), "{text}");
}

#[test]
fn attach_failures_follow_the_totals_per_library_and_reason() {
    let m = Metrics::default();
    m.set_attach_failures_total("boringssl", "no_such_file", 1);
    m.set_attach_failures_total("boringssl", "no_such_file", 3);
    m.set_attach_failures_total("boringssl", "no_such_file", 3);
    m.set_attach_failures_total("openssl", "too_many_files", 2);
    m.set_attach_failures_total("boringssl", "invalid", 0);
    assert_eq!(
        sorted(&family(&m.encode(), "guard_tls_attach_failures")),
        "# HELP guard_tls_attach_failures Attach calls to a TLS file that failed, by TLS library and by errno class (too_many_files, no_such_file, invalid, permission, other).\n\
         # TYPE guard_tls_attach_failures counter\n\
         guard_tls_attach_failures_total{library=\"boringssl\",reason=\"invalid\"} 0\n\
         guard_tls_attach_failures_total{library=\"boringssl\",reason=\"no_such_file\"} 3\n\
         guard_tls_attach_failures_total{library=\"openssl\",reason=\"too_many_files\"} 2\n"
    );
}

#[test]
fn commands_processes_losses_and_targets() {
    let m = Metrics::new(&LabelCaps { max_agents: 2, ..LabelCaps::default() });
    m.on_destructive("claude-code", "rm-recursive-root", Severity::Critical, Action::Observed);
    m.on_destructive("claude-code", "rm-recursive-root", Severity::Critical, Action::Observed);
    m.on_agent_command("claude-code", false);
    m.set_agent_processes([("claude-code".to_owned(), 3), ("codex".to_owned(), 1), ("aider".to_owned(), 2), ("goose".to_owned(), 1)]);
    m.set_agent_processes([("claude-code".to_owned(), 4)]);
    m.set_lost_total(LossSource::KernelRingFull, 5);
    m.set_lost_total(LossSource::KernelRingFull, 7);
    m.set_lost_total(LossSource::ChannelFull, 3);
    m.set_lost_total(LossSource::ChannelFull, 1); // the source restarted
    m.set_tls_targets("openssl", "dynsym", 2);
    m.set_tls_targets("boringssl", "structural", 1);
    use guard_core::{
    coverage::BlindReason,
    hooks::Library,
};
    m.set_tls_blind([("codex".to_owned(), BlindReason::Unhooked(Library::Rustls)), ("claude-code".to_owned(), BlindReason::HookUnverified)]);
    m.set_tls_blind([("codex".to_owned(), BlindReason::Unhooked(Library::Rustls)), ("codex".to_owned(), BlindReason::Unhooked(Library::Rustls))]);
    let text = m.encode();
    let get = |name| sorted(&family(&text, name)).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
    assert_eq!(
        get("guard_destructive_commands"),
        "guard_destructive_commands_total{agent=\"claude-code\",rule=\"rm-recursive-root\",severity=\"critical\",action=\"observed\"} 2"
    );
    assert_eq!(get("guard_agent_commands"), "guard_agent_commands_total{agent=\"claude-code\",origin=\"other\"} 1");
    // Two agents fit the cap, the others share `other`; agents gone are set to 0.
    assert_eq!(
        get("guard_agent_processes"),
        "guard_agent_processes{agent=\"claude-code\"} 4\nguard_agent_processes{agent=\"codex\"} 0\nguard_agent_processes{agent=\"other\"} 0"
    );
    assert!(get("guard_events_lost").contains("guard_events_lost_total{source=\"kernel_ring_full\"} 7\n"));
    assert!(get("guard_events_lost").contains("guard_events_lost_total{source=\"channel_full\"} 4\n"));
    assert_eq!(
        get("guard_tls_targets_attached"),
        "guard_tls_targets_attached{library=\"boringssl\",strategy=\"structural\"} 1\nguard_tls_targets_attached{library=\"openssl\",strategy=\"dynsym\"} 2"
    );
    // A blind spot that clears reads 0; two processes of one agent with one reason count 2.
    assert_eq!(
        get("guard_tls_blind_processes"),
        "guard_tls_blind_processes{agent=\"claude-code\",reason=\"hook_unverified\"} 0\nguard_tls_blind_processes{agent=\"codex\",reason=\"unhooked_rustls\"} 2"
    );
}

#[test]
fn tool_calls_mcp_calls_and_command_origins() {
    let m = Metrics::new(&LabelCaps { max_tools: 1, ..LabelCaps::default() });
    m.on_exchange("claude-code", &with_tools(exchange(Provider::Anthropic, Some("m"))), None);
    // A server's side of the same call is not the agent's.
    m.on_exchange("claude-code", &Exchange { role: Role::Server, ..with_tools(exchange(Provider::Anthropic, Some("m"))) }, None);
    m.on_exchange("claude-code", &mcp_exchange(), None);
    m.on_agent_command("claude-code", true);
    m.on_agent_command("claude-code", true);
    m.on_agent_command("claude-code", false);
    let text = m.encode();
    let get = |name| sorted(&family(&text, name)).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
    // Shell tools keep their name past the cap; one other tool fits, the next is `other`.
    assert_eq!(
        get("guard_llm_tool_calls"),
        "guard_llm_tool_calls_total{agent=\"claude-code\",provider=\"anthropic\",tool=\"Bash\"} 2\n\
         guard_llm_tool_calls_total{agent=\"claude-code\",provider=\"anthropic\",tool=\"Read\"} 1\n\
         guard_llm_tool_calls_total{agent=\"claude-code\",provider=\"anthropic\",tool=\"other\"} 1"
    );
    assert_eq!(
        get("guard_mcp_tool_calls"),
        "guard_mcp_tool_calls_total{agent=\"claude-code\",server=\"mcp.example.com\",tool=\"add\",outcome=\"ok\"} 2\n\
         guard_mcp_tool_calls_total{agent=\"claude-code\",server=\"mcp.example.com\",tool=\"other\",outcome=\"error\"} 1\n\
         guard_mcp_tool_calls_total{agent=\"claude-code\",server=\"mcp.example.com\",tool=\"other\",outcome=\"no_reply\"} 1"
    );
    assert_eq!(
        get("guard_agent_commands"),
        "guard_agent_commands_total{agent=\"claude-code\",origin=\"model\"} 2\nguard_agent_commands_total{agent=\"claude-code\",origin=\"other\"} 1"
    );
}

#[test]
fn labels_never_carry_odd_bytes() {
    let m = Metrics::default();
    m.on_exchange("Evil\"}\n", &exchange(Provider::Anthropic, Some("x\"} 1\n# EOF")), Some(Cost::Unpriced { tokens: 1 }));
    m.on_destructive("a", "r\"", Severity::Low, Action::Observed);
    for line in m.encode().lines().filter(|l| !l.starts_with('#')) {
        let labels = line.split_once('{').and_then(|(_, r)| r.rsplit_once('}')).map_or("", |(l, _)| l);
        for pair in labels.split(',') {
            let (_, v) = pair.split_once('=').unwrap_or_default();
            let v = v.trim_matches('"');
            assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || "-._:/@+".contains(c)), "{line}");
        }
    }
}

/// Every family with at least one series, so that the dashboard can be checked against them.
fn populated() -> String {
    let m = Metrics::default();
    let mut x = exchange(Provider::Anthropic, Some("m"));
    x.streamed = true;
    x.complete = false;
    x.incomplete_reason = Some(IncompleteReason::ClientAbort);
    m.on_exchange("claude-code", &x, Some(Cost::Usd(0.5)));
    m.on_exchange("claude-code", &exchange(Provider::Gemini, Some("gemini-9")), Some(Cost::Unpriced { tokens: 10 }));
    m.on_exchange("claude-code", &with_tools(exchange(Provider::Anthropic, Some("m"))), None);
    m.on_exchange("claude-code", &mcp_exchange(), None);
    m.on_destructive("claude-code", "fs.rm-rf-root", Severity::Critical, Action::Observed);
    m.on_agent_command("claude-code", true);
    m.set_agent_processes([("claude-code".to_owned(), 1)]);
    m.set_tls_targets("openssl", "dynsym", 1);
    m.set_tls_blind([("codex".to_owned(), guard_core::coverage::BlindReason::Unhooked(guard_core::hooks::Library::Rustls))]);
    // Handles create their series (at 0), as the gate, the first-exec threads and OTLP do.
    let e = m.enforce();
    e.latency.observe(0.001);
    let _ = (m.first_exec(), m.otlp("spans"));
    m.encode()
}

/// `name{labels} value` → (name, label names).
fn samples(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or_default().to_owned();
            let labels = l.split_once('{').and_then(|(_, r)| r.split_once('}')).map_or("", |(l, _)| l);
            (name, labels.split(',').filter_map(|p| p.split_once('=')).map(|(k, _)| k.to_owned()).collect())
        })
        .collect()
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// The dashboard only queries series guard produces, and groups by labels they carry: renaming
/// a metric or a label breaks this test until the dashboard follows.
#[test]
fn the_grafana_dashboard_queries_real_series() {
    let dashboard: serde_json::Value = serde_json::from_str(include_str!("../../../../deploy/grafana/guard-dashboard.json")).unwrap();
    let produced = samples(&populated());
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() > 15, "{all:?}");
    let ident = regex::Regex::new(r"guard_[a-z0-9_]+").unwrap();
    let by = regex::Regex::new(r"by \(([^)]*)\)").unwrap();
    let mut used = std::collections::BTreeSet::new();
    for e in &all {
        let names: Vec<&str> = ident.find_iter(e).map(|m| m.as_str()).collect();
        assert!(!names.is_empty(), "no guard metric in {e}");
        for n in &names {
            assert!(produced.iter().any(|(p, _)| p == n), "{n} (in {e}) is not a series guard produces");
            used.insert(n.trim_end_matches("_bucket").trim_end_matches("_total").to_owned());
        }
        for group in by.captures_iter(e) {
            for label in group[1].split(',').map(str::trim) {
                let known = ["instance", "job"].contains(&label)
                    || produced.iter().any(|(p, ls)| names.contains(&p.as_str()) && ls.iter().any(|l| l == label));
                assert!(known, "label {label} (in {e}) is not on {names:?}");
            }
        }
        for filter in ["agent=~", "outcome="] {
            if e.contains(filter) {
                let label = filter.trim_end_matches(['=', '~']);
                assert!(produced.iter().any(|(p, ls)| names.contains(&p.as_str()) && ls.iter().any(|l| l == label)), "{label} filter on {names:?} in {e}");
            }
        }
    }
    // Every family of the contract has a panel.
    for family in [
        "guard_llm_requests", "guard_llm_tokens", "guard_llm_request_duration_seconds", "guard_llm_time_to_first_token_seconds",
        "guard_destructive_commands", "guard_agent_processes", "guard_events_lost", "guard_tls_targets_attached", "guard_tls_blind_processes", "guard_build_info",
        "guard_enforce_decisions", "guard_enforce_decision_seconds", "guard_enforce_timeouts", "guard_tls_first_exec", "guard_otlp_dropped",
        "guard_llm_cost_usd", "guard_llm_unpriced_tokens", "guard_llm_tool_calls", "guard_mcp_tool_calls", "guard_agent_commands",
    ] {
        assert!(used.contains(family), "no panel shows {family}: {used:?}");
    }
}

/// `| `name` | … | meaning |`: a README table row for `name` whose cells after it are filled.
fn readme_row(readme: &str, name: &str) -> bool {
    readme.lines().any(|l| {
        let cells: Vec<&str> = l.trim().trim_matches('|').split('|').map(str::trim).collect();
        cells.len() >= 2 && cells[0] == format!("`{name}`") && cells[1..].iter().all(|c| !c.is_empty())
    })
}

/// The README's metrics tables name every family guard serves and every `source` of
/// `guard_events_lost_total`, each with its meaning: they had fallen behind the code.
#[test]
fn the_readme_lists_every_family_and_loss_source() {
    let readme = include_str!("../../../../README.md");
    let text = Metrics::default().encode();
    let families: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| match kind {
            "counter" => format!("{name}_total"),
            "info" => format!("{name}_info"),
            _ => name.to_owned(),
        })
        .collect();
    assert!(families.len() >= 12, "{families:?}");
    for f in &families {
        assert!(readme_row(readme, f), "README's metrics table lacks {f}");
    }
    for s in LossSource::ALL {
        assert!(readme_row(readme, s.as_str()), "README's loss-source table lacks {}", s.as_str());
    }
}

/// An agent's DELETE with a bearer token, a query token and a body, through the engine and into
/// the metrics: one sample with the rule's labels, and none of the secrets in the text.
#[test]
fn an_agents_destructive_api_call_is_one_sample_without_its_secrets() {
    use guard_core::{
        Engine,
        engine::{EngineConfig, Outputs},
        events::{ConnId, Direction, Event, TlsData, TlsFunc},
        govern::{Governed, NoLookup},
        process::SeedProcess,
    };
    let mut e = Engine::new(EngineConfig::default());
    let mut out = Outputs::default();
    let p = |pid, ppid, exe: &str| SeedProcess { pid, ppid, start_ticks: u64::from(pid), exe: Some(exe.into()), ..SeedProcess::default() };
    e.start(vec![p(9, 1, "/usr/bin/claude"), p(10, 9, "/usr/bin/curl")], &mut out);
    let body = r#"{"propagationPolicy":"body-secret-9f2c"}"#;
    let req = format!(
        "DELETE /api/v1/namespaces/prod?token=query-secret-77 HTTP/1.1\r\nHost: 10.0.0.1:6443\r\nAuthorization: Bearer header-secret-1b\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let data = TlsData {
        ts_ns: 1,
        tid: 10,
        conn: ConnId { pid: 10, conn: 1 },
        dir: Direction::Write,
        func: TlsFunc::SslWrite,
        offset: 0,
        call_len: req.len() as u32,
        target: 0,
        paused: false,
        data: bytes::Bytes::from(req.into_bytes()),
    };
    e.push(Event::TlsData(data), std::time::UNIX_EPOCH, &mut NoLookup, &mut out);
    let m = Metrics::default();
    let mut audit = String::new();
    for g in &out.governed {
        if let Governed::ApiCall(r) = g {
            m.on_api_call(r.agent.as_deref().unwrap_or("none"), &r.rule_id, r.severity, r.action);
            audit += &serde_json::to_string(r).unwrap();
        }
    }
    let text = m.encode();
    let samples: Vec<&str> = text.lines().filter(|l| l.starts_with("guard_destructive_api_calls_total")).collect();
    assert_eq!(
        samples,
        ["guard_destructive_api_calls_total{agent=\"claude-code\",rule=\"k8s.api-delete-namespace\",severity=\"critical\",action=\"would_block\"} 1"]
    );
    assert!(audit.contains("k8s.api-delete-namespace"), "{audit}");
    for secret in ["body-secret-9f2c", "query-secret-77", "header-secret-1b"] {
        assert!(!text.contains(secret) && !audit.contains(secret), "{secret}");
    }
}
