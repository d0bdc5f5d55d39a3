use bytes::Bytes;

use super::*;
use crate::events::{Exit, TlsFunc};

fn data(target: u32, conn: u64, dir: Direction, offset: u64, bytes: &[u8]) -> Event {
    Event::TlsData(TlsData {
        ts_ns: offset,
        tid: 9,
        conn: ConnId { pid: 9, conn },
        dir,
        func: TlsFunc::SslWrite,
        offset,
        call_len: bytes.len() as u32,
        target,
        paused: false,
        data: Bytes::copy_from_slice(bytes),
    })
}

fn run(v: &mut Verifier, events: Vec<Event>) -> (Vec<Event>, Vec<Verdict>) {
    let (mut out, mut verdicts) = (Vec::new(), Vec::new());
    for ev in events {
        v.push(ev, &mut out, &mut verdicts);
    }
    (out, verdicts)
}

const REQ: &[u8] = b"POST /v1/messages HTTP/1.1\r\nhost: api.anthropic.com\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";

#[test]
fn evidence_of_each_protocol_and_of_garbage() {
    for looks in [
        REQ,
        RESP,
        b"GET / HTTP/1.0\r\n".as_slice(),
        b"HTTP/1.1 101 Switching Protocols\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
        b"PRI * HTTP",
        // SETTINGS (empty) then WINDOW_UPDATE: a server's first HTTP/2 bytes.
        b"\0\0\0\x04\0\0\0\0\0\0\0\x04\x08\0\0\0\0\0\0\x0f\0\x01",
        // A masked text frame "hi" (client) and an unmasked one followed by a ping (server).
        b"\x81\x82\x01\x02\x03\x04\x69\x6b",
        b"\x81\x02hi\x89\x00",
    ] {
        assert_eq!(
            judge(looks),
            Evidence::Looks,
            "{:?}",
            String::from_utf8_lossy(looks)
        );
    }
    for foreign in [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 random bytes of a handshake".as_slice(),
        b"SELECT 1 FROM pg_catalog.pg_tables;\0\0",
        b"GET /no-version-here\r\nmore bytes follow",
        b"HTTP/1.1 20 OK\r\n padding padding",
        // A WebSocket-looking header whose length does not match the chunk.
        b"\x81\x05hi and then more bytes than it says",
        &[0xa5; 64],
    ] {
        assert_eq!(
            judge(foreign),
            Evidence::Foreign,
            "{:?}",
            String::from_utf8_lossy(foreign)
        );
    }
    assert_eq!(judge(b"GET"), Evidence::Unsure);
    assert_eq!(judge(b""), Evidence::Unsure);
}

#[test]
fn named_hooks_pass_straight_through() {
    let mut v = Verifier::default();
    v.guessed(2);
    let (out, verdicts) = run(
        &mut v,
        vec![
            data(1, 7, Direction::Write, 0, &[0xa5; 64]),
            data(0, 8, Direction::Write, 0, b"x"),
        ],
    );
    assert_eq!(out.len(), 2);
    assert!(verdicts.is_empty());
    assert_eq!(v.state(1), None);
}

#[test]
fn a_guess_is_held_until_one_connection_shows_http_both_ways_then_released_in_order() {
    let mut v = Verifier::default();
    v.guessed(3);
    // A connection caught mid-stream (foreign first bytes), then one that shows a request only.
    let first = vec![
        data(
            3,
            1,
            Direction::Read,
            0,
            b"data: {\"type\":\"ping\"}\n\ndata: {}\n\n",
        ),
        data(3, 2, Direction::Write, 0, REQ),
        Event::TlsClose(TlsClose {
            ts_ns: 5,
            conn: ConnId { pid: 9, conn: 1 },
        }),
    ];
    let (out, verdicts) = run(&mut v, first.clone());
    assert!(out.is_empty() && verdicts.is_empty());
    assert_eq!(v.state(3), Some(State::Pending));

    let (out, verdicts) = run(
        &mut v,
        vec![
            data(3, 2, Direction::Read, 0, RESP),
            data(3, 2, Direction::Write, REQ.len() as u64, REQ),
        ],
    );
    assert_eq!(
        verdicts,
        [Verdict {
            target: 3,
            state: State::Verified
        }]
    );
    let mut want = first;
    want.push(data(3, 2, Direction::Read, 0, RESP));
    want.push(data(3, 2, Direction::Write, REQ.len() as u64, REQ));
    assert_eq!(out, want);
    assert_eq!(v.stats, Stats::default());
}

#[test]
fn a_wrong_guess_is_rejected_and_nothing_of_it_passes() {
    let mut v = Verifier::new(Limits {
        held_bytes: 1 << 20,
        reject_after: 3,
    });
    v.guessed(4);
    let mut events = Vec::new();
    for conn in 0..3 {
        // Garbage both ways: two events per connection, one foreign connection each.
        events.push(data(4, conn, Direction::Write, 0, &[0x5a; 40]));
        events.push(data(4, conn, Direction::Read, 0, &[0xc3; 40]));
    }
    events.push(data(4, 9, Direction::Write, 0, REQ));
    let (out, verdicts) = run(&mut v, events);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(
        verdicts,
        [Verdict {
            target: 4,
            state: State::Rejected
        }]
    );
    assert_eq!(v.state(4), Some(State::Rejected));
    // Conn 2's write made the third foreign connection: what was held, it and all later are dropped.
    assert_eq!(v.stats.dropped_events, 7);
    assert_eq!(v.stats.dropped_bytes, 6 * 40 + REQ.len() as u64);
}

#[test]
fn held_bytes_are_bounded_and_the_excess_is_counted() {
    let mut v = Verifier::new(Limits {
        held_bytes: 100,
        reject_after: 8,
    });
    v.guessed(5);
    let (out, _) = run(
        &mut v,
        (0..4)
            .map(|i| data(5, 1, Direction::Write, i * 40, &[b'a'; 40]))
            .collect(),
    );
    assert!(out.is_empty());
    assert_eq!((v.stats.dropped_events, v.stats.dropped_bytes), (2, 80));
}

#[test]
fn a_held_connection_of_a_process_that_exits_closes_after_its_bytes() {
    let mut v = Verifier::default();
    v.guessed(6);
    let exit = Event::Exit(Exit {
        ts_ns: 50,
        pid: 9,
        tid: 9,
        start_time_ns: 1,
        exit_code: 0,
        comm: "bun".into(),
    });
    let (out, _) = run(
        &mut v,
        vec![data(6, 1, Direction::Write, 0, REQ), exit.clone()],
    );
    assert_eq!(out, [exit]);
    let (out, _) = run(
        &mut v,
        vec![
            data(6, 2, Direction::Write, 0, REQ),
            data(6, 2, Direction::Read, 0, RESP),
        ],
    );
    let kinds: Vec<_> = out
        .iter()
        .map(|e| match e {
            Event::TlsData(d) => format!("data {}", d.conn.conn),
            Event::TlsClose(c) => format!("close {}", c.conn.conn),
            _ => "other".into(),
        })
        .collect();
    assert_eq!(kinds, ["data 1", "close 1", "data 2", "data 2"]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 500, failure_persistence: None, ..Default::default() })]

    /// However the events of a guessed file, a named file and another process interleave, once
    /// the guess is verified every connection's events come out complete and in their order.
    #[test]
    fn verification_never_reorders_or_loses_a_connections_events(order in proptest::collection::vec(0usize..3, 0..24)) {
        let streams: [Vec<Event>; 3] = [
            // The guess: mid-stream bytes first, then a request and its response.
            vec![data(3, 1, Direction::Read, 0, b"data: {\"x\":1}\n\ndata: {}\n\n"), data(3, 2, Direction::Write, 0, REQ), data(3, 2, Direction::Read, 0, RESP)],
            (0..4u64).map(|i| data(1, 5, Direction::Write, i * 3, b"abc")).collect(),
            vec![Event::TlsClose(TlsClose { ts_ns: 1, conn: ConnId { pid: 9, conn: 6 } })],
        ];
        let mut next = [0usize; 3];
        let mut input = Vec::new();
        for s in order.into_iter().chain([0, 0, 0, 1, 1, 1, 1, 2]) {
            if let Some(ev) = streams[s].get(next[s]) {
                input.push(ev.clone());
                next[s] += 1;
            }
        }
        let mut v = Verifier::default();
        v.guessed(3);
        let (out, verdicts) = run(&mut v, input.clone());
        proptest::prop_assert_eq!(verdicts, vec![Verdict { target: 3, state: State::Verified }]);
        let of = |evs: &[Event], c: u64| -> Vec<Event> {
            evs.iter().filter(|e| matches!(e, Event::TlsData(d) if d.conn.conn == c) || matches!(e, Event::TlsClose(x) if x.conn.conn == c)).cloned().collect()
        };
        for c in [1, 2, 5, 6] {
            proptest::prop_assert_eq!(of(&out, c), of(&input, c));
        }
        proptest::prop_assert_eq!(out.len(), input.len());
    }
}
