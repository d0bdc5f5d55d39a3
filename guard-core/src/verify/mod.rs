//! Run-time verification of guessed hooks. A hook found by name (an exported or static symbol,
//! Go's function table) is the function it names. A hook found from the code's structure is a
//! guess until its traffic says otherwise, and a wrong guess must never feed the pipeline.
//!
//! So each TLS event carries the id of the hooked file it came through (the uprobe's attach
//! cookie), and the events of a guessed file are held back until one connection through it shows
//! an HTTP/1 start line, an HTTP/2 preface or frames, or whole WebSocket frames in *both*
//! directions. That proves the write hook and the read hook at once. Then the held events go on
//! in order and the file's later events pass straight through. A file whose first connections
//! carry nothing of the sort is rejected: what it held is dropped and counted, and the daemon
//! detaches it. Sans-IO: events in, events and verdicts out.

mod evidence;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

pub use evidence::{Evidence, judge};

use crate::events::{ConnId, Direction, Event, TlsClose, TlsData};

#[derive(Clone, Debug)]
pub struct Limits {
    /// Bytes held per guessed file while it is unverified; later bytes are dropped and counted.
    pub held_bytes: usize,
    /// Connections whose first bytes are foreign after which a file is rejected.
    pub reject_after: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            held_bytes: 4 << 20,
            reject_after: 8,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Found by a guess, and no connection has shown HTTP, HTTP/2 or WebSocket yet.
    Pending,
    Verified,
    /// Its first connections carried something else: detached, its bytes dropped.
    Rejected,
}

/// A change of a guessed file's state, for the daemon to log, count and act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub target: u32,
    pub state: State,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// TLS data events dropped: held past the limit, or through a rejected hook.
    pub dropped_events: u64,
    pub dropped_bytes: u64,
}

/// What the first chunk of each direction of one connection looked like.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    first: [Option<Evidence>; 2],
    counted_foreign: bool,
}

struct Guessed {
    state: State,
    held: VecDeque<Event>,
    held_bytes: usize,
    conns: HashMap<ConnId, Seen>,
    foreign: u32,
}

#[derive(Default)]
pub struct Verifier {
    limits: Limits,
    guessed: HashMap<u32, Guessed>,
    pub stats: Stats,
}

impl Verifier {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Holds the events of file `target` until its traffic is verified.
    pub fn guessed(&mut self, target: u32) {
        self.guessed.entry(target).or_insert_with(|| Guessed {
            state: State::Pending,
            held: VecDeque::new(),
            held_bytes: 0,
            conns: HashMap::new(),
            foreign: 0,
        });
    }

    /// Events held by files not yet verified.
    pub fn held_events(&self) -> usize {
        self.guessed.values().map(|g| g.held.len()).sum()
    }

    /// The state of a guessed file; `None` for files found by name (never held).
    pub fn state(&self, target: u32) -> Option<State> {
        self.guessed.get(&target).map(|g| g.state)
    }

    /// Passes `ev` on to `out` unless it belongs to an unverified or rejected guess. Events of a
    /// file that this event verifies are released to `out` first, in their order.
    pub fn push(&mut self, ev: Event, out: &mut Vec<Event>, verdicts: &mut Vec<Verdict>) {
        match ev {
            Event::TlsData(d) => self.data(d, out, verdicts),
            Event::TlsClose(c) => match self.holding(c.conn) {
                Some(g) => g.held.push_back(Event::TlsClose(c)),
                None => out.push(Event::TlsClose(c)),
            },
            Event::Exit(x) => {
                // Held connections of a process that is gone close after their held bytes.
                for g in self
                    .guessed
                    .values_mut()
                    .filter(|g| g.state == State::Pending)
                {
                    let gone: Vec<ConnId> =
                        g.conns.keys().filter(|c| c.pid == x.pid).copied().collect();
                    for conn in gone {
                        g.conns.remove(&conn);
                        g.held.push_back(Event::TlsClose(TlsClose {
                            ts_ns: x.ts_ns,
                            conn,
                        }));
                    }
                }
                out.push(Event::Exit(x));
            }
            ev => out.push(ev),
        }
    }

    /// The pending guess that holds events of `conn`, if any.
    fn holding(&mut self, conn: ConnId) -> Option<&mut Guessed> {
        self.guessed
            .values_mut()
            .find(|g| g.state == State::Pending && g.conns.contains_key(&conn))
    }

    fn data(&mut self, d: TlsData, out: &mut Vec<Event>, verdicts: &mut Vec<Verdict>) {
        let Some(g) = self.guessed.get_mut(&d.target) else {
            out.push(Event::TlsData(d));
            return;
        };
        match g.state {
            State::Verified => return out.push(Event::TlsData(d)),
            State::Rejected => return self.stats.drop(&d),
            State::Pending => {}
        }
        let seen = g.conns.entry(d.conn).or_default();
        let slot = &mut seen.first[d.dir.index()];
        if slot.is_none_or(|e| e == Evidence::Unsure) && d.offset == 0 {
            *slot = Some(judge(&d.data));
        }
        let looks = |e: Option<Evidence>| e == Some(Evidence::Looks);
        let verified = looks(seen.first[Direction::Write.index()])
            && looks(seen.first[Direction::Read.index()]);
        if !verified && !seen.counted_foreign && seen.first.contains(&Some(Evidence::Foreign)) {
            seen.counted_foreign = true;
            g.foreign += 1;
        }
        let target = d.target;
        if verified {
            g.state = State::Verified;
            out.extend(g.held.drain(..));
            out.push(Event::TlsData(d));
            g.held_bytes = 0;
            g.conns = HashMap::new();
            verdicts.push(Verdict {
                target,
                state: State::Verified,
            });
        } else if g.foreign >= self.limits.reject_after {
            g.state = State::Rejected;
            for ev in g.held.drain(..) {
                if let Event::TlsData(h) = &ev {
                    self.stats.drop(h);
                }
            }
            self.stats.drop(&d);
            g.held_bytes = 0;
            g.conns = HashMap::new();
            verdicts.push(Verdict {
                target,
                state: State::Rejected,
            });
        } else if g.held_bytes + d.data.len() > self.limits.held_bytes {
            self.stats.drop(&d);
        } else {
            g.held_bytes += d.data.len();
            g.held.push_back(Event::TlsData(d));
        }
    }
}

impl Stats {
    fn drop(&mut self, d: &TlsData) {
        self.dropped_events += 1;
        self.dropped_bytes += d.data.len() as u64;
    }
}
