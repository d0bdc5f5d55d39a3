//! WebSocket captures of the OpenAI Responses WebSocket (`GET /v1/responses`, as Codex CLI
//! speaks it): tokio-tungstenite on both ends without compression (fragments, ping/pong,
//! close), and yawc over hyper with permessage-deflate, with and without context takeover and
//! with negotiated window bits.

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    },
};

use crate::{
    protocols::Role,
    providers::{Endpoint as E, Provider as P},
};

use super::{
    super::{Fixture, Want, usage},
    Tape, Taped, block_on, bodies,
};

const URL: &str = "ws://api.example.com/v1/responses";

/// The client's `response.create` for turn `n`, as Codex sends it (the prompt is never kept).
fn create(n: u64) -> String {
    format!(
        r#"{{"type":"response.create","model":"gpt-5-codex","instructions":"secret system prompt","input":[{{"type":"message","role":"user","content":[{{"type":"input_text","text":"secret prompt {n} {}"}}]}}],"stream":true,"metadata":{{"turn":"{n}"}}}}"#,
        "lorem ipsum ".repeat(40)
    )
}

/// The server's events for turn `n`; usage differs per turn so pairing shows.
fn events(n: u64) -> Vec<String> {
    let (input, cached, output, reasoning) = if n == 1 { (1200, 1000, 300, 120) } else { (2500, 2200, 80, 0) };
    bodies::responses_events(input, cached, output, reasoning).into_iter().map(|(_, d)| d).collect()
}

fn turn_of(msg: &str) -> u64 {
    if msg.contains(r#""turn":"2""#) { 2 } else { 1 }
}

fn wants() -> Vec<Want> {
    let upgrade = Want {
        provider: P::Unknown,
        endpoint: E::Other,
        inference: false,
        model: None,
        status: Some(101),
        streamed: false,
        complete: true,
        reason: None,
        error_type: None,
        usage: usage(0, 0, 0, 0, 0),
        role: Role::Client,
    };
    let turn = |u| Want {
        provider: P::OpenaiResponses,
        endpoint: E::Responses,
        inference: true,
        model: Some("gpt-5-codex"),
        status: None,
        streamed: true,
        ..Want { usage: u, ..upgrade.clone() }
    };
    vec![upgrade.clone(), turn(usage(200, 1000, 0, 180, 120)), turn(usage(300, 2200, 0, 80, 0))]
}

/// tokio-tungstenite both ends: the client fragments each request into three frames with a
/// ping between them; the server pings too, and the client closes at the end.
fn tungstenite_session() -> Vec<super::Segment> {
    block_on(async {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(async move {
            let mut ws = tokio_tungstenite::accept_async(server_io).await.unwrap();
            while let Some(Ok(m)) = ws.next().await {
                let Message::Text(t) = m else { continue };
                ws.send(Message::Ping(vec![1, 2, 3].into())).await.unwrap();
                for e in events(turn_of(&t)) {
                    ws.send(Message::text(e)).await.unwrap();
                }
            }
        });
        let tape = Tape::default();
        let io = Taped { inner: client_io, tape: tape.clone() };
        let (mut ws, _) = tokio_tungstenite::client_async(URL, io).await.unwrap();
        for n in 1..=2 {
            let msg = create(n);
            let (a, rest) = msg.split_at(100);
            let (b, c) = rest.split_at(200);
            ws.send(Message::Frame(Frame::message(a.to_owned(), OpCode::Data(Data::Text), false))).await.unwrap();
            ws.send(Message::Ping(b"keepalive".to_vec().into())).await.unwrap();
            ws.send(Message::Frame(Frame::message(b.to_owned(), OpCode::Data(Data::Continue), false))).await.unwrap();
            ws.send(Message::Frame(Frame::message(c.to_owned(), OpCode::Data(Data::Continue), true))).await.unwrap();
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m
                    && t.contains("response.completed")
                {
                    break;
                }
            }
        }
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        drop(ws);
        let _ = server.await;
        tape.take()
    })
}

/// yawc over hyper on both ends, with permessage-deflate as `opts` configure it.
fn yawc_session(opts: yawc::Options) -> Vec<super::Segment> {
    use http_body_util::Empty;
    use hyper::{Request, Response, body::Incoming, service::service_fn};

    block_on(async move {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let server_opts = opts.clone();
        let server = tokio::spawn(async move {
            let service = service_fn(move |mut req: Request<Incoming>| {
                let opts = server_opts.clone();
                async move {
                    let (resp, fut) = yawc::WebSocket::upgrade_with_options(&mut req, opts)?;
                    tokio::spawn(async move {
                        let Ok(mut ws) = fut.await else { return };
                        while let Some(f) = ws.next().await {
                            if f.opcode() != yawc::OpCode::Text {
                                continue;
                            }
                            let turn = turn_of(&String::from_utf8_lossy(f.payload()));
                            ws.send(yawc::Frame::ping(&b"srv"[..])).await.unwrap();
                            for e in events(turn) {
                                ws.send(yawc::Frame::text(e)).await.unwrap();
                            }
                        }
                    });
                    Ok::<Response<Empty<Bytes>>, yawc::WebSocketError>(resp)
                }
            });
            let io = hyper_util::rt::TokioIo::new(server_io);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).with_upgrades().await;
        });
        let tape = Tape::default();
        let io = Taped { inner: client_io, tape: tape.clone() };
        let mut ws = yawc::WebSocket::handshake(URL.parse().unwrap(), io, opts).await.unwrap();
        for n in 1..=2 {
            ws.send(yawc::Frame::text(create(n))).await.unwrap();
            while let Some(f) = ws.next().await {
                if f.opcode() == yawc::OpCode::Text && String::from_utf8_lossy(f.payload()).contains("response.completed") {
                    break;
                }
            }
        }
        let _ = ws.close().await;
        drop(ws);
        server.abort();
        tape.take()
    })
}

use bytes::Bytes;

fn deflate_opts() -> yawc::Options {
    // Fragments of 128 bytes make every compressed request span several frames.
    yawc::Options::default().with_balanced_compression().with_compression_threshold(0).with_max_fragment_size(128)
}

pub(crate) fn fixtures() -> Vec<Fixture> {
    vec![
        Fixture { name: "ws tungstenite: fragments, ping/pong, close".into(), segments: tungstenite_session(), want: wants() },
        Fixture {
            name: "ws yawc permessage-deflate, context takeover, window bits".into(),
            segments: yawc_session(deflate_opts().with_client_max_window_bits(10).with_server_max_window_bits(11)),
            want: wants(),
        },
        Fixture {
            name: "ws yawc permessage-deflate, no context takeover".into(),
            segments: yawc_session(deflate_opts().server_no_context_takeover().client_no_context_takeover()),
            want: wants(),
        },
    ]
}
