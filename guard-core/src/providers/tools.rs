//! Tool calls a model asked for in its response: the tool's name, the call id and the
//! arguments. The arguments exist only so that `govern::link` can find the commands they propose;
//! [`Args`] cannot be serialised and prints as its length, and the exchange handed to sinks
//! carries calls without them ([`ToolCall::without_args`]).
//!
//! Bounded per exchange: at most [`MAX_CALLS`] calls (more are counted in `dropped`), and at
//! most [`MAX_ARG_BYTES`] of arguments per call (a call past it keeps its name and id, loses its
//! arguments and is counted in `capped`).

use std::fmt;

use serde::Serialize;

use crate::labels;

/// Calls kept per exchange.
pub const MAX_CALLS: usize = 64;
/// Argument bytes kept per call.
pub const MAX_ARG_BYTES: usize = 64 << 10;

/// A call's arguments (JSON text, or a custom tool's raw input). Never serialised, logged or
/// labelled: `Debug` shows only the length.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Args(String);

impl Args {
    #[cfg(test)]
    pub(crate) fn new(text: &str) -> Self {
        Self(text.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Args {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Args(<{} bytes>)", self.0.len())
    }
}

/// One tool call. Serialises as `{"tool", "call_id"}`: the arguments stay out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    /// Sanitised like an identifier (`[A-Za-z0-9_.-]`, 64 characters); `unknown` when empty.
    pub tool: String,
    pub call_id: String,
    #[serde(skip)]
    pub args: Args,
}

impl ToolCall {
    /// The call as sinks see it.
    pub fn without_args(&self) -> Self {
        Self { tool: self.tool.clone(), call_id: self.call_id.clone(), args: Args::default() }
    }
}

/// A streamed call being assembled, by its block (or choice and tool) index.
#[derive(Clone, PartialEq, Eq)]
struct Partial {
    index: u64,
    tool: String,
    call_id: String,
    args: String,
    over: bool,
}

/// The tool calls of one exchange so far.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ToolCalls {
    pub calls: Vec<ToolCall>,
    /// Calls past [`MAX_CALLS`].
    pub dropped: u64,
    /// Calls whose arguments passed [`MAX_ARG_BYTES`] (kept without arguments).
    pub capped: u64,
    open: Vec<Partial>,
}

impl fmt::Debug for ToolCalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolCalls")
            .field("calls", &self.calls)
            .field("dropped", &self.dropped)
            .field("capped", &self.capped)
            .field("open", &self.open.len())
            .finish()
    }
}

/// A call id as the provider sent it, made safe for a log line: printable ASCII, 128 characters.
fn clean_id(raw: &str) -> String {
    raw.chars().take(128).map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect()
}

fn clean_tool(raw: &str) -> String {
    labels::clean(labels::Kind::Ident, raw).unwrap_or_else(|| "unknown".into())
}

impl ToolCalls {
    /// Calls seen, kept or not: a stable ordinal for providers that give no call id.
    pub fn seen(&self) -> usize {
        self.calls.len() + self.dropped as usize + self.open.len()
    }

    /// A whole call. A call id already kept is not added twice (a Responses stream repeats
    /// its items in `response.completed`).
    pub fn push(&mut self, tool: &str, call_id: &str, args: &str) {
        let call_id = clean_id(call_id);
        if !call_id.is_empty() && self.calls.iter().any(|c| c.call_id == call_id) {
            return;
        }
        let over = args.len() > MAX_ARG_BYTES;
        self.keep(clean_tool(tool), call_id, if over { String::new() } else { args.to_owned() }, over);
    }

    fn keep(&mut self, tool: String, call_id: String, args: String, over: bool) {
        if self.calls.len() >= MAX_CALLS {
            self.dropped += 1;
            return;
        }
        if over {
            self.capped += 1;
        }
        self.calls.push(ToolCall { tool, call_id, args: Args(args) });
    }

    /// Starts (or names) the streamed call at `index`; a name or id already set stays.
    pub fn open(&mut self, index: u64, tool: Option<&str>, call_id: Option<&str>) {
        let p = match self.open.iter().position(|p| p.index == index) {
            Some(i) => &mut self.open[i],
            None => {
                if self.open.len() >= MAX_CALLS {
                    self.dropped += 1;
                    return;
                }
                self.open.push(Partial { index, tool: String::new(), call_id: String::new(), args: String::new(), over: false });
                let last = self.open.len() - 1;
                &mut self.open[last]
            }
        };
        if let Some(t) = tool.filter(|t| !t.is_empty() && p.tool.is_empty()) {
            p.tool = t.chars().take(256).collect();
        }
        if let Some(id) = call_id.filter(|i| !i.is_empty() && p.call_id.is_empty()) {
            p.call_id = clean_id(id);
        }
    }

    /// Whether a streamed call is being assembled.
    pub fn has_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// A fragment of the arguments of the streamed call at `index`.
    pub fn append(&mut self, index: u64, fragment: &str) {
        let Some(p) = self.open.iter_mut().find(|p| p.index == index) else { return };
        if p.over {
            return;
        }
        if p.args.len() + fragment.len() > MAX_ARG_BYTES {
            p.over = true;
            p.args = String::new();
        } else {
            p.args.push_str(fragment);
        }
    }

    /// The streamed call at `index` is complete.
    pub fn close(&mut self, index: u64) {
        if let Some(i) = self.open.iter().position(|p| p.index == index) {
            let p = self.open.remove(i);
            self.finish(p);
        }
    }

    /// Every streamed call still open is complete (the stream ended, or was cut: what came is kept).
    pub fn close_all(&mut self) {
        for p in std::mem::take(&mut self.open) {
            self.finish(p);
        }
    }

    fn finish(&mut self, p: Partial) {
        if !p.call_id.is_empty() && self.calls.iter().any(|c| c.call_id == p.call_id) {
            return;
        }
        self.keep(clean_tool(&p.tool), p.call_id, p.args, p.over);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_fragments_assemble_per_index() {
        let mut t = ToolCalls::default();
        t.open(1, Some("Bash"), Some("toolu_1"));
        t.open(2, Some("Read"), Some("toolu_2"));
        t.append(1, "{\"command\":");
        t.append(2, "{}");
        t.append(1, "\"ls\"}");
        t.close(1);
        t.close_all();
        let got: Vec<_> = t.calls.iter().map(|c| (c.tool.as_str(), c.call_id.as_str(), c.args.as_str())).collect();
        assert_eq!(got, [("Bash", "toolu_1", "{\"command\":\"ls\"}"), ("Read", "toolu_2", "{}")]);
    }

    #[test]
    fn bounds_are_counted_and_args_never_printed() {
        let mut t = ToolCalls::default();
        t.push("bash", "big", &"x".repeat(MAX_ARG_BYTES + 1));
        for i in 0..MAX_CALLS + 3 {
            t.push("bash", &format!("c{i}"), "{\"secret\":\"hunter2\"}");
        }
        assert_eq!((t.calls.len(), t.dropped, t.capped), (MAX_CALLS, 4, 1));
        assert!(t.calls[0].args.as_str().is_empty());
        let printed = format!("{t:?} {}", serde_json::to_string(&t.calls).unwrap_or_default());
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains(r#"{"tool":"bash","call_id":"c0"}"#), "{printed}");
    }

    #[test]
    fn a_repeated_call_id_is_kept_once_and_ids_are_safe_to_log() {
        let mut t = ToolCalls::default();
        t.push("shell", "call_1", "{}");
        t.push("shell", "call_1", "{}");
        t.push("shell", "call 2\n\u{1b}[31m", "{}");
        t.open(0, Some("x"), Some(&"i".repeat(300)));
        t.close_all();
        let ids: Vec<_> = t.calls.iter().map(|c| c.call_id.len()).collect();
        assert_eq!(ids, [6, 12, 128]);
        assert_eq!(t.calls[1].call_id, "call_2__[31m");
    }
}
