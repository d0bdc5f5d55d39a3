//! HTTP/2 captures: an `h2` crate client and server (prior knowledge, as after ALPN `h2`), and
//! the checked-in python `h2` capture with padding, priority and CONTINUATION.

use std::sync::Arc;

use bytes::Bytes;

use crate::{
    events::Direction::{Read, Write},
    protocols::{IncompleteReason, Role, encoding::Encoding, testutil::compress},
    providers::{Endpoint as E, Provider as P, Usage},
};

use super::{
    super::{Fixture, Segment, Want, usage},
    Tape, Taped, block_on, bodies, gap,
};

/// One request the client makes and the response the server gives it.
#[derive(Clone)]
struct Case {
    path: &'static str,
    model: &'static str,
    /// Extra request headers (the server echoes nothing back).
    headers: Vec<(&'static str, String)>,
    content_type: &'static str,
    gzip: bool,
    chunks: Vec<Vec<u8>>,
    /// The server resets the stream (RST_STREAM) instead of sending this chunk.
    reset_at: Option<usize>,
    /// The client stops reading once this chunk arrived (dropping the body sends RST_STREAM
    /// CANCEL); the server sends no more and never ends the stream.
    cancel_after: Option<usize>,
}

fn case(path: &'static str, model: &'static str, chunks: Vec<Vec<u8>>) -> Case {
    Case { path, model, headers: Vec::new(), content_type: "text/event-stream", gzip: false, chunks, reset_at: None, cancel_after: None }
}

fn request_body(c: &Case) -> String {
    if c.path.ends_with("/responses") {
        format!(r#"{{"model":"{}","stream":true,"input":[{{"role":"user","content":"secret prompt"}}]}}"#, c.model)
    } else {
        format!(
            r#"{{"model":"{}","stream":true,"stream_options":{{"include_usage":true}},"max_tokens":1024,"messages":[{{"role":"user","content":"secret prompt"}}]}}"#,
            c.model
        )
    }
}

struct Session {
    /// SETTINGS_HEADER_TABLE_SIZE the server and client announce (None: the default 4096).
    server_table: Option<u32>,
    client_table: Option<u32>,
    cases: Vec<Case>,
    /// Groups of cases run concurrently; each group waits for the previous one.
    groups: Vec<Vec<usize>>,
}

async fn serve(io: tokio::io::DuplexStream, table: Option<u32>, cases: Arc<Vec<Case>>) {
    let mut b = h2::server::Builder::new();
    if let Some(t) = table {
        b.header_table_size(t);
    }
    let Ok(mut conn) = b.handshake::<_, Bytes>(io).await else { return };
    while let Some(Ok((req, respond))) = conn.accept().await {
        let cases = cases.clone();
        tokio::spawn(respond_one(req, respond, cases));
    }
}

async fn respond_one(req: http::Request<h2::RecvStream>, mut respond: h2::server::SendResponse<Bytes>, cases: Arc<Vec<Case>>) {
    let i: usize = req.headers()["x-case"].to_str().unwrap().parse().unwrap();
    let mut body = req.into_body();
    while let Some(Ok(c)) = body.data().await {
        let _ = body.flow_control().release_capacity(c.len());
    }
    let c = &cases[i];
    let mut resp = http::Response::builder().status(200).header("content-type", c.content_type);
    if c.gzip {
        resp = resp.header("content-encoding", "gzip");
    }
    let mut send = respond.send_response(resp.body(()).unwrap(), false).unwrap();
    let chunks: Vec<Vec<u8>> =
        if c.gzip { compress(Encoding::Gzip, &c.chunks.concat()).chunks(40).map(<[u8]>::to_vec).collect() } else { c.chunks.clone() };
    for (k, chunk) in chunks.into_iter().enumerate() {
        if c.reset_at == Some(k) {
            send.send_reset(h2::Reason::INTERNAL_ERROR);
            return;
        }
        send.send_data(Bytes::from(chunk), false).unwrap();
        if c.cancel_after == Some(k) {
            // Hold the stream open until the client's RST_STREAM comes.
            let _ = std::future::poll_fn(|cx| send.poll_reset(cx)).await;
            return;
        }
        // Let other streams' frames in between this one's.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
    }
    send.send_data(Bytes::new(), true).unwrap();
}

async fn ask(client: h2::client::SendRequest<Bytes>, i: usize, c: Case) {
    let mut client = client.ready().await.unwrap();
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("https://api.example.com{}", c.path))
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip")
        .header("authorization", "Bearer sk-test-secret")
        .header("x-case", i.to_string());
    for (k, v) in &c.headers {
        req = req.header(*k, v.as_str());
    }
    let (resp, mut send) = client.send_request(req.body(()).unwrap(), false).unwrap();
    send.send_data(Bytes::from(request_body(&c)), true).unwrap();
    let wanted = c.cancel_after.map(|k| c.chunks[..=k].iter().map(Vec::len).sum::<usize>());
    if let Ok(resp) = resp.await {
        let mut body = resp.into_body();
        let mut got = 0;
        while let Some(Ok(d)) = body.data().await {
            got += d.len();
            let _ = body.flow_control().release_capacity(d.len());
            if wanted.is_some_and(|w| got >= w) {
                // As the OpenAI SDK at `[DONE]`: stop reading, drop the body.
                break;
            }
        }
    }
}

/// Runs a session; returns the client's bytes and where each group began.
fn record(s: Session) -> (Vec<Segment>, Vec<usize>) {
    block_on(async move {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let cases = Arc::new(s.cases);
        let server = tokio::spawn(serve(server_io, s.server_table, cases.clone()));
        let tape = Tape::default();
        let mut b = h2::client::Builder::new();
        if let Some(t) = s.client_table {
            b.header_table_size(t);
        }
        let (client, conn) = b.handshake::<_, Bytes>(Taped { inner: client_io, tape: tape.clone() }).await.unwrap();
        let conn = tokio::spawn(conn);
        let mut marks = Vec::new();
        for g in s.groups {
            marks.push(tape.mark());
            let tasks: Vec<_> = g.into_iter().map(|i| tokio::spawn(ask(client.clone(), i, cases[i].clone()))).collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
        drop(client);
        let _ = conn.await;
        let _ = server.await;
        (tape.take(), marks)
    })
}

fn want(provider: P, endpoint: E, model: &'static str, u: Usage) -> Want {
    Want {
        provider,
        endpoint,
        inference: true,
        model: Some(model),
        status: Some(200),
        streamed: true,
        complete: true,
        reason: None,
        error_type: None,
        usage: u,
        role: Role::Client,
    }
}

/// 40 KB of hex: a header block over the 16 KiB frame size, so it needs CONTINUATION frames.
fn big_header() -> String {
    (0..5000u32).map(|i| format!("{:08x}", i.wrapping_mul(2_654_435_761))).collect()
}

pub(crate) fn fixtures() -> Vec<Fixture> {
    let (chat, chat_u) = bodies::chat();
    let (anth, anth_u) = bodies::anthropic();
    let (resp, resp_u) = bodies::responses();
    let mut out = Vec::new();

    // Three concurrent streams with interleaved DATA (one gzip'd, one with a header block in
    // CONTINUATION frames), then a fourth request whose headers are dynamic-table references.
    let mut big = case("/v1/chat/completions", "gpt-4.1", chat.clone());
    big.headers.push(("x-trace", big_header()));
    let mut anthropic = case("/v1/messages", "claude-sonnet-4-5", anth);
    anthropic.gzip = true;
    anthropic.headers.push(("anthropic-version", "2023-06-01".into()));
    let session = Session {
        server_table: None,
        client_table: None,
        cases: vec![big, anthropic, case("/v1/responses", "gpt-5-codex", resp.clone()), case("/v1/chat/completions", "gpt-4.1", chat.clone())],
        groups: vec![vec![0, 1, 2], vec![3]],
    };
    let (segments, marks) = record(session);
    let concurrent = vec![
        want(P::OpenaiChat, E::ChatCompletions, "gpt-4.1", chat_u),
        want(P::Anthropic, E::Messages, "claude-sonnet-4-5", anth_u),
        want(P::OpenaiResponses, E::Responses, "gpt-5-codex", resp_u),
        want(P::OpenaiChat, E::ChatCompletions, "gpt-4.1", chat_u),
    ];

    // Capture that begins after the first three exchanges: the fourth request's headers refer
    // to table entries never seen, so they are not decoded, and the body's shape tells the
    // API (no path: endpoint `other`). The response's `:status` is static-table, so it is known.
    let mut mid = vec![gap(Write), gap(Read)];
    mid.extend(segments[marks[1]..].iter().cloned());
    out.push(Fixture {
        name: "h2 capture starts mid-connection".into(),
        segments: mid,
        want: vec![Want {
            endpoint: E::Other,
            complete: false,
            reason: Some(IncompleteReason::HeadersUnknown),
            ..want(P::OpenaiChat, E::Other, "gpt-4.1", chat_u)
        }],
    });
    out.push(Fixture { name: "h2 concurrent streams, gzip, CONTINUATION, indexed headers".into(), segments, want: concurrent });

    // SETTINGS_HEADER_TABLE_SIZE changes on both sides: the encoders emit size updates.
    let session = Session {
        server_table: Some(256),
        client_table: Some(1024),
        cases: vec![
            case("/v1/chat/completions", "gpt-4.1", chat.clone()),
            case("/v1/responses", "gpt-5-codex", resp.clone()),
            case("/v1/chat/completions", "gpt-4.1", chat.clone()),
        ],
        groups: vec![vec![0], vec![1], vec![2]],
    };
    out.push(Fixture {
        name: "h2 header table size changes".into(),
        segments: record(session).0,
        want: vec![
            want(P::OpenaiChat, E::ChatCompletions, "gpt-4.1", chat_u),
            want(P::OpenaiResponses, E::Responses, "gpt-5-codex", resp_u),
            want(P::OpenaiChat, E::ChatCompletions, "gpt-4.1", chat_u),
        ],
    });

    // The server resets one stream after its first chunk; the other stream finishes.
    let mut reset = case("/v1/chat/completions", "gpt-4.1", chat.clone());
    reset.reset_at = Some(1);
    let session = Session {
        server_table: None,
        client_table: None,
        cases: vec![reset, case("/v1/responses", "gpt-5-codex", resp)],
        groups: vec![vec![0, 1]],
    };
    out.push(Fixture {
        name: "h2 RST_STREAM mid-response".into(),
        segments: record(session).0,
        want: vec![
            Want {
                complete: false,
                reason: Some(IncompleteReason::StreamReset),
                usage: usage(0, 0, 0, 0, 0),
                ..want(P::OpenaiChat, E::ChatCompletions, "gpt-4.1", chat_u)
            },
            want(P::OpenaiResponses, E::Responses, "gpt-5-codex", resp_u),
        ],
    });

    out.extend(client_cancels(&chat, chat_u));

    out.push(Fixture {
        name: "h2 python-hyper: padding, priority, CONTINUATION, PING".into(),
        segments: python_capture(),
        want: vec![
            want(P::OpenaiChat, E::ChatCompletions, "gpt-4.1", usage(20, 100, 0, 30, 0)),
            want(P::OpenaiChat, E::ChatCompletions, "gpt-4.1", usage(200, 0, 0, 50, 0)),
        ],
    });
    out
}

/// The client stops reading a stream (RST_STREAM CANCEL) or the connection ends before
/// END_STREAM: after the terminal event the exchange is complete, before it a client abort.
fn client_cancels(chat: &[Vec<u8>], chat_u: Usage) -> Vec<Fixture> {
    let (anth, _) = bodies::anthropic();
    let one = |c: Case| record(Session { server_table: None, client_table: None, cases: vec![c], groups: vec![vec![0]] }).0;
    let mut at_done = case("/v1/chat/completions", "gpt-4.1", chat.to_vec());
    at_done.cancel_after = Some(chat.len() - 1);
    let after = one(at_done);
    // The client's RST_STREAM: a lone 13-byte frame of type 3.
    let is_rst = |s: &Segment| s.dir == Write && s.bytes.len() == 13 && s.bytes[3] == 3;
    assert_eq!(after.iter().filter(|s| is_rst(s)).count(), 1, "the client reset its stream once");
    // The same capture without the reset: the connection ends with the stream still open.
    let closed: Vec<Segment> = after.iter().filter(|s| !is_rst(s)).cloned().collect();
    // After content_block_delta, before message_delta and message_stop.
    let mut early = case("/v1/messages", "claude-sonnet-4-5", anth);
    early.headers.push(("anthropic-version", "2023-06-01".into()));
    early.cancel_after = Some(2);
    let chat_want = want(P::OpenaiChat, E::ChatCompletions, "gpt-4.1", chat_u);
    vec![
        Fixture { name: "h2 client sends RST_STREAM CANCEL after [DONE]".into(), segments: after, want: vec![chat_want.clone()] },
        Fixture { name: "h2 connection ends after [DONE], before END_STREAM".into(), segments: closed, want: vec![chat_want] },
        Fixture {
            name: "h2 client sends RST_STREAM CANCEL before message_stop".into(),
            segments: one(early),
            want: vec![Want {
                complete: false,
                reason: Some(IncompleteReason::ClientAbort),
                ..want(P::Anthropic, E::Messages, "claude-sonnet-4-5", usage(12, 4000, 300, 1, 0))
            }],
        },
    ]
}

/// Reads `captures/h2_padded.bin` (written by `captures/h2_padded.py`).
fn python_capture() -> Vec<Segment> {
    let mut b: &[u8] = include_bytes!("../captures/h2_padded.bin");
    let mut out = Vec::new();
    while let [d, l0, l1, l2, l3, rest @ ..] = b {
        let n = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
        let dir = if *d == b'W' { Write } else { Read };
        out.push(Segment { dir, ts: out.len() as u64 + 1, bytes: rest[..n].to_vec() });
        b = &rest[n..];
    }
    out
}
