use super::*;
use crate::events::TlsFunc;

const C: ConnId = ConnId { pid: 7, conn: 0xabc };

fn chunk(dir: Direction, offset: u64, data: &'static [u8]) -> TlsData {
    TlsData {
        ts_ns: offset,
        tid: 7,
        conn: C,
        dir,
        func: TlsFunc::SslWrite,
        offset,
        call_len: data.len() as u32,
        target: 0,
        paused: false,
        data: Bytes::from_static(data),
    }
}

fn data_of(out: &[StreamEvent], want: Direction) -> Vec<u8> {
    out.iter()
        .filter_map(|e| match e {
            StreamEvent::Data { dir, data, .. } if *dir == want => Some(data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn contiguous_chunks_come_out_in_order_per_direction() {
    let mut a = Assembler::new(16);
    let mut out = vec![];
    a.push(chunk(Direction::Write, 0, b"GET / "), &mut out);
    a.push(chunk(Direction::Read, 0, b"HTTP/1.1"), &mut out);
    a.push(chunk(Direction::Write, 6, b"HTTP/1.1\r\n"), &mut out);
    assert_eq!(data_of(&out, Direction::Write), b"GET / HTTP/1.1\r\n");
    assert_eq!(data_of(&out, Direction::Read), b"HTTP/1.1");
    assert_eq!(a.stats, AssemblerStats::default());
}

#[test]
fn a_jump_in_offset_is_a_gap_of_exactly_the_missing_bytes() {
    let mut a = Assembler::new(16);
    let mut out = vec![];
    a.push(chunk(Direction::Read, 0, b"abc"), &mut out);
    a.push(chunk(Direction::Read, 10, b"xyz"), &mut out);
    assert_eq!(out[1], StreamEvent::Gap { conn: C, dir: Direction::Read, ts_ns: 10, missing: 7 });
    assert_eq!(a.stats.gap_bytes, 7);
}

#[test]
fn starting_mid_stream_reports_a_leading_gap() {
    let mut a = Assembler::new(16);
    let mut out = vec![];
    a.push(chunk(Direction::Write, 100, b"abc"), &mut out);
    assert!(matches!(out[0], StreamEvent::Gap { missing: 100, .. }));
}

#[test]
fn duplicates_are_trimmed_not_delivered_twice() {
    let mut a = Assembler::new(16);
    let mut out = vec![];
    a.push(chunk(Direction::Write, 0, b"abcdef"), &mut out);
    a.push(chunk(Direction::Write, 3, b"defgh"), &mut out);
    assert_eq!(data_of(&out, Direction::Write), b"abcdefgh");
    assert_eq!(a.stats.duplicate_bytes, 3);
}

#[test]
fn the_table_is_bounded_and_eviction_closes_the_idlest() {
    let mut a = Assembler::new(2);
    let mut out = vec![];
    for (i, conn) in [1u64, 2, 3].into_iter().enumerate() {
        let mut c = chunk(Direction::Write, 0, b"x");
        c.conn.conn = conn;
        c.ts_ns = i as u64;
        a.push(c, &mut out);
    }
    assert_eq!(a.len(), 2);
    assert!(out.contains(&StreamEvent::Closed { conn: ConnId { pid: 7, conn: 1 }, ts_ns: 0 }));
}
