//! A JSON array streamed in pieces (Gemini `streamGenerateContent` without `alt=sse`): each
//! top-level element is handed out as soon as its last byte arrives. A body that is a single
//! object rather than an array (an error reply) is handed out as one element.
//!
//! Only string, escape and depth state is tracked here; the element itself is parsed by serde.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the opening `[` (or a lone top-level value).
    Start,
    /// Inside the array, between elements.
    Between,
    /// Inside an element.
    Element,
    /// After the closing `]`, or after a lone value.
    Done,
}

#[derive(Debug)]
pub struct JsonArrayStream {
    state: State,
    /// The body is a lone value, not an array.
    lone: bool,
    depth: u32,
    in_string: bool,
    escape: bool,
    buf: Vec<u8>,
    max_element: usize,
    skipping: bool,
    pub dropped_elements: u64,
    /// Bytes that fit no JSON shape (counted, then ignored).
    pub junk_bytes: u64,
}

impl JsonArrayStream {
    pub fn new(max_element: usize) -> Self {
        Self {
            state: State::Start,
            lone: false,
            depth: 0,
            in_string: false,
            escape: false,
            buf: Vec::new(),
            max_element,
            skipping: false,
            dropped_elements: 0,
            junk_bytes: 0,
        }
    }

    /// The closing bracket (or the end of a lone value) was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    pub fn push(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Start | State::Between | State::Done => {
                    i += 1;
                    match (self.state, b) {
                        (_, b' ' | b'\t' | b'\r' | b'\n') => {}
                        (State::Start, b'[') => self.state = State::Between,
                        (State::Between, b',') => {}
                        (State::Between, b']') => self.state = State::Done,
                        // No element starts with these: skip them, or they would end it at once.
                        (State::Start | State::Between, b']' | b'}' | b',') => self.junk_bytes += 1,
                        (State::Start | State::Between, _) => {
                            self.lone = self.state == State::Start;
                            self.state = State::Element;
                            self.begin_element();
                            i -= 1;
                        }
                        (State::Done | State::Element, _) => self.junk_bytes += 1,
                    }
                }
                State::Element => {
                    let used = self.scan(&input[i..]);
                    let (taken, ended) = used;
                    self.keep(&input[i..i + taken]);
                    i += taken;
                    if ended {
                        self.end_element(out);
                    }
                }
            }
        }
    }

    /// The body ended: a lone scalar without a terminator is complete now.
    pub fn finish(&mut self, out: &mut dyn FnMut(&[u8])) {
        if self.state == State::Element && self.depth == 0 && !self.in_string {
            self.end_element(out);
        }
    }

    fn begin_element(&mut self) {
        self.depth = 0;
        self.in_string = false;
        self.escape = false;
        self.buf.clear();
        self.skipping = false;
    }

    /// Scans element bytes; returns how many belong to it and whether it ended there.
    fn scan(&mut self, s: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while i < s.len() {
            if self.in_string {
                match memchr::memchr2(b'"', b'\\', &s[i..]) {
                    _ if self.escape => {
                        self.escape = false;
                        i += 1;
                    }
                    Some(k) => {
                        i += k;
                        if s[i] == b'\\' {
                            self.escape = true;
                        } else {
                            self.in_string = false;
                        }
                        i += 1;
                    }
                    None => return (s.len(), false),
                }
                continue;
            }
            match s[i] {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return (i + 1, true);
                    }
                }
                // A scalar element ends at the delimiter that follows it (left for the caller).
                b',' | b']' | b'}' if self.depth == 0 => return (i, true),
                b' ' | b'\t' | b'\r' | b'\n' if self.depth == 0 => return (i, true),
                _ => {}
            }
            i += 1;
        }
        (s.len(), false)
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.skipping {
            return;
        }
        if self.buf.len() + bytes.len() > self.max_element {
            self.skipping = true;
            self.dropped_elements += 1;
            self.buf = Vec::new();
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn end_element(&mut self, out: &mut dyn FnMut(&[u8])) {
        if !self.skipping && !self.buf.is_empty() {
            out(&self.buf);
        }
        self.buf.clear();
        self.skipping = false;
        self.state = if self.lone { State::Done } else { State::Between };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(pieces: &[&[u8]]) -> Vec<String> {
        let mut s = JsonArrayStream::new(1 << 20);
        let mut got = Vec::new();
        let mut f = |e: &[u8]| got.push(String::from_utf8_lossy(e).into_owned());
        for p in pieces {
            s.push(p, &mut f);
        }
        s.finish(&mut f);
        got
    }

    const ARRAY: &[u8] = br#"[{"a":"x]},\"{"}
,{"b":[1,{"c":2}]} , 3,"s",[]]"#;

    #[test]
    fn elements_come_out_whole_at_every_split() {
        let want = vec![r#"{"a":"x]},\"{"}"#, r#"{"b":[1,{"c":2}]}"#, "3", r#""s""#, "[]"];
        for i in 0..=ARRAY.len() {
            assert_eq!(elements(&[&ARRAY[..i], &ARRAY[i..]]), want, "cut {i}");
        }
    }

    #[test]
    fn stray_closers_are_skipped_not_looped_on() {
        assert_eq!(elements(&[b"[}1,}]"]), vec!["1"]);
        assert_eq!(elements(&[b"}]"]), Vec::<String>::new());
    }

    #[test]
    fn a_lone_object_is_one_element() {
        assert_eq!(elements(&[b" {\"error\":", b"{\"code\":429}}\n"]), vec![r#"{"error":{"code":429}}"#]);
    }

    #[test]
    fn an_oversized_element_is_dropped_and_counted() {
        let mut s = JsonArrayStream::new(8);
        let mut got = Vec::new();
        s.push(br#"[{"long":"0123456789"},{"a":1}]"#, &mut |e| got.push(e.to_vec()));
        assert_eq!(got, vec![br#"{"a":1}"#.to_vec()]);
        assert_eq!(s.dropped_elements, 1);
        assert!(s.is_done());
    }
}
