#![no_main]
//! Hook verification: judging any bytes never panics, and bytes judged to look like HTTP,
//! HTTP/2 or WebSocket stay so judged with anything appended only when they are a start line.
use guard_core::verify::{Evidence, judge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let e = judge(data);
    // A complete start line is a verdict on the line alone.
    if e == Evidence::Looks && data.starts_with(b"HTTP/1.") && memchr_crlf(data) {
        let mut more = data.to_vec();
        more.extend_from_slice(b"trailing bytes");
        assert_eq!(judge(&more), Evidence::Looks);
    }
});

fn memchr_crlf(d: &[u8]) -> bool {
    d.windows(2).any(|w| w == b"\r\n")
}
