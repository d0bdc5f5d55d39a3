//! Lost bytes, late starts and aborts: marked incomplete, usage kept, nothing mis-paired.

use crate::{
    events::Direction::{Read, Write},
    protocols::{ConnectionDecoder, DecoderConfig, Exchange, IncompleteReason as R},
    providers::Provider,
};

use super::{
    fixtures::{PLAIN, anthropic_stream, request, response},
    usage,
};

const REQ: &str = r#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#;
const REQ2: &str = r#"{"model":"claude-haiku-4-5","messages":[]}"#;
const JSON2: &[u8] = br#"{"type":"message","model":"claude-haiku-4-5","usage":{"input_tokens":3,"output_tokens":4}}"#;

fn drain(d: &mut ConnectionDecoder) -> Vec<Exchange> {
    let mut v = Vec::new();
    d.drain(&mut v);
    v
}

fn stream_resp() -> Vec<u8> {
    response(200, "text/event-stream", "", &anthropic_stream(), PLAIN)
}

#[test]
fn a_client_abort_keeps_the_usage_seen_so_far() {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    d.on_data(Write, 1, &request("POST", "/v1/messages", "", REQ));
    let resp = stream_resp();
    // Up to the middle of the first content delta: message_start has been seen.
    let cut = memchr::memmem::find(&resp, b"content_block_delta").unwrap();
    d.on_data(Read, 2, &resp[..cut]);
    d.on_close(3);
    let x = drain(&mut d);
    assert_eq!(x.len(), 1);
    assert_eq!((x[0].complete, x[0].incomplete_reason), (false, Some(R::ClientAbort)));
    assert_eq!(x[0].usage, usage(25, 10, 5, 1, 0));
    assert_eq!(x[0].timings.end_ns, 3);
}

#[test]
fn a_gap_mid_response_then_a_new_exchange_pairs_correctly() {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    d.on_data(Write, 1, &request("POST", "/v1/messages", "", REQ));
    let resp = stream_resp();
    d.on_data(Read, 2, &resp[..300]);
    d.on_gap(Read, 3, 100);
    // The rest of the lost response still arrives, then the next exchange.
    d.on_data(Read, 3, &resp[400..]);
    d.on_data(Write, 4, &request("POST", "/v1/messages", "", REQ2));
    d.on_data(Read, 5, &response(200, "application/json", "", JSON2, PLAIN));
    let x = drain(&mut d);
    assert_eq!(x.len(), 2, "{x:#?}");
    assert_eq!(x[0].incomplete_reason, Some(R::Gap));
    assert_eq!(x[1].model.as_deref(), Some("claude-haiku-4-5"));
    assert_eq!((x[1].complete, x[1].usage), (true, usage(3, 0, 0, 4, 0)));
}

#[test]
fn capture_starting_mid_response_is_reported_and_the_next_exchange_is_exact() {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    let resp = stream_resp();
    d.on_gap(Read, 1, 5000);
    d.on_data(Read, 1, &resp[200..]);
    d.on_data(Write, 2, &request("POST", "/v1/messages", "", REQ2));
    d.on_data(Read, 3, &response(200, "application/json", "", JSON2, PLAIN));
    let x = drain(&mut d);
    assert_eq!(x.len(), 1, "{x:#?}");
    assert!(x[0].complete);
    assert_eq!(x[0].usage, usage(3, 0, 0, 4, 0));
}

#[test]
fn a_lost_request_does_not_steal_the_next_response() {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    d.on_data(Write, 1, &request("POST", "/v1/messages", "", REQ2));
    d.on_data(Read, 2, &response(200, "application/json", "", JSON2, PLAIN));
    // A whole request is lost; its response arrives, then a known exchange.
    d.on_gap(Write, 3, 400);
    d.on_data(Read, 4, &stream_resp());
    d.on_data(Write, 5, &request("POST", "/v1/messages", "", REQ2));
    d.on_data(Read, 6, &response(200, "application/json", "", JSON2, PLAIN));
    let x = drain(&mut d);
    assert_eq!(x.len(), 3, "{x:#?}");
    assert_eq!((x[1].provider, x[1].inference, x[1].incomplete_reason), (Provider::Unknown, false, Some(R::Gap)));
    assert_eq!(x[1].usage, usage(0, 0, 0, 0, 0));
    assert_eq!((x[2].complete, x[2].usage), (true, usage(3, 0, 0, 4, 0)));
}

#[test]
fn a_lost_response_does_not_shift_later_pairs() {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    d.on_data(Write, 1, &request("POST", "/v1/messages", "", REQ));
    // The whole streamed response is lost.
    d.on_gap(Read, 2, 9000);
    d.on_data(Write, 3, &request("POST", "/v1/messages", "", REQ2));
    d.on_data(Read, 4, &response(200, "application/json", "", JSON2, PLAIN));
    let x = drain(&mut d);
    assert_eq!(x.len(), 2, "{x:#?}");
    assert_eq!((x[0].model.as_deref(), x[0].incomplete_reason), (Some("claude-sonnet-4-5"), Some(R::Gap)));
    assert_eq!((x[1].model.as_deref(), x[1].complete, x[1].usage), (Some("claude-haiku-4-5"), true, usage(3, 0, 0, 4, 0)));
}

#[test]
fn a_decompression_bomb_is_capped_and_counted() {
    let cfg = DecoderConfig { max_decoded_body: 1 << 20, ..DecoderConfig::default() };
    let mut d = ConnectionDecoder::new(cfg);
    let bomb = crate::protocols::testutil::compress(crate::protocols::encoding::Encoding::Gzip, &vec![b' '; 8 << 20]);
    d.on_data(Write, 1, &request("POST", "/v1/messages", "", REQ2));
    let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", bomb.len()).into_bytes();
    resp.extend_from_slice(&bomb);
    d.on_data(Read, 2, &resp);
    let x = drain(&mut d);
    assert_eq!(x[0].incomplete_reason, Some(R::BodyCap));
    assert_eq!(d.stats.bodies_capped, 1);
}

#[test]
fn http2_and_garbage_never_panic_and_are_counted() {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    d.on_data(Write, 1, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    d.on_data(Read, 2, b"\x00\x00\x12\x04");
    d.on_close(3);
    assert_eq!(d.stats.http2, 1);
    assert!(drain(&mut d).is_empty());
}

#[test]
fn exchanges_never_carry_credentials_or_query_strings() {
    let mut d = ConnectionDecoder::new(DecoderConfig::default());
    d.on_data(Write, 1, &request("POST", "/v1beta/models/g:generateContent?key=SECRETKEY", "x-goog-api-key: SECRETKEY\r\nCookie: s=SECRETKEY\r\n", "{}"));
    d.on_data(Read, 2, &response(200, "application/json", "", b"{}", PLAIN));
    let json = serde_json::to_string(&drain(&mut d)).unwrap();
    assert!(!json.contains("SECRETKEY") && !json.contains("sk-test"), "{json}");
}
