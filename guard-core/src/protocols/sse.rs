//! Server-Sent Events framing (WHATWG HTML §9.2.6), incremental.
//!
//! Lines end in CRLF, LF or CR, and a CR may end one piece while its LF starts the next. Unlike
//! a browser, [`SseParser::finish`] dispatches a final event that lacks its blank line: a proxy that
//! drops it must not cost us the last usage event.

/// One dispatched event; `event` is "message" when the stream named none.
#[derive(Debug, PartialEq, Eq)]
pub struct SseEvent<'a> {
    pub event: &'a str,
    pub data: &'a [u8],
}

#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous piece ended in CR, so a leading LF belongs to that line end.
    after_cr: bool,
    started: bool,
    event: String,
    data: Vec<u8>,
    has_data: bool,
    max_event: usize,
    /// Bytes of an oversized line or event that were dropped.
    oversized: bool,
    pub dropped_events: u64,
}

impl SseParser {
    /// `max_event` bounds one line and one event's data.
    pub fn new(max_event: usize) -> Self {
        Self {
            line: Vec::new(),
            after_cr: false,
            started: false,
            event: String::new(),
            data: Vec::new(),
            has_data: false,
            max_event,
            oversized: false,
            dropped_events: 0,
        }
    }

    pub fn push(&mut self, mut input: &[u8], out: &mut dyn FnMut(SseEvent<'_>)) {
        if !self.started && !input.is_empty() {
            // A UTF-8 BOM may open the stream; it can itself be split, so wait for three bytes.
            let mut head = std::mem::take(&mut self.line);
            head.extend_from_slice(input);
            if head.len() < 3 && b"\xEF\xBB\xBF".starts_with(&head) {
                self.line = head;
                return;
            }
            self.started = true;
            let skip = if head.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
            self.feed(&head[skip..], out);
            return;
        }
        if self.after_cr && !input.is_empty() {
            self.after_cr = false;
            if input[0] == b'\n' {
                input = &input[1..];
            }
        }
        self.feed(input, out);
    }

    fn feed(&mut self, mut input: &[u8], out: &mut dyn FnMut(SseEvent<'_>)) {
        while let Some(i) = memchr::memchr2(b'\n', b'\r', input) {
            let end_len = if input[i] == b'\r' {
                match input.get(i + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    None => {
                        self.after_cr = true;
                        1
                    }
                }
            } else {
                1
            };
            if self.line.is_empty() && !self.oversized {
                self.process_line(&input[..i], out);
            } else {
                let mut line = std::mem::take(&mut self.line);
                self.append_line(&mut line, &input[..i]);
                let oversized = std::mem::replace(&mut self.oversized, false);
                if !oversized {
                    self.process_line(&line, out);
                }
                line.clear();
                self.line = line;
            }
            input = &input[i + end_len..];
        }
        let mut line = std::mem::take(&mut self.line);
        self.append_line(&mut line, input);
        self.line = line;
    }

    fn append_line(&mut self, line: &mut Vec<u8>, more: &[u8]) {
        if line.len() + more.len() > self.max_event {
            self.dropped_events += u64::from(!self.oversized);
            self.oversized = true;
            line.clear();
        } else if !self.oversized {
            line.extend_from_slice(more);
        }
    }

    fn process_line(&mut self, line: &[u8], out: &mut dyn FnMut(SseEvent<'_>)) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.data.len() + value.len() + 1 > self.max_event {
                    self.dropped_events += 1;
                    self.data.clear();
                    self.has_data = false;
                    return;
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = String::from_utf8_lossy(value).chars().take(128).collect(),
            // id and retry matter to a reconnecting browser, not to us.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut dyn FnMut(SseEvent<'_>)) {
        if self.has_data {
            let event = if self.event.is_empty() { "message" } else { self.event.as_str() };
            out(SseEvent { event, data: &self.data });
        }
        self.data.clear();
        self.has_data = false;
        self.event.clear();
    }

    /// The body ended: a last line or event without its terminator is still delivered.
    pub fn finish(&mut self, out: &mut dyn FnMut(SseEvent<'_>)) {
        if !self.started {
            self.started = true;
            let head = std::mem::take(&mut self.line);
            self.feed(&head, out);
        }
        if !self.line.is_empty() && !self.oversized {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out);
        }
        self.line.clear();
        self.oversized = false;
        self.dispatch(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_pieces(pieces: &[&[u8]]) -> Vec<(String, String)> {
        let mut p = SseParser::new(1 << 20);
        let mut got = Vec::new();
        let mut f = |e: SseEvent<'_>| got.push((e.event.to_string(), String::from_utf8_lossy(e.data).into_owned()));
        for piece in pieces {
            p.push(piece, &mut f);
        }
        p.finish(&mut f);
        got
    }

    const SAMPLE: &[u8] = b"\xEF\xBB\xBF: comment\r\nevent: a\r\ndata: one\r\ndata:two\r\n\r\ndata: x\rdata: y\r\rid: 7\nretry: 5\ndata\n\nevent: empty\n\ndata: last";

    fn expected() -> Vec<(String, String)> {
        vec![
            ("a".into(), "one\ntwo".into()),
            ("message".into(), "x\ny".into()),
            ("message".into(), "".into()),
            ("message".into(), "last".into()),
        ]
    }

    #[test]
    fn spec_cases_in_one_piece() {
        assert_eq!(parse_pieces(&[SAMPLE]), expected());
    }

    #[test]
    fn every_two_and_three_way_split_gives_the_same_events() {
        for i in 0..=SAMPLE.len() {
            assert_eq!(parse_pieces(&[&SAMPLE[..i], &SAMPLE[i..]]), expected(), "cut {i}");
            for j in i..=SAMPLE.len() {
                assert_eq!(parse_pieces(&[&SAMPLE[..i], &SAMPLE[i..j], &SAMPLE[j..]]), expected(), "cuts {i} {j}");
            }
        }
    }

    #[test]
    fn an_oversized_event_is_dropped_and_the_next_survives() {
        let mut p = SseParser::new(16);
        let mut got = Vec::new();
        p.push(b"data: 0123456789abcdefghij\n\ndata: ok\n\n", &mut |e| got.push(e.data.to_vec()));
        assert_eq!(got, vec![b"ok".to_vec()]);
    }
}
