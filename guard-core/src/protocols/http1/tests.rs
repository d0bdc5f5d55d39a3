use super::*;

/// Runs a reader over pieces and renders what it reports, body bytes merged.
fn run(pieces: &[&[u8]], framing_for: impl Fn(&Head) -> Framing) -> Vec<String> {
    let mut r = MessageReader::new(DEFAULT_MAX_HEAD);
    let mut got: Vec<String> = Vec::new();
    for piece in pieces {
        let mut input = *piece;
        loop {
            let (n, step) = r.step(input);
            input = &input[n..];
            match step {
                Step::NeedMore if n == 0 => break,
                Step::NeedMore => {}
                Step::Head(h) => {
                    r.set_framing(framing_for(&h));
                    got.push(match h {
                        Head::Request(q) => format!("req {} {}", q.method, q.target),
                        Head::Response(s) => format!("resp {}", s.status),
                    });
                }
                Step::Body(b) => match got.last_mut() {
                    Some(last) if last.starts_with("body ") => last.push_str(&String::from_utf8_lossy(b)),
                    _ => got.push(format!("body {}", String::from_utf8_lossy(b))),
                },
                Step::End => got.push("end".into()),
                Step::Error(e) => got.push(format!("error {e}")),
            }
            if input.is_empty() && !matches!(r.state, State::Length(0)) {
                break;
            }
        }
    }
    got
}

fn by_headers(h: &Head) -> Framing {
    match h {
        Head::Request(q) => q.headers.framing(Kind::Request),
        Head::Response(s) => s.headers.framing(Kind::Response),
    }
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";

#[test]
fn chunked_with_trailers_then_keep_alive_at_every_split() {
    let want = vec!["resp 200", "body hello, world", "end", "resp 204", "end"];
    for i in 0..=CHUNKED.len() {
        assert_eq!(run(&[&CHUNKED[..i], &CHUNKED[i..]], by_headers), want, "cut {i}");
    }
}

#[test]
fn content_length_requests_and_lf_only_lines() {
    let req = b"\r\nPOST /v1/messages?beta=true HTTP/1.1\nHost: api.anthropic.com\nContent-Length: 4\nx-api-key: secret\n\n{}{}GET / HTTP/1.1\r\n\r\n";
    assert_eq!(run(&[req], by_headers), vec!["req POST /v1/messages?beta=true", "body {}{}", "end", "req GET /", "end"]);
}

#[test]
fn credentials_are_not_kept() {
    let req = b"POST / HTTP/1.1\r\nAuthorization: Bearer sk-secret\r\nx-api-key: sk-other\r\nCookie: a=b\r\nHost: h\r\n\r\n";
    let mut r = MessageReader::new(DEFAULT_MAX_HEAD);
    let (_, step) = r.step(req);
    let Step::Head(head) = step else { panic!("{step:?}") };
    assert!(!format!("{head:?}").contains("secret") && !format!("{head:?}").contains("sk-other"));
}

#[test]
fn resync_after_a_gap_finds_the_next_status_line() {
    let mut r = MessageReader::new(DEFAULT_MAX_HEAD);
    r.expect(Kind::Response);
    r.gap();
    let input = b"tail of a lost body\r\nmore\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (n, step) = r.step(input);
    assert!(matches!(step, Step::Head(Head::Response(ResponseHead { status: 200, .. }))), "{step:?}");
    r.set_framing(Framing::Length(2));
    assert_eq!(r.step(&input[n..]), (2, Step::Body(b"ok")));
}

#[test]
fn garbage_is_an_error_then_resync() {
    let got = run(&[b"\x16\x03\x01 not http\r\n\r\nGET /x HTTP/1.1\r\n\r\n"], by_headers);
    assert_eq!(got[0], "error malformed message head: token");
    assert_eq!(got[1..], ["req GET /x", "end"]);
}

#[test]
fn oversized_heads_are_refused() {
    let mut r = MessageReader::new(64);
    let big = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 100]].concat();
    assert!(matches!(r.step(&big).1, Step::Error(Http1Error::HeadTooLarge { .. })));
}

#[test]
fn http2_preface_is_recognised() {
    let mut r = MessageReader::new(DEFAULT_MAX_HEAD);
    assert_eq!(r.step(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").1, Step::Error(Http1Error::Http2));
}

#[test]
fn close_ends_an_until_close_body_and_truncates_others() {
    let mut r = MessageReader::new(DEFAULT_MAX_HEAD);
    let (_, s) = r.step(b"HTTP/1.0 200 OK\r\n\r\n");
    assert!(matches!(s, Step::Head(_)));
    r.set_framing(Framing::UntilClose);
    assert_eq!(r.close(), CloseOutcome::BodyEnded);
    let (_, s) = r.step(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
    assert!(matches!(s, Step::Head(_)));
    r.set_framing(Framing::Length(9));
    assert_eq!(r.close(), CloseOutcome::Truncated);
}
